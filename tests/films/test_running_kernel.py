"""The running-sum kernel (`run.kernel = "running"`, issue 24): quantized energies, per-particle bond-energy sums,
shared bond lookups per void.

It cannot reproduce the committed reference fingerprints (the energies are rounded to a 2**-36 grid, so the rates
differ in their last bits), so it is tested (1) exactly against the generic path run on the same quantized energies
(every leaf after every event, and the running sums against a from-scratch recomputation), and (2) against the
reference kernel: the rate changes are ~1e-10 relative, so over tens of thousands of events the two kernels make the
same choices (same occupancy, displacements and hop counts) and their clocks agree to 1e-9.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tailorkit.films.config import config_hash, config_json
from tailorkit.films.interactions import Q_STEP, quantize
from tailorkit.films.state import FilmState, initial_state
from tests.films.helpers import small_config

MODES = {
    "smooth": dict(lat_Lx=8, lat_h=6, mod_phi_v=0.15, mod_T=0.25, run_seed=1),
    "pinned": dict(lat_Lx=8, lat_h=6, lat_substrate="pinned", mod_phi_v=0.15, mod_T=0.25, run_seed=2),
    "bare": dict(lat_Lx=8, lat_h=6, lat_substrate="bare", mod_phi_v=0.15, mod_T=0.25, run_seed=3),
    "bulk-delta": dict(lat_geometry="bulk", lat_Lx=8, lat_h=8, mod_phi_v=0.1, mod_g="delta", mod_V0=0.1, run_seed=4),
    "3d-pinned": dict(
        lat_dim=3, lat_Lx=4, lat_Ly=4, lat_h=4, lat_substrate="pinned", mod_phi_v=0.1, mod_T=0.3, run_seed=5
    ),
}


def _state(kw: dict, kernel: str, table: str | None = None) -> FilmState:
    state = initial_state(small_config(run_kernel=kernel, **kw))
    if table is not None:
        state.extra["table"] = table
    return state


# Each (configuration, table) below is one more compiled variant of the running kernel (~15-40 s CPU from a cold numba
# cache), so the default suite keeps one: the smooth 2D film on its default (dense) table, the variant both fast tests
# share; the others are slow tests.
SLOW = pytest.mark.slow


@pytest.mark.parametrize(
    "name,table",
    [
        ("smooth", None),
        pytest.param("smooth", "records", marks=SLOW),
        pytest.param("pinned", None, marks=SLOW),
        pytest.param("pinned", "records", marks=SLOW),
        pytest.param("bare", None, marks=SLOW),
        pytest.param("bulk-delta", None, marks=SLOW),
        pytest.param("3d-pinned", "records", marks=SLOW),
    ],
)
def test_running_rates_equal_generic_recomputation(name: str, table: str | None) -> None:
    state = _state(MODES[name], "running", table)
    P = int(state.ipar[7])
    np.testing.assert_array_equal(state.tree[P:], state.fresh_rates()[P:])
    for _ in range(1500):
        assert state.run_until(math.inf, 1) == 1
        np.testing.assert_array_equal(state.tree[P:], state.fresh_rates()[P:])
    esum = state.extra["esum"].copy()  # the kernel's running sums after 1500 events of + and - updates ...
    fresh = state.energy_sums(*state.kernel_tables())  # ... against sums refilled from scratch
    np.testing.assert_array_equal(esum, fresh)
    assert np.abs(esum).max() > 0.1  # (not all zero)


@pytest.mark.parametrize(
    "kw,events,table",
    [
        (dict(lat_Lx=24, lat_h=8, mod_phi_v=0.05, mod_T=0.25, run_seed=1), 60_000, None),
        pytest.param(
            dict(lat_Lx=20, lat_h=6, lat_substrate="pinned", mod_phi_v=0.05, mod_T=0.22, run_seed=2),
            60_000,
            "records",
            marks=SLOW,
        ),
        pytest.param(
            dict(lat_geometry="bulk", lat_Lx=30, lat_h=30, mod_phi_v=0.01, mod_T=0.18, run_seed=4),
            60_000,
            None,
            marks=SLOW,
        ),
        pytest.param(
            dict(lat_dim=3, lat_Lx=6, lat_Ly=5, lat_h=5, lat_substrate="pinned", mod_phi_v=0.04, run_seed=7),
            40000,
            None,
            marks=SLOW,
        ),
    ],
    ids=["film-smooth", "film-pinned-records", "bulk-2d", "film-3d-pinned"],
)
def test_running_kernel_follows_the_reference_trajectory(kw: dict, events: int, table: str | None) -> None:
    ref, run = _state(kw, "reference", table), _state(kw, "running", table)
    np.testing.assert_array_equal(ref.occ, run.occ)  # same start (the preheat does not use the energies)
    assert ref.tree[1] != run.tree[1]  # but not the same rates bit for bit: the energies are rounded
    assert run.tree[1] == pytest.approx(ref.tree[1], rel=1e-9)
    for state in (ref, run):
        assert state.run_until(math.inf, events // 2) == events // 2
        assert state.run_until(math.inf, events - events // 2) == events - events // 2
    for name in ("occ", "pos", "disp", "hops"):
        np.testing.assert_array_equal(getattr(ref, name), getattr(run, name))
    assert run.t == pytest.approx(ref.t, rel=1e-9)
    np.testing.assert_allclose(run.t_relax, ref.t_relax, rtol=1e-9)


def test_quantize() -> None:
    rng = np.random.default_rng(0)
    for v in np.concatenate([rng.uniform(-0.5, 0.5, 1000), rng.uniform(-1024, 1024, 100), [0.0, -0.5, 0.5]]):
        q = quantize(float(v))
        assert abs(q - v) <= Q_STEP / 2
        assert (q / Q_STEP).is_integer()
    # sums of grid values are exact in any order: a running + / - sum returns to its start exactly
    vals = [quantize(float(v)) for v in rng.uniform(-0.5, 0.5, 8)]
    acc = 0.0
    for v in vals:
        acc += v
    for v in reversed(vals[1:]):
        acc -= v
    assert acc == vals[0]


def test_kernel_option_and_config_hash() -> None:
    default = small_config(lat_Lx=8, lat_h=6)
    assert "kernel" not in json.loads(config_json(default))["run"]  # hashes of earlier runs stay valid
    running = small_config(lat_Lx=8, lat_h=6, run_kernel="running")
    assert json.loads(config_json(running))["run"]["kernel"] == "running"
    assert config_hash(running) != config_hash(default)
    with pytest.raises(ValueError, match=r"run\.kernel"):
        small_config(run_kernel="fast")
    with pytest.raises(ValueError, match="1024"):
        small_config(lat_geometry="bulk", run_kernel="running", mod_V0=-2000.0, mod_V1=0.0)
