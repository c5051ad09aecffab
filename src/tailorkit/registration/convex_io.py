"""Instance optimisation of the convexAdam family (`io.kind=convex_adam`; issue 26 item 3).

convexAdam (Siebert, Grossbroehmer, Hansen and Heinrich, "ConvexAdam: self-configuring dual-optimisation-based 3D
multitask medical image registration", IEEE TMI 2024; the `convexAdam` package, `convex_adam_MIND.py` and
`convex_adam_utils.py`) registers in two stages, and SAME++'s SAMConvex builds on the same family. Written here in
plain torch for 2D and 3D on our `FeatureMap`s (MIND-like or SAM descriptors), device-neutral, as a drop-in for
`same.sam_io`: it refines the map so far, `previous` (fixed -> moving displacement on the working grid), and returns
the composed displacement psi_previous o (id + u).

1. Coupled convex discrete search (`convex_search`). The moving features are resampled through `previous` onto the
   fixed feature grid, padded by the search range. Control points lie every `grid` feature voxels; for every
   displacement d of the cube {-radius .. radius}^n x `step` feature voxels the cost at a control point is the
   feature SSD (sum over channels of the squared difference) averaged over its `grid`^n cell [inferred: convexAdam
   takes the SSD of cell-averaged features], then box-filtered `cost_smooth` times (3^n) over the control points
   (convexAdam: twice). The field starts as the per-point arg-min, box-smoothed (3^n); each weight c of `coupling`
   (convexAdam: 0.003 .. 1) then sets every point to the arg-min of cost + c x |d - smoothed field|^2 (in steps),
   and the new field is that arg-min, box-smoothed (the "convex" step: the data term and the smoothness term are
   minimised alternately, their coupling tightened each round). Ties (e.g. a flat background) go to the smallest
   |d| (a 1e-6 x |d|^2 tie-break) [inferred: convexAdam's arg-min takes the cube's first corner].
   `inverse_consistent` (convexAdam's ic): the same search from the moving to the fixed features, then
   `ic_iterations` rounds of u <- (u - v o (id + u)) / 2, v <- (v - u o (id + v)) / 2 (convexAdam's
   `inverse_consistency`). The box filters leave the border out of their average [inferred: convexAdam's pools count
   the zero padding, which pulls border points towards zero].
2. Adam (`adam_levels`): for each pooling factor f of `levels` (coarse to fine; convexAdam: one level at half the
   image resolution, which is our feature grid), a dense displacement on the feature grid pooled by f, initialised
   by the field so far; every iteration it is smoothed by `smooth_pools` 3^n average pools (B-spline-like; convexAdam
   3) and the loss is the mean feature SSD of the moving features (pooled by f) at psi_previous(y + u(y)) against
   the fixed features plus `diffusion` x the sum over axes of the mean squared forward differences of u in level
   voxels (convexAdam's lambda 1.25). Adam, `lr` 1 level voxel (convexAdam), `iterations` per level [inferred:
   convexAdam runs 80 on one level]. The result is upsampled linearly to the working grid (no further smoothing,
   convexAdam's selected_smooth 0) and composed with `previous`.

Every setting is in `config.ConvexIOConfig` (docs/registration.md#convex-adam-instance-optimisation says which are
convexAdam's and which are [inferred]). Descriptors wider than `io.pca_channels` (SAM's 256) are first projected on
their leading principal directions (`same.project_features`) [CPU], as for SAM-IO.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from tailorkit.registration.config import ConvexIOConfig, IOConfig
from tailorkit.registration.features import FeatureMap, pool_affine
from tailorkit.registration.same import diffusion_energy, project_features, smooth_field
from tailorkit.registration.transforms import (
    compose,
    displacement_to_index,
    grid_points,
    index_to_displacement,
    sample,
)

__all__ = ["adam_levels", "convex_adam_io", "convex_search", "cost_volume", "coupled_convex", "feature_ssd"]

_TIE_BREAK = 1e-6  # x |d|^2 (steps): equal costs go to the smallest displacement


def _avg_pool(n: int) -> Any:
    return F.avg_pool2d if n == 2 else F.avg_pool3d


def _box(x: torch.Tensor, times: int) -> torch.Tensor:
    """`times` 3^n box filters over the spatial axes of a (B, *shape) tensor, the border left out of the mean."""
    n = x.ndim - 1
    out = x[:, None]
    for _ in range(times):
        out = _avg_pool(n)(out, 3, stride=1, padding=1, count_include_pad=False)
    return out[:, 0]


def _pooled(fm: FeatureMap, factor: int) -> FeatureMap:
    if factor == 1:
        return fm
    data = _avg_pool(len(fm.shape))(fm.data[None], factor, stride=factor, ceil_mode=True)[0]
    return FeatureMap(data, pool_affine(fm.affine, factor), fm.kind)


def _offsets(n: int, radius: int, device: torch.device) -> torch.Tensor:
    """The displacement cube in steps, tensor-axis order. Shapes: (n, (2 radius + 1)^n)."""
    r = torch.arange(-radius, radius + 1, device=device)
    return torch.stack(torch.meshgrid(*([r] * n), indexing="ij"), dim=0).reshape(n, -1)


def _shifted_grid(affine: np.ndarray, pad: int) -> np.ndarray:
    """The affine of a grid enlarged by `pad` voxels on every side."""
    n = affine.shape[0] - 1
    out = np.asarray(affine, dtype=np.float64).copy()
    out[:n, n] = out[:n, n] - out[:n, :n] @ np.full(n, float(pad))
    return out


def cost_volume(
    fixed: torch.Tensor, moving_padded: torch.Tensor, pad: int, offsets: torch.Tensor, step: int, grid: int,
    smooth: int, chunk: int = 64,
) -> torch.Tensor:  # fmt: skip
    """Feature SSD of every displacement of the cube at every control point.

    `moving_padded` is the moving feature map on the fixed grid enlarged by `pad` voxels per side; displacement k
    shifts it by offsets[:, k] x `step` voxels. The SSD (sum over channels) is averaged over each control point's
    `grid`^n cell, then box-filtered `smooth` times over the control points.

    Shapes:
        fixed: (C, *shape); moving_padded: (C, *(shape + 2 pad)); offsets: (n, K) -> (K, *ceil(shape / grid))
    """
    n = fixed.ndim - 1
    shape = tuple(fixed.shape[1:])
    if int(offsets.abs().max()) * step > pad:
        raise ValueError(f"cost_volume: the search range exceeds the padding ({pad} voxels)")
    out = []
    for start in range(0, offsets.shape[1], chunk):
        ssd = []
        for k in range(start, min(start + chunk, offsets.shape[1])):
            sl = tuple(
                slice(pad + int(o) * step, pad + int(o) * step + s) for o, s in zip(offsets[:, k], shape, strict=True)
            )
            ssd.append(((fixed - moving_padded[(slice(None), *sl)]) ** 2).sum(0))
        block = torch.stack(ssd)[:, None]
        if grid > 1:
            block = _avg_pool(n)(block, grid, stride=grid, ceil_mode=True)
        out.append(block[:, 0])
    return _box(torch.cat(out), smooth)


def coupled_convex(cost: torch.Tensor, offsets: torch.Tensor, coupling: tuple[float, ...]) -> torch.Tensor:
    """The coupled convex optimisation: arg-min of the cost, then for each coupling weight c the arg-min of
    cost + c |d - smoothed field|^2, each arg-min field box-smoothed (3^n). Displacements in steps.

    Shapes:
        cost: (K, *grid_shape); offsets: (n, K) -> (n, *grid_shape)
    """
    n = offsets.shape[0]
    gshape = tuple(cost.shape[1:])
    flat = cost.reshape(cost.shape[0], -1)
    o = offsets.to(flat.dtype)
    norm = (o**2).sum(0)[:, None]  # (K, 1)
    idx = (flat + _TIE_BREAK * norm).argmin(0)
    soft = _box(o[:, idx].reshape(n, *gshape), 1)
    for c in coupling:
        # |d - s|^2 = |d|^2 - 2 d.s + |s|^2, the last constant per point
        coupled = flat + (c + _TIE_BREAK) * norm - 2 * c * (o.T @ soft.reshape(n, -1))
        idx = coupled.argmin(0)
        soft = _box(o[:, idx].reshape(n, *gshape), 1)
    return soft


def _warp_features(
    fm: FeatureMap, points: torch.Tensor, previous: torch.Tensor, grid_affine: np.ndarray
) -> torch.Tensor:
    """fm at psi_previous(points). Shapes: points (n, *out) world mm -> (C, *out)."""
    moved = points + sample(previous, grid_affine, points, padding="border")
    return sample(fm.data, fm.affine, moved, padding="border")


def _inverse_consistent(u: torch.Tensor, v: torch.Tensor, affine: np.ndarray, iterations: int) -> torch.Tensor:
    """convexAdam's inverse consistency of a forward u and a backward v (world mm, same grid): the forward part."""
    base = grid_points(tuple(u.shape[1:]), affine, u.device, u.dtype)
    for _ in range(iterations):
        u, v = (
            0.5 * (u - sample(v, affine, base + u, padding="border")),
            0.5 * (v - sample(u, affine, base + v, padding="border")),
        )
    return u


