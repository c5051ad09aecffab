from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from tailorkit.active.bench import ActiveBenchConfig, active_bench
from tailorkit.active.config import BackboneConfig, DataConfig, TuneConfig
from tailorkit.core.results import outcome_to_document

TINY = ActiveBenchConfig(
    datasets=("synthliver",),
    seeds=2,
    budgets=(0.1,),
    arms=("random", "coreset", "tesla"),
    tuners=("slpt", "full_ft"),
    extra_tuners=("head_only",),
    full_pool_steps=1.0,
    workers=1,
    data=DataConfig(patch=16, synth_pool=40, synth_test=12, synth_upstream=16),
    backbone=BackboneConfig(channels=(4, 8, 16), steps=10, batch_size=8),
    tune=TuneConfig(steps=3, batch_size=4, prompt_sets=2),
)


def test_bench_writes_the_contract_with_claims_from_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setenv("TAILORKIT_HOME", str(tmp_path))  # the tiny backbone's cache goes here
    outcome = active_bench(TINY, "quick", 0, torch.device("cpu"))
    doc = outcome_to_document(
        outcome, subsystem="active", mode="quick", seed=0, started="now", seconds=1.0, cpu_seconds=1.0
    )
    methods = {r["method"] for r in doc["rows"]}
    assert {"synthliver/tesla/slpt", "synthliver/random/full_ft"} <= methods
    assert "synthliver/random/head_only" not in methods  # extra tuners are full-mode only
    assert {"synthliver/full_pool/slpt", "synthliver/full_pool/full_ft"} <= methods
    row = next(r for r in doc["rows"] if r["method"] == "synthliver/tesla/slpt")
    assert 0 <= row["metrics"]["dice_global"] <= 1
    per_seed = doc["extra"]["per_seed"]["synthliver/tesla/slpt/b0.1"]
    full = doc["extra"]["per_seed"]["synthliver/full_pool/slpt/b1"]
    fractions = [
        per_seed[s]["dice_global"] / full[s]["dice_global"] for s in ("0", "1000") if full[s]["dice_global"] > 0
    ]
    if fractions:
        assert row["metrics"]["fraction_of_full"] == pytest.approx(float(np.mean(fractions)))
    ids = {c["id"]: c for c in doc["claims"]}
    assert set(ids) == {
        "synthliver-prompt-beats-full-ft",
        "synthliver-tunable-fraction",
        "synthliver-tesla-beats-random",
        "synthliver-tesla-beats-coreset",
        "synthliver-tesla-fraction-of-full",
    }
    # the in-call seeds are 0 and 1000 (bench seed 0 fixes them; seed 1 would give 1 and 1001)
    assert row["params"]["seeds"] == [0, 1000]
    tesla = [per_seed[s]["dice_global"] for s in ("0", "1000")]
    rand = [doc["extra"]["per_seed"]["synthliver/random/slpt/b0.1"][s]["dice_global"] for s in ("0", "1000")]
    diffs = np.subtract(tesla, rand)
    claim = ids["synthliver-tesla-beats-random"]
    assert claim["kind"] == "paired" and claim["values_per_seed"] == pytest.approx(list(diffs))
    assert claim["value"] == pytest.approx(diffs.mean()) and claim["n"] == 2
    assert (claim["verdict"] == "holds") == (claim["ci_low"] is not None and claim["ci_low"] > 0)
    # SLPT rows report how much the K prompt sets agree (mean pairwise Dice of their test masks)
    assert 0 <= row["metrics"]["set_agreement"] <= 1
    assert "set_agreement" not in next(r for r in doc["rows"] if r["method"] == "synthliver/tesla/full_ft")["metrics"]
    n = round(0.1 * 40)
    assert all(len(v) == n for v in doc["extra"]["selected_ids"].values())


def _table_outputs(
    dice: dict[tuple[str, str], list[float]], seeds: list[int]
) -> tuple[list[tuple[str, int, float, tuple[str, ...]]], list[dict]]:
    """Bench cells and outputs for dataset "synthliver_rare" with given per-seed Dice of (arm, tuner)."""
    cells, outputs = [], []
    for k, s in enumerate(seeds):
        results: dict = {}
        for (arm, tuner), values in dice.items():
            results.setdefault(arm, {})[tuner] = {"dice_global": values[k], "tunable_fraction": 0.06}
        cells.append(("synthliver_rare", s, 0.05, tuple(results)))
        outputs.append({"results": results})
    return cells, outputs


