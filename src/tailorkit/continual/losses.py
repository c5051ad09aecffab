"""Self-supervised losses (registered by name) and the distillation / relation terms strategies add.

- SimCLR NT-Xent (Chen et al. 2020), temperature 0.2 as in CaSSLe's CIFAR configs.
- BYOL (Grill et al. 2020): predictor on the online projection, EMA target network (kept as buffers so checkpoints
  carry it); symmetric 2 - 2 cos.
- SimSiam (Chen & He 2021): predictor, stop-gradient on the other view's projection.
- Barlow Twins (Zbontar et al. 2021): cross-correlation of batch-standardised projections to identity.
- `contrastive_distill`: CaSSLe's contrastive distillation, written from its description: the predicted current
  projection of view v of image i must pick out the frozen model's projection of the same image and view among the
  frozen projections of the batch; symmetrised. `cosine_distill` is the 2 - 2 cos form CaSSLe uses for
  non-contrastive losses (and PFR uses on backbone features).
- `relation_distill`: row-wise KL between in-batch cosine-similarity distributions (diagonal masked) of a teacher and
  the student (Co2L's IRD / RKD-style), CPPF's present-teacher term as our specification reads it [inferred].

Shapes: z1, z2, p, targets (B, D); scalar losses.
"""

from __future__ import annotations

import abc
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from tailorkit.continual.config import ModelConfig, SSLConfig
from tailorkit.continual.nets import Student, frozen_copy, mlp
from tailorkit.core.registry import Registry

__all__ = [
    "SSL_LOSSES",
    "SSLLoss",
    "contrastive_distill",
    "cosine_distill",
    "make_ssl_loss",
    "nt_xent",
    "relation_distill",
]


Views = tuple[torch.Tensor, torch.Tensor]


class SSLLoss(nn.Module, abc.ABC):
    """An SSL objective (abstract): forward(student, views, z) -> scalar, with z = (z1, z2) the projections."""

    contrastive: bool = False

    @abc.abstractmethod
    def forward(
        self, student: Student, views: tuple[torch.Tensor, torch.Tensor], z: tuple[torch.Tensor, torch.Tensor]
    ) -> torch.Tensor:
        """The loss for one batch of two augmented views."""


SSLFactory = Callable[[SSLConfig, ModelConfig, Student], SSLLoss]
SSL_LOSSES: Registry[SSLFactory] = Registry("SSL loss")


