"""SAME++ steps 1, 2 and 4: SAM-Affine, SAM-Coarse, SAM-IO (Tian et al., arXiv 2311.14986; official code
alibaba-damo-academy/same, read in full; what it fixes is listed in docs/registration.md#the-method-as-implemented).

Every step takes `FeatureMap`s of the fixed and the moving image and returns a fixed -> moving world map, so that
each is usable alone and the pipeline composes them (`pipeline.register`). Written for 2D and 3D.

- `sam_affine` ([verified: code], docs/registration.md#the-method-as-implemented): queries on a `query_stride_mm` grid
  of the fixed feature map inside a foreground mask; match = arg-max similarity over the whole moving map; stable
  matching: up to `cycle_rounds` forward/backward rounds, a query whose backward match lands in its own feature voxel is
  kept (otherwise it moves to its backward match and tries again); keep score > `score_threshold`; least squares on
  homogeneous world coordinates (official `torch.linalg.lstsq`, no robust weighting; `fit="huber"` uses
  `anatomy.robust_affine`, a flagged improvement). [inferred] With fewer than `min_matches` passing, the best-scoring
  stable ones are used; the official code works in [-1, 1] coordinates and the fixed/moving roles follow the pull-back
  convention here. `model="rigid"` fits a rotation + translation (Kabsch) instead, for the rigid-then-affine option
  (docs/registration.md#initialisation-and-checks).
- `sam_coarse` (docs/registration.md#the-method-as-implemented): a zero-initialised displacement on a grid of the
  working grid / `stride`, Adam (lr 0.05, 100 iterations, [-1, 1] units), minimising the mean squared distance between
  A(q + u(q)) and the matched moving points plus `diffusion` x mean squared forward differences. The result A o (id + u)
  is the pre-alignment for the later steps. [inferred] the field is applied before the affine (the composition order is
  not pinned down by the official code's reading).
- `sam_io` (docs/registration.md#the-method-as-implemented): a zero-initialised displacement on the fixed feature grid,
  Adam lr 0.05 (eps 1e-4), 50 iterations; every iteration the parameter is smoothed by `smooth_pools` 3^n average pools;
  loss = -mean cosine of the warped moving features and the fixed features + `diffusion` x mean squared forward
  differences of the smoothed displacement ([-1, 1] units). The result is upsampled linearly to the working grid,
  smoothed by the same pools and composed with the previous map. [inferred] One cosine over the concatenated (fine +
  coarse) descriptor instead of the sum of the two heads' cosines; [CPU] descriptors wider than `pca_channels` (SAM's
  256) are first projected on their leading principal directions (`project_features`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from tailorkit.registration.config import AffineConfig, CoarseConfig, IOConfig
from tailorkit.registration.features import FeatureMap
from tailorkit.registration.transforms import compose, compose_affine, grid_points, sample

__all__ = [
    "AffineResult",
    "cycle_matches",
    "diffusion_energy",
    "fit_affine",
    "fit_rigid",
    "half_extent",
    "project_features",
    "sam_affine",
    "sam_coarse",
    "sam_io",
    "smooth_field",
]


@dataclass
class AffineResult:
    """SAM-Affine's output.

    Shapes:
        matrix: (n+1, n+1) fixed world -> moving world; fixed_points, moving_points: (M, n) the matches used;
        score: (M,).
    """

    matrix: np.ndarray
    fixed_points: torch.Tensor
    moving_points: torch.Tensor
    score: torch.Tensor
    n_stable: int
    n_queries: int


def _flat_index(idx: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    out = torch.zeros(len(idx), dtype=torch.long, device=idx.device)
    for axis, size in enumerate(shape):
        out = out * size + idx[:, axis]
    return out


def _unflat(index: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    parts = []
    for size in reversed(shape):
        parts.append(index % size)
        index = index // size
    return torch.stack(parts[::-1], dim=1)


def _to_world(idx: torch.Tensor, affine: np.ndarray) -> torch.Tensor:
    n = idx.shape[1]
    a = torch.as_tensor(affine, dtype=torch.float32, device=idx.device)
    return idx.float() @ a[:n, :n].T + a[:n, n]


def _argmax(
    query: torch.Tensor,
    keys: torch.Tensor,
    batch: int = 1024,
    query_world: torch.Tensor | None = None,
    key_world: torch.Tensor | None = None,
    radius: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Arg-max of query @ keys per query, optionally only over keys within `radius` mm of the query's position."""
    scores, index = [], []
    for i in range(0, len(query), batch):
        sim = query[i : i + batch] @ keys
        if radius > 0 and query_world is not None and key_world is not None:
            far = torch.cdist(query_world[i : i + batch], key_world) > radius
            sim = sim.masked_fill(far, -2.0)
        s, j = sim.max(dim=1)
        scores.append(s)
        index.append(j)
    return torch.cat(scores), torch.cat(index)


