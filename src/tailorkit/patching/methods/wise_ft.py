"""WiSE-FT (Wortsman et al., CVPR 2022) and task arithmetic (Ilharco et al., ICLR 2023): dense interpolation
theta_pre + lam * sum_t tau_t on the eligible weights. With one task, lam = alpha gives WiSE-FT's
(1 - alpha) theta_pre + alpha theta_ft. `density` does not apply: the patch is dense (reported as such).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from tailorkit.patching.methods._common import check_lam, set_weight, task_vectors
from tailorkit.patching.methods.base import MethodInfo, PatchContext, register

if TYPE_CHECKING:
    from tailorkit.patching.config import PatchConfig

__all__ = ["TaskArithmeticOptions", "task_arithmetic"]


@dataclass(frozen=True)
class TaskArithmeticOptions:
    """The options of `wise_ft` and `task_arithmetic` (one function under two names).

    Attributes:
        lam: theta_pre + lam * sum_t tau_t.
    """

    lam: float = 1.0

    def __post_init__(self) -> None:
        check_lam(self.lam)


def task_arithmetic(ctx: PatchContext, config: PatchConfig) -> MethodInfo:
    lam = config.options_as(TaskArithmeticOptions).lam
    for name in ctx.targets:
        pre, taus = task_vectors(ctx, name)
        set_weight(ctx, name, pre + lam * sum(taus))
    return MethodInfo()


register("wise_ft", TaskArithmeticOptions)(task_arithmetic)
register("task_arithmetic", TaskArithmeticOptions)(task_arithmetic)
