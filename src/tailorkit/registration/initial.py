"""The initial transform every method starts from: identity, centre of mass or principal axes (moments), chosen by
similarity (docs/registration.md#initialisation-and-checks). Not part of SAME++ (whose SAM-Affine matches the whole
image); the established tools start this way (ANTs' and SimpleITK's moments / centre-of-mass initialisers).

[inferred] Moments are those of each image's foreground (an Otsu threshold of its intensities, so a head and a
brain are compared by shape, not by contrast). Candidates: identity; the translation taking the fixed centre of mass
to the moving one; and the rotations about it taking the fixed principal axes to the moving ones (every sign choice
with det +1, at most `max_rotation_deg`). Principal axes are ambiguous in sign and, for near-equal moments, in
order, so no candidate is trusted blindly: the one most similar to the fixed image (`quality.Similarity`) wins,
which never scores below identity.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import torch

from tailorkit.registration.config import InitConfig
from tailorkit.registration.quality import Similarity
from tailorkit.registration.transforms import grid_points

__all__ = ["initial_transform", "moments", "otsu_threshold", "rotation_deg"]


def otsu_threshold(image: torch.Tensor, bins: int = 128) -> float:
    """Otsu's threshold of an image's intensities (maximal between-class variance)."""
    flat = image.reshape(-1)[:: max(1, image.numel() // 500000)].double().cpu().numpy()
    hist, edges = np.histogram(flat, bins=bins)
    p = hist / max(1, hist.sum())
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(p)
    mu = np.cumsum(p * centres)
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mu[-1] * w0 - mu) ** 2 / (w0 * (1 - w0))
    between[~np.isfinite(between)] = -1
    return float(edges[int(np.argmax(between)) + 1])


def moments(image: torch.Tensor, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre of mass, principal axes (columns, decreasing variance) and variances of an image's foreground in
    world mm. Shapes: image (*shape) -> (n,), (n, n), (n,)."""
    n = image.ndim
    fg = image > otsu_threshold(image)
    if int(fg.sum()) < n + 1:
        fg = image > image.min()
    world = grid_points(tuple(image.shape), affine).reshape(n, -1)[:, fg.reshape(-1).cpu()].double().numpy()
    centre = world.mean(axis=1)
    cov = np.cov(world - centre[:, None]) if world.shape[1] > 1 else np.eye(n)
    values, vectors = np.linalg.eigh(np.atleast_2d(cov))
    order = np.argsort(values)[::-1]
    return centre, vectors[:, order], values[order]


def rotation_deg(matrix: np.ndarray) -> float:
    """The rotation angle (degrees) of an (n+1, n+1) matrix's linear part (assumed a rotation)."""
    n = matrix.shape[0] - 1
    r = np.asarray(matrix)[:n, :n]
    if n == 2:
        return float(abs(np.degrees(np.arctan2(r[1, 0], r[0, 0]))))
    return float(np.degrees(np.arccos(np.clip((np.trace(r) - 1) / 2, -1.0, 1.0))))


def _rigid(rotation: np.ndarray, fixed_centre: np.ndarray, moving_centre: np.ndarray) -> np.ndarray:
    n = len(fixed_centre)
    out = np.eye(n + 1)
    out[:n, :n] = rotation
    out[:n, n] = moving_centre - rotation @ fixed_centre
    return out


def initial_transform(
    fixed: torch.Tensor,
    fixed_affine: np.ndarray,
    moving: torch.Tensor,
    moving_affine: np.ndarray,
    config: InitConfig,
    similarity: Similarity,
) -> tuple[np.ndarray, dict[str, Any]]:
    """The fixed -> moving world matrix to start from, and a report (candidates with their similarity, the chosen).

    Shapes:
        fixed: (*f_shape), moving: (*m_shape) with index -> world affines (2D or 3D); return (n+1, n+1).
    """
    n = fixed.ndim
    candidates: dict[str, np.ndarray] = {"identity": np.eye(n + 1)}
    if config.kind != "none":
        cf, vf, _ = moments(fixed, fixed_affine)
        cm, vm, _ = moments(moving, moving_affine)
        candidates["centre_of_mass"] = _rigid(np.eye(n), cf, cm)
        if config.kind == "moments":
            for k, signs in enumerate(itertools.product((1.0, -1.0), repeat=n)):
                rot = vm @ np.diag(signs) @ vf.T
                if np.linalg.det(rot) <= 0:
                    continue
                mat = _rigid(rot, cf, cm)
                if rotation_deg(mat) <= config.max_rotation_deg:
                    candidates[f"principal_axes_{k}"] = mat
    scores = {name: similarity(moving, moving_affine, mat) for name, mat in candidates.items()}
    best = max(scores, key=lambda name: scores[name])
    report = {
        "kind": config.kind,
        "chosen": best,
        "similarity": {k: round(v, 5) for k, v in scores.items()},
        "similarity_measure": similarity.measure,
        "rotation_deg": rotation_deg(candidates[best]),
        "translation_mm": np.asarray(candidates[best])[:n, n].round(3).tolist(),
    }
    return candidates[best], report
