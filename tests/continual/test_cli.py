from __future__ import annotations

import json

import pytest
import yaml

from tailorkit.cli.main import main

TINY = {
    "data": {
        "n_classes": 6,
        "phases": 3,
        "train_per_class": 16,
        "test_per_class": 6,
        "image_size": 16,
        "probe_per_class": 10,
    },
    "model": {"width": 4, "proj_hidden": 16, "proj_dim": 8, "pred_hidden": 16},
    "strategy": {"name": "cppf", "cppf": {"prototypes_per_phase": 2}},
    "optim": {"steps_per_phase": 3, "batch_size": 16, "warmup_steps": 1},
    "eval": {"knn_k": 5, "probe_iters": 10},
}


def test_run_resume_and_eval(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    out = tmp_path / "run"
    assert main(["continual", "run", str(cfg), "--out", str(out), "--stop-after-phase", "1"]) == 0
    assert json.loads((out / "metrics.json").read_text())["phases_done"] == 1
    assert main(["continual", "run", str(cfg), "--out", str(out)]) == 0  # resumes at phase 2
    text = capsys.readouterr().out
    assert "average incremental accuracy, AIA" in text and "final accuracy (linear probe" in text
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["phases_done"] == 3 and len(doc["accuracy_matrix_linear"]) == 3
    assert main(["continual", "eval", str(out)]) == 0
    evaluated = capsys.readouterr().out
    final = f"{doc['metrics']['final_acc_linear']:.4f}"
    assert f"final accuracy (linear probe; all classes after the last phase): {final}" in evaluated


@pytest.mark.parametrize(
    "argv",
    [
        ["continual", "run", "missing.yaml"],
        ["continual", "run", "CFG", "strategy.name=nope"],
        ["continual", "run", "CFG", "data.phases=4"],
        ["continual", "run", "CFG", "bogus=1"],
        ["continual", "eval", "NOWHERE"],
    ],
)
def test_usage_errors_exit_2(tmp_path, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    argv = [str(cfg) if a == "CFG" else str(tmp_path / "nowhere") if a == "NOWHERE" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tailorkit") and "\n" not in err


def test_example_configs_load() -> None:
    from pathlib import Path

    from tailorkit.continual.config import RunConfig
    from tailorkit.continual.methods import METHODS
    from tailorkit.core.config import load_config

    examples = sorted(Path(__file__).parents[2].joinpath("examples", "continual").glob("*.yaml"))
    names = {load_config(RunConfig, path).strategy.name for path in examples}
    assert names == set(METHODS.names())