def make_ssl_loss(config: SSLConfig, model: ModelConfig, student: Student) -> SSLLoss:
    """Build the registered SSL loss `config.loss` for `student` (unknown names list the valid ones)."""
    return SSL_LOSSES.get(config.loss)(config, model, student)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's NT-Xent over 2B views: each view's positive is the other view of the same image."""
    b = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = z @ z.T / temperature
    logits = logits.masked_fill(torch.eye(2 * b, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(z.device)
    return F.cross_entropy(logits, target)


class SimCLR(SSLLoss):
    contrastive = True

    def __init__(self, temperature: float) -> None:
        super().__init__()
        self.temperature = temperature

    def forward(self, student: Student, views: Views, z: Views) -> torch.Tensor:
        return nt_xent(z[0], z[1], self.temperature)


class SimSiam(SSLLoss):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.predictor = mlp(dim, hidden, dim)

    def forward(self, student: Student, views: Views, z: Views) -> torch.Tensor:
        p1, p2 = self.predictor(z[0]), self.predictor(z[1])
        return 0.5 * (cosine_distill(p1, z[1].detach()) + cosine_distill(p2, z[0].detach()))


class BYOL(SSLLoss):
    """Online predictor + EMA target. The target is updated at the start of each training forward, from the
    parameters the optimizer produced at the previous step (the usual update, shifted by one call)."""

    def __init__(self, student: Student, dim: int, hidden: int, momentum: float) -> None:
        super().__init__()
        self.predictor = mlp(dim, hidden, dim)
        self.target = frozen_copy(student)
        self.momentum = momentum

    def train(self, mode: bool = True) -> BYOL:
        super().train(mode)
        self.target.eval()
        return self

    @torch.no_grad()
    def _update(self, student: Student) -> None:
        online = dict(student.named_parameters())
        for name, buf in self.target.named_buffers():
            if name in online:
                buf.mul_(self.momentum).add_(online[name].detach(), alpha=1 - self.momentum)

    def forward(self, student: Student, views: Views, z: Views) -> torch.Tensor:
        if self.training:
            self._update(student)
        with torch.no_grad():
            t1, t2 = self.target(views[0])[1], self.target(views[1])[1]
        p1, p2 = self.predictor(z[0]), self.predictor(z[1])
        return 0.5 * (cosine_distill(p1, t2) + cosine_distill(p2, t1))


class Barlow(SSLLoss):
    def __init__(self, lam: float) -> None:
        super().__init__()
        self.lam = lam

    def forward(self, student: Student, views: Views, z: Views) -> torch.Tensor:
        b, d = z[0].shape
        a = (z[0] - z[0].mean(0)) / (z[0].std(0) + 1e-5)
        c = (z[1] - z[1].mean(0)) / (z[1].std(0) + 1e-5)
        corr = a.T @ c / b
        on = (torch.diagonal(corr) - 1).pow(2).sum()
        off = corr.pow(2).sum() - torch.diagonal(corr).pow(2).sum()
        return (on + self.lam * off) / d  # / d keeps the scale comparable to the other losses


SSL_LOSSES.add("simclr", lambda c, m, s: SimCLR(c.temperature))
SSL_LOSSES.add("simsiam", lambda c, m, s: SimSiam(m.proj_dim, m.pred_hidden))
SSL_LOSSES.add("byol", lambda c, m, s: BYOL(s, m.proj_dim, m.pred_hidden, c.byol_momentum))
SSL_LOSSES.add("barlow", lambda c, m, s: Barlow(c.barlow_lambda))


def cosine_distill(p: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean of 2 - 2 cos(p_i, target_i); the target is not differentiated."""
    return (2 - 2 * F.cosine_similarity(p, target.detach(), dim=1)).mean()


def _pick_own(anchors: torch.Tensor, candidates: torch.Tensor, temperature: float) -> torch.Tensor:
    logits = F.normalize(anchors, dim=1) @ F.normalize(candidates, dim=1).T / temperature
    return F.cross_entropy(logits, torch.arange(anchors.shape[0], device=anchors.device))


def contrastive_distill(
    p: tuple[torch.Tensor, torch.Tensor], old: tuple[torch.Tensor, torch.Tensor], temperature: float
) -> torch.Tensor:
    """CaSSLe-style contrastive distillation: predicted current projections vs frozen ones (same image, same view
    positive; the batch's other frozen projections negative), averaged over both directions and both views."""
    pp, oo = torch.cat(p), torch.cat([o.detach() for o in old])
    return 0.5 * (_pick_own(pp, oo, temperature) + _pick_own(oo, pp, temperature))


def relation_distill(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """Row-wise KL(softmax(S_teacher / T) || softmax(S_student / T)), S the in-batch cosine similarities without
    the diagonal. Zero when the student's relations equal the teacher's."""
    b = student.shape[0]
    off = ~torch.eye(b, dtype=torch.bool, device=student.device)
    s = F.normalize(student, dim=1) @ F.normalize(student, dim=1).T
    t = F.normalize(teacher.detach(), dim=1) @ F.normalize(teacher.detach(), dim=1).T
    s_log = F.log_softmax(s[off].view(b, b - 1) / temperature, dim=1)
    t_log = F.log_softmax(t[off].view(b, b - 1) / temperature, dim=1)
    return F.kl_div(s_log, t_log, reduction="batchmean", log_target=True)
