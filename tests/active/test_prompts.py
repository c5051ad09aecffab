from __future__ import annotations

import numpy as np
import pytest
import torch

from tailorkit.active import TUNERS, TuneConfig, make_tuner, predict, tune
from tailorkit.active.methods.slpt import select_stages


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("method", ["slpt", "prompt"])
def test_zero_initialised_prompts_reproduce_the_frozen_net(tiny_backbone, method: str) -> None:
    model = make_tuner(tiny_backbone, TuneConfig(method=method, prompt_sets=3), seed=5).eval()
    x = torch.rand(4, 1, 16, 16)
    frozen = tiny_backbone(x)[:, 0]
    out = model(x)
    assert out.shape == (4, 3, 16, 16)
    for k in range(3):
        torch.testing.assert_close(out[:, k], frozen, rtol=0, atol=1e-6)


def test_only_prompt_parameters_train_and_backbone_stays_bit_identical(tiny_backbone, toy) -> None:
    before = _state(tiny_backbone)  # BatchNorm running statistics included
    config = TuneConfig(method="slpt", steps=5, batch_size=4, prompt_sets=2)
    model = make_tuner(tiny_backbone, config, seed=0)
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert names and all(n.startswith(("adapters.", "heads.")) for n in names)
    tunable_before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    images, masks = toy(8, seed=3)
    tune(model, images, masks, config, seed=0)
    after = _state(tiny_backbone)
    assert all(torch.equal(before[k], after[k]) for k in before)
    changed = [n for n, p in model.named_parameters() if p.requires_grad and not torch.equal(p, tunable_before[n])]
    assert any(".out." in n for n in changed)  # the zero-initialised updater outputs moved
    assert 0 < model.tunable_fraction() < 0.5


def test_full_finetuning_trains_a_copy_not_the_shared_backbone(tiny_backbone, toy) -> None:
    before = _state(tiny_backbone)
    config = TuneConfig(method="full_ft", steps=3, batch_size=4)
    model = make_tuner(tiny_backbone, config, seed=0)
    images, masks = toy(8, seed=3)
    tune(model, images, masks, config, seed=0)
    assert model.tunable_fraction() == 1.0
    assert all(torch.equal(before[k], v) for k, v in tiny_backbone.state_dict().items())
    assert any(not torch.equal(before[k], v) for k, v in model.net.state_dict().items() if k in before)


def test_tunable_fraction_orders_the_tuners(tiny_backbone) -> None:
    fractions = {m: make_tuner(tiny_backbone, TuneConfig(method=m), 0).tunable_fraction() for m in TUNERS.names()}
    assert fractions["head_only"] < fractions["decoder_ft"] < fractions["full_ft"] == fractions["scratch"] == 1.0
    assert fractions["slpt"] < 1.0


def test_diversified_sets_disagree_after_training(tiny_backbone, toy) -> None:
    images, masks = toy(12, seed=4)
    config = TuneConfig(method="slpt", steps=15, batch_size=4, prompt_sets=3)
    model = make_tuner(tiny_backbone, config, seed=1)
    tune(model, images, masks, config, seed=1)
    probs = predict(model, images)
    spread = float(((probs - probs.mean(axis=1, keepdims=True)) ** 2).mean())
    assert spread > 1e-6
    # one set repeated: no disagreement by construction
    assert float(((probs[:, :1] - probs[:, :1].mean(axis=1, keepdims=True)) ** 2).mean()) == 0.0


def test_discrepancy_term_increases_disagreement(tiny_backbone, toy) -> None:
    images, masks = toy(12, seed=4)
    spreads = []
    for lam in (0.0, 5.0):
        config = TuneConfig(method="slpt", steps=15, batch_size=4, prompt_sets=2, discrepancy=lam)
        model = make_tuner(tiny_backbone, config, seed=1)
        tune(model, images, masks, config, seed=1)
        probs = predict(model, images)
        spreads.append(float(np.abs(probs[:, 0] - probs[:, 1]).mean()))
    assert spreads[1] > spreads[0]


def test_tuning_reduces_the_loss_and_stage_names_are_validated(tiny_backbone, toy) -> None:
    images, masks = toy(12, seed=6)
    config = TuneConfig(method="slpt", steps=30, batch_size=6, prompt_sets=1)
    losses = tune(make_tuner(tiny_backbone, config, 0), images, masks, config, 0)
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    with pytest.raises(ValueError, match="unknown stage 'enc9'"):
        select_stages(tiny_backbone, "enc0,enc9")
    assert [n for n, _ in select_stages(tiny_backbone, "enc2, dec0")] == ["enc2", "dec0"]
    with pytest.raises(KeyError, match="unknown tuner"):
        make_tuner(tiny_backbone, TuneConfig(method="nope"), 0)


def test_prompt_tuning_works_on_a_3d_unet() -> None:
    from tailorkit.nets.unet import UNet

    torch.manual_seed(0)
    net = UNet(1, 1, (2, 4), spatial_dims=3).eval()
    model = make_tuner(net, TuneConfig(method="slpt", prompt_sets=2, prompt_size=2), seed=0).eval()
    x = torch.rand(1, 1, 8, 8, 8)
    out = model(x)
    assert out.shape == (1, 2, 8, 8, 8)
    torch.testing.assert_close(out[:, 0], net(x)[:, 0], rtol=0, atol=1e-6)
    config = TuneConfig(method="slpt", prompt_sets=2, prompt_size=2, steps=2, batch_size=2, augment=False)
    images = np.random.default_rng(0).random((3, 1, 8, 8, 8)).astype(np.float32)
    tune(model, images, (images[:, 0] > 0.7).astype(np.uint8), config, seed=0)
    assert not torch.allclose(model(x)[:, 0], net(x)[:, 0])


def test_fine_tuning_with_dropout_is_reproducible_and_leaves_global_rng_alone(tiny_backbone, toy) -> None:
    images, masks = toy(8, seed=2)
    config = TuneConfig(method="full_ft", steps=4, batch_size=4)
    states = []
    for _ in range(2):
        torch.manual_seed(123)
        model = make_tuner(tiny_backbone, config, seed=0)
        tune(model, images, masks, config, seed=9)
        after = torch.rand(1)
        states.append((_state(model), after))
    assert all(torch.equal(states[0][0][k], states[1][0][k]) for k in states[0][0])
    torch.manual_seed(123)
    assert torch.equal(states[0][1], torch.rand(1))  # tune() did not consume the caller's global stream
