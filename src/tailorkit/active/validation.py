"""Settings chosen on a validation split of the pool, never on the test patches (issue 22).

The pool is cut in two halves by a seeded permutation: the model trains on labels from half A and is scored (global
Dice of the mean over prompt sets) on half B, whose masks only this choice ever sees. Two uses:

- `choose_discrepancy`: SLPT's diversification weight (TuneConfig.discrepancy) from a grid, training on a random
  `budget` share of half A (the label-limited regime the bench measures);
- `choose_reference_steps`: the full-pool reference's step multiplier, training on all of half A.

The choice is the grid value with the highest mean validation Dice over the seeds (ties: the first in the grid).
`python -m tailorkit.active.validation [DATASET ...]` prints both tables (docs/active.md quotes them).
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from tailorkit.active.config import BackboneConfig, DataConfig, TuneConfig, budget_count
from tailorkit.active.data import SegSet

__all__ = ["choose", "choose_discrepancy", "choose_reference_steps", "validation_halves"]


def validation_halves(pool: SegSet, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the training half A and the validation half B of `pool` (disjoint, covering it)."""
    order = np.random.default_rng([seed, 22]).permutation(len(pool))
    half = len(pool) // 2
    return np.sort(order[:half]), np.sort(order[half:])


def _score(
    pool: SegSet, backbone: Any, train_idx: np.ndarray, val_idx: np.ndarray, tune: TuneConfig, seed: int
) -> float:
    from tailorkit.active.methods import make_tuner
    from tailorkit.active.tuning import dice_global, predict
    from tailorkit.active.tuning import tune as train
    from tailorkit.core.seeding import derive_seed

    model = make_tuner(backbone, tune, derive_seed(seed, "val-init"))
    train(model, pool.images[train_idx], pool.masks[train_idx], tune, derive_seed(seed, "val-train"))
    pred = predict(model, pool.images[val_idx]).mean(axis=1) > 0.5
    return dice_global(pred, pool.masks[val_idx])


def choose(scores: dict[float, list[float]]) -> float:
    """The grid value with the highest mean score (ties: the first)."""
    return max(scores, key=lambda v: (statistics.fmean(scores[v]), -list(scores).index(v)))


def choose_discrepancy(
    pool: SegSet, backbone: Any, tune: TuneConfig, grid: Sequence[float], budget: float, seeds: Sequence[int]
) -> tuple[float, dict[float, list[float]]]:
    """SLPT's discrepancy weight from `grid`: trained on `budget` of half A (random labels), scored on half B."""
    scores: dict[float, list[float]] = {float(v): [] for v in grid}
    for seed in seeds:
        a, b = validation_halves(pool, seed)
        labelled = np.random.default_rng([seed, 23]).choice(a, budget_count(budget, len(pool)), replace=False)
        for value in scores:
            config = dataclasses.replace(tune, method="slpt", discrepancy=value)
            scores[value].append(_score(pool, backbone, labelled, b, config, seed))
    return choose(scores), scores


def choose_reference_steps(
    pool: SegSet, backbone: Any, tune: TuneConfig, grid: Sequence[float], seeds: Sequence[int]
) -> tuple[float, dict[float, list[float]]]:
    """The full-pool reference's step multiplier from `grid`: trained on all of half A, scored on half B."""
    scores: dict[float, list[float]] = {float(v): [] for v in grid}
    for seed in seeds:
        a, b = validation_halves(pool, seed)
        for value in scores:
            config = dataclasses.replace(tune, steps=max(1, round(tune.steps * value)))
            scores[value].append(_score(pool, backbone, a, b, config, seed))
    return choose(scores), scores


def main(argv: Sequence[str] | None = None) -> int:
    """Print the validation tables for each dataset (default: lits and synthliver_rare)."""
    import torch

    from tailorkit.active.backbone import pretrained_backbone
    from tailorkit.active.data import load_split

    torch.set_num_threads(1)
    datasets = list(argv if argv is not None else sys.argv[1:]) or ["lits", "synthliver_rare"]
    tune = TuneConfig()
    for dataset in datasets:
        split = load_split(DataConfig(dataset=dataset))  # type: ignore[arg-type]
        backbone = pretrained_backbone(split.upstream, BackboneConfig(), progress=False)
        _, lam_scores = choose_discrepancy(split.pool, backbone, tune, (0.0, 0.1, 0.3, 1.0), 0.05, (0, 1))
        lam = choose({v: s for v, s in lam_scores.items() if v > 0})  # diversification on: 0 shown for reference
        print(f"{dataset} discrepancy: chosen {lam:g} (of > 0); validation Dice " + _fmt(lam_scores), flush=True)
        for tuner in ("slpt", "full_ft"):
            ref = dataclasses.replace(tune, method=tuner)
            steps, step_scores = choose_reference_steps(split.pool, backbone, ref, (1.0, 4.0), (0,))
            print(
                f"{dataset} reference {tuner} steps: chosen x{steps:g}; validation Dice " + _fmt(step_scores),
                flush=True,
            )
    return 0


def _fmt(scores: dict[float, list[float]]) -> str:
    return ", ".join(f"{v:g}: {statistics.fmean(s):.4f} {[round(x, 4) for x in s]}" for v, s in scores.items())


if __name__ == "__main__":
    raise SystemExit(main())
