"""DARE (Yu et al., "Language Models are Super Mario", ICML 2024; yule-BUAA/MergeLM): drop each entry of tau with
probability p = 1 - density and rescale the survivors by 1 / density (`dare_rescale`; off = plain random drop).
The drop is Bernoulli per entry, so the kept fraction is density only in expectation, as in the original and in
PEFT's `prune(method="random")`. Several task vectors are dropped independently and summed (dare_linear).
"""

from __future__ import annotations

import torch

from tailorkit.core.seeding import torch_generator
from tailorkit.patching.config import PatchConfig
from tailorkit.patching.methods._common import set_weight, task_vectors
from tailorkit.patching.methods.base import METHODS, MethodInfo, PatchContext

__all__ = ["dare"]


@METHODS.register("dare")
def dare(ctx: PatchContext, config: PatchConfig) -> MethodInfo:
    info = MethodInfo()
    gen = torch_generator(config.seed, "patching", "dare")
    for name in ctx.targets:
        pre, taus = task_vectors(ctx, name)
        merged = pre.clone()
        union = torch.zeros(pre.shape, dtype=torch.bool)
        for tau in taus:
            keep = torch.rand(pre.shape, generator=gen) < config.density
            keep = keep.to(pre.device)
            scale = 1.0 / config.density if (config.dare_rescale and config.density > 0) else 1.0
            merged += tau * keep * scale
            union |= keep.cpu()
        set_weight(ctx, name, merged)
        info.masks[f"{name}.weight"] = union.to(pre.device)
    return info
