"""Tests for tailorkit.core.train: convergence, determinism, frozen parameters, resume, and DDP under torchrun."""

from __future__ import annotations

import importlib.util
import math
import os
import signal
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from tailorkit.core.train import (
    TrainConfig,
    TrainResult,
    is_main_process,
    learning_rate,
    train,
    world_size,
)
from tests.conftest import Interrupted as _Crash
from tests.conftest import interrupt_after as _crash_at

WORKER = Path(__file__).with_name("ddp_worker.py")


def _regression(n: int = 64, seed: int = 0) -> TensorDataset:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=gen)
    w = torch.tensor([[1.5], [-2.0], [0.5], [3.0]])
    y = x @ w + 0.7 + 0.01 * torch.randn(n, 1, generator=gen)
    return TensorDataset(x, y)


def _init(model: nn.Module, seed: int) -> nn.Module:
    # Explicit init from a generator: nn.Linear's default init would draw from the global RNG.
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    return model


def _mlp(seed: int = 0) -> nn.Module:
    # Dropout makes the run depend on train()'s own RNG handling, not only on the data order.
    return _init(nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Dropout(0.2), nn.Linear(16, 1)), seed)


def _mse(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = batch
    return F.mse_loss(model(x), y)


def _params(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def _run(config: TrainConfig, seed: int = 0, **kwargs: object) -> TrainResult:
    return train(_mlp(seed), _mse, _regression(), config, progress=False, **kwargs)  # type: ignore[arg-type]


# --- config and helpers ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"steps": 0},
        {"steps": 2.0},
        {"lr": 0.0},
        {"lr": math.nan},
        {"batch_size": True},
        {"grad_clip": -1.0},
        {"checkpoint_every": -1},
        {"optimizer": "adam"},
        {"momentum": 1.0},
        {"schedule": "exponential"},
        {"step_at": 0.0},
        {"step_factor": 2.0},
        {"warmup_steps": 200},
        {"seed": -1},
    ],
)
def test_config_rejects_bad_values(bad: dict[str, object]) -> None:
    name = next(iter(bad))
    with pytest.raises(ValueError, match=rf"{name}: expected .*, got"):
        TrainConfig(**bad)  # type: ignore[arg-type]


def test_learning_rate_warmup_then_cosine_to_zero() -> None:
    config = TrainConfig(steps=10, lr=1.0, warmup_steps=2, schedule="cosine")
    assert [learning_rate(config, s) for s in (0, 1)] == [0.5, 1.0]
    assert learning_rate(config, 2) == pytest.approx(1.0)
    assert learning_rate(config, 6) == pytest.approx(0.5)
    assert learning_rate(config, 10) == pytest.approx(0.0, abs=1e-12)
    assert learning_rate(replace(config, schedule="linear"), 6) == pytest.approx(0.5)


def test_step_schedule_drops_the_rate_once_at_step_at() -> None:
    config = TrainConfig(steps=10, lr=1.0, schedule="step", step_at=0.8, step_factor=0.1)
    assert [learning_rate(config, s) for s in range(10)] == [1.0] * 8 + [pytest.approx(0.1)] * 2
    with pytest.raises(ValueError, match="step_factor"):
        TrainConfig(schedule="step", step_factor=0.0)
    with pytest.raises(ValueError, match="step_at"):
        TrainConfig(schedule="step", step_at=1.5)


def test_decay_span_all_steps_multiplies_the_ramp_into_a_decay_over_the_whole_run() -> None:
    # adapters' recipe before issue 23: lr * min(1, (s + 1) / warmup) * 0.5 (1 + cos(pi s / steps)), bit for bit.
    config = TrainConfig(steps=300, lr=1e-2, warmup_steps=20, schedule="cosine", decay_span="all_steps")
    for s in range(300):
        old = 1e-2 * min(1.0, (s + 1) / 20) * (0.5 * (1 + math.cos(math.pi * s / 300)))
        assert learning_rate(config, s) == old
    # unlike the default span, the decay has begun when the warm-up ends and the ramp is not the full rate at its end
    after = replace(config, decay_span="after_warmup")
    assert learning_rate(config, 20) < learning_rate(after, 20) == 1e-2
    assert learning_rate(replace(config, schedule="linear"), 150) == pytest.approx(0.5e-2)
    assert learning_rate(replace(config, schedule="constant"), 9) == pytest.approx(0.5e-2)
    # the ramp may outlast a short run (it multiplies the decay); the default span refuses that
    short = TrainConfig(steps=3, lr=1.0, warmup_steps=20, decay_span="all_steps")
    assert learning_rate(short, 0) == pytest.approx(0.05)
    with pytest.raises(ValueError, match="warmup_steps: expected an int in"):
        TrainConfig(steps=3, warmup_steps=20)
    with pytest.raises(ValueError, match="decay_span: expected"):
        TrainConfig(decay_span="warmup")  # type: ignore[arg-type]


