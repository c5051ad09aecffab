"""Settings of a film (or bulk) DPLM run: frozen dataclasses validated in `__post_init__`.

Verified (docs/films.md#base-model, reference code `zhangns/dplm-public`): square lattice, pair energies V from
g(V) uniform on [-0.5, 0.5], swap rate w0 exp(-(E0 + dE/2)/T) with w0 = 1e6, E0 = 1.5, void fraction phi_v ~ 0.01.
Inferred (docs/films.md#film-geometry-and-substrate, docs/films.md#observables-and-defaults; options here): the
film geometry (periodic in x, closed top, substrate modes), the observables (F_s at q = pi/2 along x, 1/e
threshold), the first-relaxation criterion |dr|^2 >= 4, the preheat length.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from tailorkit.core.config import to_dict

Geometry = Literal["film", "bulk"]
Substrate = Literal["smooth", "pinned", "bare"]


@dataclass(frozen=True)
class LatticeConfig:
    """Geometry. Film: Lx (x Ly) x h, periodic laterally, closed free surface on top (z = h - 1), substrate below
    z = 0. Bulk: periodic Lx (x Ly) x h."""

    geometry: Geometry = "film"
    dim: Literal[2, 3] = 2
    Lx: int = 128
    Ly: int = 1
    h: int = 16
    substrate: Substrate = "smooth"

    def __post_init__(self) -> None:
        if self.geometry not in ("film", "bulk"):
            raise ValueError(f"lattice.geometry: expected 'film' or 'bulk', got {self.geometry!r}")
        if self.substrate not in ("smooth", "pinned", "bare"):
            raise ValueError(f"lattice.substrate: expected one of 'smooth', 'pinned', 'bare', got {self.substrate!r}")
        if self.dim not in (2, 3):
            raise ValueError(f"lattice.dim: expected 2 or 3, got {self.dim!r}")
        if self.Lx < 3:
            raise ValueError(f"lattice.Lx: expected at least 3 (periodic neighbours must differ), got {self.Lx}")
        if self.dim == 3 and self.Ly < 3:
            raise ValueError(f"lattice.Ly: expected at least 3 in 3D, got {self.Ly}")
        if self.dim == 2 and self.Ly != 1:
            raise ValueError(f"lattice.Ly: expected 1 in 2D, got {self.Ly}")
        min_h = 3 if self.geometry == "bulk" else 2
        if self.h < min_h:
            raise ValueError(f"lattice.h: expected at least {min_h} for a {self.geometry}, got {self.h}")

    @property
    def n_sites(self) -> int:
        return self.Lx * self.Ly * self.h


@dataclass(frozen=True)
class ModelConfig:
    """The DPLM: pair-energy distribution g(V), rates w0 exp(-(E0 + dE/2)/T), void fraction, temperature."""

    T: float = 0.20
    phi_v: float = 0.01
    g: Literal["uniform", "delta"] = "uniform"
    V0: float = -0.5
    V1: float = 0.5
    E0: float = 1.5
    w0: float = 1e6
    void_matching: Literal["interior", "canonical"] = "interior"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.T) and self.T > 0):
            raise ValueError(f"model.T: expected a temperature > 0, got {self.T}")
        if not (0 < self.phi_v < 1):
            raise ValueError(f"model.phi_v: expected a void fraction in (0, 1), got {self.phi_v}")
        if self.g == "uniform" and not self.V1 > self.V0:
            raise ValueError(f"model: g uniform on [V0, V1] needs V1 > V0, got V0={self.V0}, V1={self.V1}")
        if self.w0 <= 0:
            raise ValueError(f"model.w0: expected > 0, got {self.w0}")
        if self.void_matching not in ("interior", "canonical"):
            raise ValueError(f"model.void_matching: expected 'interior' or 'canonical', got {self.void_matching!r}")

    def z1(self) -> float:
        """Z1(T) = int g(V) exp(-V/T) dV: the Boltzmann weight of one occupied bond, averaged over g."""
        if self.g == "delta":
            return math.exp(-self.V0 / self.T)
        width = self.V1 - self.V0
        return self.T * math.exp(-self.V0 / self.T) * -math.expm1(-width / self.T) / width


@dataclass(frozen=True)
class RunConfig:
    """Run length, observables and bookkeeping. Times are physical (rates w0 exp(-(E0 + dE/2)/T))."""

    seed: int = 0
    t_max: float = 1e7
    stop_after_tau: float = 3.0
    budget_s: float = 3600.0
    budget_clock: str = "wall"
    max_events: int = 0
    q: float = math.pi / 2
    t_first_hops: float = 0.5
    per_decade: int = 10
    preheat_sweeps: int = 200
    relax_r2: int = 4
    checkpoint_every_s: float = 60.0
    rebuild_every: int = 1 << 20
    chunk_events: int = 1_000_000
    # "reference": the kernel whose trajectories the committed fingerprints pin bit for bit; "running": per-particle
    # running sums of bond energies on energies rounded to a 2**-36 grid (exact sums; docs/films.md#the-kernel-issue-24)
    kernel: Literal["reference", "running"] = "reference"

    def __post_init__(self) -> None:
        if self.t_max <= 0:
            raise ValueError(f"run.t_max: expected > 0, got {self.t_max}")
        if self.stop_after_tau < 0:
            raise ValueError(f"run.stop_after_tau: expected >= 0 (0 = run to t_max), got {self.stop_after_tau}")
        if self.budget_s <= 0:
            raise ValueError(f"run.budget_s: expected > 0 seconds, got {self.budget_s}")
        if self.budget_clock not in ("wall", "cpu"):
            raise ValueError(f"run.budget_clock: expected 'wall' or 'cpu', got {self.budget_clock!r}")
        if self.max_events < 0:
            raise ValueError(f"run.max_events: expected >= 0 (0 = no limit), got {self.max_events}")
        if self.per_decade < 1 or self.t_first_hops <= 0:
            raise ValueError("run.per_decade must be >= 1 and run.t_first_hops > 0")
        if self.preheat_sweeps < 0 or self.relax_r2 < 1 or self.chunk_events < 1 or self.rebuild_every < 1:
            raise ValueError("run.preheat_sweeps >= 0, run.relax_r2 >= 1, run.chunk_events >= 1 are required")
        if self.kernel not in ("reference", "running"):
            raise ValueError(f"run.kernel: expected 'reference' or 'running', got {self.kernel!r}")


@dataclass(frozen=True)
class FilmConfig:
    """One run: lattice x model x run settings. (config, seed) determines the trajectory bit for bit."""

    lattice: LatticeConfig = field(default_factory=LatticeConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def __post_init__(self) -> None:
        n_sites = self.lattice.n_sites
        n_voids = self.n_voids
        if n_voids < 1 or n_voids >= n_sites - 1:
            raise ValueError(
                f"impossible density: phi_v={self.model.phi_v} on {n_sites} sites gives {n_voids} voids; "
                f"expected between 1 and {n_sites - 2}"
            )
        if self.run.kernel == "running" and max(abs(self.model.V0), abs(self.model.V1)) > 1024:
            raise ValueError(
                f"run.kernel = 'running' keeps exact sums only for |V0|, |V1| <= 1024, got V0={self.model.V0}, "
                f"V1={self.model.V1}"
            )

    @property
    def n_voids(self) -> int:
        """phi_v x sites (bulk, or `void_matching = "canonical"`); for films with `"interior"` (default) the count
        that gives the interior the void density phi_v of the bulk: each free-surface-like layer (the top, and the
        bottom of a bare substrate) holds Z1 times the interior density in the dilute limit (a void there breaks one
        bond fewer). [inferred, docs/films.md#void-matching-in-films; without it surface enrichment depletes
        the interior of thin films, which with tau ~ phi_v^-nu, nu ~ 2, slows them markedly]"""
        lat, m = self.lattice, self.model
        if lat.geometry == "bulk" or m.void_matching == "canonical":
            return round(m.phi_v * lat.n_sites)
        n_free = 1 + (lat.substrate == "bare")
        area = lat.Lx * (lat.Ly if lat.dim == 3 else 1)
        return round(m.phi_v * area * (lat.h - n_free + n_free * m.z1()))


def config_json(config: Any) -> str:
    """Canonical JSON (sorted keys) of a config: what files store and what the hash covers. `run.kernel` is left out
    at its default ("reference"), so that the files and hashes of runs made before the option existed stay valid."""
    d = to_dict(config)
    if isinstance(config, FilmConfig) and d["run"].get("kernel") == "reference":
        del d["run"]["kernel"]
    return json.dumps(d, sort_keys=True, separators=(",", ":"))


def config_hash(config: Any) -> str:
    return hashlib.sha256(config_json(config).encode()).hexdigest()[:16]
