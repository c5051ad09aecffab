"""The deformation network trains through `tailorkit.core.train`: exact resume, every pair each epoch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tailorkit.registration import transforms as T
from tailorkit.registration.config import DeformNetConfig, FeatureConfig, RegistrationConfig
from tailorkit.registration.deform_net import DeformNet, DeformPair, train_deform
from tailorkit.registration.pipeline import deform_pair, prepare
from tests.conftest import Interrupted as _Crash

AFF = np.diag([3.0, 3.0, 3.0, 1.0])
SHAPE = (16, 20, 18)


def _pairs() -> list[DeformPair]:
    """Two toy pairs (a smooth random image shifted by 3 mm along two different axes), MIND features."""
    g = torch.Generator().manual_seed(0)
    small = torch.rand(1, 1, *[s // 4 for s in SHAPE], generator=g)
    fixed = torch.nn.functional.interpolate(small, size=SHAPE, mode="trilinear", align_corners=True)[0, 0]
    rc = RegistrationConfig(spacing_mm=3.0, features=FeatureConfig(kind="mind"))
    pairs = []
    for axis in (0, 1):
        a = np.eye(4)
        a[axis, 3] = 3.0
        moving = T.warp_image(fixed, AFF, -T.affine_displacement(a, SHAPE, AFF), AFF)
        pairs.append(deform_pair(prepare(fixed, AFF, moving, AFF, rc), torch.zeros(3, *SHAPE)))
    return pairs


def _params(net: DeformNet) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in net.named_parameters()}


def test_interrupted_and_resumed_training_equals_the_uninterrupted_run(tmp_path: Path) -> None:
    # 2 pairs = 2 steps per epoch: the checkpoint at step 3 sits mid-epoch, the crash at step 5 loses two steps, and
    # Adam's moments and the per-epoch pair order have to line up after the resume.
    pairs = _pairs()
    cfg = DeformNetConfig(channels=(4, 8), steps=8, lr=1e-2, train_pairs=2, seed=3)
    straight, losses = train_deform(pairs, cfg, progress=False)
    assert len(losses) == 8 and all(np.isfinite(losses))

    def crash_at(step: int, loss: float) -> None:
        if step == 5:
            raise _Crash

    ckpt = tmp_path / "state.pt"
    with pytest.raises(_Crash):
        train_deform(pairs, cfg, progress=False, checkpoint=ckpt, checkpoint_every=3, on_step=crash_at)
    assert torch.load(ckpt, weights_only=True)["step"] == 3
    other = DeformNet(cfg, 3)  # its initial weights are overwritten by the checkpoint's
    resumed, resumed_losses = train_deform(pairs, cfg, progress=False, checkpoint=ckpt, net=other)
    assert resumed_losses == losses  # bit for bit, the 3 steps before the resume included
    for name, value in _params(straight).items():
        assert torch.equal(_params(resumed)[name], value), name
    assert not resumed.training and not straight.training

    # The same settings give the same network; another seed another one (so the comparison above can fail).
    again, _ = train_deform(pairs, cfg, progress=False)
    assert all(torch.equal(p, _params(straight)[n]) for n, p in _params(again).items())
    _, other_losses = train_deform(pairs, DeformNetConfig(channels=(4, 8), steps=8, lr=1e-2, seed=4), progress=False)
    assert other_losses != losses


def test_every_pair_is_seen_once_per_epoch_and_zero_steps_leave_the_network_untrained(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import tailorkit.registration.deform_net as D

    pairs = _pairs()
    seen: list[int] = []
    loss = D._loss

    def spy(net: torch.nn.Module, pair: DeformPair, config: DeformNetConfig) -> torch.Tensor:
        seen.append(next(i for i, p in enumerate(pairs) if p is pair))
        return loss(net, pair, config)

    monkeypatch.setattr(D, "_loss", spy)
    cfg = DeformNetConfig(channels=(4, 8), steps=6, lr=1e-2, seed=1)
    train_deform(pairs, cfg, progress=False)
    monkeypatch.undo()
    assert len(seen) == 6 and all(sorted(seen[i : i + 2]) == [0, 1] for i in range(0, 6, 2)), seen

    fresh = DeformNet(cfg, 3)
    before = _params(fresh)
    net, losses = train_deform(pairs, DeformNetConfig(channels=(4, 8), steps=0), net=fresh, progress=False)
    assert losses == [] and all(torch.equal(p, before[n]) for n, p in _params(net).items())