def test_clip_groups_clip_each_set_on_its_own() -> None:
    # Plain SGD moves a parameter by lr * (clipped) grad: with one set per layer each layer's step has norm
    # lr * grad_clip at most, while one global norm would shrink the small-gradient layer too.
    config = TrainConfig(steps=1, lr=1.0, batch_size=8, optimizer="sgd", shuffle=False, grad_clip=1e-3)
    data = _regression(n=8)

    model = _mlp()
    sets = [list(model[0].parameters()), list(model[3].parameters())]
    moved = {}
    for key in ("global", "per_layer"):
        m = _mlp()
        before = _params(m)
        clip = None if key == "global" else [list(m[0].parameters()), list(m[3].parameters())]
        train(m, _mse, data, config, progress=False, clip_groups=clip)
        moved[key] = {name: _params(m)[name] - before[name] for name in before}

    def norm(delta: dict[str, torch.Tensor], prefix: str) -> float:
        return float(torch.sqrt(sum((d**2).sum() for n, d in delta.items() if n.startswith(prefix))))

    total = math.sqrt(norm(moved["global"], "0.") ** 2 + norm(moved["global"], "3.") ** 2)
    assert total == pytest.approx(1e-3, rel=1e-4)  # one global norm
    for layer in ("0.", "3."):
        assert norm(moved["per_layer"], layer) == pytest.approx(1e-3, rel=1e-4)  # each set clipped on its own
    with pytest.raises(ValueError, match="in no set"):
        train(model, _mse, data, config, progress=False, clip_groups=sets[:1])
    with pytest.raises(ValueError, match="already in an earlier set"):
        train(model, _mse, data, config, progress=False, clip_groups=[sets[0], sets[0], sets[1]])


def test_a_checkpoint_without_the_newer_step_fields_still_resumes(tmp_path: Path) -> None:
    """Checkpoints written before `step_at`/`step_factor`/`decay_span` existed read them as their defaults."""
    config = TrainConfig(steps=2, lr=0.01, batch_size=16, log_every=0)
    path = tmp_path / "ckpt.pt"
    _run(config, checkpoint=path)
    payload = torch.load(path, weights_only=True)
    for name in ("step_at", "step_factor", "decay_span"):
        del payload["trajectory"][name]
    torch.save(payload, path)
    assert len(_run(replace(config, steps=3), checkpoint=path).losses) == 3  # no "different configuration"
    with pytest.raises(ValueError, match="step_factor"):
        _run(replace(config, steps=4, step_factor=0.5), checkpoint=path)


def test_rank_helpers_read_torchrun_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    assert world_size() == 1 and is_main_process()
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert world_size() == 2 and not is_main_process()


def test_distributed_env_without_rendezvous_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    with pytest.raises(RuntimeError, match="MASTER_ADDR"):
        _run(TrainConfig(steps=1, batch_size=8))


def test_rejects_dataset_smaller_than_a_batch() -> None:
    with pytest.raises(ValueError, match="at least batch_size"):
        train(_mlp(), _mse, _regression(n=4), TrainConfig(steps=1, batch_size=8), progress=False)


def test_rejects_model_without_trainable_parameters() -> None:
    model = _mlp().requires_grad_(False)
    with pytest.raises(ValueError, match="requires_grad=True"):
        train(model, _mse, _regression(), TrainConfig(steps=1, batch_size=8), progress=False)


# --- single process -------------------------------------------------------------------------------------------------


def test_loss_decreases_and_run_is_deterministic() -> None:
    config = TrainConfig(steps=80, lr=0.02, batch_size=16, seed=3, log_every=0)
    model, data = _mlp(), _regression()  # nn.Linear's constructor draws from the global RNG: build first
    rng_before = torch.get_rng_state()
    first = train(model, _mse, data, config, progress=False)
    assert torch.equal(torch.get_rng_state(), rng_before), "train() must not consume or reseed the global RNG"

    assert len(first.losses) == first.steps == 80 and first.start_step == 0
    assert sum(first.losses[-10:]) / 10 < 0.1 * sum(first.losses[:10]) / 10

    again = _run(config)
    assert again.losses == first.losses
    for name, value in _params(first.model).items():
        assert torch.equal(value, _params(again.model)[name]), name

    # The seed drives the data order and the dropout masks: another seed is another run.
    other = _run(replace(config, seed=4))
    assert other.losses != first.losses


