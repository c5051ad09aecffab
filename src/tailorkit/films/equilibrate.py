"""Exact equilibrium start (docs/films.md#exact-equilibrium-start, "ap=2" of the reference code, generalised to films).

1. Lattice-gas preheat [verified: reference code; film generalisation inferred]: in equilibrium the void arrangement
   is weighted by Z1^(number of bonds), bonds to a smooth or pinned substrate included, i.e. a lattice gas with bond
   energy u = -T ln Z1. The reference code relaxes it with 500 N ordinary hops at constant u; we sample the same
   distribution with non-local Kawasaki moves (swap a random void with a random particle, Metropolis on
   Z1^(d bonds)), which satisfies detailed balance for that weight and mixes without void diffusion.
2. Random labels on the particle sites.
3. Boltzmann bonds [verified]: every occupied bond, and each contact with a pinned substrate particle, gets
   V ~ g(V) exp(-V/T) / Z1 (exact inverse CDF), stored as overrides; every other pair keeps its a-priori V ~ g(V).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from tailorkit.films.interactions import boltzmann_v
from tailorkit.films.rng import randint, uniform


@nb.njit(cache=True)
def shuffle(a, rng):
    """Fisher-Yates in place with our generator."""
    for i in range(a.shape[0] - 1, 0, -1):
        j = randint(rng, i + 1)
        tmp = a[i]
        a[i] = a[j]
        a[j] = tmp


@nb.njit(cache=True)
def _bonds_at(s, skip, filled, nbr):
    n = 0
    for d in range(nbr.shape[1]):
        m = nbr[s, d]
        if m >= 0:
            if m != skip and filled[m] != 0:
                n += 1
        elif m == -2:
            n += 1
    return n


@nb.njit(cache=True)
def lattice_gas_bonds(filled, nbr):
    """Number of particle-particle bonds plus particle-substrate bonds (each counted once)."""
    n = 0
    for s in range(nbr.shape[0]):
        if filled[s] != 0:
            for d in range(nbr.shape[1]):
                m = nbr[s, d]
                if m == -2 or (m > s and filled[m] != 0):
                    n += 1
    return n


@nb.njit(cache=True)
def preheat(filled, psite, vsite, nbr, ln_z1, attempts, rng):
    """Non-local Kawasaki moves of the lattice gas with weight Z1^(bonds); returns the number accepted."""
    n_p = psite.shape[0]
    n_v = vsite.shape[0]
    accepted = 0
    for _ in range(attempts):
        i = randint(rng, n_p)
        j = randint(rng, n_v)
        b = psite[i]
        a = vsite[j]
        before = _bonds_at(b, -1, filled, nbr)
        filled[b] = 0
        after = _bonds_at(a, b, filled, nbr)
        dn = after - before
        if dn * ln_z1 >= 0.0 or uniform(rng) < math.exp(dn * ln_z1):
            filled[a] = 1
            psite[i] = a
            vsite[j] = b
            accepted += 1
        else:
            filled[b] = 1
    return accepted


@nb.njit(cache=True)
def boltzmann_bonds(occ, nbr, area, n_particles, pinned, ovr_id, ovr_v, V0, V1, T, g_mode, rng):
    """Draw V ~ g exp(-V/T)/Z1 for every occupied bond (and pinned-substrate contact); store in both particles."""
    ovr_id[:, :] = -1
    ovr_v[:, :] = 0.0
    fill = np.zeros(ovr_id.shape[0], dtype=np.int64)
    for s in range(nbr.shape[0]):
        k = occ[s]
        if k < 0:
            continue
        for d in range(nbr.shape[1]):
            m = nbr[s, d]
            if m > s and occ[m] >= 0:
                j = occ[m]
                v = boltzmann_v(uniform(rng), V0, V1, T, g_mode)
                ovr_id[k, fill[k]] = j
                ovr_v[k, fill[k]] = v
                fill[k] += 1
                ovr_id[j, fill[j]] = k
                ovr_v[j, fill[j]] = v
                fill[j] += 1
            elif m == -2 and pinned:
                ovr_id[k, fill[k]] = n_particles + s % area
                ovr_v[k, fill[k]] = boltzmann_v(uniform(rng), V0, V1, T, g_mode)
                fill[k] += 1


def equilibrium_occupancy(
    nbr: np.ndarray, n_voids: int, ln_z1: float, attempts: int, rng: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Void sites after the lattice-gas preheat and a random labelling: (occ int32[S], vsite int32[Nv])."""
    n_sites = nbr.shape[0]
    sites = np.arange(n_sites, dtype=np.int32)
    shuffle(sites, rng)
    vsite = sites[:n_voids].copy()
    psite = sites[n_voids:].copy()
    filled = np.ones(n_sites, dtype=np.int8)
    filled[vsite] = 0
    preheat(filled, psite, vsite, nbr, ln_z1, attempts, rng)
    labels = np.arange(psite.shape[0], dtype=np.int32)
    shuffle(labels, rng)
    occ = np.full(n_sites, -1, dtype=np.int32)
    occ[psite] = labels
    return occ, np.sort(vsite).astype(np.int32)
