"""The KMC kernels against brute force: energies, detailed balance, incremental rates, tree, waiting times,
conservation, exact Boltzmann statistics on an enumerable system, and the free-void tracer limit."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from tailorkit.films import kmc
from tailorkit.films.rng import rng_state, uniform
from tailorkit.films.state import initial_state
from tests.films.helpers import apply_event, copy_state, small_config, total_energy

MODES = [
    dict(lat_geometry="film", lat_substrate="smooth"),
    dict(lat_geometry="film", lat_substrate="pinned"),
    dict(lat_geometry="film", lat_substrate="bare"),
    dict(lat_geometry="bulk"),
    dict(lat_geometry="film", lat_substrate="pinned", lat_dim=3, lat_Ly=4, lat_Lx=4, lat_h=4),
]


@pytest.mark.parametrize("mode", MODES, ids=["smooth", "pinned", "bare", "bulk", "3d-pinned"])
def test_de_brute_force_and_detailed_balance(mode: dict) -> None:
    kw = dict(lat_Lx=6, lat_h=5, mod_phi_v=0.2, mod_T=0.3, run_seed=3)
    kw.update(mode)
    state = initial_state(small_config(**kw))
    # scramble so that pairs without overrides (hashed V) occur too
    state.run_until(math.inf, 200)
    P, B, T = int(state.ipar[7]), int(state.ipar[6]), state.config.model.T
    checked = 0
    e0 = total_energy(state)
    for v in range(state.vsite.shape[0]):
        for d in range(state.lattice.nd):
            leaf = v * B + d
            w_fwd = state.tree[P + leaf]
            if w_fwd == 0.0:
                continue
            sv = int(state.vsite[v])
            de = kmc.hop_de(
                sv, d, state.lattice.nbr, state.occ, state.ovr_id, state.ovr_v, state.fpar, state.ipar, state.vseed
            )
            after = copy_state(state)
            apply_event(after, leaf)
            e1 = total_energy(after)
            assert de == pytest.approx(e1 - e0, abs=1e-12)
            w_back = after.tree[P + v * B + (d ^ 1)]  # the void now sits where the particle was
            assert w_fwd / w_back == pytest.approx(math.exp(-(e1 - e0) / T), rel=1e-12)
            checked += 1
    assert checked >= 10


@pytest.mark.parametrize(
    "mode,table",
    [(m, None) for m in MODES[:4]] + [(MODES[1], "records")],
    ids=["smooth", "pinned", "bare", "bulk", "pinned-records"],
)
def test_incremental_rates_equal_recomputation(mode: dict, table: str | None) -> None:
    """The kernel's incremental leaves (dense table or site records) equal the generic path's from-scratch rates."""
    kw = dict(lat_Lx=8, lat_h=6, mod_phi_v=0.15, mod_T=0.25, run_seed=1)
    kw.update(mode)
    state = initial_state(small_config(**kw))
    if table is not None:
        state.extra["table"] = table
    P = int(state.ipar[7])
    for _ in range(3000):
        assert state.run_until(math.inf, 1) == 1
        fresh = state.fresh_rates()
        np.testing.assert_array_equal(state.tree[P:], fresh[P:])
        assert state.tree[1] == pytest.approx(fresh[P:].sum(), rel=1e-9)


def test_conservation_and_displacements() -> None:
    state = initial_state(small_config(lat_Lx=16, lat_h=8, mod_phi_v=0.08, mod_T=0.3, run_seed=2))
    lat = state.lattice
    pos0 = state.pos.copy()
    n, nv = state.n_particles, state.vsite.shape[0]
    assert state.run_until(math.inf, 100_000) == 100_000
    assert (state.occ >= 0).sum() == n and (state.occ < 0).sum() == nv
    np.testing.assert_array_equal(np.sort(state.occ[state.occ >= 0]), np.arange(n))
    np.testing.assert_array_equal(state.occ[state.pos], np.arange(n))
    np.testing.assert_array_equal(state.void_at[state.vsite], np.arange(nv))
    assert (state.occ[state.vsite] == -1).all()
    x = (lat.coords[pos0, 0] + state.disp[:, 0]) % 16
    z = lat.coords[pos0, 1] + state.disp[:, 1]
    np.testing.assert_array_equal(x, lat.coords[state.pos, 0])
    np.testing.assert_array_equal(z, lat.coords[state.pos, 1])  # no wrapping through a film's top or bottom
    assert state.hops.sum() == 100_000


def test_tree_sampling_frequencies() -> None:
    rates = np.array([1.0, 2.0, 3.0, 4.0, 0.5, 0.1, 5.0, 0.0])
    tree = np.zeros(16)
    tree[8:] = rates
    kmc.rebuild_sums(tree, 8)
    assert tree[1] == pytest.approx(rates.sum())
    rng = rng_state(0, "tree")
    draws = np.array([kmc.select_leaf(tree, 8, uniform(rng) * tree[1]) for _ in range(40_000)])
    counts = np.bincount(draws, minlength=8)
    assert counts[7] == 0
    expected = rates[:7] / rates.sum() * draws.size
    assert stats.chisquare(counts[:7], expected).pvalue > 1e-3
    wrong = np.full(7, draws.size / 7)  # the test can tell a wrong distribution apart
    assert stats.chisquare(counts[:7], wrong).pvalue < 1e-6


@pytest.mark.parametrize("P,B", [(4, 4), (8, 4), (64, 4), (128, 4), (8, 8), (256, 8)])
def test_four_way_tree_equals_binary(P: int, B: int) -> None:
    """The event loop's 4-way tree (kept nodes every second level) gives the binary tree's sums and leaves bit for
    bit: after random block updates its root equals rebuild_sums' root, and its descent picks the binary leaf for
    every r, boundaries and rounding fallbacks included."""
    rng = np.random.default_rng(P + B)
    binary = np.zeros(2 * P)
    binary[P:] = rng.exponential(size=P) * (rng.random(P) < 0.7)
    kmc.rebuild_sums(binary, P)
    four = binary.copy()
    for _ in range(50):
        base = P + B * int(rng.integers(P // B))
        binary[base : base + B] = four[base : base + B] = rng.exponential(size=B) * (rng.random(B) < 0.7)
        kmc.rebuild_sums(binary, P)
        kmc.propagate4(four, base, B, P)
        assert four[1] == binary[1]
        if binary[1] == 0.0:
            continue
        cum = np.cumsum(binary[P:])
        rs = np.concatenate([rng.random(200) * binary[1], cum[:-1], np.nextafter(cum[:-1], 0.0), [binary[1]]])
        for r in rs[rs <= binary[1]]:
            assert kmc.select_leaf4(four, P, r) == kmc.select_leaf(binary, P, r)
    # the test can fail: summing the four grandchildren left to right, ((g0 + g1) + g2) + g3, changes the last bits
    leaves = rng.exponential(size=(200, 4))
    paired = (leaves[:, 0] + leaves[:, 1]) + (leaves[:, 2] + leaves[:, 3])
    assert (((leaves[:, 0] + leaves[:, 1]) + leaves[:, 2]) + leaves[:, 3] != paired).any()


def test_exponential_waiting_times() -> None:
    tree = np.zeros(4)
    tree[1] = 2.5
    rng = rng_state(0, "wait")
    clock = np.zeros(2)
    dts = []
    for _ in range(10_000):
        kmc.draw_next(clock, tree, rng)
        dts.append(clock[1] - clock[0])
    dts_a = np.array(dts)
    assert dts_a.mean() == pytest.approx(1 / 2.5, rel=0.03)
    assert stats.kstest(dts_a, "expon", args=(0, 1 / 2.5)).pvalue > 1e-3
    assert stats.kstest(dts_a, "expon", args=(0, 1 / 2.0)).pvalue < 1e-6


def test_exact_boltzmann_statistics_tiny_film() -> None:
    """3 x 2 film (smooth substrate), 2 voids, 4 distinguishable particles: 360 states, enumerated exactly."""
    T = 0.5
    state = initial_state(
        small_config(lat_Lx=3, lat_h=2, mod_phi_v=0.34, mod_T=T, run_seed=5, mod_void_matching="canonical")
    )
    assert state.vsite.shape[0] == 2
    n_sites, n = 6, state.n_particles
    energies = {}
    probe = copy_state(state)
    for sites in itertools.permutations(range(n_sites), n):
        probe.occ[:] = -1
        probe.occ[list(sites)] = np.arange(n)
        energies[sites] = total_energy(probe)
    keys = list(energies)
    e = np.array([energies[k] for k in keys])
    exact = np.exp(-(e - e.min()) / T)
    exact /= exact.sum()
    index = {k: i for i, k in enumerate(keys)}
    occupancy = np.zeros(len(keys))
    for _ in range(250_000):
        key = tuple(int(s) for s in state.pos)
        t0 = state.t
        state.run_until(math.inf, 1)
        occupancy[index[key]] += state.t - t0
    occupancy /= occupancy.sum()
    tv = 0.5 * np.abs(occupancy - exact).sum()
    assert tv < 0.04, tv
    hot = np.exp(-(e - e.min()) / (2 * T))
    hot /= hot.sum()
    assert 0.5 * np.abs(occupancy - hot).sum() > 0.1  # a wrong temperature is detected


def test_free_void_tracer_limit() -> None:
    """g = delta(0): D* = f phi_v w with f = 0.467 (2D square lattice vacancy correlation), MSD = 4 D* t."""
    msd_ratio = []
    for seed in range(3):
        cfg = small_config(
            lat_geometry="bulk",
            lat_Lx=64,
            lat_h=64,
            mod_phi_v=0.005,
            mod_g="delta",
            mod_V0=0.0,
            mod_T=0.3,
            run_seed=seed,
        )
        state = initial_state(cfg)
        w = float(state.fpar[1])
        phi = state.vsite.shape[0] / (64 * 64)
        state.run_until(math.inf, 600_000)
        msd = float((state.disp.astype(float) ** 2).sum(axis=1).mean())
        msd_ratio.append(msd / (4 * 0.467 * phi * w * state.t))
    assert np.mean(msd_ratio) == pytest.approx(1.0, abs=0.08), msd_ratio


def test_rejection_baseline_samples_the_same_dynamics() -> None:
    """Naive rejection KMC (the speed baseline) and the rejection-free kernel: same event rate and same MSD."""
    from tailorkit.films.baseline import rejection_kmc

    cfg = small_config(lat_Lx=32, lat_h=8, mod_phi_v=0.05, mod_T=0.6, run_seed=9)
    fast, slow = initial_state(cfg), initial_state(cfg)
    res = rejection_kmc(slow, 3_000_000)
    fast.run_until(slow.t)
    assert res["accepted"] > 50_000
    assert res["accepted"] / slow.t == pytest.approx(fast.events / fast.t, rel=0.05)
    msd_fast = float((fast.disp.astype(float) ** 2).sum(axis=1).mean())
    msd_slow = float((slow.disp.astype(float) ** 2).sum(axis=1).mean())
    assert msd_slow == pytest.approx(msd_fast, rel=0.15)
