"""Bit-identical trajectories: fixed-seed runs of every kernel configuration against committed fingerprints.

The fingerprints in data/reference_trajectories.json were written by the kernel before the speed work of issue 24
(`python -m tests.films.test_reference_trajectory --write`); every optimisation must reproduce them bit for bit:
the sha256 of the final occupancy, displacements, hop counts, first-relaxation times, sum-tree leaves and xoshiro
state, plus the exact clock (float.hex) and event counters.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from tailorkit.films.state import FilmState, initial_state
from tests.films.helpers import small_config

DATA = Path(__file__).parent / "data" / "reference_trajectories.json"

# name -> (config keywords, events): every branch of the kernel (dimension, substrate mode, g mode, periodic
# rebuild, chunked vs one-shot runs) appears in at least one case
CASES: dict[str, tuple[dict, int]] = {
    "film-smooth": (dict(lat_Lx=24, lat_h=8, mod_phi_v=0.05, mod_T=0.25, run_seed=1), 60_000),
    "film-pinned": (dict(lat_Lx=20, lat_h=6, lat_substrate="pinned", mod_phi_v=0.05, mod_T=0.22, run_seed=2), 60_000),
    "film-bare": (dict(lat_Lx=16, lat_h=6, lat_substrate="bare", mod_phi_v=0.06, mod_T=0.3, run_seed=3), 40_000),
    "bulk-2d": (dict(lat_geometry="bulk", lat_Lx=30, lat_h=30, mod_phi_v=0.01, mod_T=0.18, run_seed=4), 80_000),
    "bulk-2d-rebuild": (
        dict(lat_geometry="bulk", lat_Lx=12, lat_h=12, mod_phi_v=0.04, mod_T=0.2, run_seed=5, run_rebuild_every=997),
        30_000,
    ),
    "bulk-delta": (
        dict(lat_geometry="bulk", lat_Lx=16, lat_h=16, mod_phi_v=0.02, mod_g="delta", mod_V0=0.0, run_seed=6),
        30_000,
    ),
    "film-3d-pinned": (
        dict(lat_dim=3, lat_Lx=6, lat_Ly=5, lat_h=5, lat_substrate="pinned", mod_phi_v=0.04, mod_T=0.25, run_seed=7),
        40_000,
    ),
    "bulk-3d": (dict(lat_geometry="bulk", lat_dim=3, lat_Lx=8, lat_Ly=8, lat_h=8, mod_phi_v=0.02, run_seed=8), 40_000),
    "bulk-2d-L100": (
        dict(lat_geometry="bulk", lat_Lx=100, lat_h=100, mod_phi_v=0.01, mod_T=0.18, run_seed=9, run_preheat_sweeps=20),
        100_000,
    ),
}


def fingerprint(state: FilmState) -> dict:
    h = hashlib.sha256()
    for name in ("occ", "pos", "vsite", "void_at", "disp", "hops", "t_relax", "rng", "counters"):
        h.update(name.encode())
        h.update(np.ascontiguousarray(getattr(state, name)).tobytes())
    P = int(state.ipar[7])
    h.update(b"leaves")
    h.update(np.ascontiguousarray(state.tree[P:]).tobytes())
    return {
        "sha256": h.hexdigest(),
        "events": int(state.counters[0]),
        "t": float(state.clock[0]).hex(),
        "t_next": float(state.clock[1]).hex(),
        "root": float(state.tree[1]).hex(),
    }


def run_case(name: str, table: str | None = None) -> dict:
    kw, events = CASES[name]
    state = initial_state(small_config(**kw))
    if table is not None:
        state.extra["table"] = table
    done = state.run_until(math.inf, events // 3)  # two segments: cutting a run must not change it
    done += state.run_until(math.inf, events - done)
    assert done == events
    return fingerprint(state)


@pytest.mark.parametrize("name", list(CASES))
def test_trajectory_matches_reference(name: str) -> None:
    reference = json.loads(DATA.read_text())[name]
    assert run_case(name) == reference


@pytest.mark.parametrize("name", ["film-pinned", "film-bare", "bulk-delta", "film-3d-pinned"])
def test_site_records_match_reference(name: str) -> None:
    """The small cases run on the dense pair table by default; the site records must give the same trajectory."""
    kw, _ = CASES[name]
    assert initial_state(small_config(**kw)).dense
    assert run_case(name, "records") == json.loads(DATA.read_text())[name]


def test_fingerprint_detects_a_changed_trajectory() -> None:
    kw, events = CASES["bulk-2d-rebuild"]
    state = initial_state(small_config(**kw))
    state.run_until(math.inf, events - 1)  # one event short: everything differs
    assert fingerprint(state) != json.loads(DATA.read_text())["bulk-2d-rebuild"]


if __name__ == "__main__" and "--write" in sys.argv:
    DATA.write_text(json.dumps({name: run_case(name) for name in CASES}, indent=1) + "\n")
    print(f"wrote {DATA}")
