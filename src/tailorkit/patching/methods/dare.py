"""DARE (Yu et al., "Language Models are Super Mario", ICML 2024; yule-BUAA/MergeLM): drop each entry of tau with
probability p = 1 - density and rescale the survivors by 1 / density (`rescale`; off = plain random drop).
The drop is Bernoulli per entry, so the kept fraction is density only in expectation, as in the original and in
PEFT's `prune(method="random")`. Several task vectors are dropped independently and summed (dare_linear). The
randomness comes from `PatchConfig.seed`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from tailorkit.core.config import check
from tailorkit.core.seeding import torch_generator
from tailorkit.patching.methods._common import set_weight, task_vectors
from tailorkit.patching.methods.base import MethodInfo, PatchContext, register

if TYPE_CHECKING:
    from tailorkit.patching.config import PatchConfig

__all__ = ["DareOptions", "dare"]


@dataclass(frozen=True)
class DareOptions:
    """The options of `dare`.

    Attributes:
        rescale: Multiply the kept deltas by 1 / density (DARE); False = a plain random drop. Earlier name
            `dare_rescale`, still accepted in config files and overrides.
    """

    rescale: bool = True

    def __post_init__(self) -> None:
        check(isinstance(self.rescale, bool), f"rescale: expected true or false, got {self.rescale!r}")


@register("dare", DareOptions)
def dare(ctx: PatchContext, config: PatchConfig) -> MethodInfo:
    options = config.options_as(DareOptions)
    info = MethodInfo()
    gen = torch_generator(config.seed, "patching", "dare")
    for name in ctx.targets:
        pre, taus = task_vectors(ctx, name)
        merged = pre.clone()
        union = torch.zeros(pre.shape, dtype=torch.bool)
        for tau in taus:
            keep = torch.rand(pre.shape, generator=gen) < config.density
            keep = keep.to(pre.device)
            scale = 1.0 / config.density if (options.rescale and config.density > 0) else 1.0
            merged += tau * keep * scale
            union |= keep.cpu()
        set_weight(ctx, name, merged)
        info.masks[f"{name}.weight"] = union.to(pre.device)
    return info
