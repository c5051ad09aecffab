from __future__ import annotations

import copy
from dataclasses import fields, replace

import pytest
import torch

from tailorkit.adapters.backbones import build_backbone
from tailorkit.adapters.config import MethodConfig
from tailorkit.adapters.cost import encoder_flops
from tailorkit.adapters.methods import METHODS, make_encoder
from tailorkit.adapters.runner import build_model

from .conftest import tiny_config, tiny_options

PETL = ("vmt", "vmt_lite", "shared_adapter", "per_task_adapter", "per_task_lora", "bitfit", "hyperformer_lite")
ALL = (*PETL, "decoders_only", "single_task_full_ft", "mtl_full_ft")
TASKS = ("semseg", "saliency")


def _vit():  # type: ignore[no-untyped-def]
    return build_backbone("vit", image_size=32, vit_dim=32, vit_depth=2, vit_patch=8)


def _effnet():  # type: ignore[no-untyped-def]
    return build_backbone("efficientnet_lite0", pretrained=False)


def test_every_method_module_registered() -> None:
    assert set(METHODS.names()) == {*ALL, "vpt_deep"}
    with pytest.raises(ValueError, match="unknown adapters method 'vmtt'; expected one of"):
        make_encoder(_vit(), TASKS, MethodConfig("vmtt"))


@pytest.mark.parametrize("backbone", ["vit", "efficientnet_lite0", "swin"])
@pytest.mark.parametrize("name", PETL)
def test_zero_init_leaves_the_frozen_features_unchanged(name: str, backbone: str) -> None:
    build = {"vit": _vit, "efficientnet_lite0": _effnet, "swin": lambda: build_backbone("swin", image_size=32)}[
        backbone
    ]
    frozen = build()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = frozen.forward_stages(x)
        enc = make_encoder(copy.deepcopy(frozen), TASKS, MethodConfig(name, tiny_options(name)))
        out = enc(x)
    for task in TASKS:
        for a, b in zip(out[task], ref, strict=True):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ALL)
def test_only_intended_parameters_receive_gradients(name: str) -> None:
    # GELU: with ReLU a random-init backbone can leave a whole tiny 2x2 bottleneck dead, which is not the point here
    gelu = {"act": "gelu"} if "act" in {f.name for f in fields(METHODS.get(name).options)} else {}
    model = build_model(tiny_config(name, backbone="efficientnet_lite0", **gelu), tasks=TASKS)
    x = torch.randn(2, 3, 32, 32)
    for _ in range(2):  # the second pass: after a step zero-initialised branches pass gradients further
        preds = model(x)
        sum(p.square().mean() for p in preds.values()).backward()
        with torch.no_grad():
            for p in model.parameters():
                if p.grad is not None:
                    p -= 0.1 * p.grad.sign()
    enc = model.encoder
    fine_tuned = name in ("single_task_full_ft", "mtl_full_ft")
    for pname, p in enc.backbone.named_parameters():
        assert p.requires_grad == fine_tuned, pname
        assert (p.grad is not None) == fine_tuned or "bn" in pname or not fine_tuned, pname
    own = [(n, p) for n, p in enc.named_parameters() if not n.startswith(("backbone.", "copies."))]
    assert all(p.requires_grad for _, p in own)
    if name in PETL:
        assert own and all(p.grad is not None and p.grad.abs().sum() > 0 for _, p in own), [
            n for n, p in own if p.grad is None or p.grad.abs().sum() == 0
        ]
    assert all(p.grad is not None for p in model.decoders.parameters())


