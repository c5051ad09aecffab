"""The SAME++ pipeline: initialisation -> SAM-Affine -> SAM-Coarse -> SAM-Deform -> SAM-IO, each step optional and
reported alone, and a verdict on the result.

`register_arrays` works on 2D or 3D tensors with index -> world affines; `register` takes two RAS+ `Volume`s
(NIfTI, DICOM, ... via `tailorkit.data.volumes.load_volume`) and returns the fixed -> moving map on the fixed
image's own grid. Everything runs on the working grid (the fixed image resampled to `spacing_mm`); feature maps live
on half of it. Without a trained SAM embedding the matching steps run on MIND-like intensity features (with a
search window) and the result says so in `features` and `notes`; SAM-Deform needs a trained `DeformNet` and is
skipped, with a note, without one. The `io` step is SAM-IO (`io.kind=adam`, the default) or the convexAdam-family
instance optimisation (`io.kind=convex_adam`, `convex_io.convex_adam_io`; its report goes to `info["io"]`).

Initialisation and checks (docs/registration.md#initialisation-and-checks; not part of SAME++): `prepare` picks the
initial transform A0 (`initial.initial_transform`: identity, centre of mass or principal axes, by similarity) and
resamples the moving image through it onto the fixed working grid (plus `init.margin_mm`), so every step works in
this pre-aligned frame and the result is A0 o psi_steps. A fitted affine (or rigid) transform is kept only when it
passes `quality.check_affine`; otherwise the pipeline falls back to the initialisation (and skips SAM-Coarse, which
would fit the refused matches) and says so in `notes` and `info`. `RegistrationResult.quality` is the verdict of
`quality.assess` on the final map (folding, median det J, similarity against the initialisation's).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from tailorkit.registration.config import RegistrationConfig
from tailorkit.registration.convex_io import convex_adam_io
from tailorkit.registration.deform_net import DeformNet, DeformPair, deform_step
from tailorkit.registration.features import FeatureMap, mind_features, normalise_intensity, sam_features
from tailorkit.registration.initial import initial_transform
from tailorkit.registration.quality import Similarity, assess, check_affine, foreground_mask
from tailorkit.registration.same import AffineResult, sam_affine, sam_coarse, sam_io
from tailorkit.registration.transforms import (
    affine_displacement,
    compose_affine,
    grid_points,
    resample_displacement,
    sample,
)

__all__ = [
    "Prepared",
    "RegistrationResult",
    "assess_result",
    "deform_pair",
    "initialise",
    "padded_grid",
    "prealign",
    "prepare",
    "realign",
    "register",
    "register_arrays",
    "work_grid",
]


@dataclass
class RegistrationResult:
    """Fixed -> moving maps of every stage run, on the fixed grid (cumulative: "coarse" includes the affine).

    Every map includes the initialisation (`init`). `quality` is `quality.assess`'s verdict on `displacement`
    (`passed`, `problems`, folding, median det J, similarity of the initialisation and of the result).

    Shapes:
        displacement: (n, *fixed_shape) world mm, the last stage; stages: name -> (n, *fixed_shape);
        affine: (n+1, n+1) the world matrix after the affine step (init o affine; the init alone when the step did
        not run or its fit was refused); init: (n+1, n+1) the initial transform.
    """

    displacement: torch.Tensor
    stages: dict[str, torch.Tensor]
    affine: np.ndarray
    seconds: dict[str, float]
    features: str
    notes: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    init: np.ndarray | None = None
    quality: dict[str, Any] = field(default_factory=dict)


@dataclass
class Prepared:
    """A pair on the working grid with its feature maps (reused by training and the bench).

    `moving` / `moving_affine` / `moving_features` are the moving image pre-aligned by `frame` (fixed -> moving
    world matrix, the initial transform): a map psi found between `fixed` and `moving` means frame o psi between the
    original images. `moving_native` is the moving image on its own working grid (not pre-aligned).
    """

    fixed: torch.Tensor
    moving: torch.Tensor
    work_affine: np.ndarray
    moving_affine: np.ndarray
    fixed_features: FeatureMap
    moving_features: FeatureMap
    mask: torch.Tensor
    seconds: float
    frame: np.ndarray = field(default_factory=lambda: np.eye(4))
    moving_native: torch.Tensor | None = None
    moving_native_affine: np.ndarray | None = None
    work_mask: torch.Tensor | None = None
    similarity: Similarity | None = None
    init_info: dict[str, Any] = field(default_factory=dict)


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


def to_volume(image: torch.Tensor, affine: np.ndarray) -> Any:
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


def padded_grid(shape: tuple[int, ...], affine: np.ndarray, margin_mm: float) -> tuple[tuple[int, ...], np.ndarray]:
    """A grid enlarged by `margin_mm` (whole voxels) on every side, same spacing and directions."""
    n = len(shape)
    a = np.asarray(affine, dtype=np.float64)
    pad = [int(np.ceil(margin_mm / s)) for s in np.linalg.norm(a[:n, :n], axis=0)]
    out = a.copy()
    out[:n, n] = a[:n, n] - a[:n, :n] @ np.asarray(pad, dtype=np.float64)
    return tuple(s + 2 * p for s, p in zip(shape, pad, strict=True)), out


def prealign(
    moving: torch.Tensor,
    moving_affine: np.ndarray,
    frame: np.ndarray,
    shape: tuple[int, ...],
    affine: np.ndarray,
    margin_mm: float,
) -> tuple[torch.Tensor, np.ndarray]:
    """The moving image resampled through `frame` (fixed -> moving world matrix) onto the grid (`shape`, `affine`)
    enlarged by `margin_mm`: P(y) = M(frame y). Identity frames return the image unchanged."""
    n = moving.ndim
    if np.allclose(frame, np.eye(n + 1)):
        return moving, np.asarray(moving_affine, dtype=np.float64)
    pshape, paff = padded_grid(shape, affine, margin_mm)
    pts = grid_points(pshape, paff, moving.device)
    disp = affine_displacement(frame, pshape, paff).to(moving.device)
    return sample(moving[None].float(), moving_affine, pts + disp)[0], paff


def _moving_features(
    moving: torch.Tensor, affine: np.ndarray, kind: str, config: RegistrationConfig, model: Any
) -> FeatureMap:
    if kind == "sam":
        return sam_features(to_volume(moving, affine), model)
    return mind_features(moving, affine, config.features)


def prepare(
    fixed: torch.Tensor,
    fixed_affine: np.ndarray,
    moving: torch.Tensor,
    moving_affine: np.ndarray,
    config: RegistrationConfig,
    model: Any = None,
    fixed_features: FeatureMap | None = None,
    init: np.ndarray | None = None,
) -> Prepared:
    """Resample the fixed image to the working grid, pick the initial transform (`init`: given, or
    `config.init`), pre-align the moving image by it and compute both feature maps (`fixed_features` reuses the
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
    mnative = _resample(moving, moving_affine, mshape, maff)
    kind = config.features.kind
    if kind == "auto":
        kind = "sam" if model is not None else "mind"
    if kind == "sam":
        if model is None:
            raise ValueError("features.kind=sam: expected a trained SAM model (anatomy model.pt), got none")
        if n != 3:
            raise ValueError("features.kind=sam: SAM embeddings are 3D; use features.kind=mind for 2D images")
    work_mask = foreground_mask(fwork, config.affine.mask_percentile)
    sim = Similarity(fwork, waff, work_mask, config.quality.similarity, config.features)
    init_info: dict[str, Any] = {}
    if init is None:
        init, init_info = initial_transform(fwork, waff, mnative, maff, config.init, sim)
    frame = np.asarray(init, dtype=np.float64)
    if np.shape(frame) != (n + 1, n + 1):
        raise ValueError(f"init: expected an ({n + 1}, {n + 1}) world matrix, got shape {np.shape(frame)}")
    mwork, paff = prealign(mnative, maff, frame, shape, waff, config.init.margin_mm)
    if kind == "sam":
        ff = fixed_features or sam_features(to_volume(fixed, fixed_affine), model)
        identity = np.allclose(frame, np.eye(n + 1))
        mf = _moving_features(moving if identity else mwork, moving_affine if identity else paff, kind, config, model)
    else:
        ff = fixed_features or mind_features(fwork, waff, config.features)
        mf = mind_features(mwork, paff, config.features)
    if ff.kind != kind:
        raise ValueError(f"fixed_features: expected {kind} features, got {ff.kind}")
    mask = sample(work_mask.float()[None], waff, grid_points(ff.shape, ff.affine), mode="nearest")[0] > 0.5
    return Prepared(
        fwork, mwork, waff, paff, ff, mf, mask, time.perf_counter() - start, frame, mnative, maff, work_mask, sim,
        init_info,
    )  # fmt: skip


def _work_pair(
    fixed: torch.Tensor,
    fixed_affine: np.ndarray,
    moving: torch.Tensor,
    moving_affine: np.ndarray,
    config: RegistrationConfig,
) -> tuple[torch.Tensor, np.ndarray, torch.Tensor, np.ndarray, torch.Tensor, Similarity]:
    _check_image("fixed image", fixed, fixed_affine)
    _check_image("moving image", moving, moving_affine)
    shape, waff = work_grid(tuple(fixed.shape), fixed_affine, config.spacing_mm)
    fwork = _resample(fixed, fixed_affine, shape, waff)
    mshape, maff = work_grid(tuple(moving.shape), moving_affine, config.spacing_mm)
    mwork = _resample(moving, moving_affine, mshape, maff)
    mask = foreground_mask(fwork, config.affine.mask_percentile)
    return fwork, waff, mwork, maff, mask, Similarity(fwork, waff, mask, config.quality.similarity, config.features)


def initialise(
    fixed: torch.Tensor,
    fixed_affine: np.ndarray,
    moving: torch.Tensor,
    moving_affine: np.ndarray,
    config: RegistrationConfig | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """The initial transform (`config.init`) of a pair on the working grid, as `prepare` picks it: the fixed ->
    moving world matrix and its report. The peers start from it (`peers.run_peer(init=...)`)."""
    config = config or RegistrationConfig()
    fwork, waff, mwork, maff, _, sim = _work_pair(fixed, fixed_affine, moving, moving_affine, config)
    return initial_transform(fwork, waff, mwork, maff, config.init, sim)


def assess_result(
    fixed: torch.Tensor,
    fixed_affine: np.ndarray,
    moving: torch.Tensor,
    moving_affine: np.ndarray,
    displacement: torch.Tensor,
    init: np.ndarray,
    config: RegistrationConfig | None = None,
) -> dict[str, Any]:
    """`quality.assess` of any method's fixed -> moving displacement (on the fixed grid) against the initial
    transform `init`, on the working grid: what `register_arrays` reports as `quality`, for the peers."""
    config = config or RegistrationConfig()
    fwork, waff, mwork, maff, mask, sim = _work_pair(fixed, fixed_affine, moving, moving_affine, config)
    disp = displacement
    if tuple(fixed.shape) != tuple(fwork.shape) or not np.allclose(fixed_affine, waff):
        disp = resample_displacement(displacement, fixed_affine, tuple(fwork.shape), waff)
    out = assess(disp, waff, mask, sim(mwork, maff, init), sim(mwork, maff, disp), config.quality)
    out["grid"] = "working grid"
    return out


def realign(prep: Prepared, matrix: np.ndarray, config: RegistrationConfig, model: Any = None) -> Prepared:
    """`prep` with the moving image pre-aligned by frame o `matrix` (fixed -> moving world) and its features
    recomputed: the rigid-then-affine option matches again after the rigid fit."""
    from dataclasses import replace

    assert prep.moving_native is not None and prep.moving_native_affine is not None
    frame = prep.frame @ np.asarray(matrix, dtype=np.float64)
    start = time.perf_counter()
    mwork, paff = prealign(
        prep.moving_native, prep.moving_native_affine, frame, tuple(prep.fixed.shape), prep.work_affine,
        config.init.margin_mm,
    )  # fmt: skip
    mf = _moving_features(mwork, paff, prep.fixed_features.kind, config, model)
    return replace(
        prep, moving=mwork, moving_affine=paff, moving_features=mf, frame=frame,
        seconds=prep.seconds + time.perf_counter() - start,
    )  # fmt: skip


def deform_pair(prep: Prepared, previous: torch.Tensor) -> DeformPair:
    """The input of SAM-Deform (and of its training) for a prepared pair and the map so far (in prep's frame).

    Shapes:
        previous: (n, *work_shape) world mm on prep's working grid.
    """
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


def _affine_step(
    prep: Prepared, config: RegistrationConfig, model: Any, notes: list[str], info: dict[str, Any]
) -> tuple[Prepared, AffineResult | None]:
    """SAM-Affine with its acceptance test (and the rigid-then-affine option): the prepared pair (re-aligned after
    an accepted rigid fit) and the accepted fit in its frame, or None when every fit was refused."""
    acfg = config.affine
    if prep.fixed_features.kind == "mind" and acfg.search_radius_mm == 0:
        from dataclasses import replace

        acfg = replace(acfg, search_radius_mm=acfg.mind_search_radius_mm)
    sim = prep.similarity
    kinds = ("rigid", "affine") if acfg.model == "rigid+affine" else (acfg.model,)
    before = sim(prep.moving, prep.moving_affine) if sim is not None else float("nan")
    accepted: AffineResult | None = None
    fallback = "the initialisation"
    for i, kind in enumerate(kinds):
        res = sam_affine(prep.fixed_features, prep.moving_features, acfg, prep.mask, model=kind)
        after = sim(prep.moving, prep.moving_affine, res.matrix) if sim is not None else float("nan")
        ok, reasons, stats = check_affine(res.matrix, res.fixed_points, res.moving_points, acfg, before, after)
        stats.update(stable=res.n_stable, queries=res.n_queries)
        info[f"{kind}_check"] = stats
        if not ok and acfg.check:
            notes.append(f"{kind} fit refused ({'; '.join(reasons)}): kept {fallback}")
            continue
        if i < len(kinds) - 1:  # an accepted rigid fit before the affine one: re-align, match again
            prep = realign(prep, res.matrix, config, model)
            before = sim(prep.moving, prep.moving_affine) if sim is not None else float("nan")
            fallback = "the rigid fit"
            continue
        accepted = res
    info["affine_accepted"] = accepted is not None
    return prep, accepted


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
    affine_done = False
    info: dict[str, Any] = {"init": prep.init_info} if prep.init_info else {}
    for step in config.steps:
        start = time.perf_counter()
        if step in ("affine", "coarse") and not affine_done:
            prep, aff_res = _affine_step(prep, config, model, notes, info)
            affine_done = True
            matrix = aff_res.matrix if aff_res is not None else np.eye(n + 1)
            if aff_res is not None:
                info.update(matches=len(aff_res.score), stable=aff_res.n_stable, queries=aff_res.n_queries)
        if step == "affine":
            current = affine_displacement(matrix, shape, prep.work_affine)
        elif step == "coarse":
            if aff_res is None:
                notes.append("coarse skipped: it fits the affine step's matches, which were refused")
                continue
            current = sam_coarse(aff_res, shape, prep.work_affine, config.coarse)
        elif step == "deform":
            if net is None:
                notes.append("deform skipped: no trained deformation network (tailorkit register train)")
                continue
            current = deform_step(net, deform_pair(prep, current))
        elif step == "io" and config.io.kind == "convex_adam":
            report: dict[str, Any] = {}
            current = convex_adam_io(
                prep.fixed_features, prep.moving_features, current, prep.work_affine, config.io, report
            )
            info["io"] = report
        elif step == "io":
            current = sam_io(prep.fixed_features, prep.moving_features, current, prep.work_affine, config.io)
        seconds[step] = time.perf_counter() - start
        stages[step] = current
    frame = prep.frame
    identity = np.allclose(frame, np.eye(n + 1))
    work_stages = {k: v if identity else compose_affine(frame, v, prep.work_affine) for k, v in stages.items()}
    final_work = (
        next(reversed(work_stages.values())) if work_stages else affine_displacement(frame, shape, prep.work_affine)
    )
    quality: dict[str, Any] = {}
    if prep.similarity is not None and prep.moving_native is not None and prep.work_mask is not None:
        start = time.perf_counter()
        s_init = prep.similarity(prep.moving_native, prep.moving_native_affine, frame)  # type: ignore[arg-type]
        s_final = prep.similarity(prep.moving_native, prep.moving_native_affine, final_work)  # type: ignore[arg-type]
        quality = assess(final_work, prep.work_affine, prep.work_mask, s_init, s_final, config.quality)
        quality["grid"] = "working grid"
        seconds["checks"] = time.perf_counter() - start
        for problem in quality["problems"]:
            notes.append(f"poor result: {problem}")
    same_grid = tuple(fixed.shape) == shape and np.allclose(fixed_affine, prep.work_affine)

    def to_fixed(v: torch.Tensor) -> torch.Tensor:
        return v if same_grid else resample_displacement(v, prep.work_affine, tuple(fixed.shape), fixed_affine)

    out_stages = {k: to_fixed(v) for k, v in work_stages.items()}
    final = next(reversed(out_stages.values())) if out_stages else to_fixed(final_work)
    total = frame @ matrix
    return RegistrationResult(final, out_stages, total, seconds, prep.fixed_features.kind, notes, info, frame, quality)


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
