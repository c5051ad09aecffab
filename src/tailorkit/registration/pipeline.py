"""The SAME++ pipeline: SAM-Affine -> SAM-Coarse -> SAM-Deform -> SAM-IO, each step optional and reported alone.

`register_arrays` works on 2D or 3D tensors with index -> world affines; `register` takes two RAS+ `Volume`s
(NIfTI, DICOM, ... via `tailorkit.data.volumes.load_volume`) and returns the fixed -> moving map on the fixed
image's own grid. Everything runs on the working grid (the fixed image resampled to `spacing_mm`); feature maps live
on half of it. Without a trained SAM embedding the matching steps run on MIND-like intensity features (with a
search window) and the result says so in `features` and `notes`; SAM-Deform needs a trained `DeformNet` and is
skipped, with a note, without one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from tailorkit.registration.config import RegistrationConfig
from tailorkit.registration.deform_net import DeformNet, DeformPair, deform_step
from tailorkit.registration.features import FeatureMap, mind_features, normalise_intensity, sam_features
from tailorkit.registration.same import AffineResult, sam_affine, sam_coarse, sam_io
from tailorkit.registration.transforms import affine_displacement, grid_points, resample_displacement, sample

__all__ = ["Prepared", "RegistrationResult", "prepare", "register", "register_arrays", "work_grid"]


@dataclass
class RegistrationResult:
    """Fixed -> moving maps of every stage run, on the fixed grid (cumulative: "coarse" includes the affine).

    Shapes:
        displacement: (n, *fixed_shape) world mm, the last stage; stages: name -> (n, *fixed_shape);
        affine: (n+1, n+1) SAM-Affine's world matrix (identity when the step did not run).
    """

    displacement: torch.Tensor
    stages: dict[str, torch.Tensor]
    affine: np.ndarray
    seconds: dict[str, float]
    features: str
    notes: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Prepared:
    """A pair on the working grid with its feature maps (reused by training and the bench)."""

    fixed: torch.Tensor
    moving: torch.Tensor
    work_affine: np.ndarray
    moving_affine: np.ndarray
    fixed_features: FeatureMap
    moving_features: FeatureMap
    mask: torch.Tensor
    seconds: float


def work_grid(shape: tuple[int, ...], affine: np.ndarray, spacing: float) -> tuple[tuple[int, ...], np.ndarray]:
    """The grid covering the same field of view at `spacing` mm per axis (directions kept)."""
    n = len(shape)
    a = np.asarray(affine, dtype=np.float64)
    norms = np.linalg.norm(a[:n, :n], axis=0)
    if np.allclose(norms, spacing, rtol=1e-3):
        return tuple(shape), a
    new_shape = tuple(int(np.floor((s - 1) * c / spacing + 1e-6)) + 1 for s, c in zip(shape, norms, strict=True))
    out = a.copy()
    out[:n, :n] = a[:n, :n] * (spacing / norms)
    return new_shape, out


def _resample(image: torch.Tensor, affine: np.ndarray, shape: tuple[int, ...], target: np.ndarray) -> torch.Tensor:
    if tuple(image.shape) == tuple(shape) and np.allclose(affine, target):
        return image.float()
    return sample(image[None].float(), affine, grid_points(shape, target, image.device))[0]


def _to_volume(image: torch.Tensor, affine: np.ndarray) -> Any:
    from tailorkit.anatomy.geometry import tensor_affine
    from tailorkit.data.volumes import Volume

    return Volume(np.ascontiguousarray(image.cpu().numpy().transpose(2, 1, 0)), tensor_affine(affine))


def _check_image(name: str, image: torch.Tensor, affine: np.ndarray) -> None:
    if image.ndim not in (2, 3):
        raise ValueError(f"{name}: expected a 2D or 3D image, got shape {tuple(image.shape)}")
    if min(image.shape) < 4:
        raise ValueError(f"{name}: expected at least 4 voxels along every axis, got shape {tuple(image.shape)}")
    if not torch.isfinite(image).all():
        raise ValueError(f"{name}: the image has non-finite voxels")
    if float(image.max() - image.min()) <= 0:
        raise ValueError(f"{name}: the image is empty (constant intensity {float(image.min())})")
    n = image.ndim
    if np.shape(affine) != (n + 1, n + 1) or abs(np.linalg.det(np.asarray(affine)[:n, :n])) < 1e-9:
        raise ValueError(f"{name}: expected an invertible ({n + 1}, {n + 1}) index -> world affine")


def prepare(
    fixed: torch.Tensor,
    fixed_affine: np.ndarray,
    moving: torch.Tensor,
    moving_affine: np.ndarray,
    config: RegistrationConfig,
    model: Any = None,
    fixed_features: FeatureMap | None = None,
) -> Prepared:
    """Resample the fixed image to the working grid and compute both feature maps (`fixed_features` reuses the
    fixed image's map, e.g. an atlas registered to many scans).

    Shapes:
        fixed: (*f_shape), moving: (*m_shape), 2D or 3D, tensor index order with matching affines.
    """
    _check_image("fixed image", fixed, fixed_affine)
    _check_image("moving image", moving, moving_affine)
    if fixed.ndim != moving.ndim:
        raise ValueError(f"images: expected the same number of dimensions, got {fixed.ndim}D and {moving.ndim}D")
    start = time.perf_counter()
    n = fixed.ndim
    shape, waff = work_grid(tuple(fixed.shape), fixed_affine, config.spacing_mm)
    fwork = _resample(fixed, fixed_affine, shape, waff)
    mshape, maff = work_grid(tuple(moving.shape), moving_affine, config.spacing_mm)
    mwork = _resample(moving, moving_affine, mshape, maff)
    kind = config.features.kind
    if kind == "auto":
        kind = "sam" if model is not None else "mind"
    if kind == "sam":
        if model is None:
            raise ValueError("features.kind=sam: expected a trained SAM model (anatomy model.pt), got none")
        if n != 3:
            raise ValueError("features.kind=sam: SAM embeddings are 3D; use features.kind=mind for 2D images")
        ff = fixed_features or sam_features(_to_volume(fixed, fixed_affine), model)
        mf = sam_features(_to_volume(moving, moving_affine), model)
    else:
        ff = fixed_features or mind_features(fwork, waff, config.features)
        mf = mind_features(mwork, maff, config.features)
    if ff.kind != kind:
        raise ValueError(f"fixed_features: expected {kind} features, got {ff.kind}")
    thr = float(
        torch.quantile(fwork.reshape(-1)[:: max(1, fwork.numel() // 200000)], config.affine.mask_percentile / 100)
    )
    fg = (fwork > thr).float()
    mask = sample(fg[None], waff, grid_points(ff.shape, ff.affine), mode="nearest")[0] > 0.5
    return Prepared(fwork, mwork, waff, maff, ff, mf, mask, time.perf_counter() - start)


def _pair(prep: Prepared, previous: torch.Tensor) -> DeformPair:
    fimg = normalise_intensity(prep.fixed)
    fimg_feat = sample(
        fimg[None], prep.work_affine, grid_points(prep.fixed_features.shape, prep.fixed_features.affine)
    )[0]
    return DeformPair(
        prep.fixed_features,
        prep.moving_features,
        fimg_feat,
        normalise_intensity(prep.moving),
        prep.moving_affine,
        previous,
        prep.work_affine,
    )


def register_arrays(
    fixed: torch.Tensor,
    fixed_affine: np.ndarray,
    moving: torch.Tensor,
    moving_affine: np.ndarray,
    config: RegistrationConfig | None = None,
    *,
    model: Any = None,
    net: DeformNet | None = None,
    prepared: Prepared | None = None,
) -> RegistrationResult:
    """Register `moving` to `fixed` (both 2D or 3D tensors with index -> world affines). See the module docstring."""
    config = config or RegistrationConfig()
    threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        return _register(fixed, fixed_affine, moving, moving_affine, config, model, net, prepared)
    finally:
        torch.set_num_threads(threads)


def _register(
    fixed: torch.Tensor,
    fixed_affine: np.ndarray,
    moving: torch.Tensor,
    moving_affine: np.ndarray,
    config: RegistrationConfig,
    model: Any,
    net: DeformNet | None,
    prep: Prepared | None,
) -> RegistrationResult:
    prep = prep if prep is not None else prepare(fixed, fixed_affine, moving, moving_affine, config, model)
    n = fixed.ndim
    shape = tuple(prep.fixed.shape)
    notes: list[str] = []
    if prep.fixed_features.kind == "mind":
        notes.append("no trained SAM embedding: the matching steps used MIND-like intensity features")
    seconds: dict[str, float] = {"prepare": prep.seconds}
    stages: dict[str, torch.Tensor] = {}
    current = torch.zeros(n, *shape, device=prep.fixed.device)
    matrix = np.eye(n + 1)
    aff_res: AffineResult | None = None
    acfg = config.affine
    if prep.fixed_features.kind == "mind" and acfg.search_radius_mm == 0:
        from dataclasses import replace

        acfg = replace(acfg, search_radius_mm=acfg.mind_search_radius_mm)
    info: dict[str, Any] = {}
    for step in config.steps:
        start = time.perf_counter()
        if step == "affine":
            aff_res = sam_affine(prep.fixed_features, prep.moving_features, acfg, prep.mask)
            matrix = aff_res.matrix
            current = affine_displacement(matrix, shape, prep.work_affine)
            info.update(matches=len(aff_res.score), stable=aff_res.n_stable, queries=aff_res.n_queries)
        elif step == "coarse":
            if aff_res is None:
                aff_res = sam_affine(prep.fixed_features, prep.moving_features, acfg, prep.mask)
                matrix = aff_res.matrix
            current = sam_coarse(aff_res, shape, prep.work_affine, config.coarse)
        elif step == "deform":
            if net is None:
                notes.append("deform skipped: no trained deformation network (tailorkit register train)")
                continue
            current = deform_step(net, _pair(prep, current))
        elif step == "io":
            current = sam_io(prep.fixed_features, prep.moving_features, current, prep.work_affine, config.io)
        seconds[step] = time.perf_counter() - start
        stages[step] = current
    out_stages = {
        k: v
        if tuple(fixed.shape) == shape and np.allclose(fixed_affine, prep.work_affine)
        else resample_displacement(v, prep.work_affine, tuple(fixed.shape), fixed_affine)
        for k, v in stages.items()
    }
    final = next(reversed(out_stages.values())) if out_stages else torch.zeros(n, *fixed.shape, device=fixed.device)
    return RegistrationResult(final, out_stages, matrix, seconds, prep.fixed_features.kind, notes, info)


def register(fixed: Any, moving: Any, config: RegistrationConfig | None = None, **kwargs: Any) -> RegistrationResult:
    """Register two RAS+ `Volume`s; maps are in tensor (z, y, x) order on the fixed grid with world (x, y, z) mm
    components (`tailorkit.anatomy.geometry.tensor_affine(fixed.affine)` is their grid affine)."""
    from tailorkit.anatomy.geometry import tensor_affine, to_tensor_order
    from tailorkit.data.volumes import Volume, VolumeError

    for name, vol in (("fixed", fixed), ("moving", moving)):
        if not isinstance(vol, Volume):
            raise VolumeError(
                f"{name}: expected a tailorkit.data.volumes.Volume (see load_volume), got {type(vol).__name__}"
            )
    return register_arrays(
        torch.as_tensor(to_tensor_order(fixed.array), dtype=torch.float32),
        tensor_affine(fixed.affine),
        torch.as_tensor(to_tensor_order(moving.array), dtype=torch.float32),
        tensor_affine(moving.affine),
        config,
        **kwargs,
    )
