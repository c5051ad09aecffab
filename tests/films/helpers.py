"""Brute-force references shared by the films tests (pure Python, tiny systems)."""

from __future__ import annotations

import numpy as np

from tailorkit.films import kmc
from tailorkit.films.config import FilmConfig, LatticeConfig, ModelConfig, RunConfig
from tailorkit.films.state import FilmState


def small_config(**kw: object) -> FilmConfig:
    lat = {k[4:]: v for k, v in kw.items() if k.startswith("lat_")}
    mod = {k[4:]: v for k, v in kw.items() if k.startswith("mod_")}
    run = {k[4:]: v for k, v in kw.items() if k.startswith("run_")}
    return FilmConfig(LatticeConfig(**lat), ModelConfig(**mod), RunConfig(**run))  # type: ignore[arg-type]


def total_energy(state: FilmState) -> float:
    """Sum of V over every adjacent particle pair (once) and every substrate contact, from scratch."""
    lat, occ = state.lattice, state.occ
    e = 0.0
    for s in range(lat.n_sites):
        k = int(occ[s])
        if k < 0:
            continue
        for d in range(lat.nd):
            m = int(lat.nbr[s, d])
            if m > s and occ[m] >= 0:
                e += state.bond_energy(k, int(occ[m]))
            elif m == -2:
                if state.config.lattice.substrate == "smooth":
                    e += float(state.fpar[4])
                else:
                    e += state.bond_energy(k, state.n_particles + s % lat.area)
    return e


def apply_event(state: FilmState, leaf: int, t: float = 0.0) -> None:
    """Perform event `leaf` through the kernel (used to step by hand)."""
    near = np.empty(64, dtype=np.int64)
    kmc.do_event(
        leaf,
        t,
        state.lattice.nbr,
        state.lattice.dvec,
        state.occ,
        state.pos,
        state.vsite,
        state.void_at,
        state.disp,
        state.hops,
        state.t_relax,
        state.ovr_id,
        state.ovr_v,
        state.tree,
        state.stamp,
        state.counters,
        state.fpar,
        state.ipar,
        state.vseed,
        near,
    )


def copy_state(state: FilmState) -> FilmState:
    import dataclasses

    return dataclasses.replace(state, **{k: v.copy() for k, v in state.arrays().items()})
