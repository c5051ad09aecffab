"""Landmark confidence: what a located point's confidence is, and whether it predicts the point's error.

Issue 26 (item 4) found `anatomy locate` reporting 0.96-0.99 for every point, 45 mm misses included: the matcher's
score (the best cosine similarity) says how alike two descriptors are, not whether the match is unique. Definitions
(`CONFIDENCES`; `confidence(...)`), all higher = more trusted:

- `score`: the matcher's own similarity (`MatchResult.score`; what `locate` reported so far).
- `margin` [inferred]: the best similarity minus the best similarity farther than `exclusion_mm` from the found point
  (a peak that stands out of the similarity map; a repeated structure or a flat map gives a small margin). It is the
  difference form of the top-1 / top-2 peak ratio of feature matching; the second peak is taken outside a radius so
  that the peak's own neighbours (which are always nearly as similar) do not count as a rival.
- `cycle` [inferred]: forward-backward consistency. The target descriptor at the found point is matched back over
  the atlas; confidence = 1 / (1 + d / `cycle_scale_mm`), d the distance of that backward match from the landmark.

Calibration checks (pure functions, any confidence): `separation_auc` (the probability that a point with error
<= `good_mm` gets a higher confidence than one with error >= `bad_mm`; ties count one half) and `reliability_table`
(equal-count confidence bins against the measured error).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from tailorkit.anatomy.embed import Embedding
from tailorkit.anatomy.matching import MatchResult, best_match

__all__ = ["CONFIDENCES", "confidence", "peak_margin", "reliability_table", "select_confidence", "separation_auc"]

CONFIDENCES = ("score", "margin", "cycle")


def separation_auc(
    confidence: Sequence[float] | np.ndarray,
    error: Sequence[float] | np.ndarray,
    good_mm: float = 5.0,
    bad_mm: float = 15.0,
) -> float:
    """AUC of `confidence` for telling errors <= `good_mm` from errors >= `bad_mm` (points in between are left
    out): 1 = every good point above every bad one, 0.5 = no better than chance, 0 = reversed. NaN when either
    class is empty."""
    conf, err = np.asarray(confidence, dtype=np.float64), np.asarray(error, dtype=np.float64)
    if conf.shape != err.shape:
        raise ValueError(f"separation_auc: confidence {conf.shape} and error {err.shape} differ in shape")
    good, bad = conf[err <= good_mm], conf[err >= bad_mm]
    if len(good) == 0 or len(bad) == 0:
        return math.nan
    # Mann-Whitney U from the ranks of the pooled values (average ranks for ties, so a tie counts one half)
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([good, bad]))
    u = ranks[: len(good)].sum() - len(good) * (len(good) + 1) / 2
    return float(u / (len(good) * len(bad)))


def reliability_table(
    confidence: Sequence[float] | np.ndarray,
    error: Sequence[float] | np.ndarray,
    bins: int = 5,
    good_mm: float = 5.0,
    bad_mm: float = 15.0,
) -> list[dict[str, float]]:
    """Equal-count confidence bins (lowest first) with the measured error in each: confidence range, n, mean and
    median error, and the shares of errors <= `good_mm` and >= `bad_mm`. Calibrated means the error falls and
    the good share rises from bin to bin."""
    conf, err = np.asarray(confidence, dtype=np.float64), np.asarray(error, dtype=np.float64)
    if conf.shape != err.shape or conf.ndim != 1:
        raise ValueError(f"reliability_table: expected two 1D arrays of one length, got {conf.shape}, {err.shape}")
    order = np.argsort(conf, kind="stable")
    table = []
    for part in np.array_split(order, min(bins, len(order))):
        if len(part) == 0:
            continue
        c, e = conf[part], err[part]
        table.append(
            {"conf_low": float(c.min()), "conf_high": float(c.max()), "n": float(len(part)),
             "mean_error_mm": float(e.mean()), "median_error_mm": float(np.median(e)),
             "share_good": float((e <= good_mm).mean()), "share_bad": float((e >= bad_mm).mean())}
        )  # fmt: skip
    return table


def peak_margin(
    query: torch.Tensor,
    target: Embedding,
    found: torch.Tensor,
    heads: tuple[str, ...],
    exclusion_mm: float = 15.0,
    batch: int = 256,
) -> torch.Tensor:
    """Best similarity of each query over the target minus its best similarity farther than `exclusion_mm` from
    `found` (the located point). Shapes: query (N, C), found (N, 3) world mm -> (N,)."""
    keys = target.descriptors(heads)
    world = target.fine_world().to(found.dtype)
    out = []
    for start in range(0, len(query), batch):
        sims = query[start : start + batch] @ keys.T  # (b, V)
        near = torch.cdist(found[start : start + batch].float(), world.float()) <= exclusion_mm
        rival = sims.masked_fill(near, -math.inf).max(dim=1).values
        best = sims.max(dim=1).values
        out.append(torch.where(torch.isfinite(rival), best - rival, best + 1.0))  # no rival at all: the widest margin
    return torch.cat(out)


def confidence(
    kind: str,
    atlas: Embedding,
    target: Embedding,
    points: torch.Tensor,
    result: MatchResult,
    heads: tuple[str, ...],
    *,
    exclusion_mm: float = 15.0,
    cycle_scale_mm: float = 5.0,
    batch: int = 4096,
) -> torch.Tensor:
    """Confidence `kind` (`CONFIDENCES`) of the located `result.points` of atlas `points`. Shapes: (N, 3) -> (N,)."""
    if kind == "score":
        return result.score.float()
    if kind == "margin":
        return peak_margin(atlas.sample(points.float(), heads), target, result.points, heads, exclusion_mm)
    if kind == "cycle":
        back, _, _ = best_match(target.sample(result.points.float(), heads), atlas, heads, batch)
        return 1.0 / (1.0 + (back - points.float()).norm(dim=1) / cycle_scale_mm)
    raise ValueError(f"confidence: expected one of {', '.join(CONFIDENCES)}, got {kind!r}")


def select_confidence(per_kind_auc: dict[str, float]) -> str:
    """The definition with the highest AUC (on validation data only); ties and NaNs keep `CONFIDENCES` order."""
    finite = {k: v for k, v in per_kind_auc.items() if math.isfinite(v)}
    if not finite:
        return CONFIDENCES[0]
    best = max(finite.values())
    return next(k for k in CONFIDENCES if finite.get(k) == best)
