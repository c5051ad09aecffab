"""The SAM and SAMv2 training losses, as pure functions of embeddings and world coordinates.

Read from the official code (docs/anatomy.md#from-the-official-code):

- `info_nce`: cross-entropy with the positive in column 0 over (positive, negatives) cosine logits / T.
- `nearest_positive`: for each query voxel, the index of the other view's map voxel nearest in world mm, or -1 when
  none lies within `max_distance_mm` (official: positive distance 2 mm at 2 mm; z limit for the coarse loss).
- `sam_fine_loss` (one direction): random queries with a positive; negatives from the fine maps of *both* views,
  masked within `ignore_distance_mm` of the query, preselected as the hardest by the fine + coarse ranking
  similarity, then a random subset; logits from the fine head only. A query without any positive in the other view
  (non-overlapping crops) uses itself as its positive, as the official code does.
- `sam_coarse_loss` (one direction): the same on the coarse maps with the coarse distances.
- `prototype_loss`: SupConMeanLoss (prototype-to-voxel softmax) of SAMv2's semantic head.

Deviation: masked negatives get logit -inf (excluded) rather than the official `neg * mask` (a zero-similarity
entry that can still be drawn when few candidates remain: a minor bias).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from tailorkit.anatomy.geometry import world_to_index

__all__ = ["info_nce", "nearest_positive", "prototype_loss", "sam_coarse_loss", "sam_fine_loss"]


def info_nce(
    query: torch.Tensor, positive: torch.Tensor, negatives: torch.Tensor, valid: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Mean InfoNCE loss.

    Shapes:
        query, positive: (Q, C) unit vectors; negatives: (Q, K, C); valid: (Q, K) bool (False = excluded).
    """
    pos = (query * positive).sum(-1, keepdim=True)
    neg = torch.einsum("qc,qkc->qk", query, negatives).masked_fill(~valid, float("-inf"))
    logits = torch.cat([pos, neg], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(len(query), dtype=torch.long, device=query.device))


def nearest_positive(
    world: torch.Tensor,
    key_affine: np.ndarray,
    key_shape: tuple[int, int, int],
    max_distance_mm: float,
    max_z_mm: float | None = None,
) -> torch.Tensor:
    """Index (C order) of the key-grid voxel nearest to each world point, -1 if farther than `max_distance_mm`
    (or farther than `max_z_mm` along world z) or outside the key grid.

    Shapes:
        world: (N, 3) -> (N,) long
    """
    idx = world_to_index(world.double(), key_affine).round()
    size = torch.tensor(key_shape, dtype=idx.dtype, device=idx.device)
    inside = ((idx >= 0) & (idx < size)).all(dim=1)
    idx = torch.minimum(idx.clamp(min=0), size - 1)
    aff = torch.as_tensor(key_affine, dtype=idx.dtype, device=idx.device)
    centre = idx @ aff[:3, :3].T + aff[:3, 3]
    delta = centre - world.double()
    ok = inside & (delta.norm(dim=1) <= max_distance_mm)
    if max_z_mm is not None:
        ok &= delta[:, 2].abs() <= max_z_mm
    flat = (idx[:, 0] * key_shape[1] + idx[:, 1]) * key_shape[2] + idx[:, 2]
    return torch.where(ok, flat.long(), torch.full_like(flat.long(), -1))


