"""Paired evidence over seeds: intervals, three-way verdicts, and the merge of per-seed bench runs.

A claim "A beats B by margin m" is decided on the paired differences d_s = A_s - B_s over seeds s (each seed fixes
the data draw and the initialisation of every method alike):

- `paired(a, b)` gives the mean difference, its SD, a 95 % interval (Student t for small n; a percentile
  bootstrap as an option), the number of seeds won and n;
- `verdict(low, high, margin)` is `holds` when the whole interval lies above m, `fails` when it lies below m,
  and `undecided` otherwise. One seed gives no interval, so every paired claim on one seed is `undecided`.

`tailorkit.core.results.merge_outcomes` applies them to N single-seed bench outcomes, and `check_against` compares a
rerun with a committed document (`tailorkit reproduce --check`). This module imports nothing of the package, so the
contract module (results.py) can build on it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

Verdict = Literal["holds", "fails", "undecided"]
VERDICTS: tuple[str, ...] = ("holds", "fails", "undecided")


@dataclass(frozen=True)
class Paired:
    """A paired comparison over n seeds. `ci_low`/`ci_high` are None when n < 2 (no interval from one value)."""

    mean: float
    sd: float
    ci_low: float | None
    ci_high: float | None
    n: int
    wins: int
    level: float = 0.95
    interval: str = "t"


def t_interval(values: Sequence[float], level: float = 0.95) -> tuple[float | None, float | None]:
    """Two-sided Student-t interval of the mean; (None, None) for fewer than two values."""
    n = len(values)
    if n < 2:
        return None, None
    from scipy import stats

    mean = statistics.fmean(values)
    sem = statistics.stdev(values) / math.sqrt(n)
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sem
    return mean - half, mean + half


def bootstrap_interval(
    values: Sequence[float], level: float = 0.95, resamples: int = 10_000, seed: int = 0
) -> tuple[float | None, float | None]:
    """Percentile bootstrap interval of the mean (seeded, so a rerun gives the same interval)."""
    import numpy as np

    if len(values) < 2:
        return None, None
    x = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(resamples, len(x)))].mean(axis=1)
    low, high = np.quantile(means, [0.5 - level / 2, 0.5 + level / 2])
    return float(low), float(high)


def paired(
    a: Sequence[float],
    b: Sequence[float] | None = None,
    *,
    level: float = 0.95,
    interval: str = "t",
    higher_is_better: bool = True,
) -> Paired:
    """Paired comparison of `a` against `b` (same seeds, same order); `b=None` takes `a` as the differences.

    `wins` counts seeds on which A is better than B (strictly; a tie is not a win). With `higher_is_better=False`
    the differences are still a - b, but a win is a - b < 0.
    """
    diffs = [float(x) for x in a] if b is None else [float(x) - float(y) for x, y in zip(a, b, strict=True)]
    diffs = [d for d in diffs if math.isfinite(d)]
    n = len(diffs)
    if n == 0:
        return Paired(math.nan, math.nan, None, None, 0, 0, level, interval)
    if interval == "t":
        low, high = t_interval(diffs, level)
    elif interval == "bootstrap":
        low, high = bootstrap_interval(diffs, level)
    else:
        raise ValueError(f"interval: expected 't' or 'bootstrap', got {interval!r}")
    wins = sum(d > 0 for d in diffs) if higher_is_better else sum(d < 0 for d in diffs)
    sd = statistics.stdev(diffs) if n > 1 else 0.0
    return Paired(statistics.fmean(diffs), sd, low, high, n, wins, level, interval)


def verdict(low: float | None, high: float | None, margin: float = 0.0) -> Verdict:
    """`holds` if the interval lies above `margin`, `fails` if below it, else `undecided` (also with no interval)."""
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return "undecided"
    if low > margin:
        return "holds"
    if high < margin:
        return "fails"
    return "undecided"


def verdict_within(low: float | None, high: float | None, target: float, tolerance: float) -> Verdict:
    """For a claim "value is target +- tolerance": holds if the interval is inside the band, fails if disjoint."""
    if low is None or high is None:
        return "undecided"
    if target - tolerance <= low and high <= target + tolerance:
        return "holds"
    if high < target - tolerance or low > target + tolerance:
        return "fails"
    return "undecided"


def claim_verdict(kind: str, p: Paired, target: float, tolerance: float = 0.0) -> Verdict:
    """The three-way verdict of a claim of `kind` (at_least / at_most / within / paired) from its interval."""
    if kind == "at_most":
        return verdict(None if p.ci_high is None else -p.ci_high, None if p.ci_low is None else -p.ci_low, -target)
    if kind == "within":
        return verdict_within(p.ci_low, p.ci_high, target, tolerance)
    return verdict(p.ci_low, p.ci_high, target)


def check_against(old: dict[str, Any], new: dict[str, Any]) -> tuple[list[str], int]:
    """Per claim of the committed document `old`: does the rerun's value fall inside the committed interval?

    Returns the report lines and the number of claims outside their interval. A claim committed without an interval
    (one seed) is compared by value and verdict only, and never counted as outside.
    """
    fresh = {c["id"]: c for c in new["claims"]}
    lines, outside = [], 0
    for c in old["claims"]:
        n = fresh.get(c["id"])
        if n is None:
            lines.append(f"{c['id']}: missing from the rerun")
            outside += 1
            continue
        low, high = c.get("ci_low"), c.get("ci_high")
        old_verdict = c.get("verdict") or ("holds" if c["holds"] else "fails")
        new_verdict = n.get("verdict") or ("holds" if n["holds"] else "fails")
        same = "same verdict" if old_verdict == new_verdict else f"verdict {old_verdict} -> {new_verdict}"
        if low is None or high is None:
            lines.append(
                f"{c['id']}: no committed interval (one seed); value {c['value']:.4g} -> {n['value']:.4g}, {same}"
            )
            continue
        inside = low <= n["value"] <= high
        outside += not inside
        lines.append(
            f"{c['id']}: {n['value']:.4g} is {'inside' if inside else 'OUTSIDE'} the committed interval "
            f"[{low:.4g}, {high:.4g}] (committed mean {c['value']:.4g}), {same}"
        )
    lines.append(f"{len(old['claims']) - outside}/{len(old['claims'])} claims inside (or without) their interval")
    return lines, outside
