"""Data-free sparse baselines: magnitude top-k ("top-s" in the Model Tailor code, = TIES trimming, = Model Tailor
with alpha = 1 and no compensation up to the scope) and random top-k (a control: exactly k random entries, no
rescale). Both keep the chosen entries of tau and revert the rest; several task vectors are each trimmed and summed.
`topk_scope` "tensor" trims per tensor (mergekit, PEFT), "global" over all eligible tensors (original TIES).
"""

from __future__ import annotations

import torch

from tailorkit.core.seeding import torch_generator
from tailorkit.patching.config import PatchConfig
from tailorkit.patching.engine import METHODS, MethodInfo, PatchContext
from tailorkit.patching.methods._common import global_topk_masks, set_weight, task_vectors, tensor_topk_mask

__all__ = ["magnitude", "random_topk"]


@METHODS.register("magnitude")
def magnitude(ctx: PatchContext, config: PatchConfig) -> MethodInfo:
    info = MethodInfo()
    vectors = {name: task_vectors(ctx, name) for name in ctx.targets}
    per_task: list[dict[str, torch.Tensor]] = []
    for t in range(len(ctx.finetuned)):
        taus = {name: v[1][t] for name, v in vectors.items()}
        if config.topk_scope == "global":
            per_task.append(global_topk_masks(taus, config.density))
        else:
            per_task.append({name: tensor_topk_mask(tau, config.density) for name, tau in taus.items()})
    for name, (pre, task_taus) in vectors.items():
        merged = pre + sum(tau * masks[name] for tau, masks in zip(task_taus, per_task, strict=True))
        set_weight(ctx, name, merged)
        info.masks[f"{name}.weight"] = torch.stack([m[name] for m in per_task]).any(0)
    info.task_masks = [{f"{n}.weight": m for n, m in masks.items()} for masks in per_task]
    return info


@METHODS.register("random")
def random_topk(ctx: PatchContext, config: PatchConfig) -> MethodInfo:
    info = MethodInfo()
    gen = torch_generator(config.seed, "patching", "random")
    names = list(ctx.targets)
    vectors = {name: task_vectors(ctx, name) for name in names}
    total = sum(v[0].numel() for v in vectors.values())
    global_perm = torch.randperm(total, generator=gen) if config.topk_scope == "global" else None
    offset = 0
    for name, (pre, taus) in vectors.items():
        n = pre.numel()
        if global_perm is not None:
            keep = global_perm[: int(config.density * total)]
            sel = keep[(keep >= offset) & (keep < offset + n)] - offset
        else:
            sel = torch.randperm(n, generator=gen)[: int(config.density * n)]
        mask = torch.zeros(n, dtype=torch.bool)
        mask[sel] = True
        mask = mask.reshape(pre.shape).to(pre.device)
        set_weight(ctx, name, pre + sum(tau * mask for tau in taus))
        info.masks[f"{name}.weight"] = mask
        offset += n
    return info