def convex_search(
    fixed: FeatureMap, moving: FeatureMap, previous: torch.Tensor, grid_affine: np.ndarray, config: ConvexIOConfig
) -> tuple[torch.Tensor, np.ndarray]:
    """Step 1 (module docstring): the coupled convex field on the control-point grid, world mm, to be applied after
    `previous` (psi_previous o (id + u)); returns it with the control grid's affine.

    Shapes:
        fixed.data: (C, *f_shape); previous: (n, *work_shape) -> (n, *ceil(f_shape / grid)), (n+1, n+1)
    """
    n = len(fixed.shape)
    pad = config.radius * config.step
    pshape = tuple(s + 2 * pad for s in fixed.shape)
    paff = _shifted_grid(fixed.affine, pad)
    device = fixed.data.device
    points = grid_points(pshape, paff, device)
    warped = _warp_features(moving, points, previous, grid_affine)  # (C, *pshape)
    offsets = _offsets(n, config.radius, device)
    cost = cost_volume(fixed.data, warped, pad, offsets, config.step, config.grid, config.cost_smooth)
    caff = pool_affine(fixed.affine, config.grid)
    u = index_to_displacement(coupled_convex(cost, offsets, config.coupling) * config.step, fixed.affine)
    if config.inverse_consistent:
        inner = tuple(slice(pad, pad + s) for s in fixed.shape)
        fixed_padded = sample(fixed.data, fixed.affine, points, padding="border")
        back = cost_volume(warped[(slice(None), *inner)], fixed_padded, pad, offsets, config.step, config.grid,
                           config.cost_smooth)  # fmt: skip
        v = index_to_displacement(coupled_convex(back, offsets, config.coupling) * config.step, fixed.affine)
        u = _inverse_consistent(u, v, caff, config.ic_iterations)
    return u, caff


