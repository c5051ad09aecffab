"""Landmark matching with anatomical embeddings: nearest neighbour (SAM), fixed point (SAMv2), cycle (SAME++).

All matchers take the atlas `Embedding`, the target `Embedding` and (N, 3) atlas world points, and return a
`MatchResult` of (N, 3) target world points with a confidence. Similarity = mean of the chosen heads' cosines
(`Embedding.descriptors`), max 1. What is official and what inferred: docs/anatomy.md#from-the-official-code.

- `match_nn` (SAM): arg-max of the similarity over every fine voxel of the target; `subvoxel="parabolic"`
  refines the grid arg-max by a per-axis parabola through its neighbours [inferred].
- `match_fixed_point` (SAMv2 "structural inference", the official `tools/demo_semantic_stable_points.py`): a
  (2m+1)^3 grid of fine-voxel offsets around the query; alternating nearest-neighbour matching
  q -> k -> q' -> k' -> ... (`fp_iterations` forward/backward rounds); keep points whose last backward match lies
  within `fp_back_distance_mm` of its query and whose score exceeds `fp_score_threshold` (at least `fp_min_points`
  of the best-scoring are kept [inferred]); fit the affine q' -> k' by Huber IRLS (`robust_affine`; the official
  uses statsmodels RLM, Huber's T, per output coordinate); answer = mean over kept points of k' - L (q' - p), L the
  fitted linear part [inferred: which pair of the iteration enters the fit is not pinned down by the source; the
  last forward pair is used].
- `match_cycle` (SAME++ stable matching): forward then backward matching for up to `cycle_rounds`
  rounds, moving the query to its backward match until the backward match falls in the query's own fine voxel;
  answer = forward match + (p - p_final) [inferred offset transfer]; `consistent` marks the points whose first
  backward match already lands in their own fine voxel (SAME++'s stability test on the query itself).

Only torch; everything runs on the embeddings' device.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from tailorkit.anatomy.config import MatchConfig
from tailorkit.anatomy.embed import Embedding
from tailorkit.anatomy.geometry import world_to_index
from tailorkit.core.registry import Registry

__all__ = [
    "MATCHERS",
    "MatchResult",
    "best_match",
    "match_cycle",
    "match_fixed_point",
    "match_identity",
    "match_nn",
    "robust_affine",
]


@dataclass
class MatchResult:
    """Matched target points.

    Shapes:
        points: (N, 3) world mm; score: (N,) mean cosine similarity; consistent: (N,) bool or None.
    """

    points: torch.Tensor
    score: torch.Tensor
    consistent: torch.Tensor | None = None


Matcher = Callable[[Embedding, Embedding, torch.Tensor, MatchConfig], MatchResult]
MATCHERS: Registry[Matcher] = Registry("anatomy matcher")


def _argmax(query: torch.Tensor, keys: torch.Tensor, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    best_s, best_i = [], []
    for start in range(0, len(query), batch):
        s, i = (query[start : start + batch] @ keys.T).max(dim=1)
        best_s.append(s)
        best_i.append(i)
    return torch.cat(best_s), torch.cat(best_i)


def _unflatten(index: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    d = index // (shape[1] * shape[2])
    h = (index // shape[2]) % shape[1]
    w = index % shape[2]
    return torch.stack([d, h, w], dim=1)


def _flatten(idx: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    return (idx[:, 0] * shape[1] + idx[:, 1]) * shape[2] + idx[:, 2]


def _index_to_world(idx: torch.Tensor, emb: Embedding) -> torch.Tensor:
    aff = torch.as_tensor(emb.fine_affine, dtype=torch.float32, device=idx.device)
    return idx.float() @ aff[:3, :3].T + aff[:3, 3]


def best_match(
    query: torch.Tensor, target: Embedding, heads: tuple[str, ...], batch: int = 4096, subvoxel: str = "none"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Arg-max of query descriptors over the target's fine voxels.

    Shapes:
        query: (Q, C) descriptors -> world (Q, 3), score (Q,), flat fine index (Q,)
    """
    keys = target.descriptors(heads)
    score, index = _argmax(query, keys, batch)
    shape = target.fine_shape
    idx = _unflatten(index, shape)
    pos = idx.float()
    if subvoxel == "parabolic":
        size = torch.tensor(shape, device=idx.device)
        for axis in range(3):
            step = torch.zeros(3, dtype=idx.dtype, device=idx.device)
            step[axis] = 1
            lo_i, hi_i = idx - step, idx + step
            ok = (lo_i[:, axis] >= 0) & (hi_i[:, axis] < size[axis])
            lo_i, hi_i = torch.minimum(lo_i.clamp(min=0), size - 1), torch.minimum(hi_i.clamp(min=0), size - 1)
            s_lo = (query * keys[_flatten(lo_i, shape)]).sum(1)
            s_hi = (query * keys[_flatten(hi_i, shape)]).sum(1)
            denom = s_lo - 2 * score + s_hi
            offset = torch.where(ok & (denom < 0), 0.5 * (s_lo - s_hi) / denom.clamp(max=-1e-12), 0.0)
            pos[:, axis] += offset.clamp(-0.5, 0.5)
    return _index_to_world(pos, target), score, index