def _contrast(
    fq: torch.Tensor,
    wq: torch.Tensor,
    rq: torch.Tensor,
    fk: torch.Tensor,
    wk: torch.Tensor,
    rk: torch.Tensor,
    positive: torch.Tensor,
    *,
    n_queries: int,
    ignore_mm: float,
    pre_select: int,
    after_select: int,
    temperature: float,
    generator: torch.Generator | None,
) -> torch.Tensor:
    has = torch.nonzero(positive >= 0).flatten()
    self_positive = len(has) == 0
    pool = torch.arange(len(fq), device=fq.device) if self_positive else has
    pick = pool[torch.randperm(len(pool), generator=generator, device="cpu")[:n_queries].to(fq.device)]
    q = fq[pick]
    pos = q if self_positive else fk[positive[pick]]
    # Negative candidates: every voxel of both views; excluded within ignore_mm of the query (and the positive).
    feats = torch.cat([fk, fq])
    worlds = torch.cat([wk, wq])
    ranks = torch.cat([rk, rq])
    valid = torch.cdist(wq[pick], worlds) > ignore_mm
    if not self_positive:
        valid[torch.arange(len(pick)), positive[pick]] = False
    else:
        valid[torch.arange(len(pick)), len(fk) + pick] = False
    with torch.no_grad():
        score = (rq[pick] @ ranks.T).masked_fill(~valid, float("-inf"))
        k = min(pre_select, score.shape[1])
        top = score.topk(k, dim=1).indices
        order = torch.rand(top.shape, generator=generator, device="cpu").argsort(dim=1)[:, :after_select]
        chosen = top.gather(1, order.to(top.device))
    return info_nce(q, pos, feats[chosen], valid.gather(1, chosen), temperature)


def sam_fine_loss(
    fq: torch.Tensor,
    wq: torch.Tensor,
    rq: torch.Tensor,
    fk: torch.Tensor,
    wk: torch.Tensor,
    rk: torch.Tensor,
    positive: torch.Tensor,
    *,
    n_queries: int = 100,
    ignore_mm: float = 20.0,
    pre_select: int = 2000,
    after_select: int = 500,
    temperature: float = 0.5,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """SAM fine (local) InfoNCE, one direction (query view -> key view).

    Args:
        fq, fk: fine embeddings of the query and key views (unit vectors, C order over each view's fine grid).
        wq, wk: world coordinates (mm) of those voxels.
        rq, rk: ranking descriptors for hard-negative preselection (fine + upsampled coarse; no gradient needed).
        positive: for each query voxel, the index of its positive in the key view, or -1 (`nearest_positive`).

    Shapes:
        fq: (Nq, C), wq: (Nq, 3), rq: (Nq, R), fk: (Nk, C), wk: (Nk, 3), rk: (Nk, R), positive: (Nq,) -> scalar.
    """
    return _contrast(
        fq, wq, rq, fk, wk, rk, positive,
        n_queries=n_queries, ignore_mm=ignore_mm, pre_select=pre_select, after_select=after_select,
        temperature=temperature, generator=generator,
    )  # fmt: skip


def sam_coarse_loss(
    cq: torch.Tensor,
    wq: torch.Tensor,
    ck: torch.Tensor,
    wk: torch.Tensor,
    positive: torch.Tensor,
    *,
    ignore_mm: float = 5.0,
    pre_select: int = 250,
    after_select: int = 200,
    temperature: float = 0.5,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """SAM coarse (global) InfoNCE, one direction: every coarse query with a positive; hard-ranked by the coarse
    similarity itself. Shapes: cq (Nq, C), wq (Nq, 3), ck (Nk, C), wk (Nk, 3), positive (Nq,) -> scalar."""
    return _contrast(
        cq, wq, cq.detach(), ck, wk, ck.detach(), positive,
        n_queries=len(cq), ignore_mm=ignore_mm, pre_select=pre_select, after_select=after_select,
        temperature=temperature, generator=generator,
    )  # fmt: skip


def prototype_loss(features: torch.Tensor, labels: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """SAMv2's SupConMeanLoss: prototypes c_k = mean of the voxels labelled k > 0 (not detached);
    L = -(1/|K|) sum_k (1/|V_k|) sum_{i in V_k} log softmax_j(c_k . f_j / T)[i], softmax over all voxels j
    (background included).

    Shapes:
        features: (N, C) unit vectors pooled over both volumes; labels: (N,) long, 0 = background.
    """
    ks = torch.unique(labels)
    ks = ks[ks > 0]
    if len(ks) == 0:
        return features.sum() * 0.0
    onehot = (labels[None, :] == ks[:, None]).to(features.dtype)  # (K, N)
    counts = onehot.sum(1, keepdim=True)
    protos = onehot @ features / counts
    logits = protos @ features.T / temperature
    logp = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    return -((logp * onehot).sum(1) / counts[:, 0]).mean()