def cycle_matches(
    fixed: FeatureMap, moving: FeatureMap, query_idx: torch.Tensor, rounds: int = 5, radius: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stable (cycle-consistent) matches of fixed feature voxels in the moving map (whole map, or within `radius`
    mm of the query's world position when > 0).

    Shapes:
        query_idx: (Q, n) fixed feature-grid indices -> fixed world (Q, n), moving world (Q, n), score (Q,),
        stable (Q,) bool. Unstable queries report their last pair.
    """
    fkeys = fixed.data.reshape(fixed.data.shape[0], -1)
    mkeys = moving.data.reshape(moving.data.shape[0], -1)
    cur = _flat_index(query_idx, fixed.shape)
    stable = torch.zeros(len(cur), dtype=torch.bool, device=cur.device)
    m_idx = torch.zeros_like(cur)
    score = torch.zeros(len(cur), device=cur.device)
    fworld = mworld = None
    if radius > 0:
        fworld = grid_points(fixed.shape, fixed.affine, cur.device).reshape(len(fixed.shape), -1).T
        mworld = grid_points(moving.shape, moving.affine, cur.device).reshape(len(moving.shape), -1).T
    for _ in range(rounds):
        todo = ~stable
        if not bool(todo.any()):
            break
        qw = None if fworld is None else fworld[cur[todo]]
        s, j = _argmax(fkeys[:, cur[todo]].T, mkeys, query_world=qw, key_world=mworld, radius=radius)
        kw = None if mworld is None else mworld[j]
        _, back = _argmax(mkeys[:, j].T, fkeys, query_world=kw, key_world=fworld, radius=radius)
        m_idx[todo], score[todo] = j, s
        ok = back == cur[todo]
        sub = torch.nonzero(todo).reshape(-1)
        stable[sub[ok]] = True
        cur[sub[~ok]] = back[~ok]
    q_world = _to_world(_unflat(cur, fixed.shape), fixed.affine)
    m_world = _to_world(_unflat(m_idx, moving.shape), moving.affine)
    return q_world, m_world, score, stable


def fit_affine(src: torch.Tensor, dst: torch.Tensor, method: str = "lstsq") -> np.ndarray:
    """Affine A with dst ~ A src (homogeneous least squares or Huber IRLS). Shapes: (M, n), (M, n) -> (n+1, n+1)."""
    n = src.shape[1]
    if len(src) < n + 1:
        raise ValueError(f"fit_affine: expected at least {n + 1} correspondences, got {len(src)}")
    if method == "huber":
        from tailorkit.anatomy.matching import robust_affine

        pad = 3 - n  # anatomy's fit is 3D; a 2D problem gets a constant third coordinate (its ridge keeps it fixed)
        s3 = F.pad(src.double(), (0, pad))
        d3 = F.pad(dst.double(), (0, pad))
        a3 = robust_affine(s3, d3).numpy()
        out = np.eye(n + 1)
        out[:n, :n], out[:n, n] = a3[:n, :n], a3[:n, 3]
        return out
    if method != "lstsq":
        raise ValueError(f"fit: expected 'lstsq' or 'huber', got {method!r}")
    x = torch.cat([src.double(), torch.ones(len(src), 1, dtype=torch.float64, device=src.device)], dim=1)
    sol = torch.linalg.lstsq(x.cpu(), dst.double().cpu()).solution  # (n+1, n)
    out = np.eye(n + 1)
    out[:n, :] = sol.T.numpy()
    return out


def fit_rigid(src: torch.Tensor, dst: torch.Tensor) -> np.ndarray:
    """Rotation + translation with dst ~ R src + t (Kabsch, det R = +1). Shapes: (M, n), (M, n) -> (n+1, n+1)."""
    n = src.shape[1]
    if len(src) < n:
        raise ValueError(f"fit_rigid: expected at least {n} correspondences, got {len(src)}")
    a, b = src.double().cpu().numpy(), dst.double().cpu().numpy()
    ca, cb = a.mean(0), b.mean(0)
    u, _, vt = np.linalg.svd((a - ca).T @ (b - cb))
    d = np.ones(n)
    d[-1] = np.sign(np.linalg.det(vt.T @ u.T)) or 1.0
    rot = vt.T @ np.diag(d) @ u.T
    out = np.eye(n + 1)
    out[:n, :n], out[:n, n] = rot, cb - rot @ ca
    return out


def sam_affine(
    fixed: FeatureMap,
    moving: FeatureMap,
    config: AffineConfig,
    mask: torch.Tensor | None = None,
    model: str = "affine",
) -> AffineResult:
    """SAM-Affine (see the module docstring). `mask`: (fixed feature grid) bool foreground, or None for all;
    `model`: "affine" or "rigid" (the transform fitted to the matches)."""
    if model not in ("affine", "rigid"):
        raise ValueError(f"sam_affine model: expected affine or rigid, got {model!r}")
    n = len(fixed.shape)
    spacing = float(np.linalg.norm(fixed.affine[:n, :n], axis=0).mean())
    stride = max(1, round(config.query_stride_mm / spacing))
    axes = [torch.arange(stride // 2, s, stride, device=fixed.data.device) for s in fixed.shape]
    idx = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, n)
    if mask is not None:
        idx = idx[mask[tuple(idx.T)]]
    if len(idx) < n + 1:
        raise ValueError(f"sam_affine: only {len(idx)} query points inside the fixed image's foreground")
    q, m, score, stable = cycle_matches(fixed, moving, idx, config.cycle_rounds, config.search_radius_mm)
    keep = stable & (score > config.score_threshold)
    # de-duplicate identical (query, match) pairs left by converging cycles
    _, first = np.unique(np.round(torch.cat([q, m], 1).cpu().numpy(), 3), axis=0, return_index=True)
    unique = torch.zeros_like(keep)
    unique[torch.as_tensor(first)] = True
    keep &= unique
    if int(keep.sum()) < config.min_matches:
        cand = torch.nonzero(stable & unique).reshape(-1)
        if len(cand) < n + 1:
            cand = torch.nonzero(unique).reshape(-1)
        order = cand[torch.argsort(score[cand], descending=True)][: config.min_matches]
        keep = torch.zeros_like(keep)
        keep[order] = True
    matrix = fit_rigid(q[keep], m[keep]) if model == "rigid" else fit_affine(q[keep], m[keep], config.fit)
    return AffineResult(matrix, q[keep], m[keep], score[keep], int(stable.sum()), len(idx))


def half_extent(shape: tuple[int, ...], affine: np.ndarray) -> torch.Tensor:
    """Half the world extent of a grid along each world axis: the mm of one [-1, 1] unit. Shapes: (n,)."""
    n = len(shape)
    lin = np.abs(np.asarray(affine)[:n, :n]) @ (np.asarray(shape, dtype=np.float64) - 1)
    return torch.as_tensor(np.maximum(lin / 2, 1e-6), dtype=torch.float32)


def diffusion_energy(u: torch.Tensor) -> torch.Tensor:
    """Mean squared forward differences over every spatial axis. Shapes: (n, *shape) -> ()."""
    total = u.new_zeros(())
    for axis in range(1, u.ndim):
        if u.shape[axis] > 1:
            total = total + (torch.diff(u, dim=axis) ** 2).mean()
    return total


def sam_coarse(
    affine_result: AffineResult, shape: tuple[int, ...], grid_affine: np.ndarray, config: CoarseConfig
) -> torch.Tensor:
    """SAM-Coarse: the displacement of A o (id + u) on the working grid, u fitted to the affine's matches.

    Shapes:
        return (n, *shape) world mm.
    """
    n = len(shape)
    q, m = affine_result.fixed_points.float(), affine_result.moving_points.float()
    cshape = tuple(int(np.ceil((s - 1) / config.stride)) + 1 for s in shape)
    caff = np.asarray(grid_affine, dtype=np.float64).copy()
    caff[:n, :n] = caff[:n, :n] * config.stride
    half = half_extent(shape, grid_affine).to(q.device)
    bshape = (n,) + (1,) * n
    a = torch.as_tensor(affine_result.matrix, dtype=torch.float32, device=q.device)
    param = torch.zeros(n, *cshape, device=q.device, requires_grad=True)
    opt = torch.optim.Adam([param], lr=config.lr)
    pts = q.T.reshape(n, -1, *([1] * (n - 1)))
    for _ in range(config.iterations):
        opt.zero_grad()
        u = sample(param * half.reshape(bshape), caff, pts, padding="border").reshape(n, -1).T
        moved = (q + u) @ a[:n, :n].T + a[:n, n]
        loss = (((moved - m) / half) ** 2).sum(1).mean() + config.diffusion * diffusion_energy(param)
        loss.backward()
        opt.step()
    with torch.no_grad():
        dense = sample(param * half.reshape(bshape), caff, grid_points(shape, grid_affine, q.device), padding="border")
        return compose_affine(affine_result.matrix, dense, grid_affine)


def smooth_field(u: torch.Tensor, pools: int) -> torch.Tensor:
    n = u.ndim - 1
    pool = F.avg_pool2d if n == 2 else F.avg_pool3d
    out = u[None]
    for _ in range(pools):
        out = pool(out, 3, stride=1, padding=1, count_include_pad=False)
    return out[0]


def project_features(fixed: FeatureMap, moving: FeatureMap, channels: int) -> tuple[FeatureMap, FeatureMap]:
    """Both maps projected on the `channels` leading right-singular vectors of their pooled descriptors (uncentred,
    so cosines are approximated in the principal subspace), re-normalised. [CPU] speeds SAM-IO up ~8x at 32."""
    c = fixed.data.shape[0]
    pool = torch.cat([fixed.data.reshape(c, -1), moving.data.reshape(c, -1)], dim=1).T
    step = max(1, len(pool) // 20000)
    _, _, vh = torch.linalg.svd(pool[::step], full_matrices=False)
    basis = vh[:channels]  # (k, C)

    def proj(fm: FeatureMap) -> FeatureMap:
        data = (basis @ fm.data.reshape(c, -1)).reshape(channels, *fm.shape)
        return FeatureMap(F.normalize(data, dim=0), fm.affine, fm.kind)

    return proj(fixed), proj(moving)


def sam_io(
    fixed: FeatureMap,
    moving: FeatureMap,
    previous: torch.Tensor,
    grid_affine: np.ndarray,
    config: IOConfig,
) -> torch.Tensor:
    """SAM-IO: refine the map `previous` (fixed -> moving displacement on the working grid) by instance
    optimisation of the feature similarity. Returns the composed displacement on the working grid.

    Shapes:
        previous: (n, *shape) -> (n, *shape)
    """
    n = previous.shape[0]
    shape = tuple(previous.shape[1:])
    if config.pca_channels and fixed.data.shape[0] > config.pca_channels:
        fixed, moving = project_features(fixed, moving, config.pca_channels)
    fshape = fixed.shape
    half = half_extent(fshape, fixed.affine).to(previous.device).reshape((n,) + (1,) * n)
    base = grid_points(fshape, fixed.affine, previous.device)
    target = fixed.data
    param = torch.zeros(n, *fshape, device=previous.device, requires_grad=True)
    opt = torch.optim.Adam([param], lr=config.lr, eps=1e-4)
    for _ in range(config.iterations):
        opt.zero_grad()
        smooth = smooth_field(param, config.smooth_pools)
        world = base + smooth * half
        moved = world + sample(previous, grid_affine, world, padding="border")
        warped = F.normalize(sample(moving.data, moving.affine, moved, padding="border"), dim=0)
        loss = -(warped * target).sum(0).mean() + config.diffusion * diffusion_energy(smooth)
        loss.backward()
        opt.step()
    with torch.no_grad():
        u = smooth_field(param, config.smooth_pools) * half
        dense = sample(u, fixed.affine, grid_points(shape, grid_affine, previous.device), padding="border")
        dense = smooth_field(dense, config.smooth_pools)
        return compose(previous, dense, grid_affine)
