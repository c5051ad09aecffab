"""CPPF: "Combining Past, Present and Future: A Self-Supervised Approach for Class Incremental Learning"
(Chen, Sun, Yan, Ding, Lu; arXiv:2311.08764, 2023). No code was released and only the abstract was available, so
everything below the module names is our specification (docs/continual.md#the-method-as-implemented), [inferred]:

- Prototypes C in R^{M x d}, unit rows, M = K * T (K = `prototypes_per_phase`), in the projector's space, split
  into per-phase slices C_1..C_T. They are initialised once per run far apart (`proto_init="orthogonal"`: random
  orthonormal rows when M <= d). In phase t, C_t is trainable; C_{<t} are frozen at their learned values and C_{>t}
  are *reserved*: fixed at their initial values until their own phase.
- PC (prototype clustering, "future" at prototype level): SwAV-style swapped prediction over C_t with Sinkhorn-Knopp
  assignments (each view predicts the other's balanced assignment), plus a reserving term that keeps features off
  the reserved prototypes, `mean_i log-mean-exp_{c in C_{>t}}(z_i . c / tau)`.
- ESR (embedding-space reserving, "future" at feature level): `||P_res z||^2`, P_res the orthogonal projector onto
  span(C_{>t}), plus a pull of each feature to its nearest current prototype (weight `esr_pull`), compacting the
  current classes so room stays free.
- MTD (multi-teacher distillation): the past teacher is the frozen end-of-phase-(t-1) model, distilled through a
  CaSSLe predictor (no past teacher, hence no term, in phase 1); the present teacher is a copy of the student
  trained on the phase's data with the SSL loss alone (`present_fraction` of the phase's steps) and then frozen,
  whose in-batch relations are distilled into the student (row-wise KL, diagonal masked).
- L = L_ssl + lambda_pc (L_swap + L_res-proto) + lambda_res L_esr + lambda_past L_past + lambda_rel L_rel.

Inferred details that are options (`CPPFConfig`; docs/continual.md, "CPPF's options", says how they were chosen on
held-out glyph classes, never on the bench's classes):

- the reserved fraction of the embedding space, `reserve_fraction`: the reserving terms act on at most
  round(reserve_fraction * proj_dim) future prototypes (orthonormal, so one masked dimension each; 1.0 = every
  future prototype: 30 of 64 dimensions in phase 1 with K = 10, T = 4);
- the present-teacher schedule: it trains for `present_fraction` x the phase's steps (0.5: 55 of 110 steps in the
  earlier quick bench), then is frozen and distilled for the whole phase at weight `lambda_rel`;
- the loss weights `lambda_pc`, `lambda_res`, `lambda_past`, `lambda_rel`, `esr_pull`.

Every module is switchable (`pc`, `esr`, `mtd_past`, `mtd_present`) for the ablations and the single-module rows;
a switched-off module adds no term, a zero weight adds a zero term (tested); with all four off CPPF is
fine-tuning. Cost: the present teacher adds `present_fraction` x the phase's steps and each step runs up to two
teacher forwards (reported as `train_seconds` in the bench).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from tailorkit.continual.config import CPPFConfig
from tailorkit.continual.losses import relation_distill
from tailorkit.continual.methods.base import METHODS, PhaseContext, StepOutputs, Strategy
from tailorkit.continual.methods.cassle import predictor_distill
from tailorkit.continual.nets import frozen_copy, mlp
from tailorkit.core.seeding import torch_generator

__all__ = ["CPPF", "CPPFExtras", "init_prototypes", "reserved_count", "sinkhorn"]


def init_prototypes(count: int, dim: int, kind: str, generator: torch.Generator) -> torch.Tensor:
    """(count, dim) unit rows: orthonormal when `kind == "orthogonal"` and count <= dim, else random directions."""
    g = torch.randn(max(count, dim), dim, generator=generator)
    if kind == "orthogonal" and count <= dim:
        q, _ = torch.linalg.qr(g[:dim].T)  # dim x dim orthogonal
        return q.T[:count].contiguous()
    return F.normalize(g[:count], dim=1)


def reserved_count(settings: CPPFConfig, proj_dim: int, phase: int, phases: int) -> int:
    """How many future prototypes (each one masked dimension) the reserving terms act on in `phase` (0-based)."""
    future = settings.prototypes_per_phase * (phases - 1 - phase)
    return max(0, min(future, round(settings.reserve_fraction * proj_dim)))


@torch.no_grad()
def sinkhorn(scores: torch.Tensor, eps: float, iters: int) -> torch.Tensor:
    """Balanced soft assignments (SwAV's Sinkhorn-Knopp, in the log domain so sharp scores cannot underflow):
    rows sum to 1, columns to B/K. `scores` are cosine similarities. Shapes: (B, K) -> (B, K)."""
    b, k = scores.shape
    log_q = scores.double() / eps
    for _ in range(iters):
        log_q = log_q - torch.logsumexp(log_q, dim=0, keepdim=True) - math.log(k)  # each prototype gets 1/K mass
        log_q = log_q - torch.logsumexp(log_q, dim=1, keepdim=True) - math.log(b)  # each sample gets 1/B mass
    return (log_q.exp() * b).to(scores.dtype)


class CPPFExtras(nn.Module):
    """Phase-t state: all prototypes (buffer), the trainable slice, and the teachers (buffers)."""

    prototypes: torch.Tensor
    reserved: torch.Tensor
    current: nn.Parameter | None

    def __init__(
        self,
        phase: int,
        per_phase: int,
        prototypes: torch.Tensor,
        train_protos: bool,
        past: nn.Module | None,
        predictor: nn.Module | None,
        present: nn.Module | None,
        reserve: int | None = None,
    ) -> None:
        super().__init__()
        self.phase, self.per_phase = phase, per_phase
        self.register_buffer("prototypes", prototypes.clone())
        lo, hi = phase * per_phase, (phase + 1) * per_phase
        reserve = prototypes.shape[0] - hi if reserve is None else max(0, min(reserve, prototypes.shape[0] - hi))
        self.current = nn.Parameter(prototypes[lo:hi].clone()) if train_protos else None
        self.register_buffer("reserved", prototypes[hi : hi + reserve].clone())
        self.past, self.predictor, self.present = past, predictor, present

    def all_prototypes(self) -> torch.Tensor:
        """C with the current slice's learned values (normalised) in place: what the next phase inherits."""
        out = self.prototypes.clone()
        if self.current is not None:
            lo = self.phase * self.per_phase
            out[lo : lo + self.per_phase] = F.normalize(self.current.detach(), dim=1)
        return out


@METHODS.register("cppf")
class CPPF(Strategy):
    name = "cppf"

    @property
    def settings(self) -> CPPFConfig:
        return self.config.strategy.cppf

    def begin_phase(self, ctx: PhaseContext) -> nn.Module:
        s, m = self.settings, ctx.config.model
        total = s.prototypes_per_phase * ctx.phases
        protos = ctx.carry.get("prototypes")
        if protos is None:
            protos = init_prototypes(
                total, m.proj_dim, s.proto_init, torch_generator(ctx.config.seed, "cppf-prototypes")
            )
        if protos.shape != (total, m.proj_dim):
            raise ValueError(f"carried prototypes: expected ({total}, {m.proj_dim}), got {tuple(protos.shape)}")
        past = predictor = present = None
        if s.mtd_past and ctx.previous is not None:
            past, predictor = ctx.previous, mlp(m.proj_dim, m.pred_hidden, m.proj_dim)
        if s.mtd_present:
            steps = max(1, round(s.present_fraction * ctx.config.optim.steps_per_phase))
            present = frozen_copy(ctx.pretrain(ctx.student, steps, "present"))
        reserve = reserved_count(s, m.proj_dim, ctx.phase, ctx.phases)
        return CPPFExtras(
            ctx.phase, s.prototypes_per_phase, protos, s.pc or s.esr, past, predictor, present, reserve=reserve
        )

    def terms(self, extras: nn.Module, out: StepOutputs) -> dict[str, torch.Tensor]:
        assert isinstance(extras, CPPFExtras)
        s = self.settings
        zn = [F.normalize(z, dim=1) for z in out.z]
        terms: dict[str, torch.Tensor] = {}
        reserved = extras.reserved
        if s.pc and extras.current is not None:
            c = F.normalize(extras.current, dim=1)
            cosines = [z @ c.T for z in zn]
            scores = [cos / s.proto_temperature for cos in cosines]
            q = [sinkhorn(cos.detach(), s.sinkhorn_eps, s.sinkhorn_iters) for cos in cosines]
            swap = -0.5 * (
                (q[1] * F.log_softmax(scores[0], dim=1)).sum(1).mean()
                + (q[0] * F.log_softmax(scores[1], dim=1)).sum(1).mean()
            )
            res = zn[0].new_zeros(())
            if reserved.shape[0]:
                lse = [torch.logsumexp(z @ reserved.T / s.proto_temperature, dim=1).mean() for z in zn]
                res = 0.5 * (lse[0] + lse[1]) - math.log(reserved.shape[0])  # log-mean-exp: scale free of r
            terms["pc"] = s.lambda_pc * (swap + res)
        if s.esr and extras.current is not None:
            c = F.normalize(extras.current, dim=1)
            pulls = [(1 - (z @ c.T).max(dim=1).values).mean() for z in zn]
            esr = s.esr_pull * 0.5 * (pulls[0] + pulls[1])
            if reserved.shape[0]:
                basis, _ = torch.linalg.qr(reserved.T)  # d x r orthonormal basis of span(C_{>t})
                energy = [(z @ basis).pow(2).sum(1).mean() for z in zn]
                esr = esr + 0.5 * (energy[0] + energy[1])
            terms["esr"] = s.lambda_res * esr
        if extras.past is not None and extras.predictor is not None:
            terms["mtd_past"] = s.lambda_past * predictor_distill(
                extras.predictor, extras.past, out, self.config.ssl.temperature
            )
        if extras.present is not None:
            with torch.no_grad():
                teacher = [extras.present(v)[1] for v in out.views]
            rels = [relation_distill(z, t, s.rel_temperature) for z, t in zip(out.z, teacher, strict=True)]
            rel = 0.5 * (rels[0] + rels[1])
            terms["mtd_present"] = s.lambda_rel * rel
        return terms

    def end_phase(self, extras: nn.Module, carry: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        assert isinstance(extras, CPPFExtras)
        return {**carry, "prototypes": extras.all_prototypes().cpu()}
