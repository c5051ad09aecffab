"""Shared helpers of the data-free baselines: task vectors of one eligible weight at a time, and top-k masks.

The baselines stream: each weight's task vectors are read (lazily, on checkpoints), trimmed, merged and written
before the next weight is read, so they never hold every task vector at once. Only a global top-k
(`topk_scope="global"`) needs one pass over all weights first; it keeps boolean masks, not task vectors.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

from tailorkit.core.config import check
from tailorkit.patching.hessian import module_weight
from tailorkit.patching.methods.base import PatchContext

__all__ = [
    "TOPK_SCOPES",
    "TopkScope",
    "check_lam",
    "check_topk_scope",
    "global_topk_masks",
    "set_weight",
    "task_masks",
    "task_vectors",
    "task_vectors_one",
    "tensor_topk_mask",
]

TopkScope = Literal["tensor", "global"]
TOPK_SCOPES = ("tensor", "global")


def check_lam(value: object) -> None:
    """The options check of `lam` (wise_ft, task_arithmetic, ties)."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    check(ok, f"lam: expected a finite number, got {value!r}")


def check_topk_scope(value: object) -> None:
    """The options check of `topk_scope` (magnitude, random, ties)."""
    check(value in TOPK_SCOPES, f"topk_scope: expected 'tensor' or 'global', got {value!r}")


def task_vectors(ctx: PatchContext, name: str) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(theta_pre, [tau_t]) of module `name`'s weight, float32 (float64 stays float64)."""
    key = f"{name}.weight"
    pre = ctx.base[key].detach()
    dtype = torch.float64 if pre.dtype == torch.float64 else torch.float32
    pre = pre.to(dtype)
    return pre, [s[key].detach().to(dtype=dtype, device=pre.device) - pre for s in ctx.finetuned]


def set_weight(ctx: PatchContext, name: str, value: torch.Tensor) -> None:
    weight = module_weight(ctx.targets[name])
    with torch.no_grad():
        weight.copy_(value.to(weight.dtype))


def tensor_topk_mask(x: torch.Tensor, density: float) -> torch.Tensor:
    """The int(density * n) largest |x| entries (k as in PEFT's and mergekit's magnitude pruning)."""
    n = x.numel()
    k = int(density * n)
    mask = torch.zeros(n, dtype=torch.bool, device=x.device)
    if k >= n:
        mask[:] = True
    elif k > 0:
        mask[torch.topk(x.abs().reshape(-1), k, sorted=False).indices] = True
    return mask.reshape(x.shape)


def global_topk_masks(values: dict[str, torch.Tensor], density: float) -> dict[str, torch.Tensor]:
    """One top-k over the |values| of all tensors together; k = int(density * total entries)."""
    flat = torch.cat([v.abs().reshape(-1).float() for v in values.values()])
    allm = tensor_topk_mask(flat, density)
    out, offset = {}, 0
    for name, v in values.items():
        out[name] = allm[offset : offset + v.numel()].reshape(v.shape)
        offset += v.numel()
    return out


def task_masks(ctx: PatchContext, density: float, topk_scope: str) -> list[dict[str, torch.Tensor]] | None:
    """Per task, the trimming masks of a global top-k (`topk_scope="global"`), else None (trim per tensor).

    The global pass holds |tau| of one task at a time and keeps only the boolean masks.
    """
    if topk_scope != "global":
        return None
    out = []
    for t in range(len(ctx.finetuned)):
        taus = {name: task_vectors_one(ctx, name, t).abs_() for name in ctx.targets}
        out.append(global_topk_masks(taus, density))
        del taus
    return out


def task_vectors_one(ctx: PatchContext, name: str, t: int) -> torch.Tensor:
    """tau_t of module `name`'s weight (float32, float64 stays float64)."""
    key = f"{name}.weight"
    pre = ctx.base[key].detach()
    dtype = torch.float64 if pre.dtype == torch.float64 else torch.float32
    return ctx.finetuned[t][key].detach().to(dtype=dtype, device=pre.device) - pre.to(dtype)
