"""Spatial transforms in world millimetres, written once for 2D and 3D (`spatial_dims` = 2 or 3).

Conventions (one for the whole subsystem):
- A *grid* is a spatial shape (D, H, W) (or (H, W)) plus an (n+1, n+1) affine from tensor indices to world mm
  (RAS+ for scans; `tailorkit.anatomy.geometry.tensor_affine` converts a NIfTI-style (X, Y, Z) array affine).
- A *map* psi goes from fixed world to moving world (pull-back: the registered image is M o psi). It is stored as a
  *displacement* u on the fixed grid: psi(y) = y + u(y), u of shape (n, *shape), world-mm vector components (x, y[,
  z]) regardless of the tensor's index order. Affine maps are (n+1, n+1) world matrices y -> A y.
- Explicit conversions: `displacement_to_index` / `index_to_displacement` (voxel units of a grid) and
  `displacement_to_normalized` (PyTorch `grid_sample` [-1, 1] units, `align_corners=True`).
- Sampling treats tensor index k as the centre of voxel k (align_corners=True).

Metrics: Jacobian determinant of psi (central differences in index space, converted to world by the grid's linear
part), % folding (det <= 0), SDlogJ (std of log det, det clipped at 1e-9), Dice per label, TRE (mm).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "affine_displacement",
    "compose",
    "compose_affine",
    "dice",
    "displacement_to_index",
    "displacement_to_normalized",
    "exp_svf",
    "folding_percent",
    "grid_points",
    "index_to_displacement",
    "invert_svf",
    "jacobian_determinant",
    "map_points",
    "resample_displacement",
    "sample",
    "sdlogj",
    "tre",
    "warp_image",
    "warp_labels",
]


def _dims(shape: tuple[int, ...], affine: np.ndarray | torch.Tensor) -> int:
    n = len(shape)
    if n not in (2, 3):
        raise ValueError(f"grid: expected 2 or 3 spatial dimensions, got shape {tuple(shape)}")
    if tuple(np.shape(affine)) != (n + 1, n + 1):
        raise ValueError(f"grid affine: expected ({n + 1}, {n + 1}) for a {n}D grid, got {tuple(np.shape(affine))}")
    return n


def _aff(affine: np.ndarray | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(np.asarray(affine, dtype=np.float64), dtype=like.dtype, device=like.device)


def grid_points(
    shape: tuple[int, ...], affine: np.ndarray, device: torch.device | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """World coordinates of every voxel of a grid.

    Shapes:
        return: (n, *shape) world mm, channel c = world axis c.
    """
    n = _dims(tuple(shape), affine)
    axes = [torch.arange(s, dtype=torch.float64, device=device) for s in shape]
    idx = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=0).reshape(n, -1)
    a = torch.as_tensor(np.asarray(affine, dtype=np.float64), device=device)
    world = a[:n, :n] @ idx + a[:n, n : n + 1]
    return world.reshape(n, *shape).to(dtype)


def _world_to_normalized(world: torch.Tensor, shape: tuple[int, ...], affine: np.ndarray) -> torch.Tensor:
    """(n, *out) world points -> (*out, n) grid_sample coordinates of a grid (last axis reversed, [-1, 1])."""
    n = world.shape[0]
    inv = _aff(np.linalg.inv(np.asarray(affine, dtype=np.float64)), world)
    flat = world.reshape(n, -1)
    idx = inv[:n, :n] @ flat + inv[:n, n : n + 1]
    size = torch.tensor(shape, dtype=world.dtype, device=world.device)[:, None]
    norm = 2 * idx / (size - 1).clamp(min=1) - 1
    return norm.flip(0).T.reshape(*world.shape[1:], n)


def sample(
    image: torch.Tensor,
    affine: np.ndarray,
    world: torch.Tensor,
    mode: str = "bilinear",
    padding: str = "zeros",
) -> torch.Tensor:
    """Sample a (C, *shape) image with index -> world `affine` at world points (linear or nearest).

    Shapes:
        image: (C, *shape); world: (n, *out) -> return (C, *out)
    """
    n = world.shape[0]
    if image.ndim != n + 1:
        raise ValueError(f"sample: expected a (C, *shape) image with {n} spatial axes, got {tuple(image.shape)}")
    _dims(tuple(image.shape[1:]), affine)
    grid = _world_to_normalized(world.to(image.dtype), tuple(image.shape[1:]), affine)
    out = F.grid_sample(image[None], grid[None], mode=mode, padding_mode=padding, align_corners=True)
    return out[0]


def map_points(disp: torch.Tensor, affine: np.ndarray, points: torch.Tensor) -> torch.Tensor:
    """psi at world points: p + u(p), u sampled linearly (border-extended outside the grid).

    Shapes:
        disp: (n, *shape); points: (N, n) -> (N, n)
    """
    n = disp.shape[0]
    world = points.T.reshape(n, -1, *([1] * (n - 1)))
    u = sample(disp, affine, world, padding="border").reshape(n, -1).T
    return points + u


def affine_displacement(matrix: np.ndarray | torch.Tensor, shape: tuple[int, ...], affine: np.ndarray) -> torch.Tensor:
    """Displacement u(y) = A y - y of a world affine A on a grid.

    Shapes:
        matrix: (n+1, n+1) -> return (n, *shape)
    """
    n = _dims(tuple(shape), affine)
    y = grid_points(shape, affine)
    a = torch.as_tensor(matrix, dtype=torch.float64).to(y.device)
    moved = (a[:n, :n] @ y.reshape(n, -1).double() + a[:n, n : n + 1]).float()
    return (moved - y.reshape(n, -1)).reshape(n, *shape)


def compose(outer: torch.Tensor, inner: torch.Tensor, affine: np.ndarray) -> torch.Tensor:
    """Displacement of psi_outer o psi_inner (inner applied first), both on the same grid.

    u(y) = u_inner(y) + u_outer(y + u_inner(y)) (u_outer sampled linearly, border-extended).

    Shapes:
        outer, inner: (n, *shape) -> (n, *shape)
    """
    if outer.shape != inner.shape:
        raise ValueError(f"compose: expected displacements of equal shape, got {outer.shape} and {inner.shape}")
    world = grid_points(tuple(inner.shape[1:]), affine, inner.device, inner.dtype) + inner
    return inner + sample(outer, affine, world, padding="border")


def compose_affine(matrix: np.ndarray | torch.Tensor, inner: torch.Tensor, affine: np.ndarray) -> torch.Tensor:
    """Displacement of A o psi_inner: exact for the affine part (no interpolation of A's displacement).

    Shapes:
        matrix: (n+1, n+1); inner: (n, *shape) -> (n, *shape)
    """
    n = inner.shape[0]
    y = grid_points(tuple(inner.shape[1:]), affine, inner.device, inner.dtype)
    x = (y + inner).reshape(n, -1)
    a = torch.as_tensor(matrix, dtype=inner.dtype).to(inner.device)
    return (a[:n, :n] @ x + a[:n, n : n + 1]).reshape(y.shape) - y


def exp_svf(velocity: torch.Tensor, affine: np.ndarray, steps: int = 7) -> torch.Tensor:
    """Displacement of exp(v) by scaling and squaring (`steps` squarings), world mm on the velocity's grid.

    Shapes:
        velocity: (n, *shape) -> (n, *shape)
    """
    if steps < 0:
        raise ValueError(f"steps: expected >= 0, got {steps}")
    disp = velocity / (2**steps)
    for _ in range(steps):
        disp = compose(disp, disp, affine)
    return disp


def invert_svf(velocity: torch.Tensor, affine: np.ndarray, steps: int = 7) -> torch.Tensor:
    """Displacement of exp(-v) = exp(v)^-1."""
    return exp_svf(-velocity, affine, steps)


def displacement_to_index(disp: torch.Tensor, affine: np.ndarray) -> torch.Tensor:
    """World-mm displacement -> displacement in the grid's index units (per tensor axis). Shapes: (n, *s)."""
    n = disp.shape[0]
    inv = _aff(np.linalg.inv(np.asarray(affine, dtype=np.float64))[:n, :n], disp)
    return (inv @ disp.reshape(n, -1)).reshape(disp.shape)


def index_to_displacement(disp_index: torch.Tensor, affine: np.ndarray) -> torch.Tensor:
    """Index-unit displacement -> world mm (inverse of `displacement_to_index`). Shapes: (n, *s)."""
    n = disp_index.shape[0]
    lin = _aff(np.asarray(affine, dtype=np.float64)[:n, :n], disp_index)
    return (lin @ disp_index.reshape(n, -1)).reshape(disp_index.shape)


def displacement_to_normalized(disp: torch.Tensor, affine: np.ndarray) -> torch.Tensor:
    """World-mm displacement -> PyTorch grid_sample units ([-1, 1] over each axis, align_corners=True), in
    grid_sample's reversed axis order (last channel = first tensor axis). Shapes: (n, *s) -> (n, *s)."""
    idx = displacement_to_index(disp, affine)
    size = torch.tensor(disp.shape[1:], dtype=disp.dtype, device=disp.device)
    scale = (2.0 / (size - 1).clamp(min=1)).reshape(-1, *([1] * (disp.ndim - 1)))
    return (idx * scale).flip(0)


def resample_displacement(
    disp: torch.Tensor, affine: np.ndarray, shape: tuple[int, ...], target_affine: np.ndarray
) -> torch.Tensor:
    """A displacement on another grid (linear, border-extended): psi is unchanged where both grids overlap."""
    world = grid_points(shape, target_affine, disp.device, disp.dtype)
    return sample(disp, affine, world, padding="border")


def warp_image(
    moving: torch.Tensor,
    moving_affine: np.ndarray,
    disp: torch.Tensor,
    fixed_affine: np.ndarray,
    mode: str = "bilinear",
) -> torch.Tensor:
    """M o psi on the fixed grid (zero outside the moving image).

    Shapes:
        moving: (*m_shape) or (C, *m_shape); disp: (n, *f_shape) -> (*f_shape) or (C, *f_shape)
    """
    n = disp.shape[0]
    squeeze = moving.ndim == n
    image = moving[None] if squeeze else moving
    world = grid_points(tuple(disp.shape[1:]), fixed_affine, disp.device, disp.dtype) + disp
    out = sample(image.to(disp.dtype), moving_affine, world, mode=mode)
    return out[0] if squeeze else out


def warp_labels(
    labels: torch.Tensor,
    moving_affine: np.ndarray,
    disp: torch.Tensor,
    fixed_affine: np.ndarray,
    mode: str = "nearest",
) -> torch.Tensor:
    """Label map warped without blending: nearest neighbour, or "onehot" (linear interpolation of each label's
    indicator, arg-max; smoother boundaries). Values stay within the input's label set.

    Shapes:
        labels: (*m_shape) integer; disp: (n, *f_shape) -> (*f_shape) int64
    """
    if labels.is_floating_point() and not torch.equal(labels, labels.round()):
        raise ValueError("warp_labels: expected an integer label map, got non-integer values")
    lab = labels.long()
    if mode == "nearest":
        return warp_image(lab.float(), moving_affine, disp, fixed_affine, mode="nearest").round().long()
    if mode != "onehot":
        raise ValueError(f"label mode: expected 'nearest' or 'onehot', got {mode!r}")
    values = torch.unique(lab)
    best = torch.full(disp.shape[1:], -1.0, device=disp.device)
    out = torch.zeros(disp.shape[1:], dtype=torch.long, device=disp.device)
    for v in values:  # one label at a time keeps the memory at two volumes
        prob = warp_image((lab == v).float(), moving_affine, disp, fixed_affine)
        take = prob > best
        best = torch.where(take, prob, best)
        out = torch.where(take, v, out)
    return out


def jacobian_determinant(disp: torch.Tensor, affine: np.ndarray) -> torch.Tensor:
    """det of the world Jacobian of psi(y) = y + u(y) (central differences inside, one-sided at the border).

    J_world = (L + du/didx) L^-1, L the grid's linear part, so det = det(L + du/didx) / det(L).

    Shapes:
        disp: (n, *shape) -> (*shape)
    """
    n = disp.shape[0]
    lin = _aff(np.asarray(affine, dtype=np.float64)[:n, :n], disp)
    grads = torch.gradient(disp, dim=tuple(range(1, n + 1)))  # d u_c / d idx_j, each (n, *shape)
    jac = torch.stack(grads, dim=1)  # (n_c, n_j, *shape)
    jac = jac + lin.reshape(n, n, *([1] * n))
    det = torch.linalg.det(jac.permute(*range(2, n + 2), 0, 1))
    return det / torch.linalg.det(lin)


def _masked(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return values.reshape(-1)
    if mask.shape != values.shape:
        raise ValueError(f"mask: expected shape {tuple(values.shape)}, got {tuple(mask.shape)}")
    return values[mask.bool()]


def folding_percent(det: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Share (%) of voxels (inside `mask`) with a non-positive Jacobian determinant."""
    v = _masked(det, mask)
    return float((v <= 0).double().mean() * 100) if v.numel() else 0.0


def sdlogj(det: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Standard deviation of log(det J) (inside `mask`; det clipped at 1e-9 as the usual evaluation scripts do)."""
    v = _masked(det, mask).double()
    return float(torch.log(v.clamp(min=1e-9)).std(unbiased=False)) if v.numel() else 0.0


def dice(pred: torch.Tensor | np.ndarray, truth: torch.Tensor | np.ndarray, labels: list[int] | None = None) -> float:
    """Mean Dice over `labels` (default: every non-zero label of `truth`); a label absent from both counts 1."""
    p = torch.as_tensor(np.asarray(pred)).long().reshape(-1)
    t = torch.as_tensor(np.asarray(truth)).long().reshape(-1)
    if p.shape != t.shape:
        raise ValueError(f"dice: expected label maps of equal size, got {p.numel()} and {t.numel()} voxels")
    ids = [int(v) for v in torch.unique(t) if int(v) != 0] if labels is None else list(labels)
    if not ids:
        return math.nan
    size = int(max(int(p.max()), int(t.max()), max(ids))) + 1
    inter = torch.bincount(t[p == t], minlength=size).double()
    cp = torch.bincount(p, minlength=size).double()
    ct = torch.bincount(t, minlength=size).double()
    idx = torch.tensor(ids)
    denom = cp[idx] + ct[idx]
    d = torch.where(denom > 0, 2 * inter[idx] / denom.clamp(min=1), torch.ones_like(denom))
    return float(d.mean())


def tre(pred: torch.Tensor | np.ndarray, truth: torch.Tensor | np.ndarray) -> np.ndarray:
    """Target registration error per landmark (Euclidean, mm). Shapes: (N, n), (N, n) -> (N,)."""
    a, b = np.asarray(pred, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"tre: expected point sets of equal shape, got {a.shape} and {b.shape}")
    return np.linalg.norm(a - b, axis=-1)
