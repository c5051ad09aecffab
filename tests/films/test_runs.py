"""Runs end to end: seed and restart reproducibility, HDF5 round trips, bad input, a CI-sized smoke run."""

from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np
import pytest

from tailorkit.core.config import ConfigError, load_config
from tailorkit.films.config import FilmConfig, config_hash
from tailorkit.films.io import FilmIOError, load_run, restore_state
from tailorkit.films.simulate import simulate
from tailorkit.films.state import initial_state
from tests.films.helpers import small_config


def trajectory_digest(config: FilmConfig, n_events: int) -> tuple:
    state = initial_state(config)
    state.run_until(math.inf, n_events)
    return state.t, state.occ.tobytes(), state.disp.tobytes(), state.rng.tobytes()


def test_same_seed_same_trajectory_other_seed_differs() -> None:
    cfg = small_config(lat_Lx=32, lat_h=8, mod_T=0.25, mod_phi_v=0.03, run_seed=11)
    assert trajectory_digest(cfg, 20_000) == trajectory_digest(cfg, 20_000)
    other = small_config(lat_Lx=32, lat_h=8, mod_T=0.25, mod_phi_v=0.03, run_seed=12)
    assert trajectory_digest(other, 20_000)[0] != trajectory_digest(cfg, 20_000)[0]


def test_segmentation_does_not_change_the_trajectory() -> None:
    cfg = small_config(lat_Lx=32, lat_h=8, mod_T=0.25, mod_phi_v=0.03)
    a, b = initial_state(cfg), initial_state(cfg)
    a.run_until(5.0)
    for t in np.linspace(0.01, 5.0, 37):
        b.run_until(float(t), 1000)
        b.run_until(float(t))
    assert a.t == b.t == 5.0 and a.events == b.events
    np.testing.assert_array_equal(a.occ, b.occ)
    np.testing.assert_array_equal(a.rng, b.rng)


def smoke_config(**kw: object) -> FilmConfig:
    base = dict(
        lat_Lx=32, lat_h=8, mod_T=0.3, mod_phi_v=0.03, run_t_max=5.0, run_chunk_events=5000, run_stop_after_tau=0.0
    )
    base.update(kw)
    return small_config(**base)


