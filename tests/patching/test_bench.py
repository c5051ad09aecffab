"""The patching bench: claims computed from rows, the evaluation shortcut is exact, and (slow) the whole contract."""

from __future__ import annotations

import pytest
import torch

from tailorkit.core.results import Row
from tailorkit.patching.bench import PatchingBenchConfig, _claims
from tests.conftest import load_or_skip


def _row(method: str, retention: float, gain: float, **params) -> Row:
    metrics = {"retention": retention, "gain": gain, "efficiency": 0.9 + 0.1 * gain, "patch_fraction": 0.1025}
    return Row(method, metrics, params)


def test_claims_are_computed_and_dominance_detected() -> None:
    mt = dict(density=0.1, alpha=0.8, sensitivity="weight")
    rows = [
        _row("wise_ft", 0.95, 0.8, lam=0.5),
        _row("magnitude", 0.964, 0.933, density=0.1, topk_scope="tensor"),
        _row("mask_only", 0.97, 0.933, **mt),  # not dominated: higher retention than magnitude
        _row("model_tailor", 0.94, 0.9, compensation_sign=-1, **mt),  # dominated by magnitude
        _row("model_tailor", 0.995, 0.99, compensation_sign=1, **mt),
    ]
    speed = {"folder_seconds_ratio_to_ties": 2.5, "seconds_ratio_to_ties": 12.0, "loadavg_at_start": 1.0}
    rows.append(Row("model_tailor", speed, {"purpose": "speed", "model": "minilm-l6"}))
    claims = {c.id: c for c in _claims(rows, 0.1)}
    assert claims["model_tailor-speed"].holds and claims["model_tailor-speed"].value == 2.5
    assert claims["mask_only-not-dominated"].holds
    assert not claims["model_tailor_sign_-1-not-dominated"].holds
    assert "magnitude" in claims["model_tailor_sign_-1-not-dominated"].text
    assert claims["model_tailor_sign_+1-retention"].holds and not claims["mask_only-retention"].holds
    assert not claims["mask_only-patch"].holds  # 10.25 % with the fine-tuned biases and norms counted
    assert claims["model_tailor_sign_+1-efficiency"].value == pytest.approx(0.999)


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="densities"):
        PatchingBenchConfig(density=0.0)


@pytest.fixture(scope="module")
def minilm():
    from tailorkit.nets import load_minilm_l6

    return load_or_skip(load_minilm_l6)


def test_suffix_evaluator_is_exact(minilm) -> None:
    from tailorkit.patching.experiment import SuffixEvaluator

    texts = ["A man is playing a guitar.", "The stock market fell sharply today after the announcement.", "cat"]
    ev = SuffixEvaluator(minilm, {"t": (texts, 64)}, first=3, batch_size=2)
    assert torch.allclose(ev.embed(minilm.model, "t"), minilm.encode(texts, max_length=64), atol=1e-5)
    import copy

    changed = copy.deepcopy(minilm.model)
    with torch.no_grad():
        changed.encoder.layer[4].output.dense.weight.mul_(1.1)
    ref = copy.copy(minilm)
    ref.model = changed
    assert torch.allclose(ev.embed(changed, "t"), ref.encode(texts, max_length=64), atol=1e-5)
    with torch.no_grad():
        changed.encoder.layer[1].output.dense.weight.mul_(1.1)
    with pytest.raises(ValueError, match="cache does not apply"):
        ev.embed(changed, "t")


@pytest.mark.slow
def test_quick_bench_contract(tmp_path) -> None:
    from tailorkit.core.bench import run_bench
    from tailorkit.core.results import load_bench

    config = PatchingBenchConfig(speed_bert_base=False, epochs=2)
    doc = run_bench("patching", quick=True, out=tmp_path / "p.json", config=config)
    load_bench(tmp_path / "p.json")
    methods = [r["method"] for r in doc["rows"]]
    for m in ("pretrained", "finetuned", "wise_ft", "magnitude", "random", "dare", "mask_only", "model_tailor"):
        assert m in methods
    signs = {r["params"].get("compensation_sign") for r in doc["rows"] if r["method"] == "model_tailor"}
    assert {-1, 1} <= signs
    assert any(c["id"].endswith("-retention") for c in doc["claims"])


@pytest.mark.slow
def test_demo_digits_forgetting() -> None:
    from tailorkit.patching.demo import digits_forgetting

    rows = {label: (old, new, frac) for label, old, new, frac in digits_forgetting(0)}
    assert rows["fine-tuned"][0] < 0.1 < 0.9 < rows["fine-tuned"][1]  # the fine-tune forgets 0-4
    assert rows["MT mask only"][0] > 0.9 and rows["MT mask only"][2] < 0.11
    assert rows["MT comp. -1 (OBS)"][1] > rows["MT mask only"][1] + 0.5  # compensation carries the new task