def test_frozen_parameters_stay_bitwise_and_are_not_checkpointed(tmp_path: Path) -> None:
    model = _init(nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1)), seed=1)
    model[0].requires_grad_(False)
    before = _params(model)
    ckpt = tmp_path / "run.pt"
    config = TrainConfig(steps=20, lr=0.05, batch_size=16, weight_decay=0.1, grad_clip=1.0)
    result = train(model, _mse, _regression(), config, checkpoint=ckpt, progress=False)

    after = _params(result.model)
    assert result.model is model
    assert torch.equal(after["0.weight"], before["0.weight"])
    assert torch.equal(after["0.bias"], before["0.bias"])
    assert not torch.equal(after["2.weight"], before["2.weight"])
    assert not torch.equal(after["2.bias"], before["2.bias"])

    saved = torch.load(ckpt, weights_only=True)
    assert sorted(saved["model"]) == ["2.bias", "2.weight"]
    assert saved["step"] == 20 and len(saved["optimizer"]["param_groups"][0]["params"]) == 2


def test_resumed_run_equals_uninterrupted_run(tmp_path: Path) -> None:
    # 24 samples / batch 8 = 3 batches per epoch: the checkpoint at step 5 sits mid-epoch, the crash at step 7 loses
    # two steps, and AdamW moments, dropout masks and the cosine schedule all have to line up after the resume.
    data = _regression(n=24)
    config = TrainConfig(steps=10, lr=0.01, batch_size=8, checkpoint_every=5, schedule="cosine", warmup_steps=2)
    straight = train(_mlp(), _mse, data, config, progress=False)

    ckpt = tmp_path / "ckpt" / "run.pt"
    with pytest.raises(_Crash):
        train(_mlp(), _mse, data, config, checkpoint=ckpt, progress=False, on_step=_crash_at(7))
    assert torch.load(ckpt, weights_only=True)["step"] == 5

    resumed = train(_mlp(seed=9), _mse, data, config, checkpoint=ckpt, progress=False)  # init is overwritten
    assert resumed.start_step == 5 and resumed.steps == 10
    assert resumed.losses == straight.losses
    for name, value in _params(straight.model).items():
        assert torch.equal(_params(resumed.model)[name], value), name
    assert sorted(p.name for p in ckpt.parent.iterdir()) == ["run.pt"], "temporary files left behind"

    # A finished run resumes to itself; a changed trajectory setting is refused rather than silently mixed.
    rerun = train(_mlp(), _mse, data, config, checkpoint=ckpt, progress=False)
    assert rerun.start_step == 10 and rerun.losses == straight.losses
    with pytest.raises(ValueError, match=r"lr: checkpoint 0\.01 vs config 0\.02"):
        train(_mlp(), _mse, data, replace(config, lr=0.02), checkpoint=ckpt, progress=False)


def test_param_groups_scale_the_one_schedule_and_cover_every_parameter() -> None:
    # Plain SGD without momentum moves a parameter by exactly lr * grad, so a group at lr_scale 0 must not move and
    # one at lr_scale 2 must move twice as far as the same parameter at scale 1 on the first step.
    config = TrainConfig(steps=1, lr=0.1, batch_size=8, optimizer="sgd", shuffle=False)
    data = _regression(n=8)

    def first_step(scale: float) -> dict[str, torch.Tensor]:
        model = _mlp()
        head, body = list(model[3].parameters()), list(model[0].parameters())
        before = _params(model)
        groups = [{"params": body, "lr_scale": 0.0}, {"params": head, "lr_scale": scale}]
        train(model, _mse, data, config, progress=False, param_groups=groups)
        return {name: _params(model)[name] - before[name] for name in before}

    one, two = first_step(1.0), first_step(2.0)
    assert all(not bool(d.any()) for name, d in one.items() if name.startswith("0."))
    assert one["3.weight"].abs().sum() > 0
    assert torch.allclose(two["3.weight"], 2 * one["3.weight"], rtol=1e-5, atol=1e-8)

    model = _mlp()
    with pytest.raises(ValueError, match="in no group"):
        train(model, _mse, data, config, progress=False, param_groups=[{"params": list(model[0].parameters())}])
    with pytest.raises(ValueError, match="already in an earlier group"):
        twice = list(model.parameters())
        train(model, _mse, data, config, progress=False, param_groups=[{"params": twice}, {"params": twice[:1]}])
    with pytest.raises(ValueError, match="unknown keys"):
        train(model, _mse, data, config, progress=False, param_groups=[{"params": twice, "lr": 1.0}])


