"""Baselines and the method contract: every registered method on the same tensors and budget."""

from __future__ import annotations

import pytest
import torch

from tailorkit.core.registry import RegistryError
from tailorkit.patching import METHODS, PatchConfig, apply_patch, tailor
from tailorkit.patching.methods import MODULES
from tailorkit.patching.methods.ties import ties_merge
from tests.patching._models import perturb, tiny_bert, token_batches

ALL = ["dare", "magnitude", "mask_only", "model_tailor", "random", "task_arithmetic", "ties", "wise_ft"]


def test_every_method_module_registered() -> None:
    assert sorted(METHODS.names()) == ALL
    assert set(MODULES) == {"model_tailor", "magnitude", "dare", "ties", "wise_ft"}
    with pytest.raises(RegistryError, match="expected one of"):
        METHODS.get("grafting")


@pytest.mark.parametrize("method", ALL)
def test_contract_same_tensors_determinism_round_trip(bert_pair, method: str) -> None:
    base, ft, calib = bert_pair
    lam = {"lam": 0.5} if method in ("ties", "wise_ft", "task_arithmetic") else None
    cfg = PatchConfig(method=method, density=0.1, seed=3, options=lam)
    a = tailor(base, ft, calib, cfg, progress=False)
    b = tailor(base, ft, calib, cfg, progress=False)
    pre = dict(base.named_parameters())
    for k in a.state:
        assert torch.equal(a.state[k], b.state[k]), k  # deterministic under the seed
        if not k.startswith("encoder.layer.1."):
            assert torch.equal(a.state[k], pre[k]), k  # nothing the fine-tune left alone is touched
    rebuilt = apply_patch(pre, a.patch)
    assert all(torch.equal(rebuilt[k], a.state[k]) for k in a.state)


@pytest.mark.parametrize("method", ["magnitude", "random", "ties", "mask_only", "model_tailor"])
def test_density_zero_is_pretrained_on_eligible(bert_pair, method: str) -> None:
    base, ft, calib = bert_pair
    result = tailor(base, ft, calib, PatchConfig(method=method, density=0.0), progress=False)
    pre = dict(base.named_parameters())
    names = [n for n in pre if n.startswith("encoder.layer.1.") and n.endswith(".weight") and pre[n].ndim == 2]
    for n in names:
        assert torch.equal(result.state[n], pre[n]), n


@pytest.mark.parametrize("method", ["magnitude", "ties", "mask_only", "model_tailor", "dare"])
def test_density_one_is_finetuned(bert_pair, method: str) -> None:
    base, ft, calib = bert_pair
    result = tailor(base, ft, calib, PatchConfig(method=method, density=1.0), progress=False)
    for k, v in ft.named_parameters():
        assert torch.allclose(result.state[k], v, atol=1e-6), k


def test_single_task_ties_equals_magnitude(bert_pair) -> None:
    base, ft, _ = bert_pair
    for scope in ("tensor", "global"):
        t = tailor(
            base, ft, None, PatchConfig(method="ties", density=0.2, options={"topk_scope": scope}), progress=False
        )
        m = tailor(
            base, ft, None, PatchConfig(method="magnitude", density=0.2, options={"topk_scope": scope}), progress=False
        )
        assert all(torch.equal(t.state[k], m.state[k]) for k in t.state)


def test_magnitude_keeps_largest_deltas_exactly_k(bert_pair) -> None:
    base, ft, _ = bert_pair
    result = tailor(base, ft, None, PatchConfig(method="magnitude", density=0.1), progress=False)
    pre, fin = dict(base.named_parameters()), dict(ft.named_parameters())
    name = "encoder.layer.1.intermediate.dense.weight"
    tau = (fin[name] - pre[name]).abs()
    kept = result.masks[name]
    assert int(kept.sum()) == int(0.1 * tau.numel())
    assert tau[kept].min() >= tau[~kept].max()
    glob = tailor(
        base, ft, None, PatchConfig(method="magnitude", density=0.1, options={"topk_scope": "global"}), progress=False
    )
    total = sum(m.numel() for m in glob.masks.values())
    assert sum(int(m.sum()) for m in glob.masks.values()) == int(0.1 * total)


def test_ties_merge_by_hand() -> None:
    taus = [torch.tensor([1.0, -2.0, 3.0, 0.5]), torch.tensor([2.0, 1.0, -1.0, 0.0])]
    masks = [torch.tensor([True, True, True, False]), torch.tensor([True, True, True, False])]
    # elected signs: +, -, +, 0; agreeing entries averaged by their count
    expected = torch.tensor([1.5, -2.0, 3.0, 0.0])
    assert torch.allclose(ties_merge(taus, masks, 1.0), expected)
    assert torch.allclose(ties_merge(taus, masks, 0.5), expected * 0.5)


def test_wise_ft_interpolates(bert_pair) -> None:
    base, ft, _ = bert_pair
    result = tailor(base, ft, None, PatchConfig(method="wise_ft", options={"lam": 0.25}), progress=False)
    pre, fin = dict(base.named_parameters()), dict(ft.named_parameters())
    name = "encoder.layer.1.output.dense.weight"
    assert torch.allclose(result.state[name], 0.75 * pre[name] + 0.25 * fin[name], atol=1e-6)


def test_dare_density_and_rescale(bert_pair) -> None:
    base, ft, _ = bert_pair
    pre, fin = dict(base.named_parameters()), dict(ft.named_parameters())
    name = "encoder.layer.1.intermediate.dense.weight"
    tau = fin[name] - pre[name]
    res = tailor(base, ft, None, PatchConfig(method="dare", density=0.3, seed=1), progress=False)
    kept = res.masks[name]
    assert abs(kept.float().mean().item() - 0.3) < 0.04
    assert torch.allclose((res.state[name] - pre[name])[kept], tau[kept] / 0.3, atol=1e-5)
    plain = tailor(
        base, ft, None, PatchConfig(method="dare", density=0.3, seed=1, options={"rescale": False}), progress=False
    )
    assert torch.allclose((plain.state[name] - pre[name])[kept], tau[kept], atol=1e-6)
    other = tailor(base, ft, None, PatchConfig(method="dare", density=0.3, seed=2), progress=False)
    assert not torch.equal(other.masks[name], kept)


def test_random_exact_k_and_multitask_sum() -> None:
    base = tiny_bert()
    fts = [perturb(base, 5, only="layer.1"), perturb(base, 6, only="layer.1")]
    res = tailor(base, fts, None, PatchConfig(method="random", density=0.2), progress=False)
    for m in res.masks.values():
        assert int(m.sum()) == int(0.2 * m.numel())
    ta = tailor(base, fts, None, PatchConfig(method="task_arithmetic", options={"lam": 1.0}), progress=False)
    pre = dict(base.named_parameters())
    name = "encoder.layer.1.output.dense.weight"
    expect = pre[name] + sum(dict(f.named_parameters())[name] - pre[name] for f in fts)
    assert torch.allclose(ta.state[name], expect, atol=1e-6)
    ties = tailor(base, fts, None, PatchConfig(method="ties", density=0.3), progress=False)
    assert ties.overlap is not None and 0 <= ties.overlap <= 1
    with pytest.raises(ValueError, match="one list of batches per fine-tune"):
        tailor(base, fts, [token_batches(1)], PatchConfig(), progress=False)