def test_vmt_parameter_counts_per_task() -> None:
    backbone = _effnet()
    cfg = MethodConfig("vmt", {"r": 8})
    counts = {t: make_encoder(copy.deepcopy(backbone), [f"semseg_{i}" for i in range(t)], cfg) for t in (1, 2, 8)}
    slots = backbone.slots
    shared = sum(s.d_in * 8 + 8 + 8 * s.d_out + s.d_out for s in slots)
    # gamma, beta in R^r and the scalar s_t per block whose side output reaches a decoder (width = stage width)
    contributing = [s for s in slots if s.d_out == backbone.stage_channels[s.stage]]
    assert len(contributing) == 9 and set(counts[1].contributes) == {s.index for s in contributing}
    per_task = len(contributing) * (2 * 8 + 1)
    for t, enc in counts.items():
        assert enc.trainable_parameters() == shared + t * per_task
        assert enc.task_parameters() == per_task
    fraction = counts[1].trainable_parameters() / counts[1].backbone_parameters()
    assert 0.005 < fraction < 0.015  # about 1 % of EfficientNet-Lite0's encoder
    per_task_pct = per_task / counts[1].backbone_parameters() * 100
    assert per_task_pct < 0.01  # each extra task < 0.01 % (docs/adapters.md#the-method-as-implemented)
    lite = make_encoder(copy.deepcopy(backbone), ["semseg"], cfg.with_method("vmt_lite"))
    assert lite.trainable_parameters() < 0.6 * counts[1].trainable_parameters()
    adapters = make_encoder(copy.deepcopy(backbone), ["a_1", "b_2"], cfg.with_method("per_task_adapter"))
    assert adapters.trainable_parameters() == 2 * shared


def test_encoder_flops_are_o1_for_vmt_and_linear_for_per_task_methods() -> None:
    backbone = _vit()
    ratios = {}
    for name in ("vmt", "per_task_adapter", "per_task_lora", "decoders_only"):
        cfg = replace(tiny_config(name), method=MethodConfig(name, tiny_options(name)))
        ratios[name] = encoder_flops(cfg, backbone, 8, 32) / encoder_flops(cfg, backbone, 1, 32)
    assert ratios["vmt"] < 1.15
    assert ratios["decoders_only"] == 1.0
    assert ratios["per_task_adapter"] == pytest.approx(8.0, rel=0.01)
    assert ratios["per_task_lora"] == pytest.approx(8.0, rel=0.01)


def test_task_modules_make_task_features_differ_after_training_signal() -> None:
    enc = make_encoder(_vit(), TASKS, MethodConfig("vmt", {"r": 4}))
    with torch.no_grad():
        for slot in enc.slot_modules.values():
            slot.up.weight.normal_()
            slot.gamma[1].mul_(3.0)
    out = enc(torch.randn(1, 3, 32, 32))
    assert not torch.allclose(out["semseg"][-1], out["saliency"][-1])
    shared = make_encoder(_vit(), TASKS, MethodConfig("shared_adapter", {"r": 4}))
    out = shared(torch.randn(1, 3, 32, 32))
    assert all(torch.equal(a, b) for a, b in zip(out["semseg"], out["saliency"], strict=True))


@pytest.mark.parametrize("combine", ["add", "replace_generic", "concat"])
@pytest.mark.parametrize("task_module", ["scale_shift", "linear", "gate"])
def test_vmt_knobs_build_and_run(combine: str, task_module: str) -> None:
    cfg = tiny_config("vmt", combine=combine, task_module=task_module, task_feature_source="last_block")
    model = build_model(cfg, tasks=TASKS)
    preds = model(torch.randn(2, 3, 32, 32))
    assert preds["semseg"].shape == (2, 5, 32, 32) and preds["saliency"].shape == (2, 1, 32, 32)


def test_vpt_deep_needs_prompts_support() -> None:
    enc = make_encoder(_vit(), TASKS, MethodConfig("vpt_deep", {"prompt_len": 2}))
    out = enc(torch.randn(2, 3, 32, 32))
    assert out["semseg"][0].shape == (2, 32, 4, 4)
    assert enc.trainable_parameters() == 2 * 2 * 2 * 32
    with pytest.raises(ValueError, match="transformer"):
        make_encoder(_effnet(), TASKS, MethodConfig("vpt_deep"))
