"""Cost versus number of tasks: encoder FLOPs (torch's flop counter) and median training-step seconds.

For T tasks the model gets T heads (``semseg_0 .. semseg_{T-1}``, copies of the semseg task); FLOPs count the
encoder forward only (``torch.utils.flop_counter``: matmuls and convolutions, deterministic), so the decoders'
linear growth in T, common to every method, is left out: the paper's O(1) claim is about the encoder. Step time is the
median wall time of a full training step (encoder, T decoders, backward, AdamW) after one warm-up step.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from tailorkit.adapters.config import TrainConfig
from tailorkit.adapters.runner import build_model, train_step_loss

__all__ = ["cost_tasks", "encoder_flops", "step_seconds"]


def cost_tasks(n: int) -> tuple[str, ...]:
    return tuple(f"semseg_{i}" for i in range(n))


def encoder_flops(config: TrainConfig, backbone: nn.Module, n_tasks: int, image_size: int) -> int:
    """FLOPs of one encoder forward for one image with ``n_tasks`` tasks (method = ``config.method``)."""
    model = build_model(config, copy.deepcopy(backbone), cost_tasks(n_tasks)).eval()
    x = torch.zeros(1, 3, image_size, image_size)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model.encoder(x)
    return int(counter.get_total_flops())


def step_seconds(
    config: TrainConfig, backbone: nn.Module, n_tasks: int, image_size: int, *, batch_size: int = 8, steps: int = 5
) -> float:
    """Median seconds of a training step with ``n_tasks`` tasks (random images and labels)."""
    model = build_model(config, copy.deepcopy(backbone), cost_tasks(n_tasks)).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch_size, 3, image_size, image_size, generator=gen)
    targets = {t: torch.randint(0, 5, (batch_size, image_size, image_size), generator=gen) for t in model.tasks}
    times = []
    for i in range(steps + 1):
        start = time.perf_counter()
        loss, _ = train_step_loss(model, x, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if i:  # the first step warms allocators and kernels
            times.append(time.perf_counter() - start)
    return float(statistics.median(times))


def cost_curve(
    config: TrainConfig,
    backbone: nn.Module,
    task_counts: Sequence[int],
    image_size: int,
    *,
    batch_size: int = 8,
    steps: int = 5,
    timing: bool = True,
) -> dict[str, float]:
    """``gflops_T{n}`` and (with ``timing``) ``step_s_T{n}`` for each n, plus ``flops_ratio`` (last / first)."""
    out: dict[str, float] = {}
    flops = []
    for n in task_counts:
        f = encoder_flops(config, backbone, n, image_size)
        flops.append(f)
        out[f"gflops_T{n}"] = f / 1e9
        if timing:
            out[f"step_s_T{n}"] = step_seconds(config, backbone, n, image_size, batch_size=batch_size, steps=steps)
    out["flops_ratio"] = flops[-1] / flops[0]
    if timing:
        out["step_ratio"] = out[f"step_s_T{task_counts[-1]}"] / out[f"step_s_T{task_counts[0]}"]
    return out


def with_method(config: TrainConfig, name: str) -> TrainConfig:
    """``config`` with method ``name``; the options the two methods share (the width ``r``) carry over."""
    return replace(config, method=config.method.with_method(name))