def test_claims_and_gate_on_toy_rows() -> None:
    """Per-seed paired claims: a constant TESLA lead holds; a lead of mixed sign is undecided; the gate fails when
    entropy and core-set are below random on every seed; the reference gives fraction_of_full per seed."""
    from tailorkit.active.bench import _rows_and_claims

    seeds = [0, 1, 2, 3]
    rnd = [0.50, 0.55, 0.45, 0.52]
    dice = {
        ("random", "slpt"): rnd,
        ("entropy", "slpt"): [v - 0.03 for v in rnd],
        ("coreset", "slpt"): [v - 0.01 for v in rnd],
        ("tesla", "slpt"): [v + 0.04 + 0.001 * k for k, v in enumerate(rnd)],
        ("tesla", "full_ft"): [v + d for v, d in zip(rnd, [0.10, -0.05, 0.08, 0.0], strict=True)],
    }
    cells, outputs = _table_outputs(dice, seeds)
    config = dataclasses.replace(TINY, datasets=("synthliver_rare",), arms=("random", "entropy", "coreset", "tesla"))
    cells += [("synthliver_rare", s, 0.05, ("full_pool",)) for s in seeds]
    outputs += [{"results": {"full_pool": {"slpt": {"dice_global": 0.6, "tunable_fraction": 0.06}}}} for _ in seeds]
    rows, claims, _ = _rows_and_claims(config, config.arms, cells, outputs, seeds, (0.05,))
    by_id = {c.id: c for c in claims}
    assert by_id["synthliver_rare-tesla-beats-random"].verdict == "holds"
    assert by_id["synthliver_rare-tesla-beats-random"].value == pytest.approx(0.0415)
    # SLPT - full FT: -0.10, +0.05, -0.08, 0.0 minus the TESLA lead... mixed signs: no decision either way
    assert by_id["synthliver_rare-prompt-beats-full-ft"].verdict == "undecided"
    gate = by_id["gate-selection-beats-random-synthliver_rare"]
    assert gate.verdict == "fails" and gate.value == pytest.approx(-0.02)
    frac = by_id["synthliver_rare-tesla-fraction-of-full"]
    assert frac.values_per_seed == pytest.approx([(v + 0.04 + 0.001 * k) / 0.6 for k, v in enumerate(rnd)])
    assert frac.target == 0.94
    tesla_row = next(r for r in rows if r.method == "synthliver_rare/tesla/slpt")
    assert tesla_row.metrics["fraction_of_full"] == pytest.approx(frac.value)


def test_plan_budget_fields_double_every_fit() -> None:
    from tailorkit.core.bench import BENCHES, import_bench_module, scale_budget, with_settings

    import_bench_module("active")
    plan = BENCHES.get("active").plan
    doubled = scale_budget(TINY, plan.budget_fields, 2)
    assert plan.budget_fields == ("tune.steps",) and doubled.tune.steps == 2 * TINY.tune.steps
    # the selection model and the reference derive their steps from tune.steps, so they double too
    assert with_settings(TINY, plan.one_seed).seeds == 1
    decisive = with_settings(TINY, plan.decisive)
    assert decisive.datasets == ("synthliver_rare",) and not decisive.reference


def test_bench_config_rejects_unknown_names() -> None:
    with pytest.raises(KeyError, match="unknown selection strategy"):
        dataclasses.replace(TINY, arms=("tesla", "oracle"))
    with pytest.raises(ValueError, match="datasets"):
        dataclasses.replace(TINY, datasets=("brats",))


