"""adapters trains through core.train: an interrupted run resumed from its checkpoint equals the uninterrupted one,
and the loop keeps the optimiser, rates, schedule and clipping of the loop it replaced (issue 23)."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data.distributed import DistributedSampler

from tailorkit.adapters.data import make_data
from tailorkit.adapters.runner import (
    SceneIndex,
    build_model,
    clip_groups,
    core_config,
    param_groups,
    train_model,
    train_step_loss,
)
from tailorkit.cli.main import main
from tailorkit.core.config import save_config
from tailorkit.core.train import learning_rate
from tests.conftest import Interrupted as _Crash
from tests.conftest import interrupt_after as _crash_at

from .conftest import tiny_config


@pytest.mark.parametrize("method", ["vmt", "single_task_full_ft"])
def test_resumed_run_equals_uninterrupted_run(tmp_path: Path, method: str) -> None:
    # 16 scenes / batch 4 = 4 batches an epoch: the checkpoint at step 6 sits mid-epoch, the crash at step 7 loses a
    # step; AdamW moments, the warm-up x cosine rates, the two rate groups and the per-task clipping of single-task
    # full fine-tuning all have to line up after the resume.
    cfg = tiny_config(method)
    cfg = replace(cfg, optim=replace(cfg.optim, steps=9, warmup_steps=3, grad_clip=0.5, full_ft_lr=3e-3))
    train, _ = make_data(cfg)
    straight_model = build_model(cfg)
    straight = train_model(straight_model, train, cfg, progress=False)

    ckpt = tmp_path / "adapters.train.pt"
    crash = _crash_at(7)
    with pytest.raises(_Crash):
        train_model(
            build_model(cfg),
            train,
            cfg,
            progress=False,
            checkpoint=ckpt,
            checkpoint_every=3,
            on_step=lambda done, model: crash(done, 0.0),
        )
    assert torch.load(ckpt, weights_only=True)["step"] == 6

    resumed_model = build_model(cfg)
    resumed = train_model(resumed_model, train, cfg, progress=False, checkpoint=ckpt, checkpoint_every=3)
    assert resumed["start_step"] == 6 and straight["start_step"] == 0
    assert resumed["loss"] == straight["loss"] and len(resumed["loss"]) == 9
    a, b = straight_model.state_dict(), resumed_model.state_dict()
    assert a.keys() == b.keys()
    for name, value in a.items():
        assert torch.equal(b[name], value), name

    # another seed is another batch order (so the equality above is not vacuous)
    other_cfg = replace(cfg, seed=1)
    other = train_model(build_model(cfg), train, other_cfg, progress=False)
    assert other["loss"] != straight["loss"]


def test_core_settings_keep_the_old_loops_recipe() -> None:
    cfg = tiny_config("vmt")
    cfg = replace(cfg, optim=replace(cfg.optim, steps=300, warmup_steps=20, batch_size=16, grad_clip=0.0))
    core = core_config(cfg, n_scenes=800)
    assert core.optimizer == "adamw" and core.grad_clip is None and core.weight_decay == cfg.optim.weight_decay
    assert core.batch_size == 16 and core_config(cfg, n_scenes=5).batch_size == 5  # a small set is one batch
    # the loop before issue 23: lr * min(1, (s + 1) / warmup) * 0.5 (1 + cos(pi s / steps)), bit for bit
    for s in range(300):
        old = cfg.optim.lr * min(1.0, (s + 1) / 20) * (0.5 * (1 + math.cos(math.pi * s / 300)))
        assert learning_rate(core, s) == old
    assert core.seed != core_config(replace(cfg, seed=1), n_scenes=800).seed


def test_cli_train_keeps_and_resumes_a_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tiny_config("vmt")
    save_config(cfg, tmp_path / "run.yaml")
    out = tmp_path / "run"
    args = ["adapters", "train", str(tmp_path / "run.yaml"), "--out", str(out), "--checkpoint-every", "1"]
    assert main([*args, "optim.steps=2"]) == 0
    assert torch.load(out / "resume.pt", weights_only=True)["step"] == 2
    # run again with more steps: it continues from step 2 (the loss history holds the first two steps' losses)
    first = json.loads((out / "metrics.json").read_text())["final_loss"]
    assert main([*args, "optim.steps=3"]) == 0
    payload = torch.load(out / "resume.pt", weights_only=True)
    assert payload["step"] == 3 and payload["losses"][1] == first
    capsys.readouterr()
    assert main([*args, "optim.steps=4", "optim.lr=0.5"]) == 2  # other settings: refused, naming what differs
    assert "lr: checkpoint" in capsys.readouterr().err
    assert main([*args[:-1], "-1"]) == 2


def _old_loop(model: torch.nn.Module, train: Any, cfg: Any, order: list[list[int]]) -> list[float]:
    """The loop runner.py had before issue 23 (commit e4484c1), with the batch draw replaced by ``order``."""
    o = cfg.optim
    model.train()
    groups = param_groups(model, cfg)
    optimizer = torch.optim.AdamW(
        [{"params": g["params"], "lr": o.lr * g["lr_scale"]} for g in groups], weight_decay=o.weight_decay
    )
    base = [o.lr, o.full_ft_lr][: len(groups)]
    clip = clip_groups(model) or [[p for p in model.parameters() if p.requires_grad]]
    losses = []
    for step in range(o.steps):
        warm = min(1.0, (step + 1) / max(1, o.warmup_steps)) if o.warmup_steps else 1.0
        cosine = 0.5 * (1 + math.cos(math.pi * step / max(1, o.steps)))
        for g, lr in zip(optimizer.param_groups, base, strict=True):
            g["lr"] = lr * warm * cosine
        x, targets = train.batch(torch.tensor(order[step]), torch.device("cpu"))
        loss, _ = train_step_loss(model, x, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for params in clip:
            torch.nn.utils.clip_grad_norm_(params, o.grad_clip)
        optimizer.step()
        losses.append(float(loss.detach()))
    model.eval()
    return losses


@pytest.mark.parametrize("method", ["vmt", "single_task_full_ft"])
def test_the_move_to_core_changes_only_the_batch_order(method: str) -> None:
    cfg = tiny_config(method)
    cfg = replace(cfg, optim=replace(cfg.optim, steps=6, warmup_steps=3, grad_clip=1e-2, full_ft_lr=2e-3))
    train, _ = make_data(cfg)
    core = core_config(cfg, len(train))
    sampler = DistributedSampler(SceneIndex(train, torch.device("cpu")), 1, 0, seed=core.seed, drop_last=True)
    order: list[list[int]] = []
    for epoch in range(2):  # 16 scenes / batch 4: 4 batches an epoch
        sampler.set_epoch(epoch)
        epoch_order = list(sampler)
        order += [epoch_order[i : i + 4] for i in range(0, 16, 4)]
    new_model, old_model = build_model(cfg), build_model(cfg)
    new = train_model(new_model, train, cfg, progress=False)["loss"]
    assert _old_loop(old_model, train, cfg, order) == new
    a, b = old_model.state_dict(), new_model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