def adam_levels(
    fixed: FeatureMap,
    moving: FeatureMap,
    previous: torch.Tensor,
    grid_affine: np.ndarray,
    config: ConvexIOConfig,
    init: tuple[torch.Tensor, np.ndarray] | None = None,
) -> tuple[torch.Tensor, np.ndarray]:
    """Step 2 (module docstring): Adam with diffusion regularisation, level by level; `init` is a field (world mm)
    and its grid affine to start from (None: zero). Returns the field on the finest level's grid and its affine.

    Shapes:
        init: (n, *g_shape) world mm -> (n, *level_shape), (n+1, n+1)
    """
    n = len(fixed.shape)
    device = fixed.data.device
    u, uaff = init if init is not None else (None, fixed.affine)
    for factor, iterations in zip(config.levels, config.iterations, strict=True):
        fl, ml = _pooled(fixed, factor), _pooled(moving, factor)
        base = grid_points(fl.shape, fl.affine, device)
        start = torch.zeros(n, *fl.shape, device=device) if u is None else sample(u, uaff, base, padding="border")
        param = displacement_to_index(start, fl.affine).clone().requires_grad_(True)
        opt = torch.optim.Adam([param], lr=config.lr)
        for it in range(iterations):
            if config.lr_decay:  # cosine from lr to 0 over the level: Adam settles instead of jittering by ~lr
                opt.param_groups[0]["lr"] = config.lr * 0.5 * (1 + math.cos(math.pi * it / iterations))
            opt.zero_grad()
            smooth = smooth_field(param, config.smooth_pools)
            warped = _warp_features(ml, base + index_to_displacement(smooth, fl.affine), previous, grid_affine)
            loss = ((warped - fl.data) ** 2).sum(0).mean() + config.diffusion * diffusion_energy(smooth)
            loss.backward()
            opt.step()
        with torch.no_grad():
            u, uaff = index_to_displacement(smooth_field(param, config.smooth_pools), fl.affine), fl.affine
    if u is None:
        return torch.zeros(n, *fixed.shape, device=device), fixed.affine
    return u.detach(), uaff


