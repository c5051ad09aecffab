"""`tailorkit film ...` end to end: run, resume, analyze, plot, errors; a small Dask sweep."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tailorkit.cli.main import main
from tailorkit.films.io import load_run
from tailorkit.films.simulate import simulate
from tailorkit.films.sweep import SweepConfig, expand, run_sweep
from tests.films.helpers import small_config

CONFIG = """
[lattice]
Lx = 32
h = 8
[model]
T = 0.3
phi_v = 0.03
[run]
t_max = 3.0
stop_after_tau = 0.0
chunk_events = 4000
"""


@pytest.fixture()
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "film.toml"
    path.write_text(CONFIG)
    return path


def test_run_writes_hdf5_and_refuses_to_overwrite(tmp_path: Path, config_file: Path, capsys) -> None:
    out = tmp_path / "a.h5"
    assert (
        main(
            ["film", "run", str(config_file), "--set", "model.T=0.32", "run.seed=3", "--out", str(out), "--no-progress"]
        )
        == 0
    )
    run = load_run(out)
    assert run["config"].model.T == 0.32 and run["config"].run.seed == 3
    assert run["attrs"]["status"] == "t_max"
    capsys.readouterr()
    assert main(["film", "run", str(config_file), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "exists" in err and len(err.splitlines()) == 1


def test_interrupted_run_resumes_through_cli(tmp_path: Path, config_file: Path) -> None:
    from tailorkit.core.config import load_config
    from tailorkit.films.config import FilmConfig

    cfg = load_config(FilmConfig, config_file)
    full = simulate(cfg, tmp_path / "full.h5", progress=False)
    part = tmp_path / "part.h5"
    with pytest.raises(KeyboardInterrupt):
        simulate(cfg, part, progress=False, interrupt_after_events=full.events // 3)
    assert main(["film", "resume", str(part), "--no-progress"]) == 0
    a, b = load_run(tmp_path / "full.h5"), load_run(part)
    for name in ("t", "events", "fs", "bond", "msd"):
        np.testing.assert_array_equal(a["obs"][name], b["obs"][name])
    np.testing.assert_array_equal(a["state"]["rng"], b["state"]["rng"])
    # --resume with the config file works too (already finished: nothing left to do)
    assert main(["film", "run", str(config_file), "--out", str(part), "--resume", "--no-progress"]) == 0


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["lattice.substrate=glue"], "substrate"),
        (["model.T=0"], "temperature"),
        (["model.phi_v=2"], "phi_v"),
        (["lattice.h=1"], "lattice.h"),
        (["--set", "lattice.nope=1"], "unknown config key"),
    ],
)
def test_bad_settings_exit_2(tmp_path: Path, config_file: Path, capsys, args: list[str], needle: str) -> None:
    assert main(["film", "run", str(config_file), *args, "--out", str(tmp_path / "x.h5"), "--no-progress"]) == 2
    assert needle in capsys.readouterr().err


def test_corrupt_and_mismatched_checkpoints_exit_2(tmp_path: Path, config_file: Path, capsys) -> None:
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"\x89HDF\r\n garbage")
    assert main(["film", "resume", str(bad)]) == 2
    assert "not a readable HDF5" in capsys.readouterr().err
    out = tmp_path / "ok.h5"
    assert main(["film", "run", str(config_file), "run.t_max=0.01", "--out", str(out), "--no-progress"]) == 0
    assert main(["film", "run", str(config_file), "--out", str(out), "--resume", "--no-progress"]) == 2
    assert "another config" in capsys.readouterr().err


def test_analyze_and_plot(tmp_path: Path, config_file: Path) -> None:
    runs = tmp_path / "runs"
    for T in (0.3, 0.4):
        assert (
            main(
                [
                    "film",
                    "run",
                    str(config_file),
                    f"model.T={T}",
                    "run.stop_after_tau=2",
                    "run.t_max=100",
                    "--out",
                    str(runs / f"film_{T}.h5"),
                    "--no-progress",
                ]
            )
            == 0
        )
        assert (
            main(
                [
                    "film",
                    "run",
                    str(config_file),
                    f"model.T={T}",
                    "lattice.geometry=bulk",
                    "lattice.Lx=16",
                    "lattice.h=16",
                    "run.stop_after_tau=2",
                    "run.t_max=100",
                    "--out",
                    str(runs / f"bulk_{T}.h5"),
                    "--no-progress",
                ]
            )
            == 0
        )
    results = tmp_path / "results.json"
    assert main(["film", "analyze", str(runs), "--out", str(results)]) == 0
    import json

    doc = json.loads(results.read_text())
    films = [r for r in doc["rows"] if r["method"] == "dplm-film"]
    assert len(films) == 2 and all("eta_eff_over_bulk" in r["metrics"] for r in films)
    assert main(["film", "plot", str(results), "--out", str(tmp_path / "study.png")]) == 0
    assert (tmp_path / "study.png").stat().st_size > 10_000
    assert main(["film", "plot", str(runs / "film_0.3.h5"), "--out", str(tmp_path / "run.png")]) == 0
    assert (tmp_path / "run.png").stat().st_size > 10_000


def test_dask_sweep_small() -> None:
    sweep = SweepConfig(
        base=small_config(lat_Lx=16, lat_h=4, mod_phi_v=0.05, run_t_max=0.5, run_stop_after_tau=0.0),
        temperatures=(0.3, 0.4),
        thicknesses=(4,),
        include_bulk=False,
        workers=1,
    )
    jobs = expand(sweep)
    assert len(jobs) == 2
    results = run_sweep(jobs, workers=1, processes=False, timeout_s=120)
    assert [r["config"]["model"]["T"] for r in results] == [0.3, 0.4]
    assert all(r["status"] == "t_max" for r in results)


def test_sigterm_leaves_a_valid_checkpoint_that_resumes(tmp_path: Path, config_file: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "long.h5"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2] / "src"), *sys.path])}
    cmd = [sys.executable, "-m", "tailorkit.cli.main", "film", "run", str(config_file), "run.t_max=1e9",
           "run.chunk_events=20000", "run.checkpoint_every_s=0.5", "run.max_events=4000000", "--out", str(out),
           "--no-progress"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 90
        while not out.exists() and time.time() < deadline:  # the first checkpoint proves the run is going
            time.sleep(0.2)
        assert out.exists(), "no checkpoint written"
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 130
    run = load_run(out)
    assert run["attrs"]["status"] == "interrupted"
    events = int(run["state"]["counters"][0])
    assert events > 0
    assert main(["film", "resume", str(out), "--no-progress"]) == 0
    done = load_run(out)
    assert done["attrs"]["status"] == "max_events" and int(done["state"]["counters"][0]) == 4_000_000
