"""WiSE-FT (Wortsman et al., CVPR 2022) and task arithmetic (Ilharco et al., ICLR 2023): dense interpolation
theta_pre + lam * sum_t tau_t on the eligible weights. With one task, lam = alpha gives WiSE-FT's
(1 - alpha) theta_pre + alpha theta_ft. `density` does not apply: the patch is dense (reported as such).
"""

from __future__ import annotations

from tailorkit.patching.config import PatchConfig
from tailorkit.patching.methods._common import set_weight, task_vectors
from tailorkit.patching.methods.base import METHODS, MethodInfo, PatchContext

__all__ = ["task_arithmetic"]


def task_arithmetic(ctx: PatchContext, config: PatchConfig) -> MethodInfo:
    for name in ctx.targets:
        pre, taus = task_vectors(ctx, name)
        set_weight(ctx, name, pre + config.lam * sum(taus))
    return MethodInfo()


METHODS.add("wise_ft", task_arithmetic)
METHODS.add("task_arithmetic", task_arithmetic)
