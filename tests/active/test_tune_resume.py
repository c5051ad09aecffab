"""Tuning runs through core.train: an interrupted run resumed from its checkpoint equals the uninterrupted one."""

from __future__ import annotations

import importlib
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from tailorkit.active import TuneConfig, make_tuner, tune
from tailorkit.active.tuning import core_config
from tailorkit.core.train import learning_rate
from tailorkit.nets.unet import UNet
from tests.conftest import Interrupted as _Crash

tuning = importlib.import_module("tailorkit.active.tuning")


def _backbone() -> UNet:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return UNet(1, 1, (4, 8, 16), dropout=0.1).eval()


@pytest.mark.parametrize(
    ("method", "discrepancy"),
    [("slpt", 0.0), ("slpt", 0.1), ("full_ft", 0.0)],
    ids=["slpt-independent-sets", "slpt-shared-batch", "full_ft-dropout"],
)
def test_resumed_run_equals_uninterrupted_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, toy: Any, method: str, discrepancy: float
) -> None:
    # 12 images / batch 4 = 3 steps per epoch (independent sets: 2 copies / batch 8, also 3): the checkpoint at step 4
    # sits mid-epoch and the crash at step 5 loses a step; augmentation, dropout (full_ft), Adam moments and the
    # warm-up + cosine schedule all have to line up after the resume.
    backbone = _backbone()
    config = TuneConfig(method=method, prompt_sets=2, steps=7, batch_size=4, discrepancy=discrepancy, schedule="cosine")
    images, masks = toy(12, seed=3)

    def run(seed: int = 0, **kwargs: Any) -> tuple[list[float], dict[str, torch.Tensor]]:
        model = make_tuner(backbone, config, seed=0)
        losses = tune(model, images, masks, config, seed=seed, **kwargs)
        assert not model.training
        return losses, {k: v.detach().clone() for k, v in model.state_dict().items()}

    starts: list[int] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        starts.append(result.start_step)
        return result

    real = tuning.core_train
    monkeypatch.setattr(tuning, "core_train", spy)
    straight_losses, straight_state = run()

    ckpt = tmp_path / "tune.pt"

    def crash(step: int, loss: float) -> None:
        if step == 5:
            raise _Crash

    with monkeypatch.context() as patch:
        patch.setattr(tuning, "core_train", lambda *a, **k: real(*a, **k, on_step=crash))
        with pytest.raises(_Crash):
            run(checkpoint=ckpt, checkpoint_every=2)
    assert torch.load(ckpt, weights_only=True)["step"] == 4

    resumed_losses, resumed_state = run(checkpoint=ckpt, checkpoint_every=2)
    assert starts == [0, 4]
    assert resumed_losses == straight_losses and len(resumed_losses) == 7
    assert resumed_state.keys() == straight_state.keys()
    for name, value in straight_state.items():
        assert torch.equal(resumed_state[name], value), name

    other_losses, _ = run(seed=1)  # another seed: another data order and augmentation (the equality is not vacuous)
    assert other_losses != straight_losses


def test_schedules_map_onto_cores_learning_rate() -> None:
    # "cosine": a 5 % linear warm-up (at least one step) then cosine to 0, the formula of the former LambdaLR.
    cosine = core_config(TuneConfig(steps=100, schedule="cosine"), lr=0.01, n_images=3, n_draws=2, seed=0)
    assert cosine.warmup_steps == 5 and cosine.batch_size == 3 * 2
    old = [(s + 1) / 5 if s < 5 else 0.5 * (1 + math.cos(math.pi * (s - 5) / 95)) for s in range(100)]
    assert [learning_rate(cosine, s) for s in range(100)] == pytest.approx([0.01 * f for f in old], abs=1e-12)
    constant = core_config(TuneConfig(steps=10, schedule="constant"), lr=0.01, n_images=20, n_draws=1, seed=0)
    assert constant.warmup_steps == 0 and constant.batch_size == 8 and constant.grad_clip is None
    assert {learning_rate(constant, s) for s in range(10)} == {0.01}
