"""Segmentation uncertainty scores for selection: prompt-based (TESLA), entropy, and MC-dropout BALD.

Prompt-based uncertainty [inferred, docs/active.md#the-method-as-implemented]: with K prompt sets' probabilities p_k and
their mean p,
u(x) = sum_{pixels in R} [ H(p) + alpha * (1/K) sum_k (p_k - p)^2 ] / |pixels|, where H is the binary entropy (nats)
and R is every pixel (region="all") or the predicted-lesion region {p > threshold} dilated by `dilation` pixels
(region="foreground": background entropy otherwise swamps small lesions, the aggregation problem baal users report).
Dividing by the image size, not |R|, ranks an image with more uncertain lesion area higher; an image with no
predicted foreground scores 0 under region="foreground".

BALD (Gal, Islam, Ghahramani, ICML 2017): per-pixel mutual information H(mean_t p_t) - mean_t H(p_t) over T
MC-dropout passes, aggregated the same way.

Shapes:
    probs: (N, K, *S) -> (N,) scores.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["bald_score", "binary_entropy", "foreground_region", "prompt_uncertainty"]


def binary_entropy(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, 1e-7, 1 - 1e-7)
    return -(q * np.log(q) + (1 - q) * np.log1p(-q))


def foreground_region(mean_prob: np.ndarray, threshold: float, dilation: int) -> np.ndarray:
    """(N, *S) boolean: pixels with mean_prob > threshold, dilated by a (2r+1)-wide max filter."""
    region = torch.as_tensor(mean_prob > threshold, dtype=torch.float32)
    if dilation > 0:
        pool = F.max_pool2d if region.dim() == 3 else F.max_pool3d
        region = pool(region.unsqueeze(1), 2 * dilation + 1, stride=1, padding=dilation).squeeze(1)
    return region.numpy() > 0


def _aggregate(
    pixel_scores: np.ndarray, mean_prob: np.ndarray, region: str, threshold: float, dilation: int
) -> np.ndarray:
    if region not in ("all", "foreground"):
        raise ValueError(f"region: expected 'all' or 'foreground', got {region!r}")
    if region == "foreground":
        pixel_scores = pixel_scores * foreground_region(mean_prob, threshold, dilation)
    return pixel_scores.reshape(len(pixel_scores), -1).mean(axis=1)


def prompt_uncertainty(
    probs: np.ndarray, alpha: float = 1.0, region: str = "foreground", threshold: float = 0.3, dilation: int = 3
) -> np.ndarray:
    """Entropy of the mean plus alpha x disagreement across the K prompt sets, per image."""
    if probs.ndim < 3:
        raise ValueError(f"prompt_uncertainty: expected (N, K, *S) probabilities, got {probs.shape}")
    mean = probs.mean(axis=1)
    pixel = binary_entropy(mean) + alpha * ((probs - mean[:, None]) ** 2).mean(axis=1)
    return _aggregate(pixel, mean, region, threshold, dilation)


def bald_score(samples: np.ndarray, region: str = "all", threshold: float = 0.3, dilation: int = 3) -> np.ndarray:
    """Mutual information between prediction and weights from T stochastic passes (N, T, *S), per image."""
    if samples.ndim < 3 or samples.shape[1] < 2:
        raise ValueError(f"bald_score: expected (N, T >= 2, *S) MC samples, got {samples.shape}")
    mean = samples.mean(axis=1)
    pixel = binary_entropy(mean) - binary_entropy(samples).mean(axis=1)
    return _aggregate(np.maximum(pixel, 0.0), mean, region, threshold, dilation)
