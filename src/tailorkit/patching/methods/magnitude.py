"""Data-free sparse baselines: magnitude top-k ("top-s" in the Model Tailor code, = TIES trimming, = Model Tailor
with alpha = 1 and no compensation up to the scope) and random top-k (a control: exactly k random entries, no
rescale). Both keep the chosen entries of tau and revert the rest; several task vectors are each trimmed and summed.
`topk_scope` "tensor" trims per tensor (mergekit, PEFT), "global" over all eligible tensors (original TIES).
Both stream one weight at a time (see `tailorkit.patching.methods._common`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from tailorkit.core.seeding import torch_generator
from tailorkit.patching.methods._common import (
    TopkScope,
    check_topk_scope,
    set_weight,
    task_masks,
    task_vectors,
    tensor_topk_mask,
)
from tailorkit.patching.methods.base import MethodInfo, PatchContext, register

if TYPE_CHECKING:
    from tailorkit.patching.config import PatchConfig

__all__ = ["MagnitudeOptions", "RandomOptions", "magnitude", "random_topk"]


@dataclass(frozen=True)
class MagnitudeOptions:
    """The options of `magnitude`.

    Attributes:
        topk_scope: "tensor" (top-k per tensor, as mergekit and PEFT) or "global" (over every eligible tensor).
    """

    topk_scope: TopkScope = "tensor"

    def __post_init__(self) -> None:
        check_topk_scope(self.topk_scope)


@dataclass(frozen=True)
class RandomOptions:
    """The options of `random` (its randomness comes from `PatchConfig.seed`).

    Attributes:
        topk_scope: "tensor" (k random entries per tensor) or "global" (k random entries over every eligible tensor).
    """

    topk_scope: TopkScope = "tensor"

    def __post_init__(self) -> None:
        check_topk_scope(self.topk_scope)


@register("magnitude", MagnitudeOptions)
def magnitude(ctx: PatchContext, config: PatchConfig) -> MethodInfo:
    options = config.options_as(MagnitudeOptions)
    info = MethodInfo()
    fixed = task_masks(ctx, config.density, options.topk_scope)
    per_task: list[dict[str, torch.Tensor]] = [{} for _ in ctx.finetuned]
    for name in ctx.targets:
        pre, taus = task_vectors(ctx, name)
        masks = [
            fixed[t][name] if fixed is not None else tensor_topk_mask(tau, config.density) for t, tau in enumerate(taus)
        ]
        set_weight(ctx, name, pre + sum(tau * m for tau, m in zip(taus, masks, strict=True)))
        info.masks[f"{name}.weight"] = torch.stack(masks).any(0)
        for t, m in enumerate(masks):
            per_task[t][f"{name}.weight"] = m
        del pre, taus
    info.task_masks = per_task
    return info


@register("random", RandomOptions)
def random_topk(ctx: PatchContext, config: PatchConfig) -> MethodInfo:
    options = config.options_as(RandomOptions)
    info = MethodInfo()
    gen = torch_generator(config.seed, "patching", "random")
    names = list(ctx.targets)
    sizes = {name: ctx.base[f"{name}.weight"].numel() for name in names}
    total = sum(sizes.values())
    global_perm = torch.randperm(total, generator=gen) if options.topk_scope == "global" else None
    offset = 0
    for name in names:
        pre, taus = task_vectors(ctx, name)
        n = sizes[name]
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
