"""The method contract of `tailorkit.patching`: the registry `METHODS`, what a method receives and what it returns.

A method is a function `fn(ctx: PatchContext, config: PatchConfig) -> MethodInfo` registered in `METHODS` with its
own options (`@register("name", NameOptions)`), as peft's `LoraConfig` or mergekit's per-method parameters: a frozen
dataclass of the settings only that method reads. `PatchConfig` holds what every method shares (method, density,
layers, the policy for other tensors, calibration size, seed) plus `options`, which `PatchConfig` builds and checks
against the method's dataclass: an option the method does not have is an error naming it, the method and the
method's options. A method reads its options with `config.options_as(NameOptions)`.

It writes the new values of the eligible weights (`ctx.targets[name].weight`) into the working model `ctx.model` and
reports masks, per-layer errors and timings in a `MethodInfo`. It must not touch any other tensor: which tensors are
eligible, the policy for everything else (biases, norms, embeddings, excluded layers), the patch bookkeeping and the
input checks are the engine's job (`tailorkit.patching.engine`), so every method is applied to the same tensors at
the same budget, in memory and on checkpoint folders alike. `calibrated=True` marks a method that reads calibration
data (`tailor_checkpoint` loads and tokenizes the calibration texts only for these).

Methods read pretrained values from `ctx.base` and the fine-tuned values from `ctx.finetuned` (one mapping per
task, possibly lazy: checkpoint tensors are read on access), never from the working model, which they overwrite.
Tensors from these mappings may come in any floating dtype; methods cast them.

This module and the method modules import nothing else of the package at run time (PatchConfig only for type
checking): `PatchConfig` imports the registry to check options, the engine imports the methods, and no method imports
the config or the engine (no import cycle).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from tailorkit.core.registry import Registry

if TYPE_CHECKING:
    from tailorkit.patching.config import PatchConfig

__all__ = ["METHODS", "Method", "MethodFn", "MethodInfo", "PatchContext", "PatchError", "register"]


class PatchError(ValueError):
    """Inputs that cannot be patched (mismatched models, NaN weights, empty calibration ...)."""


@dataclass
class MethodInfo:
    """What a method reports besides the weights it wrote."""

    masks: dict[str, torch.Tensor] = field(default_factory=dict)  # weight name -> bool mask of patch entries
    layer_errors: dict[str, dict[str, float]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    task_masks: list[dict[str, torch.Tensor]] = field(default_factory=list)  # multi-task: each task's own masks


@dataclass
class PatchContext:
    """Everything a method needs. `model` is the working model (the first fine-tune) that the method edits in place.

    Attributes:
        model: Working model, initially equal to the first fine-tuned model.
        base: Pretrained parameters by name (any Mapping; may be lazy).
        finetuned: One mapping of fine-tuned parameters per task (may be lazy); never edited.
        targets: Eligible modules by module name (their `.weight` is what methods change).
        calibration: Batches per task (Model Tailor); empty lists for data-free methods.
        models: The fine-tuned models themselves (Model Tailor runs calibration through them), one per task; the
            first one may be `model` itself (in-place patching).
        progress: Show per-layer progress bars.
    """

    model: nn.Module
    base: Mapping[str, torch.Tensor]
    finetuned: list[Mapping[str, torch.Tensor]]
    targets: dict[str, nn.Module]
    calibration: list[list[Any]]
    models: list[nn.Module]
    progress: bool = True


MethodFn = Callable[[PatchContext, "PatchConfig"], MethodInfo]


@dataclass(frozen=True)
class Method:
    """A registered method: its function, its options dataclass, and whether it reads calibration data."""

    fn: MethodFn
    options: type
    calibrated: bool = False

    def __call__(self, ctx: PatchContext, config: PatchConfig) -> MethodInfo:
        return self.fn(ctx, config)


METHODS: Registry[Method] = Registry("patching method")


def register(name: str, options: type, *, calibrated: bool = False) -> Callable[[MethodFn], MethodFn]:
    """Decorator: register `fn` as method `name` with its frozen options dataclass `options`."""
    params = getattr(options, "__dataclass_params__", None)
    if not dataclasses.is_dataclass(options) or params is None or not params.frozen:
        raise TypeError(f"patching method {name!r}: options must be a frozen dataclass, got {options!r}")

    def decorate(fn: MethodFn) -> MethodFn:
        METHODS.add(name, Method(fn, options, calibrated))
        return fn

    return decorate
