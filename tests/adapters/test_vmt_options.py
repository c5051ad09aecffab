"""VMT's issue-19 options (task module with its own up-projection, task-feature source, conv placement, width from a
parameter budget): each builds and trains, counts match the documented formula, defaults are today's encoder."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from tailorkit.adapters.backbones import build_backbone
from tailorkit.adapters.config import MethodConfig
from tailorkit.adapters.methods import VMTOptions, make_encoder
from tailorkit.adapters.methods.vmt import VMTSettings, adapter_sites, vmt_parameter_count, width_for_budget
from tailorkit.core.config import ConfigError, from_dict

TASKS = ("semseg", "saliency", "normals")


def _vit():  # type: ignore[no-untyped-def]
    return build_backbone("vit", image_size=32, vit_dim=32, vit_depth=4, vit_patch=8)


def _effnet():  # type: ignore[no-untyped-def]
    return build_backbone("efficientnet_lite0", pretrained=False)


def _randomise(module: torch.nn.Module, seed: int = 5) -> None:
    """Seeded random values for every trainable tensor (zero-init up-projections would hide the task paths)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if p.requires_grad:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)


def _todays_vmt(enc, x: torch.Tensor) -> dict[str, list[torch.Tensor]]:  # type: ignore[no-untyped-def]
    """VMT as implemented before the options (commit b67eb06), written out from the encoder's own parameters:
    z = relu(u W_down + b), the block gets s (z W_up + b_up), task t's side output s_t ((z gamma_t + beta_t) W_up)
    summed over the blocks of a stage whose width equals the stage map's, added to that map."""
    backbone = enc.backbone
    stage_of = {s.index: s.stage for s in backbone.slots if s.d_out == backbone.stage_channels[s.stage]}
    acc: list[list[torch.Tensor | None]] = [[None] * len(backbone.stage_channels) for _ in enc.tasks]

    def hook(i: int, tap: torch.Tensor) -> torch.Tensor:
        m = enc.slot_modules[str(i)]
        z = torch.relu(F.linear(tap, m.down.weight, m.down.bias))
        delta = m.scale * F.linear(z, m.up.weight, m.up.bias)
        if i in stage_of:
            for t in range(len(enc.tasks)):
                h = m.task_scale[t] * ((z * m.gamma[t] + m.beta[t]) @ m.up.weight.T)
                prev = acc[t][stage_of[i]]
                acc[t][stage_of[i]] = h if prev is None else prev + h
        return delta

    feats = backbone.forward_stages(x, hook)
    return {
        task: [f if acc[t][k] is None else f + acc[t][k].permute(0, 3, 1, 2) for k, f in enumerate(feats)]  # type: ignore[union-attr]
        for t, task in enumerate(enc.tasks)
    }


@pytest.mark.parametrize("backbone", ["vit", "efficientnet_lite0"])
def test_defaults_reproduce_todays_vmt_bit_for_bit(backbone: str) -> None:
    bb = _vit() if backbone == "vit" else _effnet()
    torch.manual_seed(0)
    enc = make_encoder(bb, TASKS, MethodConfig("vmt"))
    assert all(site.module == "" for site in enc.sites) and enc.r == 8
    _randomise(enc)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got, want = enc(x), _todays_vmt(enc, x)
    for task in TASKS:
        assert all(torch.equal(a, b) for a, b in zip(got[task], want[task], strict=True))
    if backbone == "efficientnet_lite0":  # docs/adapters.md: 29,172 with 4 tasks, 153 per extra task
        four = make_encoder(_effnet(), ("a", "b", "c", "d"), MethodConfig("vmt"))
        assert four.trainable_parameters() == 29_172 and four.task_parameters() == 153


OPTIONS = {
    "lowrank_up": {"task_module": "lowrank_up"},
    "last_block": {"task_feature_source": "last_block"},
    "conv": {"placement": "conv"},
    "conv_lowrank_up": {"placement": "conv", "task_module": "lowrank_up"},
    "budget": {"budget_pct": 40.0},
}


# the budget on EfficientNet: test_budget_derives_the_largest_width_that_fits
CASES = [(o, b) for o in OPTIONS for b in ("vit", "efficientnet_lite0") if (o, b) != ("budget", "efficientnet_lite0")]