def feature_ssd(fixed: FeatureMap, moving: FeatureMap, displacement: torch.Tensor, grid_affine: np.ndarray) -> float:
    """Mean feature SSD (sum over channels) between the fixed features and the moving features at psi(y), y on the
    fixed feature grid, psi = id + `displacement` (on the grid `grid_affine`). Shapes: displacement (n, *shape)."""
    with torch.no_grad():
        points = grid_points(fixed.shape, fixed.affine, fixed.data.device)
        return float(((_warp_features(moving, points, displacement, grid_affine) - fixed.data) ** 2).sum(0).mean())


def convex_adam_io(
    fixed: FeatureMap,
    moving: FeatureMap,
    previous: torch.Tensor,
    grid_affine: np.ndarray,
    config: IOConfig,
    report: dict[str, Any] | None = None,
) -> torch.Tensor:
    """The convexAdam-family instance optimisation (module docstring), a drop-in for `same.sam_io`: refines
    `previous` (fixed -> moving displacement on the working grid) and returns the composed displacement there.
    `report`, when given, receives the seconds of each stage and the mean feature SSD before, after the search and
    at the end.

    Shapes:
        previous: (n, *shape) -> (n, *shape)
    """
    cfg = config.convex
    n = previous.shape[0]
    if len(fixed.shape) != n or len(moving.shape) != n:
        raise ValueError(
            f"convex_adam_io: expected {n}D feature maps, got {len(fixed.shape)}D and {len(moving.shape)}D"
        )
    shape = tuple(previous.shape[1:])
    if config.pca_channels and fixed.data.shape[0] > config.pca_channels:
        fixed, moving = project_features(fixed, moving, config.pca_channels)
    info: dict[str, Any] = {"ssd_before": feature_ssd(fixed, moving, previous, grid_affine)}
    work = grid_points(shape, grid_affine, previous.device)

    def result(u: torch.Tensor, uaff: np.ndarray) -> torch.Tensor:
        return compose(previous, sample(u, uaff, work, padding="border"), grid_affine)

    field: tuple[torch.Tensor, np.ndarray] | None = None
    if cfg.search:
        start = time.perf_counter()
        with torch.no_grad():
            field = convex_search(fixed, moving, previous, grid_affine, cfg)
        info["search_seconds"] = time.perf_counter() - start
        info["ssd_search"] = feature_ssd(fixed, moving, result(*field), grid_affine)
    start = time.perf_counter()
    if cfg.levels:
        with torch.enable_grad():
            field = adam_levels(fixed, moving, previous, grid_affine, cfg, field)
    info["adam_seconds"] = time.perf_counter() - start
    assert field is not None  # the config demands a search or a level
    out = result(*field)
    info["ssd_after"] = feature_ssd(fixed, moving, out, grid_affine)
    if report is not None:
        report.update(info)
    return out
