"""One training loop and one evaluation for every arm, on cached frame features.

:func:`fit` trains ``model.parameters()`` (only the arm's trainable parts) with AdamW, a linear warm-up and a
cosine schedule, on mini-batches of clips; the loss is cross-entropy of the CLIP logits over the class list.
:func:`evaluate` gives top-1 accuracy and :func:`predict` top-k class names with softmax scores.

Shapes:
    features: {"emb": (N, T, D), optionally "prefix": (N, T, C, h, w)}; labels (N,) int64
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from tailorkit.core.progress import track
from tailorkit.video.model import VideoModel

__all__ = ["FitResult", "OptimSettings", "evaluate", "fit", "logits_of", "predict", "subset"]


@dataclass(frozen=True)
class OptimSettings:
    """Training settings shared by every arm.

    Attributes:
        steps: Optimiser steps (0 = no training, e.g. zero-shot).
        batch: Clips per step.
        lr: AdamW learning rate of prompts and blocks.
        finetune_lr: Learning rate of the fine-tuning deltas (tower weights move far less than fresh modules).
        weight_decay: AdamW weight decay.
        warmup: Linear warm-up steps.
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


def _lr_factor(step: int, settings: OptimSettings) -> float:
    if step < settings.warmup:
        return (step + 1) / settings.warmup
    span = max(settings.steps - settings.warmup, 1)
    return 0.5 * (1 + math.cos(math.pi * (step - settings.warmup) / span))


def fit(
    model: VideoModel,
    features: Mapping[str, torch.Tensor],
    labels: torch.Tensor,
    names: Sequence[str],
    settings: OptimSettings = OptimSettings(),
    *,
    generator: torch.Generator | None = None,
    progress: bool | None = False,
) -> FitResult:
    """Train the arm's parameters in place; returns the per-step losses."""
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
        {"params": [p for p in params if id(p) not in ft | gates], "lr": settings.lr},
        {"params": [p for p in params if id(p) in gates], "lr": settings.lr * settings.gate_lr_mult},
        {"params": [p for p in params if id(p) in ft], "lr": settings.finetune_lr},
    ]
    opt = torch.optim.AdamW([g for g in groups if g["params"]], weight_decay=settings.weight_decay)
    base = [g["lr"] for g in opt.param_groups]
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    device = model.encoder.device
    n = len(labels)
    model.train()
    order = torch.randperm(n, generator=gen)
    pos = 0
    for step in track(range(settings.steps), "video fit", settings.steps, enabled=progress):
        if pos + min(settings.batch, n) > n:
            order, pos = torch.randperm(n, generator=gen), 0
        idx = order[pos : pos + settings.batch]
        pos += len(idx)
        batch = {k: v.to(device) for k, v in subset(features, idx).items()}
        for g, lr in zip(opt.param_groups, base, strict=True):
            g["lr"] = lr * _lr_factor(step, settings)
        loss = F.cross_entropy(model(batch, names), labels[idx].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        result.losses.append(float(loss.detach()))
    model.eval()
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
