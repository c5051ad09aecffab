"""TIES-Merging (Yadav et al., NeurIPS 2023; prateeky2806/ties-merging): trim each task vector to its top-density
entries by magnitude, elect a sign per entry (sign of the sum of the trimmed vectors), average the entries that
agree with it (disjoint mean: divided by the number of agreeing tasks, as PEFT; mergekit divides by the sum of the
task weights, which is the same with unit weights), and add lam times the result. Trimming is per tensor by
default (mergekit, PEFT) or global (`topk_scope="global"`, the original code). With one task and lam = 1 this is
exactly magnitude top-k (tested).
"""

from __future__ import annotations

import torch

from tailorkit.patching.config import PatchConfig
from tailorkit.patching.engine import METHODS, MethodInfo, PatchContext
from tailorkit.patching.methods._common import global_topk_masks, set_weight, task_vectors, tensor_topk_mask

__all__ = ["ties", "ties_merge"]


def ties_merge(taus: list[torch.Tensor], masks: list[torch.Tensor], lam: float) -> torch.Tensor:
    """The TIES merged delta of trimmed task vectors (functional core). Shapes: every tensor alike."""
    trimmed = torch.stack([tau * m for tau, m in zip(taus, masks, strict=True)])
    elected = torch.sign(trimmed.sum(0))
    agree = (torch.sign(trimmed) == elected) & (trimmed != 0)
    count = agree.sum(0).clamp_min(1)
    return lam * (trimmed * agree).sum(0) / count


@METHODS.register("ties")
def ties(ctx: PatchContext, config: PatchConfig) -> MethodInfo:
    info = MethodInfo()
    vectors = {name: task_vectors(ctx, name) for name in ctx.targets}
    per_task = []
    for t in range(len(ctx.finetuned)):
        taus = {name: v[1][t] for name, v in vectors.items()}
        if config.topk_scope == "global":
            per_task.append(global_topk_masks(taus, config.density))
        else:
            per_task.append({name: tensor_topk_mask(tau, config.density) for name, tau in taus.items()})
    for name, (pre, task_taus) in vectors.items():
        masks = [m[name] for m in per_task]
        set_weight(ctx, name, pre + ties_merge(task_taus, masks, config.lam))
        info.masks[f"{name}.weight"] = torch.stack(masks).any(0)
    info.task_masks = [{f"{n}.weight": m for n, m in masks.items()} for masks in per_task]
    return info