@MATCHERS.register("identity")
def match_identity(atlas: Embedding, target: Embedding, points: torch.Tensor, config: MatchConfig) -> MatchResult:
    """Baseline: every landmark stays at the same world position."""
    return MatchResult(points.clone(), torch.ones(len(points), device=points.device))


@MATCHERS.register("nn")
def match_nn(atlas: Embedding, target: Embedding, points: torch.Tensor, config: MatchConfig) -> MatchResult:
    """SAM nearest-neighbour matching of each atlas point over the whole target."""
    query = atlas.sample(points, config.heads)
    world, score, _ = best_match(query, target, config.heads, config.batch, config.subvoxel)
    return MatchResult(world, score)


def robust_affine(
    src: torch.Tensor,
    dst: torch.Tensor,
    weights: torch.Tensor | None = None,
    *,
    huber_c: float = 1.345,
    iterations: int = 10,
    ridge: float = 1e-6,
) -> torch.Tensor:
    """Batched affine fit dst ~ A src by Huber IRLS, per output coordinate (statsmodels RLM with HuberT).

    Each iteration solves the weighted least squares (normal equations with a tiny ridge that pulls the linear part
    towards the identity, so degenerate point sets stay solvable), then reweights residuals r by
    min(1, c / |r / s|) with the robust scale s = MAD / 0.6745 (a floor of 1e-6 mm).

    Shapes:
        src, dst: (B, N, 3) or (N, 3); weights: same leading shape, 0/1 validity -> (B, 4, 4) or (4, 4).
    """
    single = src.ndim == 2
    if single:
        src, dst = src[None], dst[None]
        weights = None if weights is None else weights[None]
    if src.shape != dst.shape or src.shape[-1] != 3:
        raise ValueError(f"robust_affine: expected src and dst of equal shape (B, N, 3), got {src.shape}, {dst.shape}")
    b, n, _ = src.shape
    valid = torch.ones(b, n, dtype=src.dtype, device=src.device) if weights is None else weights.to(src.dtype)
    x = torch.cat([src, torch.ones(b, n, 1, dtype=src.dtype, device=src.device)], dim=2).double()  # (B, N, 4)
    y = dst.double()
    w = valid.double()[:, None, :].expand(b, 3, n).clone()  # per output coordinate
    prior = torch.cat([torch.eye(3, dtype=x.dtype, device=x.device), torch.zeros(1, 3, dtype=x.dtype, device=x.device)])
    eye = torch.eye(4, dtype=x.dtype, device=x.device)
    eye[3, 3] = 0
    scale_x = (x[..., :3] ** 2 * valid.double()[..., None]).sum((1, 2)) / valid.double().sum(1).clamp(min=1)
    lam = ridge * scale_x.clamp(min=1.0)[:, None, None, None]
    coef = prior.T[None].expand(b, 3, 4).clone()
    for _ in range(iterations):
        xtwx = torch.einsum("bkn,bni,bnj->bkij", w, x, x) + lam * eye
        xtwy = torch.einsum("bkn,bni,bnk->bki", w, x, y) + lam[..., 0] * prior.T[None]
        coef = torch.linalg.solve(xtwx, xtwy[..., None])[..., 0]  # (B, 3, 4)
        resid = (y - torch.einsum("bki,bni->bnk", coef, x)).permute(0, 2, 1)  # (B, 3, N)
        absr = resid.abs()
        masked = torch.where(valid.bool()[:, None, :].expand_as(absr), absr, torch.nan)
        mad = torch.nanmedian(masked, dim=2).values
        s = (mad / 0.6745).clamp(min=1e-6)[..., None]
        w = torch.clamp(huber_c / (absr / s).clamp(min=1e-12), max=1.0) * valid.double()[:, None, :]
    out = torch.zeros(b, 4, 4, dtype=src.dtype, device=src.device)
    out[:, :3] = coef.to(src.dtype)
    out[:, 3, 3] = 1
    return out[0] if single else out


