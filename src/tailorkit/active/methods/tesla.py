"""TESLA, TandEm Selective LAbeling (SLPT, Bai et al., MICCAI 2023, arXiv:2308.04911).

Abstract [verified]: "unsupervised diversity selection" followed by "supervised selection using prompt-based
uncertainty". Everything else is [inferred] (docs/active.md#the-method-as-implemented):
- stage one (cold, no labels): k-means with B1 clusters on L2-normalised frozen-encoder descriptors (global average
  of the bottleneck), label the member nearest each centroid (USL-style representatives);
- stage two (warm): tune the K-set SLPT model on the labels so far, score every unlabelled item by the prompt-based
  uncertainty (entropy of the mean + alpha x disagreement across sets, restricted to the dilated predicted-lesion
  region; tailorkit.active.uncertainty), cluster the unlabelled items into B2 k-means clusters and take the most
  uncertain item of each cluster (diversity kept in the supervised stage); fill any shortfall by score.
The budget split B1 = round(stage1_fraction x B) is made by the loop (ActiveLearner) or the caller.
"""

from __future__ import annotations

import numpy as np

from tailorkit.active.methods.base import STRATEGIES, SelectionContext, SelectionStrategy
from tailorkit.active.selection import kmeans_labels, kmeans_representatives
from tailorkit.active.tuning import predict
from tailorkit.active.uncertainty import prompt_uncertainty

__all__ = ["TESLA", "cluster_constrained_top"]


def cluster_constrained_top(candidates: np.ndarray, scores: np.ndarray, labels: np.ndarray, n: int) -> list[int]:
    """The best-scoring candidate of each cluster (clusters taken in order of their best score), then the rest by
    score until n are chosen."""
    order = np.argsort(-scores, kind="stable")
    chosen: list[int] = []
    seen: set[int] = set()
    for i in order:
        if int(labels[i]) not in seen:
            seen.add(int(labels[i]))
            chosen.append(int(i))
    chosen = chosen[:n]
    for i in order:
        if len(chosen) >= n:
            break
        if int(i) not in chosen:
            chosen.append(int(i))
    return [int(candidates[i]) for i in chosen]


@STRATEGIES.register("tesla")
class TESLA(SelectionStrategy):
    def cold(self, ctx: SelectionContext, n: int) -> list[int]:
        seed = int(ctx.rng.integers(2**31))
        return kmeans_representatives(ctx.features, n, seed, candidates=ctx.unlabelled())

    def warm(self, ctx: SelectionContext, n: int) -> list[int]:
        cand = ctx.unlabelled()
        probs = predict(ctx.selection_model(), ctx.images[cand])
        c = ctx.config
        scores = prompt_uncertainty(probs, c.alpha, c.region, c.threshold, c.dilation)
        labels, _ = kmeans_labels(ctx.features[cand], min(n, len(cand)), int(ctx.rng.integers(2**31)))
        ctx.info["scores"] = scores.tolist()
        return cluster_constrained_top(cand, scores, labels, n)
