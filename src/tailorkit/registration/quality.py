"""Checks that refuse nonsense: image similarity, the acceptance test of a fitted affine, and the verdict on a
finished registration (docs/registration.md#initialisation-and-checks). Not part of SAME++; every threshold is an
[inferred] setting (`AffineConfig`, `QualityConfig`).

- `Similarity`: how well a moving image mapped by a fixed -> moving map matches the fixed image inside the fixed
  foreground, on one grid: "mind" (mean cosine of MIND-like descriptors of the fixed and the warped moving image;
  comparable across contrasts) or "ncc" (Pearson correlation of the intensities).
- `check_affine`: a fitted affine is accepted only with det(A) in [min_det, max_det], a condition number of its
  linear part of at most `max_condition`, enough consistent matches (residual <= `inlier_mm`: at least
  `min_inliers` and a share `min_inlier_fraction`), and a similarity above the one it started from.
- `assess`: a registration is poor when more than `max_folding_pct` % of the fixed foreground folds (det J <= 0),
  when the median det J there is outside [min_det, max_det], or when its similarity is below the initialisation's
  by more than `tolerance`. The CLI exits 3 on a poor result unless --accept-poor is given.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from tailorkit.registration.config import AffineConfig, FeatureConfig, QualityConfig
from tailorkit.registration.features import mind_features
from tailorkit.registration.transforms import (
    affine_displacement,
    folding_percent,
    grid_points,
    jacobian_determinant,
    sample,
    warp_image,
)

__all__ = ["Similarity", "affine_stats", "assess", "check_affine", "foreground_mask"]


def foreground_mask(image: torch.Tensor, percentile: float) -> torch.Tensor:
    """Voxels brighter than the `percentile`-th percentile (the "body mask" of the matching steps)."""
    flat = image.reshape(-1)[:: max(1, image.numel() // 200000)].float()
    return image > float(torch.quantile(flat, percentile / 100))


class Similarity:
    """Similarity to a fixed image on its grid (see the module docstring).

    Shapes:
        fixed: (*shape) on the grid `affine`; mask: (*shape) bool.
    """

    def __init__(
        self,
        fixed: torch.Tensor,
        affine: np.ndarray,
        mask: torch.Tensor,
        measure: str = "mind",
        features: FeatureConfig | None = None,
    ) -> None:
        if measure not in ("mind", "ncc"):
            raise ValueError(f"similarity: expected mind or ncc, got {measure!r}")
        self.shape = tuple(fixed.shape)
        self.affine = np.asarray(affine, dtype=np.float64)
        self.measure = measure
        self.features = features or FeatureConfig()
        self.mask = mask.bool()
        if measure == "mind":
            ref = mind_features(fixed.float(), self.affine, self.features)
            self.ref = ref.data
            fmask = sample(self.mask.float()[None], self.affine, grid_points(ref.shape, ref.affine), mode="nearest")
            self.ref_mask = fmask[0] > 0.5
        else:
            self.ref = fixed.float()
            self.ref_mask = self.mask

    def of_image(self, warped: torch.Tensor) -> float:
        """Similarity of an image already on the fixed grid."""
        if tuple(warped.shape) != self.shape:
            raise ValueError(f"similarity: expected an image of shape {self.shape}, got {tuple(warped.shape)}")
        if self.measure == "mind":
            data = mind_features(warped.float(), self.affine, self.features).data
            cos = (data * self.ref).sum(0)
            return float(cos[self.ref_mask].mean()) if bool(self.ref_mask.any()) else float("nan")
        a, b = self.ref[self.ref_mask].double(), warped[self.ref_mask].double()
        a, b = a - a.mean(), b - b.mean()
        denom = float(a.norm() * b.norm())
        return float((a * b).sum()) / denom if denom > 0 else 0.0

    def __call__(
        self, moving: torch.Tensor, moving_affine: np.ndarray, transform: np.ndarray | torch.Tensor | None = None
    ) -> float:
        """Similarity of `moving` mapped by `transform`: an (n+1, n+1) world matrix, a displacement (n, *shape)
        on the fixed grid, or None (identity)."""
        n = len(self.shape)
        if transform is None:
            disp = torch.zeros(n, *self.shape)
        elif isinstance(transform, torch.Tensor) and transform.ndim == n + 1:
            disp = transform
        else:
            disp = affine_displacement(np.asarray(transform, dtype=np.float64), self.shape, self.affine)
        return self.of_image(warp_image(moving.float(), moving_affine, disp.float(), self.affine))


def affine_stats(matrix: np.ndarray, fixed_points: torch.Tensor, moving_points: torch.Tensor, inlier_mm: float) -> dict:
    """det, condition number and the matches within `inlier_mm` of the fit (Shapes: (M, n) points)."""
    n = matrix.shape[0] - 1
    lin = np.asarray(matrix, dtype=np.float64)[:n, :n]
    sv = np.linalg.svd(lin, compute_uv=False)
    q, m = fixed_points.double().cpu().numpy(), moving_points.double().cpu().numpy()
    resid = np.linalg.norm(q @ lin.T + matrix[:n, n] - m, axis=1) if len(q) else np.zeros(0)
    inliers = int((resid <= inlier_mm).sum())
    return {
        "det": float(np.linalg.det(lin)),
        "condition": float(sv[0] / sv[-1]) if sv[-1] > 0 else float("inf"),
        "matches": len(q),
        "inliers": inliers,
        "inlier_fraction": inliers / len(q) if len(q) else 0.0,
        "median_residual_mm": float(np.median(resid)) if len(resid) else float("nan"),
    }


def check_affine(
    matrix: np.ndarray,
    fixed_points: torch.Tensor,
    moving_points: torch.Tensor,
    config: AffineConfig,
    similarity_before: float,
    similarity_after: float,
) -> tuple[bool, list[str], dict[str, Any]]:
    """The acceptance test of a fitted affine: (accepted, reasons for refusing, statistics). A NaN similarity (none
    measured) skips the similarity condition."""
    stats = affine_stats(matrix, fixed_points, moving_points, config.inlier_mm)
    stats.update(similarity_before=similarity_before, similarity_after=similarity_after)
    reasons = []
    if not config.min_det <= stats["det"] <= config.max_det:
        kind = "a reflection" if stats["det"] <= 0 else "degenerate"
        reasons.append(f"det {stats['det']:.3f} outside [{config.min_det:g}, {config.max_det:g}] ({kind})")
    if stats["condition"] > config.max_condition:
        reasons.append(f"condition number {stats['condition']:.2f} > {config.max_condition:g}")
    if stats["inliers"] < config.min_inliers or stats["inlier_fraction"] < config.min_inlier_fraction:
        reasons.append(
            f"{stats['inliers']} of {stats['matches']} matches within {config.inlier_mm:g} mm of the fit "
            f"(expected >= {config.min_inliers} and >= {config.min_inlier_fraction:.0%})"
        )
    if np.isfinite(similarity_before) and np.isfinite(similarity_after) and not similarity_after > similarity_before:
        reasons.append(f"similarity {similarity_after:.4f} not above the starting point's {similarity_before:.4f}")
    stats["accepted"] = not reasons
    return not reasons, reasons, stats


def assess(
    displacement: torch.Tensor,
    grid_affine: np.ndarray,
    mask: torch.Tensor,
    similarity_init: float,
    similarity_final: float,
    config: QualityConfig,
) -> dict[str, Any]:
    """The verdict on a finished registration (see the module docstring).

    Shapes:
        displacement: (n, *shape) fixed -> moving, world mm on the grid `grid_affine`; mask: (*shape) bool.
    """
    det = jacobian_determinant(displacement.float(), grid_affine)
    inside = det[mask.bool()] if bool(mask.any()) else det.reshape(-1)
    fold = folding_percent(det, mask.bool() if bool(mask.any()) else None)
    median = float(inside.median())
    problems = []
    if fold > config.max_folding_pct:
        problems.append(f"folding {fold:.2f} % of the fixed foreground (det J <= 0) > {config.max_folding_pct:g} %")
    if not config.min_det <= median <= config.max_det:
        kind = "negative: a reflection" if median <= 0 else "degenerate"
        problems.append(f"median Jacobian determinant {median:.3f} outside [{config.min_det:g}, {config.max_det:g}]"
                        f" ({kind})")  # fmt: skip
    if not similarity_final >= similarity_init - config.tolerance:
        problems.append(
            f"{config.similarity} similarity {similarity_final:.4f} below the initialisation's {similarity_init:.4f}"
        )
    return {
        "passed": not problems,
        "problems": problems,
        "folding_pct": fold,
        "jacobian_median": median,
        "jacobian_min": float(inside.min()),
        "similarity_measure": config.similarity,
        "similarity_init": similarity_init,
        "similarity_final": similarity_final,
    }