def test_resume_with_param_groups_equals_uninterrupted_run(tmp_path: Path) -> None:
    data = _regression(n=24)
    config = TrainConfig(steps=8, lr=0.01, batch_size=8, checkpoint_every=4, schedule="cosine", warmup_steps=2)

    def groups(model: nn.Module) -> list[dict[str, object]]:
        return [
            {"params": list(model[0].parameters()), "lr_scale": 0.1, "weight_decay": 0.0},
            {"params": list(model[3].parameters()), "lr_scale": 3.0},
        ]

    model = _mlp()
    straight = train(model, _mse, data, config, progress=False, param_groups=groups(model))
    ckpt = tmp_path / "run.pt"
    crashed = _mlp()
    with pytest.raises(_Crash):
        train(
            crashed,
            _mse,
            data,
            config,
            checkpoint=ckpt,
            progress=False,
            on_step=_crash_at(6),
            param_groups=groups(crashed),
        )
    fresh = _mlp(seed=9)
    resumed = train(fresh, _mse, data, config, checkpoint=ckpt, progress=False, param_groups=groups(fresh))
    assert resumed.start_step == 4 and resumed.losses == straight.losses
    for name, value in _params(straight.model).items():
        assert torch.equal(_params(resumed.model)[name], value), name


# --- torchrun -------------------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _load_worker() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tailorkit_tests_ddp_worker", WORKER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _reference_sgd(worker: ModuleType) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], list[float]]:
    """One process, plain autograd, no train(): SGD on the union of both ranks' batches (the contiguous block)."""
    model, data = worker.build()
    initial = _params(model)
    config = worker.CONFIG
    global_batch = 2 * config.batch_size
    per_epoch = len(data) // global_batch
    trainable = [p for p in model.parameters() if p.requires_grad]
    losses = []
    for step in range(config.steps):
        first = (step % per_epoch) * global_batch
        x, y = data[first : first + global_batch]
        loss = F.mse_loss(model(x), y)
        grads = torch.autograd.grad(loss, trainable)
        with torch.no_grad():
            for p, g in zip(trainable, grads, strict=True):
                p.sub_(config.lr * g)
        losses.append(float(loss.detach()))
    return initial, _params(model), losses


def test_torchrun_two_ranks_match_single_process_reference(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR")}
    env["OMP_NUM_THREADS"] = "1"
    if "lo" in {name for _, name in socket.if_nameindex()}:
        # gloo binds to the interface the hostname resolves to; on hosts where that is not loopback-reachable
        # (sandboxes, VPNs) the ranks never meet. Pin it to loopback: this test never leaves the machine.
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--nnodes=1",
        "--rdzv-backend=c10d",
        f"--rdzv-endpoint=127.0.0.1:{port}",
        str(WORKER),
        str(tmp_path),
    ]
    # A session of its own so a hung run can be killed with its workers, which would otherwise outlive torchrun.
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        output, _ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"torchrun timed out after 120 s:\n{output[-4000:]}")
    assert proc.returncode == 0, f"torchrun failed:\n{output[-4000:]}"

    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    worker = _load_worker()
    initial, expected, expected_losses = _reference_sgd(worker)

    for record in ranks:
        assert record["group_created"], "train() must create a gloo group of 2 from torchrun's environment"
        assert record["guard_fired"], "bypassing the DDP wrapper must raise, not drift silently"
        assert record["start_step"] == worker.STEPS_FIRST and record["steps"] == worker.CONFIG.steps
        assert record["losses"][: worker.STEPS_FIRST] == record["first_losses"]
        assert record["losses"] == pytest.approx(expected_losses, abs=1e-6)
    for name, value in ranks[0]["params"].items():
        assert torch.equal(value, ranks[1]["params"][name]), f"ranks disagree on {name}"
        torch.testing.assert_close(value, expected[name], rtol=0, atol=1e-5, msg=f"DDP != reference on {name}")
    assert torch.equal(ranks[0]["params"]["0.weight"], initial["0.weight"]), "frozen layer moved"
    assert not torch.equal(ranks[0]["params"]["2.weight"], initial["2.weight"]), "trainable layer did not move"
