"""The method contract of `tailorkit.patching`: the registry `METHODS`, what a method receives and what it returns.

A method is a function `fn(ctx: PatchContext, config: PatchConfig) -> MethodInfo` registered in `METHODS` under its
name (`@METHODS.register("name")`). It writes the new values of the eligible weights (`ctx.targets[name].weight`)
into the working model `ctx.model` and reports masks, per-layer errors and timings in a `MethodInfo`. It must not
touch any other tensor: which tensors are eligible, the policy for everything else (biases, norms, embeddings,
excluded layers), the patch bookkeeping and the input checks are the engine's job (`tailorkit.patching.engine`),
so every method is applied to the same tensors at the same budget, in memory and on checkpoint folders alike.

Methods read pretrained values from `ctx.base` and the fine-tuned values from `ctx.finetuned` (one mapping per
task, possibly lazy: checkpoint tensors are read on access), never from the working model, which they overwrite.
Tensors from these mappings may come in any floating dtype; methods cast them.

This module imports nothing else of the package except the config, so that the engine imports the methods and no
method imports the engine (no import cycle).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from tailorkit.core.registry import Registry
from tailorkit.patching.config import PatchConfig

__all__ = ["METHODS", "MethodFn", "MethodInfo", "PatchContext", "PatchError"]


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


MethodFn = Callable[[PatchContext, PatchConfig], MethodInfo]
METHODS: Registry[MethodFn] = Registry("patching method")
