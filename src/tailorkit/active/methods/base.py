"""The two method families and their registries.

A tuner builds a `SegModel` around a pretrained U-Net: a module whose `forward_views` takes K stacked views (one
per prompt set; K = 1 for fine-tuning) and returns K logit maps. A strategy chooses pool items in two situations:
`cold` (no labels yet: label-free selection) and `warm` (some labels: may train a selection model on them).

Shapes:
    SegModel.forward_views: (K, B, C, *S) -> (K, B, *S) logits; SegModel.forward: (B, C, *S) -> (B, K, *S).
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from tailorkit.active.config import SelectConfig, TuneConfig
from tailorkit.core.registry import Registry
from tailorkit.nets.unet import UNet

__all__ = ["STRATEGIES", "TUNERS", "SegModel", "SelectionContext", "SelectionStrategy", "make_strategy", "make_tuner"]


class SegModel(nn.Module, abc.ABC):
    """A (partly) trainable segmenter built on a backbone U-Net; `frozen` modules stay in eval mode."""

    n_sets: int = 1
    prompt_based: bool = False

    @abc.abstractmethod
    def forward_views(self, views: torch.Tensor) -> torch.Tensor:
        """Logits (n_sets, B, C, ...) of the stacked inputs (n_sets, B, ...)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        views = x.unsqueeze(0).expand(self.n_sets, *x.shape)
        return self.forward_views(views).transpose(0, 1)

    def frozen_modules(self) -> list[nn.Module]:
        return []

    def train(self, mode: bool = True) -> SegModel:
        super().train(mode)
        for module in self.frozen_modules():
            module.eval()  # frozen normalisation statistics stay as pretrained
        return self

    def tunable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def tunable_fraction(self) -> float:
        """Trainable parameters / all parameters of the tuned model (backbone + added modules)."""
        total = sum(p.numel() for p in self.parameters())
        return sum(p.numel() for p in self.tunable_parameters()) / max(total, 1)


def init_head(head: nn.Conv2d | nn.Conv3d, backbone: UNet, how: str, generator: torch.Generator) -> None:
    """Copy the upstream head (how="pretrained") or draw a fresh one (Kaiming-uniform like torch's default)."""
    weight, bias = head.weight, head.bias
    assert bias is not None
    with torch.no_grad():
        if how == "pretrained":
            weight.copy_(backbone.head.weight)
            bias.copy_(backbone.head.bias)  # type: ignore[arg-type]
        else:
            bound = 1 / max(weight[0].numel(), 1) ** 0.5
            weight.copy_(torch.empty_like(weight).uniform_(-bound, bound, generator=generator))
            bias.zero_()


TunerFn = Callable[[UNet, TuneConfig, torch.Generator], SegModel]
TUNERS: Registry[TunerFn] = Registry("tuner")


def make_tuner(backbone: UNet, config: TuneConfig, seed: int) -> SegModel:
    """The tuner `config.method` wrapped around `backbone` (which it never modifies in place)."""
    generator = torch.Generator().manual_seed(seed)
    return TUNERS.get(config.method)(backbone, config, generator)


@dataclass
class SelectionContext:
    """What a strategy sees: the pool, frozen-encoder features, the labelled indices and a selection-model factory.

    Attributes:
        images: (N, 1, *S) pool images in [0, 1].
        features: (N, D) L2-normalised frozen-encoder descriptors.
        labelled: Indices already labelled (or proposed) in earlier rounds.
        rng: This round's random stream.
        config: Selection settings.
        selection_model: Returns a SegModel tuned on the labelled items (cached; called only by warm strategies).
        mc_model: Same, for MC-dropout (BALD); defaults to selection_model.
    """

    images: np.ndarray
    features: np.ndarray
    labelled: list[int]
    rng: np.random.Generator
    config: SelectConfig
    selection_model: Callable[[], SegModel]
    info: dict[str, Any] = field(default_factory=dict)

    def unlabelled(self) -> np.ndarray:
        mask = np.ones(len(self.images), bool)
        mask[self.labelled] = False
        return np.flatnonzero(mask)


class SelectionStrategy(abc.ABC):
    """Chooses `n` new pool indices (unique, not in ctx.labelled)."""

    @abc.abstractmethod
    def cold(self, ctx: SelectionContext, n: int) -> list[int]:
        """The first `n` picks, before any label exists."""

    def warm(self, ctx: SelectionContext, n: int) -> list[int]:
        return self.cold(ctx, n)


STRATEGIES: Registry[type[SelectionStrategy]] = Registry("selection strategy")


def make_strategy(name: str) -> SelectionStrategy:
    return STRATEGIES.get(name)()