@pytest.mark.parametrize(("option", "backbone"), CASES)
@pytest.mark.parametrize("method", ["vmt", "vmt_lite"])
def test_each_option_trains_every_new_tensor(option: str, backbone: str, method: str) -> None:
    bb = _vit() if backbone == "vit" else _effnet()
    cfg = MethodConfig(method, OPTIONS[option])
    enc = make_encoder(bb, TASKS, cfg)
    assert enc.trainable_parameters() == vmt_parameter_count(enc.sites, len(TASKS), enc.config, enc.r)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    heads = {t: torch.randn(enc.stage_channels[-1], generator=torch.Generator().manual_seed(3)) for t in TASKS}
    params = {n: p for n, p in enc.named_parameters() if p.requires_grad}
    assert params and all(n.startswith("slot_modules.") for n in params)
    init = {n: p.detach().clone() for n, p in params.items()}
    opt = torch.optim.Adam(params.values(), lr=1e-2)  # no weight decay: a change means a gradient reached it
    grads: dict[str, bool] = {n: False for n in params}
    zero_init_grads: dict[str, bool] = {}
    for step in range(2):
        out = enc(x)
        # every task and every stage map reaches the loss
        loss = sum(
            (f.mean((0, 2, 3)) * heads[t][: f.shape[1]]).sum() + f.square().mean() for t in TASKS for f in out[t]
        )
        opt.zero_grad()
        loss.backward()  # type: ignore[union-attr]
        for n, p in params.items():
            nonzero = p.grad is not None and bool(p.grad.abs().sum() > 0)
            grads[n] |= nonzero
            # the zero-initialised gates of each path: W_up / U_t (VMT), the per-channel scale (Lite's tied W_up)
            if step == 0 and n.endswith(("up.weight", "task_up", ".scale")):
                zero_init_grads[n] = nonzero
        opt.step()
    # the zero-initialised gates get a gradient on the very first step; everything behind them (W_down, gamma, s_t)
    # once they are non-zero, i.e. from the second step on
    assert zero_init_grads and all(zero_init_grads.values()), [n for n, ok in zero_init_grads.items() if not ok]
    assert all(grads.values()), [n for n, ok in grads.items() if not ok]
    assert all(not torch.equal(init[n], p) for n, p in params.items())


@pytest.mark.parametrize("backbone", ["vit", "efficientnet_lite0"])
@pytest.mark.parametrize("option", ["lowrank_up", "conv", "conv_lowrank_up"])
def test_new_options_start_from_the_frozen_model(option: str, backbone: str) -> None:
    bb = _vit() if backbone == "vit" else _effnet()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        frozen = copy.deepcopy(bb).forward_stages(x)
        for method in ("vmt", "vmt_lite"):
            enc = make_encoder(copy.deepcopy(bb), TASKS, MethodConfig(method, OPTIONS[option]))
            out = enc(x)
            for task in TASKS:
                assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(out[task], frozen, strict=True))


def test_parameter_counts_by_hand() -> None:
    """The documented formula, written out per option on EfficientNet-Lite0 (T = 3, r = 8)."""
    bb = _effnet()
    slots, t, r = bb.slots, len(TASKS), 8
    contributing = [s for s in slots if s.d_out == bb.stage_channels[s.stage]]
    shared = sum(r * s.d_in + r + r * s.d_out + s.d_out for s in slots)

    def count(**kw: object) -> int:
        return make_encoder(copy.deepcopy(bb), TASKS, MethodConfig("vmt", kw)).trainable_parameters()

    assert count() == shared + t * len(contributing) * (2 * r + 1)
    assert count(task_module="lowrank_up") == shared + t * sum(r * s.d_out + 1 for s in contributing)
    assert count(task_module="linear") == shared + t * len(contributing) * (r * r + r + 1)
    last = {s.stage: s for s in slots}.values()  # the last block of each stage (always the stage's width)
    assert count(task_feature_source="last_block") == shared + t * len(last) * (2 * r + 1)
    conv = 0
    for s in slots:
        block = bb._blocks[s.index]
        e = block._depthwise_conv.in_channels
        if block.has_expand:
            conv += r * s.d_in + r + r * e + e
        conv += r * e + r + r * s.d_out + s.d_out
    assert count(placement="conv") == conv + t * len(contributing) * (2 * r + 1)


