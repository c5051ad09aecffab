"""Selection baselines: random, entropy, MC-dropout BALD, core-set (k-center greedy) and USL-style k-means.

Two-round protocol [inferred, docs/active.md#the-method-as-implemented]: with no labels yet (`cold`), random, entropy,
BALD and core-set all draw the same random warm start (the round's random stream is shared across strategies, so arms
are paired); in later rounds (`warm`):
- random: another random draw;
- entropy: top mean-pixel binary entropy of the selection model's mean prediction (region: SelectConfig.entropy_region,
  "all" as in baal's per-pixel mean); the selection model is the SLPT tuner trained on the labels so far;
- bald (Gal et al., ICML 2017): top mutual information from SelectConfig.mc_samples MC-dropout passes of that model
  (dropout in the frozen backbone's decoder switched on; normalisation stays frozen);
- coreset (Sener & Savarese, ICLR 2018): k-center greedy on frozen-encoder features from the labelled centers;
- usl (Wang et al., ECCV 2022, simplified to k-means representatives): label-free in every round.
"""

from __future__ import annotations

import numpy as np

from tailorkit.active.methods.base import STRATEGIES, SelectionContext, SelectionStrategy
from tailorkit.active.selection import k_center_greedy, kmeans_representatives
from tailorkit.active.tuning import predict
from tailorkit.active.uncertainty import bald_score, binary_entropy, foreground_region

__all__ = ["BALD", "USL", "CoreSet", "Entropy", "RandomSelection", "top_scores"]


def top_scores(candidates: np.ndarray, scores: np.ndarray, n: int) -> list[int]:
    """The n candidates with the highest scores (ties broken by index, stably)."""
    order = np.argsort(-scores, kind="stable")[:n]
    return [int(candidates[i]) for i in order]


@STRATEGIES.register("random")
class RandomSelection(SelectionStrategy):
    def cold(self, ctx: SelectionContext, n: int) -> list[int]:
        return [int(i) for i in ctx.rng.choice(ctx.unlabelled(), size=n, replace=False)]


@STRATEGIES.register("entropy")
class Entropy(RandomSelection):
    def warm(self, ctx: SelectionContext, n: int) -> list[int]:
        cand = ctx.unlabelled()
        mean = predict(ctx.selection_model(), ctx.images[cand]).mean(axis=1)
        pixel = binary_entropy(mean)
        if ctx.config.entropy_region == "foreground":
            pixel = pixel * foreground_region(mean, ctx.config.threshold, ctx.config.dilation)
        scores = pixel.reshape(len(cand), -1).mean(axis=1)
        ctx.info["scores"] = scores.tolist()
        return top_scores(cand, scores, n)


@STRATEGIES.register("bald")
class BALD(RandomSelection):
    def warm(self, ctx: SelectionContext, n: int) -> list[int]:
        cand = ctx.unlabelled()
        model = ctx.selection_model()
        passes = [predict(model, ctx.images[cand], mc_dropout=True) for _ in range(ctx.config.mc_samples)]
        # every pass gives K prompt-set maps; BALD uses the ensemble mean of each pass as one stochastic sample
        samples = np.stack([p.mean(axis=1) for p in passes], axis=1)
        scores = bald_score(samples, ctx.config.entropy_region, ctx.config.threshold, ctx.config.dilation)
        ctx.info["scores"] = scores.tolist()
        return top_scores(cand, scores, n)


@STRATEGIES.register("coreset")
class CoreSet(RandomSelection):
    def warm(self, ctx: SelectionContext, n: int) -> list[int]:
        return k_center_greedy(ctx.features, n, ctx.labelled)


@STRATEGIES.register("usl")
class USL(SelectionStrategy):
    def cold(self, ctx: SelectionContext, n: int) -> list[int]:
        seed = int(ctx.rng.integers(2**31))
        return kmeans_representatives(ctx.features, n, seed, candidates=ctx.unlabelled())
