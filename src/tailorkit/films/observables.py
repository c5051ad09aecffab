"""Layer-resolved observables measured on the state at logarithmically spaced times (numba, O(N) per call).

Layers are those of the particles at the time origin t = 0 (the exact equilibrium start is a valid origin).
[inferred, docs/films.md#observables-and-defaults; options in RunConfig] F_s(q, t; z0) = <cos(q dx)> along x
(and y in 3D, averaged), q = pi/2 by default; lateral MSD; bond persistence = fraction of the t = 0
nearest-neighbour pairs still adjacent; hops per particle; void density per layer; fraction of particles relaxed
(first |dr|^2 >= relax_r2) per layer.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from tailorkit.films.interactions import bond_v
from tailorkit.films.state import FilmState

FIELDS = ("fs", "msd", "bond", "hops", "voids", "relaxed")


@nb.njit(cache=True)
def _layer_obs(disp, layer0, nb0, pos, nbr, q, n_layers, n_lateral, hops, t_relax, vsite, site_layer):
    n_part = disp.shape[0]
    count = np.zeros(n_layers)
    fs = np.zeros(n_layers)
    msd = np.zeros(n_layers)
    kept = np.zeros(n_layers)
    bonds = np.zeros(n_layers)
    hop = np.zeros(n_layers)
    relaxed = np.zeros(n_layers)
    for k in range(n_part):
        z = layer0[k]
        count[z] += 1.0
        c = 0.0
        r2 = 0.0
        for a in range(n_lateral):
            dx = float(disp[k, a])
            c += math.cos(q * dx)
            r2 += dx * dx
        fs[z] += c / n_lateral
        msd[z] += r2
        hop[z] += hops[k]
        if t_relax[k] >= 0.0:
            relaxed[z] += 1.0
        pk = pos[k]
        for j in range(nb0.shape[1]):
            other = nb0[k, j]
            if other < 0:
                continue
            bonds[z] += 1.0
            pl = pos[other]
            for d in range(nbr.shape[1]):
                if nbr[pk, d] == pl:
                    kept[z] += 1.0
                    break
    voids = np.zeros(n_layers)
    for v in range(vsite.shape[0]):
        voids[site_layer[vsite[v]]] += 1.0
    out = np.full((6, n_layers), np.nan)
    for z in range(n_layers):
        if count[z] > 0:
            out[0, z] = fs[z] / count[z]
            out[1, z] = msd[z] / count[z]
            out[3, z] = hop[z] / count[z]
            out[5, z] = relaxed[z] / count[z]
        if bonds[z] > 0:
            out[2, z] = kept[z] / bonds[z]
        out[4, z] = voids[z]
    return out


@nb.njit(cache=True)
def _mean_bond_energy(occ, nbr, ovr_id, ovr_v, fpar, ipar, vseed):
    total = 0.0
    n = 0
    for s in range(nbr.shape[0]):
        k = occ[s]
        if k < 0:
            continue
        for d in range(nbr.shape[1]):
            m = nbr[s, d]
            if m > s and occ[m] >= 0:
                total += bond_v(k, occ[m], ovr_id, ovr_v, fpar, ipar, vseed)
                n += 1
    return total / max(n, 1)


@nb.njit(cache=True)
def _initial_neighbours(occ, pos, nbr):
    nb0 = np.full((pos.shape[0], nbr.shape[1]), -1, dtype=np.int32)
    for k in range(pos.shape[0]):
        for d in range(nbr.shape[1]):
            m = nbr[pos[k], d]
            if m >= 0 and occ[m] >= 0:
                nb0[k, d] = occ[m]
    return nb0


def origin(state: FilmState) -> dict[str, np.ndarray]:
    """What the observables compare against: positions, layers and neighbour ids at t = 0 (Shapes: [N], [N, nd])."""
    lat = state.lattice
    pos0 = state.pos.copy()
    return {
        "pos0": pos0,
        "layer0": lat.layer[pos0].astype(np.int32),
        "nb0": _initial_neighbours(state.occ, state.pos, lat.nbr),
    }


def measure(state: FilmState, init: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-layer observables now: {field: float64[n_layers]} plus the mean occupied-bond energy."""
    lat = state.lattice
    n_lateral = lat.dim - 1  # x (and y): the lateral directions of a film; bulk uses the same for comparability
    out = _layer_obs(
        state.disp,
        init["layer0"],
        init["nb0"],
        state.pos,
        lat.nbr,
        state.config.run.q,
        lat.n_layers,
        n_lateral,
        state.hops,
        state.t_relax,
        state.vsite,
        lat.layer,
    )
    result = {name: out[i] for i, name in enumerate(FIELDS)}
    result["ebond"] = np.array(mean_bond_energy(state))
    return result


def mean_bond_energy(state: FilmState) -> float:
    return float(
        _mean_bond_energy(state.occ, state.lattice.nbr, state.ovr_id, state.ovr_v, state.fpar, state.ipar, state.vseed)
    )
