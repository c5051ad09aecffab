"""TIES-Merging (Yadav et al., NeurIPS 2023; prateeky2806/ties-merging): trim each task vector to its top-density
entries by magnitude, elect a sign per entry (sign of the sum of the trimmed vectors), average the entries that
agree with it (disjoint mean: divided by the number of agreeing tasks, as PEFT; mergekit divides by the sum of the
task weights, which is the same with unit weights), and add lam times the result. Trimming is per tensor by
default (mergekit, PEFT) or global (`topk_scope="global"`, the original code). With one task and lam = 1 this is
exactly magnitude top-k (tested). Streams one weight at a time (see `tailorkit.patching.methods._common`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from tailorkit.patching.methods._common import (
    TopkScope,
    check_lam,
    check_topk_scope,
    set_weight,
    task_masks,
    task_vectors,
    tensor_topk_mask,
)
from tailorkit.patching.methods.base import MethodInfo, PatchContext, register

if TYPE_CHECKING:
    from tailorkit.patching.config import PatchConfig

__all__ = ["TiesOptions", "ties", "ties_merge"]


@dataclass(frozen=True)
class TiesOptions:
    """The options of `ties`.

    Attributes:
        lam: Scale of the merged delta (theta_pre + lam * merged).
        topk_scope: Trimming: "tensor" (per tensor, as mergekit and PEFT) or "global" (over every eligible tensor,
            the original code).
    """

    lam: float = 1.0
    topk_scope: TopkScope = "tensor"

    def __post_init__(self) -> None:
        check_lam(self.lam)
        check_topk_scope(self.topk_scope)


def ties_merge(taus: list[torch.Tensor], masks: list[torch.Tensor], lam: float) -> torch.Tensor:
    """The TIES merged delta of trimmed task vectors (functional core). Shapes: every tensor alike."""
    trimmed = torch.stack([tau * m for tau, m in zip(taus, masks, strict=True)])
    elected = torch.sign(trimmed.sum(0))
    agree = (torch.sign(trimmed) == elected) & (trimmed != 0)
    count = agree.sum(0).clamp_min(1)
    return lam * (trimmed * agree).sum(0) / count


@register("ties", TiesOptions)
def ties(ctx: PatchContext, config: PatchConfig) -> MethodInfo:
    options = config.options_as(TiesOptions)
    info = MethodInfo()
    fixed = task_masks(ctx, config.density, options.topk_scope)
    per_task: list[dict[str, torch.Tensor]] = [{} for _ in ctx.finetuned]
    for name in ctx.targets:
        pre, taus = task_vectors(ctx, name)
        masks = [
            fixed[t][name] if fixed is not None else tensor_topk_mask(tau, config.density) for t, tau in enumerate(taus)
        ]
        set_weight(ctx, name, pre + ties_merge(taus, masks, options.lam))
        info.masks[f"{name}.weight"] = torch.stack(masks).any(0)
        for t, m in enumerate(masks):
            per_task[t][f"{name}.weight"] = m
        del pre, taus
    info.task_masks = per_task
    return info
