"""The method contract: the `Strategy` base class (a short fixed list of hooks that return values) and the registry
`METHODS` (also reachable as `STRATEGIES`, its earlier name) of strategy classes, built by `make_strategy(config)`.

A strategy never mutates shared state. The phase runner calls, per phase t:

1. `train_classes(phases, t)` -> the classes whose (unlabelled) training images phase t trains on.
2. `begin_phase(ctx)` -> an `nn.Module` of extras: trainable heads (predictors, prototypes) as parameters and frozen
   teachers as buffers (`nets.frozen_copy`), so `core.train` optimizes and checkpoints exactly what it should.
3. `terms(extras, out)` -> {name: weighted loss tensor} added to the SSL loss at every step ({} for fine-tuning).
4. `end_phase(extras, carry)` -> the state carried into the next phase (e.g. CPPF's prototypes), a dict of tensors.

`trains = False` (random-init floor) skips training; the runner still evaluates after every phase.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from tailorkit.continual.config import RunConfig
from tailorkit.continual.losses import SSLLoss
from tailorkit.continual.nets import Student
from tailorkit.core.registry import Registry

__all__ = ["METHODS", "STRATEGIES", "Extras", "PhaseContext", "StepOutputs", "Strategy", "make_strategy"]


@dataclass(frozen=True)
class PhaseContext:
    """What `begin_phase` may read.

    Attributes:
        phase: 0-based phase index t; phases: T.
        config: The run's settings.
        student: The student at the start of the phase (the end-of-previous-phase model; do not modify in place).
        previous: A frozen copy of the end-of-previous-phase student, or None in phase 0.
        data: The phase's unlabelled training images, uint8 (N, C, H, W).
        carry: State returned by the previous phase's `end_phase` ({} in phase 0).
        pretrain: `pretrain(module, steps, name) -> module`: trains a copy-of-student with the SSL loss alone on
            `data` through `core.train` (checkpointed under the run folder, so resume is exact).
        seed: A seed for this phase's strategy-side randomness (prototype initialisation).
    """

    phase: int
    phases: int
    config: RunConfig
    student: Student
    previous: nn.Module | None
    data: torch.Tensor
    carry: dict[str, torch.Tensor]
    pretrain: Callable[[Student, int, str], Student]
    seed: int


@dataclass(frozen=True)
class StepOutputs:
    """The student's outputs for the two views of a batch: views (x1, x2), features h, projections z."""

    views: tuple[torch.Tensor, torch.Tensor]
    h: tuple[torch.Tensor, torch.Tensor]
    z: tuple[torch.Tensor, torch.Tensor]
    ssl: SSLLoss = field(repr=False)


class Extras(nn.Module):
    """An empty extras module (fine-tuning, joint): no parameters, no teachers."""


class Strategy:
    """Base strategy = fine-tuning: the phase's own classes, no extra terms, nothing carried."""

    name = "finetune"
    trains = True

    def __init__(self, config: RunConfig) -> None:
        self.config = config

    def train_classes(self, phases: tuple[tuple[int, ...], ...], phase: int) -> tuple[int, ...]:
        return phases[phase]

    def begin_phase(self, ctx: PhaseContext) -> nn.Module:
        return Extras()

    def terms(self, extras: nn.Module, out: StepOutputs) -> dict[str, torch.Tensor]:
        return {}

    def end_phase(self, extras: nn.Module, carry: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return dict(carry)


METHODS: Registry[type[Strategy]] = Registry("continual strategy")
STRATEGIES = METHODS  # the registry's earlier name


def make_strategy(config: RunConfig) -> Strategy:
    """The registered strategy `config.strategy.name` (unknown names list the valid ones).

    The registry is full here without importing anything: importing this module runs `methods/__init__.py` first
    (Python imports a parent package before its submodule), and that imports every strategy module.
    """
    return METHODS.get(config.strategy.name)(config)
