"""The method contract: the `MultiTaskEncoder` interface every method implements, and the registry `METHODS`.

An encoder owns one slot backbone (frozen unless the method fine-tunes it) plus the method's trainable modules and
maps an image batch to each task's list of stage feature maps. ``passes_per_batch`` says how many backbone passes
one forward costs: 1 for shared methods (VMT, shared adapter, decoders only, multi-task full FT), T for per-task
methods (per-task adapter / LoRA / BitFit / VPT-deep / Hyperformer-lite, single-task full FT).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from tailorkit.adapters.config import MethodConfig
from tailorkit.core.registry import Registry

__all__ = ["METHODS", "MultiTaskEncoder", "make_encoder"]


class MultiTaskEncoder(nn.Module, abc.ABC):
    """Base class: a backbone, the task names, and the method's trainable encoder modules.

    Subclasses set ``passes_per_batch``, create their modules in ``__init__`` and implement :meth:`forward`.
    The backbone is always kept in eval mode (BatchNorm running statistics frozen, as for small-batch fine-tuning),
    even while the encoder trains; fine-tuning methods still train its weights.

    Shapes:
        x: (B, 3, H, W) -> {task: [(B, C_k, H_k, W_k) for each stage k]}
    """

    passes_per_batch: str = "1"
    #: the slot backbone (typed loosely: any module with the slot interface, see tailorkit.adapters.backbones)
    backbone: Any
    #: True when the method fine-tunes the backbone itself (all its weights trainable).
    fine_tunes_backbone: bool = False

    def __init__(self, backbone: Any, tasks: Sequence[str], config: MethodConfig) -> None:
        super().__init__()
        if not tasks:
            raise ValueError("expected at least one task")
        self.backbone = backbone
        self.tasks = tuple(tasks)
        self.config = config
        for p in self.backbone.parameters():
            p.requires_grad_(self.fine_tunes_backbone)

    def train(self, mode: bool = True) -> MultiTaskEncoder:
        super().train(mode)
        for module in self.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
        return self

    @property
    def stage_channels(self) -> tuple[int, ...]:
        """Channels of each stage map the decoders receive."""
        return tuple(self.backbone.stage_channels)

    @property
    def stage_strides(self) -> tuple[int, ...]:
        return tuple(self.backbone.stage_strides)

    def backbone_parameters(self) -> int:
        """Parameters of one (frozen, pretrained) backbone: the denominator of the trainable fraction."""
        return sum(p.numel() for p in self.backbone.parameters())

    def trainable_parameters(self) -> int:
        """Trainable encoder parameters (decoders excluded)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def task_parameters(self) -> int:
        """Trainable parameters that belong to one task (0 for fully shared methods)."""
        return 0

    @abc.abstractmethod
    def forward(self, x: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        """Each task's stage feature maps for a batch of images."""


METHODS: Registry[Callable[..., MultiTaskEncoder]] = Registry("adapters method")


def make_encoder(backbone: nn.Module, tasks: Sequence[str], config: MethodConfig) -> MultiTaskEncoder:
    """The encoder of method ``config.name`` on ``backbone`` (which it takes over: pass a copy to reuse one)."""
    return METHODS.get(config.name)(backbone, tasks, config)


def activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    if name == "relu":
        return torch.relu
    if name == "gelu":
        return nn.functional.gelu
    raise ValueError(f"act: expected 'relu' or 'gelu', got {name!r}")
