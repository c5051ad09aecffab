"""Engine.train runs through core.train: multi-task batches, and an interrupted run resumes to the uninterrupted one."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from tailorkit.prompts import Engine, TrainConfig, assignment_for, make_learner
from tailorkit.prompts.engine import MultiTaskIndex
from tests.conftest import Interrupted as _Crash
from tests.conftest import interrupt_after as _crash_at


def test_multi_task_index_covers_every_task_each_epoch() -> None:
    data = MultiTaskIndex([3, 5, 5])
    assert len(data) == 5
    assert data[4] == {0: 1, 1: 4, 2: 4}
    seen = [data[i] for i in range(len(data))]
    for task, n in enumerate(data.sizes):
        assert {item[task] for item in seen} == set(range(n))  # one epoch sees every training image of every task
    with pytest.raises(ValueError, match="at least one training image"):
        MultiTaskIndex([4, 0])


def test_interrupted_training_resumes_to_the_uninterrupted_run(engine: Engine, tmp_path: Path) -> None:
    # 20 training images per task in batches of 6: three batches an epoch, so the checkpoint at step 3 starts the
    # second epoch's order and the crash at step 5 loses two steps; AdamW moments, the warm-up + cosine schedule and
    # the batch order all have to line up for the runs to agree bit for bit.
    config = TrainConfig(steps=7, batch=6, lr=0.02, warmup=2)

    def learner(init: int):  # type: ignore[no-untyped-def]
        return make_learner("mmap", engine.encoder, assignment_for("mt", 3), depth=2, source_init="normal", seed=init)

    straight_learner = learner(0)
    straight = engine.train(straight_learner, config, seed=5, progress=False)
    ckpt = tmp_path / "prompts.pt"
    with pytest.raises(_Crash):
        engine.train(
            learner(0), config, seed=5, checkpoint=ckpt, checkpoint_every=3, progress=False, on_step=_crash_at(5)
        )
    assert torch.load(ckpt, weights_only=True)["step"] == 3
    resumed_learner = learner(9)  # another initialisation: the checkpoint overwrites it
    resumed = engine.train(resumed_learner, config, seed=5, checkpoint=ckpt, checkpoint_every=3, progress=False)
    assert len(straight.losses) == config.steps
    assert resumed.losses == straight.losses
    expected = straight_learner.state_dict()
    for key, value in resumed_learner.state_dict().items():
        assert torch.equal(value, expected[key]), key
    # the seed sets the batch order: another seed's first two steps (same schedule) already differ
    other = engine.train(learner(0), replace(config, steps=2), seed=6, progress=False)
    assert other.losses != straight.losses[:2]
