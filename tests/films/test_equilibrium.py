"""Exact equilibrium start and hashed interactions."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from tailorkit.films.equilibrate import lattice_gas_bonds, preheat, shuffle
from tailorkit.films.interactions import boltzmann_v, hashed_u, u_lattice_gas, vseed_of, z1
from tailorkit.films.lattice import build_lattice
from tailorkit.films.observables import mean_bond_energy
from tailorkit.films.rng import rng_state
from tailorkit.films.simulate import expected_bond_energy
from tailorkit.films.state import initial_state
from tests.films.helpers import small_config


def boltzmann_cdf(v: np.ndarray, V0: float, V1: float, T: float) -> np.ndarray:
    return -np.expm1(-(v - V0) / T) / -math.expm1(-(V1 - V0) / T)


def test_z1_and_u_match_the_reference_formula() -> None:
    for T in (0.15, 0.2, 0.3):
        cfg = small_config(mod_T=T)
        v = np.linspace(-0.5, 0.5, 200_001)
        assert z1(cfg) == pytest.approx(np.trapezoid(np.exp(-v / T), v), rel=1e-8)
        # docs/films.md#exact-equilibrium-start: u = V_min - T ln[T (1 - e^(-1/T))] = -T ln Z1
        assert u_lattice_gas(cfg) == pytest.approx(-0.5 - T * math.log(T * (1 - math.exp(-1 / T))), rel=1e-12)
        assert u_lattice_gas(cfg) == pytest.approx(-T * math.log(z1(cfg)), rel=1e-12)


def test_occupied_bonds_follow_boltzmann_weighted_g() -> None:
    T = 0.2
    state = initial_state(small_config(lat_Lx=128, lat_h=16, mod_T=T, run_seed=4))
    k = np.repeat(np.arange(state.n_particles), state.ovr_id.shape[1]).reshape(state.ovr_id.shape)
    once = (state.ovr_id > k) & (state.ovr_id < state.n_particles)  # each particle pair once
    v = state.ovr_v[once]
    assert v.size > 3000
    assert stats.kstest(v, lambda x: boltzmann_cdf(x, -0.5, 0.5, T)).pvalue > 1e-3
    assert stats.kstest(v, "uniform", args=(-0.5, 1.0)).pvalue < 1e-6  # a priori g is told apart
    assert mean_bond_energy(state) == pytest.approx(expected_bond_energy(state.config), abs=0.01)


def test_boltzmann_inverse_cdf_delta_and_range() -> None:
    u = np.linspace(0, 0.999999, 1001)
    v = np.array([boltzmann_v(x, -0.5, 0.5, 0.2, 0) for x in u])
    assert v.min() >= -0.5 and v.max() <= 0.5 and np.all(np.diff(v) > 0)
    assert boltzmann_v(0.3, -0.2, 0.7, 0.2, 1) == -0.2


def test_preheat_matches_exact_lattice_gas_enumeration() -> None:
    """4 x 3 film, smooth substrate, 2 voids, T = 0.15 (Z1 = 4.2): layer void densities from all 66 arrangements."""
    cfg = small_config(lat_Lx=4, lat_h=3, mod_phi_v=0.17, mod_T=0.15)
    lat = build_lattice(cfg.lattice)
    ln_z1 = math.log(z1(cfg))
    n_sites = lat.n_sites
    weights, profiles = [], []
    for voids in itertools.combinations(range(n_sites), 2):
        filled = np.ones(n_sites, np.int8)
        filled[list(voids)] = 0
        weights.append(math.exp(ln_z1 * lattice_gas_bonds(filled, lat.nbr)))
        profiles.append(np.bincount(lat.layer[list(voids)], minlength=3))
    w = np.array(weights) / sum(weights)
    exact = (w[:, None] * np.array(profiles)).sum(axis=0)
    assert exact[2] > 1.5 * exact[1]  # the free surface attracts voids
    rng = rng_state(0, "preheat-test")
    sites = np.arange(n_sites, dtype=np.int32)
    shuffle(sites, rng)
    vsite, psite = sites[:2].copy(), sites[2:].copy()
    filled = np.ones(n_sites, np.int8)
    filled[vsite] = 0
    acc = np.zeros(3)
    n_samples = 20_000
    for _ in range(n_samples):
        preheat(filled, psite, vsite, lat.nbr, ln_z1, 10, rng)
        acc += np.bincount(lat.layer[vsite], minlength=3)
    np.testing.assert_allclose(acc / n_samples, exact, atol=0.03)


def test_top_layer_void_enrichment_close_to_z1() -> None:
    """At low void density the top layer is enriched by ~Z1 (one bond fewer per top void)
    [docs/films.md#exact-equilibrium-start]."""
    T = 0.25
    top = interior = 0.0
    for seed in range(12):
        state = initial_state(small_config(lat_Lx=512, lat_h=16, mod_phi_v=0.01, mod_T=T, run_seed=seed))
        layer = state.lattice.layer[state.vsite]
        top += (layer == 15).sum()
        interior += ((layer >= 3) & (layer <= 12)).sum() / 10
    assert top / interior == pytest.approx(z1(small_config(mod_T=T)), rel=0.2), (top, interior)
    assert top / interior > 1.3  # clearly enriched: a random (ap=1) start would give 1


def test_hashed_interactions() -> None:
    seed = vseed_of(7)
    n_ids = 5000
    pairs = np.random.default_rng(0).integers(0, n_ids, size=(4000, 2))
    u = np.array([hashed_u(int(a), int(b), n_ids, seed) for a, b in pairs])
    u_swapped = np.array([hashed_u(int(b), int(a), n_ids, seed) for a, b in pairs])
    np.testing.assert_array_equal(u, u_swapped)
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    again = np.array([hashed_u(int(a), int(b), n_ids, vseed_of(7)) for a, b in pairs[:50]])
    np.testing.assert_array_equal(again, u[:50])
    other = np.array([hashed_u(int(a), int(b), n_ids, vseed_of(8)) for a, b in pairs[:50]])
    assert not np.array_equal(other, u[:50])


def test_overrides_win_over_the_hash() -> None:
    state = initial_state(small_config(lat_Lx=16, lat_h=6, mod_T=0.2, mod_phi_v=0.05))
    k = 0
    j = int(state.ovr_id[k, 0])
    assert j >= 0
    assert state.bond_energy(k, j) == state.ovr_v[k, 0]
    assert state.bond_energy(j, k) == state.ovr_v[k, 0]  # symmetric: stored on both sides
    stranger = next(i for i in range(state.n_particles) if i != k and i not in state.ovr_id[k])
    expected = -0.5 + hashed_u(k, stranger, state.n_particles + state.lattice.area, state.vseed)
    assert state.bond_energy(k, stranger) == pytest.approx(expected, abs=1e-15)


def test_interior_void_matching_restores_bulk_density() -> None:
    """Default films get extra voids for the enriched top layer, so layers below it hold ~phi_v (canonical: less)."""
    dens = {"interior": [], "canonical": []}
    for matching in dens:
        for seed in range(4):
            cfg = small_config(
                lat_Lx=256, lat_h=6, mod_T=0.2, mod_phi_v=0.02, mod_void_matching=matching, run_seed=seed
            )
            state = initial_state(cfg)
            layer = state.lattice.layer[state.vsite]
            dens[matching].append((layer <= 4).sum() / (256 * 5))
    assert np.mean(dens["interior"]) == pytest.approx(0.02, rel=0.15)
    assert np.mean(dens["canonical"]) < 0.85 * np.mean(dens["interior"])
