"""PFR (Gomez-Villa et al., "Continually Learning Self-Supervised Representations with Projected Functional
Regularization", CVPRW 2022).

From phase 2 on, a trainable projector `Linear-BN-ReLU-Linear` on the student's backbone features h is regularised
toward the frozen previous backbone's features by a cosine term (2 - 2 cos, i.e. -cos up to a constant), weight
`lambda_pfr`. Exemplar-free. Written from the paper's description, no code copied; [inferred] the
projector width (`pred_hidden`) and that the term is averaged over both views.
"""

from __future__ import annotations

import torch
from torch import nn

from tailorkit.continual.losses import cosine_distill
from tailorkit.continual.methods.base import METHODS, PhaseContext, StepOutputs, Strategy
from tailorkit.continual.nets import mlp

__all__ = ["PFR"]


class _PFRExtras(nn.Module):
    def __init__(self, projector: nn.Module | None, past: nn.Module | None) -> None:
        super().__init__()
        self.projector = projector
        self.past = past


@METHODS.register("pfr")
class PFR(Strategy):
    name = "pfr"

    def begin_phase(self, ctx: PhaseContext) -> nn.Module:
        if ctx.previous is None:
            return _PFRExtras(None, None)
        dim = ctx.student.feat_dim
        return _PFRExtras(mlp(dim, ctx.config.model.pred_hidden, dim), ctx.previous)

    def terms(self, extras: nn.Module, out: StepOutputs) -> dict[str, torch.Tensor]:
        assert isinstance(extras, _PFRExtras)
        if extras.past is None or extras.projector is None:
            return {}
        with torch.no_grad():
            old = [extras.past(v)[0] for v in out.views]
        losses = [cosine_distill(extras.projector(h), o) for h, o in zip(out.h, old, strict=True)]
        loss = 0.5 * (losses[0] + losses[1])
        return {"pfr": self.config.strategy.lambda_pfr * loss}
