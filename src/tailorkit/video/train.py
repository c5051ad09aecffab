"""One training loop and one evaluation for every arm, on cached frame features.

:func:`fit` trains ``model.parameters()`` (only the arm's trainable parts) through the project's one training loop,
:func:`tailorkit.core.train.train` (AdamW, core's linear warm-up + cosine schedule, exact resume from a checkpoint,
torchrun DDP), on mini-batches of clips; the loss is cross-entropy of the CLIP logits over the class list.
:func:`evaluate` gives top-1 accuracy and :func:`predict` top-k class names with softmax scores.

Shapes:
    features: {"emb": (N, T, D), optionally "prefix": (N, T, C, h, w)}; labels (N,) int64
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from tailorkit.core.train import TrainConfig, train
from tailorkit.video.model import VideoModel

__all__ = ["ClipDataset", "FitResult", "OptimSettings", "evaluate", "fit", "logits_of", "predict", "subset"]


@dataclass(frozen=True)
class OptimSettings:
    """Training settings shared by every arm.

    Attributes:
        steps: Optimiser steps (0 = no training, e.g. zero-shot).
        batch: Clips per step (a training set smaller than this is one batch).
        lr: AdamW learning rate of prompts and blocks.
        finetune_lr: Learning rate of the fine-tuning deltas (tower weights move far less than fresh modules).
        weight_decay: AdamW weight decay.
        warmup: Linear warm-up steps (at most ``steps``; more are capped), then cosine to 0: core's
            :func:`~tailorkit.core.train.learning_rate`.
        gate_lr_mult: Learning-rate multiplier of the motion stream's zero-initialised gate gamma: Adam moves a
            parameter by about lr per step, so the gate alone would stay near zero for tens of steps **[inferred;
            chosen on a validation seed; applying it to the communication gate too collapsed the logits]**.
    """

    steps: int = 60
    batch: int = 16
    lr: float = 3e-3
    finetune_lr: float = 3e-4
    weight_decay: float = 1e-4
    warmup: int = 5
    gate_lr_mult: float = 10.0

    def __post_init__(self) -> None:
        if self.steps < 0 or self.batch < 1 or self.lr <= 0 or self.finetune_lr <= 0 or self.warmup < 0:
            raise ValueError(
                f"optim: expected steps >= 0, batch >= 1, lr > 0, finetune_lr > 0, warmup >= 0; got {self}"
            )


@dataclass
class FitResult:
    losses: list[float] = field(default_factory=list)

    @property
    def final_loss(self) -> float:
        return float(sum(self.losses[-5:]) / len(self.losses[-5:])) if self.losses else float("nan")


def subset(features: Mapping[str, torch.Tensor], index: torch.Tensor) -> dict[str, torch.Tensor]:
    return {k: v[index] for k, v in features.items()}


class ClipDataset(Dataset[tuple[dict[str, torch.Tensor], torch.Tensor]]):
    """Map-style dataset over cached clip features: item i is ``({name: features[name][i]}, labels[i])``."""

    def __init__(self, features: Mapping[str, torch.Tensor], labels: torch.Tensor) -> None:
        lengths = {k: len(v) for k, v in features.items()}
        if any(n != len(labels) for n in lengths.values()):
            raise ValueError(f"features: expected {len(labels)} clips in every tensor (one per label), got {lengths}")
        self.features = dict(features)
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        return {k: v[i] for k, v in self.features.items()}, self.labels[i]


def fit(
    model: VideoModel,
    features: Mapping[str, torch.Tensor],
    labels: torch.Tensor,
    names: Sequence[str],
    settings: OptimSettings = OptimSettings(),
    *,
    seed: int = 0,
    checkpoint: str | os.PathLike[str] | None = None,
    checkpoint_every: int = 0,
    progress: bool | None = False,
    on_step: Callable[[int, float], None] | None = None,
) -> FitResult:
    """Train the arm's parameters in place through :func:`tailorkit.core.train.train`; returns the per-step losses.

    Three optimiser groups share core's one warm-up + cosine schedule: prompts and blocks at ``lr``, the motion
    gate at ``lr * gate_lr_mult``, the fine-tuning deltas at ``finetune_lr``. ``seed`` fixes the batch order (epochs
    of a seeded permutation, the last incomplete batch dropped) and any randomness inside the model. A
    ``checkpoint`` file is resumed from when it exists and written at the end (``checkpoint_every`` steps
    in between), so an interrupted fit continues exactly; ``on_step(step, loss)`` is called after every step.
    """
    if len(labels) == 0:
        raise ValueError("fit: expected at least one training clip")
    if int(labels.max()) >= len(names) or int(labels.min()) < 0:
        raise ValueError(f"labels: expected values in [0, {len(names)}), got {int(labels.min())}..{int(labels.max())}")
    result = FitResult()
    params = [p for p in model.parameters() if p.requires_grad]
    if not params or settings.steps == 0:
        return result
    ft = {id(p) for p in (model.finetune.parameters() if model.finetune is not None else [])}
    gates = {id(p) for p in model.gates()}
    groups = [
        {"params": [p for p in params if id(p) not in ft | gates], "lr_scale": 1.0},
        {"params": [p for p in params if id(p) in gates], "lr_scale": settings.gate_lr_mult},
        {"params": [p for p in params if id(p) in ft], "lr_scale": settings.finetune_lr / settings.lr},
    ]
    dataset = ClipDataset(features, labels)
    config = TrainConfig(
        steps=settings.steps,
        lr=settings.lr,
        weight_decay=settings.weight_decay,
        batch_size=min(settings.batch, len(dataset)),  # a training set smaller than a batch is one batch
        schedule="cosine",
        warmup_steps=min(settings.warmup, settings.steps),
        checkpoint_every=checkpoint_every,
        log_every=0,
        seed=seed,
    )

    def loss_fn(net: nn.Module, batch: tuple[dict[str, torch.Tensor], torch.Tensor]) -> torch.Tensor:
        clips, y = batch
        return F.cross_entropy(net(clips, names), y)

    model.train()
    try:
        out = train(
            model,
            loss_fn,
            dataset,
            config,
            device=model.encoder.device,
            checkpoint=checkpoint,
            progress=progress is not False,  # None or True: core.progress's policy
            on_step=on_step,
            param_groups=groups,
        )
    finally:
        model.eval()
    result.losses.extend(out.losses)
    return result


@torch.no_grad()
def logits_of(
    model: VideoModel, features: Mapping[str, torch.Tensor], names: Sequence[str], batch: int = 64
) -> torch.Tensor:
    """(N, K) logits, in batches."""
    model.eval()
    n = len(next(iter(features.values())))
    out = []
    for i in range(0, n, batch):
        part = {k: v[i : i + batch].to(model.encoder.device) for k, v in features.items()}
        out.append(model(part, names).cpu())
    return torch.cat(out)


def evaluate(
    model: VideoModel, features: Mapping[str, torch.Tensor], labels: torch.Tensor, names: Sequence[str]
) -> float:
    """Top-1 accuracy."""
    pred = logits_of(model, features, names).argmax(1)
    return float((pred == labels.cpu()).float().mean())


def predict(
    model: VideoModel, features: Mapping[str, torch.Tensor], names: Sequence[str], k: int = 5
) -> list[list[tuple[str, float]]]:
    """Per clip, the top-k (class name, softmax probability) pairs."""
    probs = logits_of(model, features, names).softmax(1)
    top = probs.topk(min(k, len(names)), dim=1)
    return [
        [(names[int(j)], float(p)) for p, j in zip(ps, js, strict=True)]
        for ps, js in zip(top.values, top.indices, strict=True)
    ]