@MATCHERS.register("fixed_point")
def match_fixed_point(atlas: Embedding, target: Embedding, points: torch.Tensor, config: MatchConfig) -> MatchResult:
    """SAMv2 fixed-point matching with robust affine transfer (see the module docstring)."""
    device = points.device
    m = config.fp_margin
    r = torch.arange(-m, m + 1, device=device)
    offsets = torch.stack(torch.meshgrid(r, r, r, indexing="ij"), dim=-1).reshape(-1, 3).float()  # (P, 3) fine units
    centre_idx = world_to_index(points.float(), atlas.fine_affine).round()
    size = torch.tensor(atlas.fine_shape, device=device, dtype=torch.float32)
    grid = (centre_idx[:, None, :] + offsets[None]).clamp(min=0)
    grid = torch.minimum(grid, size - 1)  # clipped to the volume (official make_local_grid_patch)
    n, p = grid.shape[:2]
    q_idx = grid.reshape(-1, 3).long()
    heads = config.heads
    a_keys = atlas.descriptors(heads)
    q_flat = _flatten(q_idx, atlas.fine_shape)
    t_keys = target.descriptors(heads)
    k_flat, score, back = q_flat, torch.empty(0, device=device), q_flat
    for it in range(config.fp_iterations):
        if it:
            q_flat = back  # move each query to its backward match
        # forward over unique atlas voxels -> target; backward over unique target voxels -> atlas
        uq, inv_q = torch.unique(q_flat, return_inverse=True)
        s_f, i_f = _argmax(a_keys[uq], t_keys, config.batch)
        k_flat, score = i_f[inv_q], s_f[inv_q]
        uk, inv_k = torch.unique(k_flat, return_inverse=True)
        _, i_b = _argmax(t_keys[uk], a_keys, config.batch)
        back = i_b[inv_k]
    q_last = q_flat  # the last forward pair (q', k')
    qw = _index_to_world(_unflatten(q_last, atlas.fine_shape), atlas).reshape(n, p, 3)
    kw = _index_to_world(_unflatten(k_flat, target.fine_shape), target).reshape(n, p, 3)
    bw = _index_to_world(_unflatten(back, atlas.fine_shape), atlas).reshape(n, p, 3)
    orig = _index_to_world(q_idx, atlas).reshape(n, p, 3)
    sc = score.reshape(n, p)
    keep = ((bw - orig).norm(dim=2) <= config.fp_back_distance_mm) & (sc > config.fp_score_threshold)
    k_min = min(config.fp_min_points, p)
    top = sc.topk(k_min, dim=1).indices
    fallback = torch.zeros_like(keep)
    fallback.scatter_(1, top, True)
    keep = torch.where(keep.sum(1, keepdim=True) >= k_min, keep, fallback)
    # drop duplicate (q', k') pairs: keep the first occurrence per landmark
    pair_key = _flatten(_unflatten(q_last, atlas.fine_shape), atlas.fine_shape).reshape(n, p) * (
        target.fine.shape[1] * target.fine.shape[2] * target.fine.shape[3]
    ) + k_flat.reshape(n, p)
    sorted_key, order = pair_key.sort(dim=1)
    dup_sorted = torch.zeros_like(keep)
    dup_sorted[:, 1:] = sorted_key[:, 1:] == sorted_key[:, :-1]
    dup = torch.zeros_like(keep).scatter(1, order, dup_sorted)
    keep = keep & ~dup
    weights = keep.float()
    a = robust_affine(qw, kw, weights, huber_c=config.huber_c, iterations=config.irls_iterations)
    lin = a[:, :3, :3]
    pred = kw - torch.einsum("nij,npj->npi", lin, qw - points[:, None, :].float())
    out = (pred * weights[..., None]).sum(1) / weights.sum(1, keepdim=True).clamp(min=1)
    mean_score = (sc * weights).sum(1) / weights.sum(1).clamp(min=1)
    return MatchResult(out, mean_score, keep.sum(1) >= k_min)


@MATCHERS.register("cycle")
def match_cycle(atlas: Embedding, target: Embedding, points: torch.Tensor, config: MatchConfig) -> MatchResult:
    """SAME++-style cycle-consistent matching (see the module docstring)."""
    heads = config.heads
    a_keys = atlas.descriptors(heads)
    query_world = points.float().clone()
    query = atlas.sample(query_world, heads)
    consistent = torch.zeros(len(points), dtype=torch.bool, device=points.device)
    k_world = torch.zeros_like(query_world)
    k_score = torch.zeros(len(points), device=points.device)
    k_index = torch.zeros(len(points), dtype=torch.long, device=points.device)
    first: torch.Tensor | None = None
    for _ in range(config.cycle_rounds):
        kw, ks, ki = best_match(query, target, heads, config.batch, config.subvoxel)
        todo = ~consistent
        k_world[todo], k_score[todo], k_index[todo] = kw[todo], ks[todo], ki[todo]
        _, back = _argmax(target.descriptors(heads)[ki], a_keys, config.batch)
        back_world = _index_to_world(_unflatten(back, atlas.fine_shape), atlas)
        own = _flatten(
            torch.minimum(
                world_to_index(query_world, atlas.fine_affine).round().clamp(min=0).long(),
                torch.tensor(atlas.fine_shape, device=points.device) - 1,
            ),
            atlas.fine_shape,
        )
        now = todo & (back == own)
        if first is None:
            first = now.clone()
        consistent |= now
        move = todo & ~now
        if not bool(move.any()):
            break
        query_world[move] = back_world[move]
        query[move] = a_keys[back[move]]
    assert first is not None
    return MatchResult(k_world + (points.float() - query_world), k_score, first)
