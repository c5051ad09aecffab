"""Peer registration tools behind one interface: ANTs (antspyx) affine and SyN, SimpleITK affine + demons, elastix
(itk-elastix) affine + B-spline, convexAdam (MIND + coupled convex + Adam).

Every peer takes the fixed and moving image in tensor (z, y, x) order with (d, h, w) -> world RAS+ affines and
returns the fixed -> moving map as a displacement on the fixed grid. The map is read back the same way for every
tool (docs/registration.md#peers): three "coordinate images" holding the world x, y, z of each moving voxel are warped
with the tool's own resampler and transform onto the fixed grid, so the warped coordinates are psi(y) and every metric
is computed identically. The coordinate images extend `margin` voxels beyond the moving image (coordinates are linear in
the index), so points mapped just outside the moving field of view still read back correctly. convexAdam returns a voxel
displacement directly (its own resampler is `map_coordinates` of that field), converted to world mm.

The peers are optional: each is imported lazily and `PEERS.available(name)` gives the reason when it is absent.
Thread counts are set per call (ITK's global default, ANTs' environment variable, torch for convexAdam) and
reported. ITK-based tools work in LPS+: world affines are converted with diag(-1, -1, 1).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tailorkit.core.registry import Registry
from tailorkit.registration.transforms import grid_points, index_to_displacement

__all__ = ["PEERS", "Peer", "coordinate_images", "peer_missing", "run_peer"]

PeerFn = Callable[..., torch.Tensor]  # (fixed, fixed_affine, moving, moving_affine, threads, multimodal, **options)


@dataclass(frozen=True)
class Peer:
    """A peer method: its function, the package it needs and whether it handles different contrasts."""

    fn: PeerFn
    module: str
    multimodal: bool
    description: str


PEERS: Registry[Peer] = Registry("registration peer")
LPS = np.diag([-1.0, -1.0, 1.0])
MARGIN = 16


def peer_missing(name: str) -> str | None:
    """Why peer `name` cannot run here (its package is absent), or None."""
    peer = PEERS.get(name)
    if importlib.util.find_spec(peer.module) is None:
        return f"{peer.module} is not installed (pip install tailorkit[peers])"
    return None


def run_peer(
    name: str,
    fixed: np.ndarray,
    fixed_affine: np.ndarray,
    moving: np.ndarray,
    moving_affine: np.ndarray,
    threads: int = 1,
    multimodal: bool = False,
    init: np.ndarray | None = None,
    init_margin_mm: float = 12.0,
    **options: Any,
) -> torch.Tensor:
    """The fixed -> moving displacement (3, *fixed.shape) world mm of peer `name` (`options`: the peer's own,
    e.g. `iterations` for elastix).

    `init` (4, 4): a fixed -> moving world matrix to start from (e.g. `pipeline.initialise`, what SAME++ starts
    from): the moving image is resampled through it onto the fixed grid plus `init_margin_mm`, the peer registers
    that, and the result is init o psi_peer. Every tool thus starts from the same transform (the elastix wrapper
    sets no initial transform of its own, and fails when the images do not overlap).
    """
    reason = peer_missing(name)
    if reason:
        raise RuntimeError(f"peer {name}: {reason}")
    fixed = np.ascontiguousarray(fixed, dtype=np.float32)
    moving = np.ascontiguousarray(moving, dtype=np.float32)
    fa, ma = np.asarray(fixed_affine, dtype=np.float64), np.asarray(moving_affine, dtype=np.float64)
    if init is None or np.allclose(init, np.eye(4)):
        return PEERS.get(name).fn(fixed, fa, moving, ma, threads, multimodal, **options)
    from tailorkit.registration.pipeline import prealign
    from tailorkit.registration.transforms import compose_affine

    pre, paff = prealign(torch.as_tensor(moving), ma, np.asarray(init), fixed.shape, fa, init_margin_mm)
    pre_np = np.ascontiguousarray(pre.numpy(), dtype=np.float32)
    disp = PEERS.get(name).fn(fixed, fa, pre_np, paff, threads, multimodal, **options)
    return compose_affine(np.asarray(init, dtype=np.float64), disp, fa)


def _itk_geometry(tensor_affine: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
    """(d, h, w) -> RAS affine -> ITK origin, spacing, direction (index (i, j, k) = (w, h, d), LPS+)."""
    a = np.asarray(tensor_affine, dtype=np.float64)
    ijk = a[:3, :3][:, ::-1]  # columns for i = w, j = h, k = d
    lps = LPS @ ijk
    spacing = np.linalg.norm(lps, axis=0)
    direction = lps / spacing
    origin = LPS @ a[:3, 3]
    return tuple(origin), tuple(spacing), tuple(direction.ravel())


def _margin_affine(tensor_affine: np.ndarray, margin: int) -> np.ndarray:
    a = np.asarray(tensor_affine, dtype=np.float64).copy()
    a[:3, 3] = a[:3, 3] - a[:3, :3] @ np.full(3, float(margin))
    return a


def coordinate_images(
    shape: tuple[int, ...], tensor_affine: np.ndarray, margin: int = MARGIN
) -> tuple[np.ndarray, np.ndarray]:
    """World x, y, z of every voxel of a grid enlarged by `margin` voxels per side, and the enlarged grid's affine.

    Shapes:
        return (3, D + 2m, H + 2m, W + 2m) float32, (4, 4)
    """
    big = tuple(s + 2 * margin for s in shape)
    aff = _margin_affine(tensor_affine, margin)
    return grid_points(big, aff).numpy(), aff


def _sitk_image(array: np.ndarray, tensor_affine: np.ndarray) -> object:
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(array)  # numpy (z, y, x) = our tensor order
    origin, spacing, direction = _itk_geometry(tensor_affine)
    img.SetOrigin(origin)
    img.SetSpacing(spacing)
    img.SetDirection(direction)
    return img


def _displacement(warped: np.ndarray, fixed_shape: tuple[int, ...], fixed_affine: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(warped, dtype=torch.float32) - grid_points(fixed_shape, fixed_affine)


def _sitk_readback(
    transform: object,
    fixed: np.ndarray,
    fixed_affine: np.ndarray,
    moving_shape: tuple[int, ...],
    moving_affine: np.ndarray,
) -> torch.Tensor:
    import SimpleITK as sitk

    coords, caff = coordinate_images(moving_shape, moving_affine)
    ref = _sitk_image(fixed, fixed_affine)
    out = []
    for c in range(3):
        img = _sitk_image(coords[c], caff)
        res = sitk.Resample(img, ref, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32)  # type: ignore[arg-type]
        out.append(sitk.GetArrayFromImage(res))
    return _displacement(np.stack(out), fixed.shape, fixed_affine)


def _sitk_affine(fixed_img: object, moving_img: object, multimodal: bool) -> object:
    import SimpleITK as sitk

    init = sitk.CenteredTransformInitializer(
        fixed_img, moving_img, sitk.AffineTransform(3), sitk.CenteredTransformInitializerFilter.MOMENTS
    )
    reg = sitk.ImageRegistrationMethod()
    if multimodal:
        reg.SetMetricAsMattesMutualInformation(32)
    else:
        reg.SetMetricAsCorrelation()
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(0.2, seed=1)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(learningRate=1.0, minStep=1e-4, numberOfIterations=200)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel([4, 2, 1])
    reg.SetSmoothingSigmasPerLevel([2, 1, 0])
    reg.SetInitialTransform(init, inPlace=False)
    return reg.Execute(fixed_img, moving_img)


def _sitk_demons(
    fixed: np.ndarray, fa: np.ndarray, moving: np.ndarray, ma: np.ndarray, threads: int, multimodal: bool
) -> torch.Tensor:
    """SimpleITK affine (correlation, 3 levels) + FastSymmetricForces demons (100 iterations, sigma 1.5; mono-modal)."""
    import SimpleITK as sitk

    if multimodal:
        raise ValueError("sitk_demons: demons compares intensities directly; it is not defined across modalities")
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(max(1, threads))
    f, m = _sitk_image(fixed, fa), _sitk_image(moving, ma)
    affine = _sitk_affine(f, m, multimodal)
    pre = sitk.Resample(m, f, affine, sitk.sitkLinear, 0.0, sitk.sitkFloat32)  # type: ignore[arg-type]
    demons = sitk.FastSymmetricForcesDemonsRegistrationFilter()
    demons.SetNumberOfIterations(100)
    demons.SetStandardDeviations(1.5)
    field = demons.Execute(f, pre)
    comp = sitk.CompositeTransform(affine)
    comp.AddTransform(sitk.DisplacementFieldTransform(sitk.Cast(field, sitk.sitkVectorFloat64)))  # applied first
    return _sitk_readback(comp, fixed, fa, moving.shape, ma)


def _ants_image(array: np.ndarray, tensor_affine: np.ndarray) -> object:
    import ants

    origin, spacing, direction = _itk_geometry(tensor_affine)
    return ants.from_numpy(
        np.ascontiguousarray(array.transpose(2, 1, 0)),  # ants arrays are (i, j, k)
        origin=list(origin),
        spacing=list(spacing),
        direction=np.asarray(direction).reshape(3, 3),
    )


def _ants(kind: str) -> PeerFn:
    def run(
        fixed: np.ndarray, fa: np.ndarray, moving: np.ndarray, ma: np.ndarray, threads: int, multimodal: bool
    ) -> torch.Tensor:
        os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(max(1, threads))
        import ants

        f, m = _ants_image(fixed, fa), _ants_image(moving, ma)
        reg = ants.registration(f, m, type_of_transform=kind, random_seed=1)  # defaults: Mattes MI (both metrics)
        coords, caff = coordinate_images(moving.shape, ma)
        out = []
        for c in range(3):
            w = ants.apply_transforms(f, _ants_image(coords[c], caff), reg["fwdtransforms"], interpolator="linear")
            out.append(w.numpy().transpose(2, 1, 0))
        return _displacement(np.stack(out), fixed.shape, fa)

    return run


def _elastix(
    fixed: np.ndarray,
    fa: np.ndarray,
    moving: np.ndarray,
    ma: np.ndarray,
    threads: int,
    multimodal: bool,
    iterations: int | None = None,
    estimation: str | None = None,
) -> torch.Tensor:
    """itk-elastix default `affine` + `bspline` parameter maps (Mattes MI, 4 resolutions; mono and multi-modal);
    `iterations` overrides MaximumNumberOfIterations (default 256 per resolution) in both maps, `estimation` the
    optimiser's step-size estimation (ASGDParameterEstimationMethod: Original, the default, or
    DisplacementDistribution, which elastix offers as the faster one for B-splines with many parameters)."""
    import itk

    itk.MultiThreaderBase.SetGlobalDefaultNumberOfThreads(max(1, threads))

    def image(array: np.ndarray, aff: np.ndarray) -> object:
        img = itk.GetImageFromArray(np.ascontiguousarray(array, dtype=np.float32))
        origin, spacing, direction = _itk_geometry(aff)
        img.SetOrigin(origin)
        img.SetSpacing(spacing)
        img.SetDirection(itk.matrix_from_array(np.asarray(direction).reshape(3, 3)))
        return img

    params = itk.ParameterObject.New()
    for name in ("affine", "bspline"):
        pmap = params.GetDefaultParameterMap(name)
        if iterations is not None:
            pmap["MaximumNumberOfIterations"] = [str(int(iterations))]
        # The resampled moving image is never used (the map is read back through transformix below); elastix's
        # stages pass transforms, not images, to each other, so skipping it leaves the transform unchanged.
        pmap["WriteResultImage"] = ["false"]
        if estimation:
            pmap["ASGDParameterEstimationMethod"] = [estimation]
        params.AddParameterMap(pmap)
    f, m = image(fixed, fa), image(moving, ma)
    _, result = itk.elastix_registration_method(f, m, parameter_object=params, log_to_console=False)
    n_maps = result.GetNumberOfParameterMaps()
    for i in range(n_maps):
        result.SetParameter(i, "FinalBSplineInterpolationOrder", "1")
        result.SetParameter(i, "DefaultPixelValue", "0")
    coords, caff = coordinate_images(moving.shape, ma)
    out = []
    for c in range(3):
        w = itk.transformix_filter(image(coords[c], caff), result)
        out.append(np.asarray(itk.GetArrayFromImage(w), dtype=np.float32))
    return _displacement(np.stack(out), fixed.shape, fa)


def _convexadam(
    fixed: np.ndarray, fa: np.ndarray, moving: np.ndarray, ma: np.ndarray, threads: int, multimodal: bool
) -> torch.Tensor:
    """convexAdam defaults (MIND-SSC, grid 6, disp_hw 4, 80 Adam iterations, inverse consistency), fp32 on CPU.

    It registers voxel grids: the moving image is first resampled onto the fixed grid when the grids differ."""
    from convexAdam.convex_adam_MIND import convex_adam_pt

    from tailorkit.registration.transforms import sample

    prior = torch.get_num_threads()
    torch.set_num_threads(max(1, threads))
    try:
        mov = moving
        if moving.shape != fixed.shape or not np.allclose(fa, ma):
            mov = sample(torch.as_tensor(moving)[None], ma, grid_points(fixed.shape, fa))[0].numpy()
        disp = convex_adam_pt(fixed, mov, dtype=torch.float32, device=torch.device("cpu"))
    finally:
        torch.set_num_threads(prior)
    d = torch.as_tensor(np.asarray(disp, dtype=np.float32)).permute(3, 0, 1, 2).contiguous()
    return index_to_displacement(d, fa)


for _name, _fn, _module, _multi, _desc in (
    ("ants_affine", _ants("Affine"), "ants", True, "ANTs Affine (antspyx defaults, Mattes MI)"),
    ("ants_syn", _ants("SyN"), "ants", True, "ANTs SyN (antspyx defaults: affine + SyN, Mattes MI, 40x20x0)"),
    ("elastix", _elastix, "itk", True, "elastix default affine + B-spline maps (itk-elastix, Mattes MI)"),
    ("sitk_demons", _sitk_demons, "SimpleITK", False, "SimpleITK affine + FastSymmetricForces demons"),
    ("convexadam", _convexadam, "convexAdam", True, "convexAdam defaults (MIND-SSC, coupled convex + Adam)"),
):
    PEERS.add(_name, Peer(_fn, _module, _multi, _desc))
