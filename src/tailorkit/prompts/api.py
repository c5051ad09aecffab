"""The verbs: fit one method in a given multi-task form, and MmAP's full pipeline (warm-up, grouping, training).

Forms (bank assignments, methods/base.py): ``st`` one bank per task (single-task), ``mt`` one bank for all tasks,
and for MmAP ``group``, ``group+task`` with a partition of the tasks.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from tailorkit.prompts.engine import Engine, TrainConfig
from tailorkit.prompts.grouping import AffinityResult, best_partition, gradient_affinity, groups_to_assignment
from tailorkit.prompts.methods import make_learner
from tailorkit.prompts.methods.base import GeneratedPrompts, PromptLearner

__all__ = ["GROUP_WRT", "FitResult", "GroupingResult", "assignment_for", "discover_groups", "fit_method"]

GROUP_WRT = ("params", "prompts")


@dataclass
class FitResult:
    method: str
    form: str
    accuracy: dict[str, float]
    trainable: int
    seconds: float
    losses: list[float] = field(default_factory=list)
    learner: PromptLearner | None = None


@dataclass
class GroupingResult:
    groups: list[list[int]]
    affinity: AffinityResult
    used: str
    seconds: float

    def matrix(self) -> np.ndarray:
        if self.used == "lookahead" and self.affinity.lookahead is not None:
            return self.affinity.lookahead
        return self.affinity.cosine


def assignment_for(form: str, n_tasks: int, groups: Sequence[Sequence[int]] | None = None) -> list[list[int]]:
    """Bank assignment of a form: st, mt, group, group+task (the last two need ``groups``)."""
    if form == "st":
        return [[t] for t in range(n_tasks)]
    if form == "mt":
        return [[0] for _ in range(n_tasks)]
    if form in ("group", "group+task"):
        if groups is None:
            raise ValueError(f"form {form!r} needs a task partition (groups)")
        return groups_to_assignment([list(g) for g in groups], n_tasks, task_banks=form == "group+task")
    raise ValueError(f"form: expected st, mt, group or group+task; got {form!r}")


def fit_method(
    engine: Engine,
    method: str,
    form: str,
    train: TrainConfig,
    *,
    groups: Sequence[Sequence[int]] | None = None,
    seed: int = 0,
    options: dict[str, Any] | None = None,
) -> FitResult:
    """Build, train and evaluate one method in one form on the engine's tasks (test split)."""
    began = time.perf_counter()
    learner = make_learner(
        method, engine.encoder, assignment_for(form, engine.n_tasks, groups), seed=seed, **(options or {})
    )
    learner.to(engine.encoder.device)
    result = engine.train(learner, train, seed=seed)
    accuracy = engine.evaluate(learner)
    return FitResult(
        method, form, accuracy, learner.trainable_count(), time.perf_counter() - began, result.losses, learner
    )


def discover_groups(
    engine: Engine,
    *,
    steps: int = 15,
    batch: int = 16,
    lr: float = 0.01,
    affinity: str = "cosine",
    lookahead_every: int = 0,
    n_groups: int = 0,
    seed: int = 0,
    options: dict[str, Any] | None = None,
    wrt: str = "params",
) -> GroupingResult:
    """Warm up one all-shared MmAP, record per-task gradient affinities on it, and partition the tasks.

    ``wrt``: the cosine affinity compares per-task gradients on the MmAP's raw parameters (``"params"``, source
    and factors) or on the prompts it generates (``"prompts"``, text deltas and image tokens of every layer).
    """
    if affinity not in ("cosine", "lookahead"):
        raise ValueError(f"affinity: expected cosine or lookahead; got {affinity!r}")
    if wrt not in GROUP_WRT:
        raise ValueError(f"wrt: expected one of {', '.join(GROUP_WRT)}; got {wrt!r}")
    if affinity == "lookahead" and not lookahead_every:
        lookahead_every = 1
    began = time.perf_counter()
    learner = make_learner("mmap", engine.encoder, assignment_for("mt", engine.n_tasks), seed=seed, **(options or {}))
    learner.to(engine.encoder.device).train()
    params = [p for p in learner.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr)
    gen = torch.Generator().manual_seed(seed)
    batches: dict[int, dict[int, torch.Tensor]] = {}

    recorded: list[GeneratedPrompts] = []

    def losses(step: int) -> dict[int, torch.Tensor]:
        if step not in batches:  # the same batch when the look-ahead re-evaluates a step
            batches[step] = engine.sample(gen, batch)
        if wrt == "params":  # the learner as is (the default path computes exactly what it always did)
            return engine.task_losses(learner, batches[step])
        with GeneratedPrompts(learner) as record:
            out = engine.task_losses(learner, batches[step])
        recorded[:] = [record]
        return out

    result = gradient_affinity(
        params,
        losses,
        engine.n_tasks,
        steps,
        optimizer=opt,
        lookahead_every=lookahead_every,
        measure=(lambda: recorded[0].tensors()) if wrt == "prompts" else None,
    )
    out = GroupingResult([], result, affinity, 0.0)
    out.groups = best_partition(out.matrix(), n_groups)
    out.seconds = time.perf_counter() - began
    return out
