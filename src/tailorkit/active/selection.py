"""Label-free selection primitives on feature vectors: k-center greedy and k-means representatives.

- k-center greedy (Sener & Savarese, "Active Learning for Convolutional Neural Networks: A Core-Set Approach", ICLR
  2018): repeatedly add the point farthest from its nearest chosen center. The paper's robust MIP variant needs a
  commercial solver and is not implemented (as in DeepAL, which also ships only the greedy version).
- k-means representatives (USL-style, Wang, Lian, Yu, "Unsupervised Selective Labeling for More Effective
  Semi-Supervised Learning", ECCV 2022, simplified: plain k-means, no regularised refinement): cluster into n groups
  and take the member nearest each centroid, which is representative and diverse. TESLA's stage one.

Shapes:
    features: (N, D) float; returns lists of row indices.
"""

from __future__ import annotations

import numpy as np

__all__ = ["k_center_greedy", "kmeans_representatives", "normalise"]


def normalise(features: np.ndarray) -> np.ndarray:
    f = np.asarray(features, dtype=np.float64)
    return f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)


def _check(features: np.ndarray, n: int, candidates: np.ndarray) -> None:
    if features.ndim != 2:
        raise ValueError(f"features: expected (N, D), got {features.shape}")
    if n < 0 or n > len(candidates):
        raise ValueError(f"n: expected 0..{len(candidates)} (the candidates available), got {n}")


def k_center_greedy(
    features: np.ndarray,
    n: int,
    centers: list[int] | np.ndarray = (),  # type: ignore[assignment]
    rng: np.random.Generator | None = None,
) -> list[int]:
    """`n` new indices, each the point farthest (Euclidean) from the current centers; starts from `centers`, or
    from a random point (rng) / point 0 when there are none."""
    features = np.asarray(features, dtype=np.float64)
    centers = [int(c) for c in centers]
    _check(features, n, np.setdiff1d(np.arange(len(features)), centers))
    chosen: list[int] = []
    if n == 0:
        return chosen
    if not centers:
        first = int(rng.integers(len(features))) if rng is not None else 0
        chosen.append(first)
        centers = [first]
    diff = features[:, None, :] - features[None, centers, :]
    nearest = np.sqrt((diff**2).sum(-1)).min(axis=1)
    nearest[centers] = -1.0
    while len(chosen) < n:
        pick = int(np.argmax(nearest))
        chosen.append(pick)
        nearest = np.minimum(nearest, np.sqrt(((features - features[pick]) ** 2).sum(-1)))
        nearest[pick] = -1.0
        nearest[centers] = -1.0
    return chosen


def kmeans_labels(features: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """k-means (sklearn, k-means++ init, 4 restarts) -> (labels (N,), centroids (k, D))."""
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(np.asarray(features, dtype=np.float64))
    return km.labels_, km.cluster_centers_


def kmeans_representatives(features: np.ndarray, n: int, seed: int, candidates: np.ndarray | None = None) -> list[int]:
    """`n` indices (from `candidates`, default all): for each of n k-means clusters, the member nearest its centroid."""
    features = np.asarray(features, dtype=np.float64)
    cand = np.arange(len(features)) if candidates is None else np.asarray(candidates, dtype=np.int64)
    _check(features, n, cand)
    if n == 0:
        return []
    labels, centroids = kmeans_labels(features[cand], n, seed)
    chosen: list[int] = []
    for c in range(n):
        members = np.flatnonzero(labels == c)
        if len(members) == 0:
            continue
        dist = ((features[cand[members]] - centroids[c]) ** 2).sum(-1)
        chosen.append(int(cand[members[np.argmin(dist)]]))
    if len(chosen) < n:  # empty clusters (duplicate points): fill with the farthest remaining points
        local = [int(np.flatnonzero(cand == c)[0]) for c in chosen]
        chosen += [int(cand[i]) for i in k_center_greedy(features[cand], n - len(chosen), local)]
    return chosen