def test_interrupted_run_resumes_bit_exactly(tmp_path: Path) -> None:
    cfg = smoke_config()
    full = simulate(cfg, tmp_path / "full.h5", progress=False)
    assert full.status == "t_max" and full.events > 30_000
    part = tmp_path / "part.h5"
    with pytest.raises(KeyboardInterrupt):
        simulate(cfg, part, progress=False, interrupt_after_events=full.events // 2)
    saved = load_run(part)
    assert saved["attrs"]["status"] == "interrupted"
    assert 0 < saved["state"]["counters"][0] < full.events
    resumed = simulate(cfg, part, resume=True, progress=False)
    assert resumed.events == full.events
    for name, arr in full.obs.items():
        np.testing.assert_array_equal(arr, resumed.obs[name], err_msg=name)
    assert resumed.state is not None and full.state is not None
    for name, arr in full.state.arrays().items():
        np.testing.assert_array_equal(arr, getattr(resumed.state, name), err_msg=name)


def test_hdf5_round_trip_and_attributes(tmp_path: Path) -> None:
    cfg = smoke_config(lat_substrate="pinned")
    result = simulate(cfg, tmp_path / "run.h5", progress=False)
    run = load_run(tmp_path / "run.h5")
    assert run["config"] == cfg
    assert run["attrs"]["config_hash"] == config_hash(cfg)
    for key in ("numba", "h5py", "git_commit", "host", "tailorkit"):
        assert run["attrs"][key]
    np.testing.assert_array_equal(run["obs"]["fs"], result.obs["fs"])
    np.testing.assert_allclose(run["summary"]["tau_z"], result.summary["tau_z"])
    state, _ = restore_state(tmp_path / "run.h5", cfg)
    assert state.events == result.events
    with pytest.raises(FilmIOError, match=r"exists"):
        simulate(cfg, tmp_path / "run.h5", progress=False)


def test_bad_checkpoints_are_refused(tmp_path: Path) -> None:
    cfg = smoke_config(run_t_max=0.05)
    simulate(cfg, tmp_path / "run.h5", progress=False)
    with pytest.raises(FilmIOError, match="another config"):
        simulate(smoke_config(run_t_max=0.05, mod_T=0.31), tmp_path / "run.h5", resume=True, progress=False)
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not an hdf5 file at all" * 10)
    with pytest.raises(FilmIOError, match="not a readable HDF5"):
        load_run(bad)
    trunc = tmp_path / "trunc.h5"
    trunc.write_bytes((tmp_path / "run.h5").read_bytes()[:3000])
    with pytest.raises(FilmIOError):
        load_run(trunc)
    with h5py.File(tmp_path / "run.h5", "a") as f:
        del f["state/tree"]
    with pytest.raises(FilmIOError, match="tree"):
        restore_state(tmp_path / "run.h5")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.phi_v=0.0", "phi_v"),
        ("model.phi_v=1.5", "phi_v"),
        ("lattice.h=1", "lattice.h"),
        ("lattice.Lx=2", "lattice.Lx"),
        ("lattice.substrate=sticky", "substrate"),
        ("model.T=0", "temperature"),
        ("model.T=-0.2", "temperature"),
        ("lattice.Lx=3", "impossible density"),
    ],
)
def test_bad_input_gives_clear_errors(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(FilmConfig, overrides=[override, "lattice.h=2" if "Lx=3" in override else "run.seed=0"])


def test_smoke_run_all_outputs(tmp_path: Path) -> None:
    cfg = smoke_config()
    result = simulate(cfg, tmp_path / "smoke.h5", progress=False)
    s = result.summary
    assert result.obs["fs"].shape == (s["n_obs"], 8)
    assert np.isfinite(s["tau"]) and s["tau"] < 5.0
    assert s["front_depth"].max() >= 1
    assert s["void_profile"].shape == (8,)
    assert s["events_per_cpu_s"] > 0


def test_budget_stop_keeps_the_run_and_resume_goes_on(tmp_path: Path) -> None:
    cfg = smoke_config(run_budget_s=1e-6, run_t_max=1e6)
    first = simulate(cfg, tmp_path / "b.h5", progress=False)
    assert first.status == "budget" and first.events > 0
    again = simulate(cfg, tmp_path / "b.h5", resume=True, progress=False)
    assert again.status == "budget" and again.events > first.events  # the budget is per session


@pytest.mark.parametrize("clock", ["wall", "cpu"])
def test_budget_clock_stops_the_run(tmp_path: Path, clock: str) -> None:
    cfg = smoke_config(run_budget_s=1e-6, run_budget_clock=clock, run_t_max=1e6)
    assert simulate(cfg, None, progress=False).status == "budget"


def test_unknown_budget_clock_is_refused() -> None:
    with pytest.raises(ValueError, match="budget_clock"):
        smoke_config(run_budget_clock="sundial")


def test_a_sweep_with_reuse_reads_finished_runs_back_and_resumes_interrupted_ones(tmp_path: Path) -> None:
    from tailorkit.films.sweep import job_name, run_serial

    configs = [smoke_config(), smoke_config(run_seed=1)]
    first = run_serial(configs, tmp_path, reuse=True)
    assert not any(r.get("reused") for r in first)
    again = run_serial(configs, tmp_path, reuse=True)
    assert all(r["reused"] for r in again) and [r["summary"] for r in again] == [r["summary"] for r in first]
    # An interrupted run file is resumed (bit for bit, so the summary is the uninterrupted one).
    path = tmp_path / f"{job_name(configs[1])}.h5"
    with pytest.raises(KeyboardInterrupt):
        simulate(
            configs[1], path, force=True, progress=False, interrupt_after_events=first[1]["summary"]["events"] // 2
        )
    resumed = run_serial(configs, tmp_path, reuse=True)
    assert resumed[0]["reused"] and not resumed[1].get("reused")
    assert resumed[1]["summary"]["tau"] == first[1]["summary"]["tau"]
    assert resumed[1]["summary"]["events"] == first[1]["summary"]["events"]
