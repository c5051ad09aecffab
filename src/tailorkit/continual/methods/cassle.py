"""CaSSLe (Fini et al., "Self-Supervised Models are Continual Learners", CVPR 2022; `DonkeyShot21/cassle`).

From phase 2 on, a trainable predictor `Linear-BN-ReLU-Linear` maps the student's projection of each view to the
frozen end-of-previous-phase model's projection of the same view: contrastive distillation for SimCLR, 2 - 2 cos for
BYOL / SimSiam / Barlow Twins (CaSSLe's `distill_lamb` 1 and 25 respectively; here one weight, `lambda_distill`).
Phase 1 is plain SSL. Written from the paper's description, no code copied.
"""

from __future__ import annotations

import torch
from torch import nn

from tailorkit.continual.losses import contrastive_distill, cosine_distill
from tailorkit.continual.methods.base import METHODS, PhaseContext, StepOutputs, Strategy
from tailorkit.continual.nets import mlp

__all__ = ["CaSSLe", "predictor_distill"]


def predictor_distill(predictor: nn.Module, past: nn.Module, out: StepOutputs, temperature: float) -> torch.Tensor:
    """Distil the frozen `past` model's projections through `predictor` (CaSSLe's loss, shared with CPPF)."""
    with torch.no_grad():
        old = (past(out.views[0])[1], past(out.views[1])[1])
    p = (predictor(out.z[0]), predictor(out.z[1]))
    if out.ssl.contrastive:
        return contrastive_distill(p, old, temperature)
    return 0.5 * (cosine_distill(p[0], old[0]) + cosine_distill(p[1], old[1]))


class _CaSSLeExtras(nn.Module):
    def __init__(self, predictor: nn.Module | None, past: nn.Module | None) -> None:
        super().__init__()
        self.predictor = predictor
        self.past = past


@METHODS.register("cassle")
class CaSSLe(Strategy):
    name = "cassle"

    def begin_phase(self, ctx: PhaseContext) -> nn.Module:
        if ctx.previous is None:
            return _CaSSLeExtras(None, None)
        m = ctx.config.model
        return _CaSSLeExtras(mlp(m.proj_dim, m.pred_hidden, m.proj_dim), ctx.previous)

    def terms(self, extras: nn.Module, out: StepOutputs) -> dict[str, torch.Tensor]:
        assert isinstance(extras, _CaSSLeExtras)
        if extras.past is None or extras.predictor is None:
            return {}
        loss = predictor_distill(extras.predictor, extras.past, out, self.config.ssl.temperature)
        return {"distill": self.config.strategy.lambda_distill * loss}
