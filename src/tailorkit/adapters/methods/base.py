"""The method contract of `tailorkit.adapters`: the registry `METHODS`, the `MultiTaskEncoder` base class every
method implements, and each method's own options.

A method is a `MultiTaskEncoder` subclass, or a function returning one, registered with its own frozen options
dataclass: ``@register("name", NameOptions)`` (as peft's ``LoraConfig`` or mergekit's per-method parameters; the
patching and anatomy subsystems do the same). It is built as ``build(backbone, tasks, options)``: it takes over the
slot backbone (frozen unless the method fine-tunes it), creates its trainable modules and maps an image batch to each
task's list of stage feature maps. ``passes_per_batch`` says how many backbone passes one forward costs: 1 for shared
methods (VMT, shared adapter, decoders only, multi-task full FT), T for per-task methods (per-task adapter / LoRA /
BitFit / VPT-deep / Hyperformer-lite, single-task full FT).

`tailorkit.adapters.config.MethodConfig` holds the method's name and its ``options``, which it builds and checks
against the method's dataclass: an option the method does not have is an error naming it, the method and the
method's options; a value an options class refuses (an option set where it has no effect, as ``r`` beside
``budget_pct``) is an error too. Methods without settings register :class:`NoOptions`.

This module and the method modules import nothing else of the package at run time (MethodConfig only for type
checking): the config imports the registry to check options, and no method imports the config (no import cycle).
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from tailorkit.core.registry import Registry

if TYPE_CHECKING:
    from tailorkit.adapters.config import MethodConfig

__all__ = ["METHODS", "Method", "MultiTaskEncoder", "NoOptions", "activation", "make_encoder", "register"]


@dataclass(frozen=True)
class NoOptions:
    """The options of a method that has none (decoders only, full fine-tuning, BitFit)."""


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

    def __init__(self, backbone: Any, tasks: Sequence[str], options: Any = None) -> None:
        super().__init__()
        if not tasks:
            raise ValueError("expected at least one task")
        self.backbone = backbone
        self.tasks = tuple(tasks)
        #: the method's options dataclass (NoOptions for a method without settings)
        self.options = NoOptions() if options is None else options
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


EncoderBuilder = Callable[[Any, Sequence[str], Any], MultiTaskEncoder]


@dataclass(frozen=True)
class Method:
    """A registered method: what builds its encoder, ``build(backbone, tasks, options)``, and its options class."""

    build: EncoderBuilder
    options: type


METHODS: Registry[Method] = Registry("adapters method")


def register(name: str, options: type) -> Callable[[Any], Any]:
    """Decorator: register an encoder class (or a function returning one) as method ``name`` with its frozen options
    dataclass ``options``."""
    params = getattr(options, "__dataclass_params__", None)
    if not dataclasses.is_dataclass(options) or params is None or not params.frozen:
        raise TypeError(f"adapters method {name!r}: options must be a frozen dataclass, got {options!r}")

    def decorate(build: Any) -> Any:
        METHODS.add(name, Method(build, options))
        return build

    return decorate


def make_encoder(backbone: nn.Module, tasks: Sequence[str], config: MethodConfig) -> MultiTaskEncoder:
    """The encoder of method ``config.name`` with ``config.options`` on ``backbone`` (which it takes over: pass a
    copy to reuse one)."""
    return METHODS.get(config.name).build(backbone, tasks, config.options)


def activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    if name == "relu":
        return torch.relu
    if name == "gelu":
        return nn.functional.gelu
    raise ValueError(f"act: expected 'relu' or 'gelu', got {name!r}")