def test_cli_tune_eval_and_propose(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:

    from tailorkit.cli.main import main

    monkeypatch.setenv("TAILORKIT_HOME", str(tmp_path / "home"))
    config = tmp_path / "run.yaml"
    config.write_text(
        "data: {dataset: synthliver, patch: 16, synth_pool: 30, synth_test: 8, synth_upstream: 16}\n"
        "backbone: {channels: [4, 8, 16], steps: 5, batch_size: 8}\n"
        "tune: {steps: 2, batch_size: 4, prompt_sets: 2}\n"
        "budget: 6\n"
    )
    out = tmp_path / "run"
    assert main(["active", "tune", str(config), "--out", str(out), "select.strategy=tesla"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["labels"] == 6 and 0 <= metrics["dice_global"] <= 1
    assert len(json.loads((out / "state.json").read_text())["history"]) == 2
    assert main(["active", "eval", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"global Dice {metrics['dice_global']:.4f}" in printed
    assert main(["active", "eval", str(tmp_path)]) == 2  # no run there: a usage error, exit 2
    assert "expected config.yaml and model.safetensors" in capsys.readouterr().err


def test_cli_propose_rounds_on_a_nifti_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    import nibabel as nib

    import tailorkit.active.backbone as backbone_module
    from tailorkit.active.data import lits_split
    from tailorkit.cli.main import main
    from tests.conftest import load_or_skip

    load_or_skip(lits_split, DataConfig(patch=16))  # the default backbone is pretrained on the LiTS liver task
    monkeypatch.setattr(backbone_module, "backbone_cache_path", lambda upstream, config: tmp_path / "bb.safetensors")
    pool = tmp_path / "pool"
    pool.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        nib.save(
            nib.Nifti1Image(rng.normal(50, 30, (16, 16, 6)).astype(np.float32), np.eye(4)), pool / f"{name}.nii.gz"
        )
    state = tmp_path / "state.json"
    common = [
        "--pool",
        str(pool),
        "--state",
        str(state),
        "data.patch=16",
        "backbone.channels=4,8,16",
        "backbone.steps=3",
        "tune.steps=2",
        "tune.prompt_sets=2",
    ]
    assert main(["active", "propose", "--budget", "3", *common]) == 0
    first = capsys.readouterr().out.splitlines()[1:]
    assert len(first) == 3 and all(i.split(":")[0] in ("a", "b") for i in first)
    assert main(["active", "propose", "--budget", "2", *common]) == 2  # not labelled yet
    assert "not labelled yet" in capsys.readouterr().err
    (pool / "labels").mkdir()
    for name in ("a", "b"):
        mask = np.zeros((16, 16, 6), np.uint8)
        mask[4:9, 4:9, :] = 1
        nib.save(nib.Nifti1Image(mask, np.eye(4)), pool / "labels" / f"{name}.nii.gz")
    assert main(["active", "propose", "--budget", "2", *common]) == 0
    second = capsys.readouterr().out.splitlines()[1:]
    assert len(second) == 2 and not set(second) & set(first)
    doc = json.loads(state.read_text())
    assert doc["labelled"] == first and doc["pending"] == second


def test_cli_tune_resumes_after_an_interruption(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An `active tune` that crashes mid-fit, rerun with the same --out, continues from OUT/resume.pt (the selection
    is redone from the seed, the same labels) and ends with the uninterrupted run's model: equal Dice and bytes."""
    import tailorkit.active.tuning as tuning
    from tailorkit.cli.main import main
    from tests.conftest import crash_then_resume

    monkeypatch.setenv("TAILORKIT_HOME", str(tmp_path / "home"))
    config = tmp_path / "run.yaml"
    config.write_text(
        "data: {dataset: synthliver, patch: 16, synth_pool: 30, synth_test: 8, synth_upstream: 16}\n"
        "backbone: {channels: [4, 8, 16], steps: 5, batch_size: 8}\n"
        "tune: {steps: 4, batch_size: 4, prompt_sets: 2}\n"
        "select: {strategy: random}\n"
        "budget: 6\n"
    )
    whole, split = tmp_path / "whole", tmp_path / "split"
    assert main(["active", "tune", str(config), "--out", str(whole)]) == 0
    run = ["active", "tune", str(config), "--out", str(split), "--checkpoint-every", "1"]
    steps_done = crash_then_resume(monkeypatch, tuning, "core_train", lambda: main(run))
    # resumed from step 1's checkpoint (the crash came in step 2's callback, before its checkpoint), not from 0
    assert steps_done == [2, 3, 4] and (split / "resume.pt").is_file()
    a, b = (json.loads((run / "metrics.json").read_text()) for run in (whole, split))
    assert a["dice_global"] == b["dice_global"]
    assert (whole / "model.safetensors").read_bytes() == (split / "model.safetensors").read_bytes()
