"""HOI training runs through core.train: an interrupted run resumed from its checkpoint equals the uninterrupted one."""

from __future__ import annotations

import dataclasses
import functools
import importlib
from pathlib import Path

import pytest
import torch

from tailorkit.core.train import learning_rate
from tailorkit.hoi.data import make_synth
from tailorkit.hoi.train import core_config, train
from tests.conftest import Interrupted as _Crash
from tests.conftest import interrupt_after as _crash_at

from .conftest import tiny_config

hoi_train = importlib.import_module("tailorkit.hoi.train")  # the module (the package exports a function `train`)


@pytest.mark.parametrize("inputs", ["images", "features"])
def test_resumed_run_equals_uninterrupted_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, inputs: str) -> None:
    # 12 scenes / batch 4 = 3 batches per epoch: the checkpoint at step 4 sits mid-epoch, the crash at step 5 loses
    # one step; dropout masks, AdamW moments, the Hungarian matching of variable-size targets and the warm-up +
    # cosine schedule all have to line up after the resume.
    cfg = tiny_config("hodn", steps=7, dropout=0.1)
    cfg = dataclasses.replace(
        cfg,
        model=dataclasses.replace(cfg.model, freeze_backbone=inputs == "features"),
        optim=dataclasses.replace(cfg.optim, schedule="cosine", warmup_steps=2, batch_size=4),
    )
    data = make_synth(cfg.data, 0, "train", n=12)
    assert len({len(a.hois) for a in data.annotations}) > 1, "the toy scenes should hold different HOI counts"
    features = None
    if inputs == "features":
        probe = hoi_train.build_model(cfg.model, len(data.object_names), len(data.verb_names))
        assert data.images is not None
        features = hoi_train.backbone_features(probe, data.images, progress=False)

    straight = train(cfg, data, features=features, seed=3, progress=False)

    ckpt = tmp_path / "hoi.train.pt"
    crashing = functools.partial(hoi_train.core_train, on_step=_crash_at(5))
    with monkeypatch.context() as patch:
        patch.setattr(hoi_train, "core_train", crashing)
        with pytest.raises(_Crash):
            train(cfg, data, features=features, seed=3, progress=False, checkpoint=ckpt, checkpoint_every=2)
    assert torch.load(ckpt, weights_only=True)["step"] == 4

    resumed = train(cfg, data, features=features, seed=3, progress=False, checkpoint=ckpt, checkpoint_every=2)
    assert resumed.start_step == 4 and straight.start_step == 0
    assert resumed.losses == straight.losses and len(resumed.losses) == 7
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys()
    for name, value in a.items():
        assert torch.equal(b[name], value), name

    # Another seed is another run (so the equality above is not vacuous).
    other = train(cfg, data, features=features, seed=4, progress=False)
    assert other.losses != straight.losses


def test_optim_settings_map_onto_core() -> None:
    cfg = tiny_config("hodn", steps=10)
    cfg = dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, clip=0.0, schedule="cosine", warmup_steps=2))
    core = core_config(cfg, seed=3)
    assert core.grad_clip is None and core.steps == 10 and core.batch_size == cfg.optim.batch_size
    assert core.seed != core_config(cfg, seed=4).seed
    rates = [learning_rate(core, s) for s in range(10)]
    assert rates[0] == pytest.approx(cfg.optim.lr / 2) and rates[1] == pytest.approx(cfg.optim.lr)
    assert rates[-1] < rates[2]
    # The default is QPIC/CDN's single x 0.1 drop at 80 % of the steps (the loop's schedule before issue 23).
    plain = core_config(tiny_config("hodn", steps=10), seed=0)
    assert plain.grad_clip == pytest.approx(0.1)
    assert [learning_rate(plain, s) for s in range(10)] == [plain.lr] * 8 + [pytest.approx(plain.lr * 0.1)] * 2