def test_budget_derives_the_largest_width_that_fits() -> None:
    bb = _effnet()
    n_backbone = sum(p.numel() for p in bb.parameters())
    for pct, kw in ((1.0, {}), (2.0, {"task_module": "lowrank_up"}), (8.0, {"placement": "conv"})):
        enc = make_encoder(copy.deepcopy(bb), TASKS, MethodConfig("vmt", {"budget_pct": pct, **kw}))
        cfg = enc.config
        sites = adapter_sites(bb, cfg)
        budget = pct / 100 * n_backbone
        assert enc.trainable_parameters() == vmt_parameter_count(sites, len(TASKS), cfg, enc.r) <= budget
        assert vmt_parameter_count(sites, len(TASKS), cfg, enc.r + 1) > budget
        assert enc.slot_modules[enc.sites[0].key].down.out_features == enc.r
    # 1 % of Lite0 with 3 tasks is today's r = 8 (0.98 %)
    assert make_encoder(copy.deepcopy(bb), TASKS, MethodConfig("vmt", {"budget_pct": 1.0})).r == 8
    with pytest.raises(ValueError, match=r"budget_pct: 0\.01 % of the backbone") as err:
        width_for_budget(adapter_sites(bb, VMTSettings()), 3, VMTSettings(budget_pct=0.01), n_backbone)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("method", "options", "message"),
    [
        ("vmt", {"task_module": "lowrank"}, "task_module: expected one of 'scale_shift', 'linear', 'gate'"),
        ("vmt", {"placement": "mlp"}, "placement: expected one of 'block', 'conv'"),
        ("vmt", {"task_feature_source": "every"}, "task_feature_source: expected one of"),
        ("vmt", {"budget_pct": -1.0}, "budget_pct"),
        ("vmt", {"budget_pct": 1.0, "r": 4}, "r: unused by vmt when budget_pct is set"),
        ("vmt_lite", {"task_scale": 0.5}, "task_scale: unused by vmt_lite unless task_module=lowrank_up"),
        (
            "per_task_adapter",
            {"placement": "conv"},
            "option 'placement' is not an option of adapters method 'per_task_adapter'; its options: r, act, scale",
        ),
        ("per_task_lora", {"budget_pct": 1.0}, "option 'budget_pct' is not an option of adapters method"),
        ("bitfit", {"r": 4}, "option 'r' is not an option of adapters method 'bitfit'; its options: none"),
        ("vmt_lite", {"scale": 0.2}, "option 'scale' is not an option of adapters method 'vmt_lite'"),
    ],
)
def test_bad_options_are_one_line_errors(method: str, options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message) as err:
        MethodConfig(method, options)
    assert "\n" not in str(err.value)


def test_options_from_a_config_file_are_checked() -> None:
    cfg = from_dict(MethodConfig, {"task_module": "lowrank_up", "placement": "conv"})  # the flat form, as before
    assert cfg.options_as(VMTOptions).placement == "conv" and cfg.options_as(VMTOptions).task_module == "lowrank_up"
    with pytest.raises(ConfigError, match="placement: expected one of 'block', 'conv'"):
        from_dict(MethodConfig, {"placement": "side"}, where="method")
    with pytest.raises(ConfigError, match=r"unknown config key 'method\.task_rank'"):
        from_dict(MethodConfig, {"task_rank": 2}, where="method")


def test_conv_placement_refuses_swin() -> None:
    swin = build_backbone("swin", image_size=32)
    with pytest.raises(ValueError, match="placement=conv: expected an EfficientNet-Lite0 or ViT backbone"):
        make_encoder(swin, TASKS, MethodConfig("vmt", {"placement": "conv"}))


def test_lowrank_up_leaves_the_shared_directions() -> None:
    """With the shared W_up, a task's side output lies in W_up's r-dim column span; lowrank_up's does not."""
    residual = {}
    for module in ("scale_shift", "lowrank_up"):
        enc = make_encoder(_vit(), TASKS, MethodConfig("vmt", {"r": 4, "task_module": module}))
        _randomise(enc)
        slot = enc.slot_modules["0"]
        _, sides = slot(torch.randn(5, 32, generator=torch.Generator().manual_seed(6)))
        basis = torch.linalg.qr(slot.up.weight.detach())[0]  # (d_out, r)
        h = sides[1].detach()
        residual[module] = float((h - (h @ basis) @ basis.T).norm() / h.norm())
    assert residual["scale_shift"] < 1e-5
    assert residual["lowrank_up"] > 0.5


def test_task_parameters_count_the_own_up_projection() -> None:
    bb = _effnet()
    enc = make_encoder(copy.deepcopy(bb), TASKS, MethodConfig("vmt", {"task_module": "lowrank_up"}))
    contributing = [s for s in bb.slots if s.d_out == bb.stage_channels[s.stage]]
    assert enc.task_parameters() == sum(8 * s.d_out + 1 for s in contributing)
    shared = make_encoder(copy.deepcopy(bb), TASKS, MethodConfig("shared_adapter", {"placement": "conv"}))
    assert shared.task_parameters() == 0 and shared.trainable_parameters() > 0


@pytest.mark.parametrize("backbone", ["vit", "efficientnet_lite0"])
def test_a_deep_copy_of_a_conv_placed_encoder_uses_its_own_adapters(backbone: str) -> None:
    enc = make_encoder(_vit() if backbone == "vit" else _effnet(), TASKS, MethodConfig("vmt", {"placement": "conv"}))
    _randomise(enc)
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        before = enc(x)
        twin = copy.deepcopy(enc)
        assert all(torch.equal(a, b) for t in TASKS for a, b in zip(twin(x)[t], before[t], strict=True))
        for p in twin.slot_modules.parameters():
            p.mul_(2.0)
        changed, again = twin(x), enc(x)
    assert all(torch.equal(a, b) for t in TASKS for a, b in zip(again[t], before[t], strict=True))
    assert not torch.allclose(changed["semseg"][-1], before["semseg"][-1])
