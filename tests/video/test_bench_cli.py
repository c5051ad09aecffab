"""Bench claims computed from rows, the few-shot draw, and the CLI's verbs (help, predict, errors)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from tailorkit.core.results import Row
from tailorkit.video.bench import (
    DECISIVE_ARMS,
    PLAN,
    VideoBenchConfig,
    claims_from_rows,
    clip_resolution,
    few_shot_index,
    sanity_checks,
)


def _row(name: str, acc: float, **extra: float) -> Row:
    metrics = {f"accuracy_k{k}": acc for k in (2, 4, 8)}
    metrics.update({"direction_accuracy_k8": 0.5, "novel_accuracy": acc, "arrow_direction_accuracy": 0.5})
    metrics.update(extra)
    return Row(name, metrics)


def test_claims_follow_rows() -> None:
    config = VideoBenchConfig()
    rows = [
        _row("coop_mean", 0.1),
        _row("coop_temporal", 0.2),
        _row("motion_static", 0.3, arrow_direction_accuracy=0.7),
        _row("motion_dynamic", 0.35),
        _row("sif", 0.4),
    ]
    claims = {c.id: c for c in claims_from_rows(rows, config)}
    assert claims["sif-beats-coop_mean-every-k"].holds
    assert claims["sif-beats-coop_mean-every-k"].value == pytest.approx(0.3)
    assert claims["dynamic-beats-static"].holds and claims["sif-beats-static"].holds
    assert claims["novel-well-above-chance"].holds and claims["novel-beats-temporal"].holds
    assert claims["arrow-motion-above-chance"].holds
    rows[-1].metrics["accuracy_k4"] = 0.15  # below CoOp + temporal at one K: the claim fails
    claims = {c.id: c for c in claims_from_rows(rows, config)}
    assert not claims["sif-beats-coop_temporal-every-k"].holds
    assert claims["sif-beats-coop_temporal-every-k"].value == pytest.approx(-0.05)


def _gap_rows(static: list[float], dynamic: list[float]) -> list[Row]:
    return [
        Row("motion_static", {f"accuracy_k{k}": a for k, a in zip((2, 4, 8), static, strict=True)}),
        Row("motion_dynamic", {f"accuracy_k{k}": a for k, a in zip((2, 4, 8), dynamic, strict=True)}),
    ]


def test_gap_claims_need_a_whole_clip_not_float_rounding() -> None:
    """A tie (0 clips) never holds, also with the float32 rounding that once decided it; one clip more does."""
    config = VideoBenchConfig()
    n_test, n_novel = clip_resolution(config)
    assert (n_test, n_novel) == (3 * 8 * 6 * 2, 8 * 6 * 2)
    one = 1 / n_test
    tie = claims_from_rows(_gap_rows([0.1, 0.2, 0.3], [0.1, 0.2 + 5e-9, 0.3]), config)
    (claim,) = [c for c in tie if c.id == "dynamic-beats-static"]
    assert not claim.holds and claim.kind == "at_least" and claim.target == pytest.approx(0.5 / (3 * n_test))
    ahead = claims_from_rows(_gap_rows([0.1, 0.2, 0.3], [0.1, 0.2 + one, 0.3]), config)
    assert [c.holds for c in ahead if c.id == "dynamic-beats-static"] == [True]
    behind = claims_from_rows(_gap_rows([0.1, 0.2, 0.3], [0.1, 0.2 - one, 0.3 + one]), config)  # net 0 clips
    assert [c.holds for c in behind if c.id == "dynamic-beats-static"] == [False]


def test_claims_decided_over_seeds_by_the_interval() -> None:
    """Per-seed gaps merge into an interval: gaps of +1..+3 clips hold, gaps straddling zero stay undecided."""
    from tailorkit.core.results import merge_claims

    config = VideoBenchConfig()
    one = 1 / clip_resolution(config)[0]
    per_seed = [claims_from_rows(_gap_rows([0.1] * 3, [0.1 + d * one] * 3), config) for d in (1, 2, 3, 2, 1)]
    (merged,) = merge_claims(per_seed)
    assert merged.verdict == "holds" and merged.n == 5 and merged.wins == 5
    per_seed = [claims_from_rows(_gap_rows([0.1] * 3, [0.1 + d * one] * 3), config) for d in (2, -2, 1, -1, 0)]
    (merged,) = merge_claims(per_seed)
    assert merged.verdict == "undecided" and merged.wins == 2


def test_sanity_checks_are_not_claims() -> None:
    config = VideoBenchConfig()
    rows = [Row("coop_mean", {"direction_accuracy_k8": 0.5, "arrow_direction_accuracy": 0.5, "accuracy_k8": 0.1})]
    assert claims_from_rows(rows, config) == []
    checks = {c["id"]: c for c in sanity_checks(rows, config)}
    assert set(checks) == {"shapes-mean-pooling-direction-blind", "arrow-mean-pooling-at-chance"}
    assert all(c["passed"] for c in checks.values())
    rows[0].metrics["direction_accuracy_k8"] = 0.5 + 1 / 288  # a lost pairing shows as a failed check
    assert not {c["id"]: c for c in sanity_checks(rows, config)}["shapes-mean-pooling-direction-blind"]["passed"]
    assert [c["id"] for c in sanity_checks(rows, dataclasses.replace(config, arrow=False))] == [
        "shapes-mean-pooling-direction-blind"
    ]


def test_evidence_plan_budget_doubles_every_fit() -> None:
    from tailorkit.core.bench import BENCHES, scale_budget, with_settings

    plan = BENCHES.get("video").plan
    assert plan is PLAN and plan.budget_fields == ("optim.steps",) and plan.one_seed == {}
    config = VideoBenchConfig()
    doubled = scale_budget(config, plan.budget_fields, 2)
    assert doubled.optim.steps == 2 * config.optim.steps
    assert doubled.optim == dataclasses.replace(config.optim, steps=2 * config.optim.steps)  # only the steps move
    # the configs the bench builds from it: quick keeps the doubled steps, full doubles them again
    assert doubled.effective("quick").optim.steps == 2 * config.optim.steps
    assert doubled.effective("full").optim.steps == 4 * config.optim.steps
    decisive = scale_budget(with_settings(config, plan.decisive), plan.budget_fields, 2)
    assert decisive.optim.steps == 2 * config.optim.steps and not decisive.arrow
    assert set(decisive.methods) == set(DECISIVE_ARMS)
    ids = {c.id for c in claims_from_rows([_row(m, 0.2) for m in decisive.methods], decisive)}
    assert set(plan.decisive_claims) <= ids  # the curve's claims are computed in the decisive run
    assert {"sif", "coop_temporal", "motion_static"} <= set(DECISIVE_ARMS) and plan.seeds >= 5


def test_few_shot_index_balanced_and_nested() -> None:
    labels = torch.arange(6).repeat(8)
    two, four = few_shot_index(labels, 2, 0), few_shot_index(labels, 4, 0)
    assert torch.bincount(labels[two]).tolist() == [2] * 6
    assert set(two.tolist()) <= set(four.tolist())
    assert torch.equal(two, few_shot_index(labels, 2, 0))


def test_bench_config_validates() -> None:
    with pytest.raises(ValueError, match="every K must be <= pool_per_class"):
        VideoBenchConfig(shots=(2, 16))
    with pytest.raises(KeyError, match="unknown video method"):
        VideoBenchConfig(methods=("sif", "xclip"))
    assert VideoBenchConfig().effective("full").dynamic == "context"


def test_cli_help_and_predict(tiny_clip: Path, capsys: pytest.CaptureFixture[str], encoder: object) -> None:
    from tailorkit.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main(["video", "--help"])
    assert exit_info.value.code == 0
    assert "predict" in capsys.readouterr().out
    assert main(["video", "predict", str(tiny_clip), "--classes", "square moving right,square moving left"]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("  ")]
    assert len(lines) == 2 and abs(sum(float(line.split()[0]) for line in lines) - 1) < 1e-3


def test_cli_bad_input(tmp_path: Path, tiny_clip: Path, capsys: pytest.CaptureFixture[str], encoder: object) -> None:
    from tailorkit.cli.main import main

    assert main(["video", "predict", str(tiny_clip), "--classes", " , "]) == 2
    assert "expected a comma-separated list of class names" in capsys.readouterr().err
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"nope")
    assert main(["video", "predict", str(bad), "--classes", "a,b"]) == 2
    assert "not a readable video" in capsys.readouterr().err
    assert main(["video", "predict", str(tiny_clip), "--classes", "a,b", "--frames", "40"]) == 2
    assert "too few frames" in capsys.readouterr().err


def test_with_reversals_pairs_opposite_classes() -> None:
    from tailorkit.video.bench import with_reversals

    emb = torch.arange(2 * 3 * 2, dtype=torch.float32).reshape(2, 3, 2)
    both, labels, names = with_reversals(({"emb": emb}, torch.tensor([0, 12]), ["x"]))
    # left (0) <-> right (1); shape 1 rotating clockwise (12) <-> counterclockwise (13)
    assert labels.tolist() == [0, 12, 1, 13]
    assert torch.equal(both["emb"][2], emb[0].flip(0))
    assert names == ["x"]


def test_cli_train_and_eval_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str], encoder: object) -> None:
    import json

    from tailorkit.cli.main import main

    config = tmp_path / "tiny.yaml"
    config.write_text(
        "method: motion_static\n"
        f"cache_dir: {tmp_path / 'cache'}\n"
        "data:\n  frames: 4\n  size: 32\n  train_per_class: 1\n  test_per_class: 1\n"
        "  shapes:\n    base_shapes: [square]\n    novel_shapes: [star]\n"
        "optim:\n  steps: 3\n  batch: 8\n"
    )
    out = tmp_path / "run"
    assert main(["video", "train", str(config), "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_train"] == 8 and metrics["n_test"] == 8 and len(metrics["classes"]) == 8
    assert "test accuracy" in capsys.readouterr().out
    assert main(["video", "eval", str(out)]) == 0
    line = capsys.readouterr().out
    assert f"test accuracy {metrics['accuracy']:.4f}" in line
    assert main(["video", "train", str(config), "method=xclip", "--out", str(tmp_path / "never")]) == 2
    assert not (tmp_path / "never").exists()
    assert "unknown video method 'xclip'" in capsys.readouterr().err


def test_cli_train_on_folders_with_spaces(tmp_path: Path, capsys: pytest.CaptureFixture[str], encoder: object) -> None:
    """`video train` with data.kind=folder on class folders whose names have spaces (and a CSV naming them so)."""
    import json

    from tailorkit.cli.main import main
    from tailorkit.video.io import write_splits_csv, write_video
    from tests.video.conftest import moving_square

    root = tmp_path / "my clips ü"
    rows = []
    for k, name in enumerate(("playing guitar", "walking the dog")):
        for i in range(3):
            write_video(root / name / f"c{i}.mp4", moving_square(frames=6, size=32, step=1 + k))
            rows.append((f"{name}/c{i}.mp4", name, "test" if i == 2 else "train"))
    csv = write_splits_csv(tmp_path / "splits.csv", rows)
    config = tmp_path / "folder.yaml"
    config.write_text(
        f"method: motion_static\ncache_dir: {tmp_path / 'cache'}\n"
        f"data:\n  kind: folder\n  root: {root}\n  splits_csv: {csv}\n  frames: 4\n  size: 32\n"
        "optim:\n  steps: 2\n  batch: 4\n"
    )
    out = tmp_path / "run"
    assert main(["video", "train", str(config), "--out", str(out)]) == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["classes"] == ["playing guitar", "walking the dog"]
    assert metrics["n_train"] == 4 and metrics["n_test"] == 2


def test_cli_train_resumes_after_an_interruption(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, encoder: object
) -> None:
    """A `video train` that crashes mid-fit, rerun with the same --out, continues from OUT/resume.pt and ends with
    the uninterrupted run's loss and accuracies exactly."""
    import json

    from tailorkit.cli.main import main
    from tailorkit.video import runner
    from tests.conftest import crash_then_resume

    config = tmp_path / "tiny.yaml"
    config.write_text(
        "method: motion_static\n"
        f"cache_dir: {tmp_path / 'cache'}\n"
        "data:\n  frames: 4\n  size: 32\n  train_per_class: 1\n  test_per_class: 1\n"
        "  shapes:\n    base_shapes: [square]\n    novel_shapes: [star]\n"
        "optim:\n  steps: 4\n  batch: 4\n"
    )
    whole, split = tmp_path / "whole", tmp_path / "split"
    assert main(["video", "train", str(config), "--out", str(whole)]) == 0
    run = ["video", "train", str(config), "--out", str(split), "--checkpoint-every", "1"]
    steps_done = crash_then_resume(monkeypatch, runner, "fit", lambda: main(run))
    # resumed from step 1's checkpoint (the crash came in step 2's callback, before its checkpoint), not from 0
    assert steps_done == [2, 3, 4] and (split / "resume.pt").is_file()
    keys = ("final_loss", "accuracy", "train_accuracy")
    a, b = (json.loads((run / "metrics.json").read_text()) for run in (whole, split))
    assert [a[k] for k in keys] == [b[k] for k in keys]
