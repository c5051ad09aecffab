"""`tailorkit bench active`: SLPT's claims on the real LiTS volume and on SynthLiver with a rare mode, with paired
seeds.

Protocol [inferred, docs/active.md#benchmark; SLPT's own protocol is unknown]: per dataset, a U-Net pretrained on the
liver (organ) task is frozen (cached on disk). For each seed and each selection arm, the ActiveLearner picks a budget of
5 % of the pool in two rounds (half label-free, half with a selection model trained on the first half; USL picks all at
once), revealing the pool's lesion masks as the oracle. Then each final tuner (SLPT prompts and full fine-tuning; plus
the extra tuning baselines on the random selection) trains on the selected labels and is scored on the test set. The
full-pool reference trains the same tuners on every pool label for its own, longer budget (`full_pool_steps` x the
steps; chosen on a pool validation split, docs/active.md). SLPT's K prompt sets are diversified by default
(TuneConfig.discrepancy, chosen on a pool validation split). Seeds: bench seed s fixes the data draw (SynthLiver: pool
and test draw s; LiTS has one volume, so its draw is fixed) and every initialisation: the k seeds of one call are s, s +
1000, ..., so distinct bench seeds share none. Every arm at a seed shares the random warm start, model initialisations
and training seeds (paired).

Rows: "<dataset>/<arm>/<tuner>" with dice_global, dice_per_case, fraction_of_full (per-seed Dice / full-pool Dice of
the same tuner and seed), tunable_fraction, set_agreement (SLPT: mean pairwise Dice between the K sets' test masks;
1 = identical sets), their seed standard deviations, and selection statistics (share of lesion-positive items
selected; SynthLiver: items with a rim-enhancing lesion, the rare type of synthliver_rare).

Claims, per dataset, each a per-seed quantity decided by its 95 % t interval (over the call's seeds, or over bench
seeds when the runner pairs one-seed calls; one seed: `undecided`):
- `<d>-prompt-beats-full-ft`: SLPT - full fine-tuning (global Dice, TESLA's selection) > 0;
- `<d>-tunable-fraction`: SLPT's tunable fraction within 0.02..0.10 (the paper's ~6 %);
- `<d>-tesla-beats-<random|entropy|coreset>`: TESLA - the baseline (SLPT-tuned global Dice) > 0;
- `<d>-tesla-fraction-of-full`: TESLA + SLPT at 5 % / the full-pool SLPT reference > the paper's 0.94;
- `gate-selection-beats-random-<d>` (validity gate): the mean of entropy's and core-set's Dice minus random's > 0.
  If it fails, selection does not matter on that pool and no selection method (TESLA included) can be judged there.
Modes. Quick: 1 seed (indicative), LiTS + SynthLiver rare, budget 5 %, 150 tuning steps at 48 px, arms random,
entropy, core-set, TESLA; measured 2.4 min (docs/results/active-quick.json; 7.1 min on an earlier, slower machine).
Evidence: 5 paired seeds of quick mode plus a step-budget curve x1, x2 of the decisive pairs (TESLA vs random, SLPT
vs full fine-tuning, on SynthLiver rare, no reference): measured 13.9 min (docs/results/active-evidence.json).
Full: 5 seeds in one call, budgets 5 % and 10 %, 2x steps, BALD and USL added.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import statistics
import time
from concurrent.futures import as_completed
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import torch

from tailorkit.active.config import BackboneConfig, DataConfig, DatasetName, SelectConfig, TuneConfig, budget_count
from tailorkit.core.bench import EvidencePlan, register_bench
from tailorkit.core.progress import status
from tailorkit.core.results import BenchOutcome, Claim, DataInfo, Row
from tailorkit.core.workers import worker_pool

__all__ = ["ActiveBenchConfig", "active_bench", "evaluate_model", "run_cell"]

PAPER_FRACTION_OF_FULL = 0.94
PAPER_TUNABLE_FRACTION = 0.06
# cells: arms that share a selection model run in one process
GROUPS = (("random", "coreset"), ("entropy", "bald"), ("tesla",), ("usl",), ("full_pool",))


@dataclass(frozen=True)
class ActiveBenchConfig:
    """Settings of the active bench (quick-mode values; `full_*` replace them in full mode).

    Attributes:
        datasets: "lits", "synthliver" and/or "synthliver_rare" (the rare-mode pool).
        seeds: Paired seeds in one call (1 in quick mode: indicative; the runner pairs calls; `full_seeds` in full
            mode).
        budgets: Label budgets as pool fractions (quick: 5 %; `full_budgets` in full mode).
        arms: Selection strategies compared (every mode).
        full_arms: Strategies added in full mode (MC-dropout BALD and USL k-means; left out of quick mode for time).
        tuners: Final tuners trained on every arm's selection.
        extra_tuners: Tuning baselines trained on the random arm's selection only, in full mode (left out of quick
            mode to keep it within 8 minutes on 2 cores; no claim uses them).
        reference: Train the full-pool reference (fraction_of_full); off in the decisive curve runs.
        full_pool_steps: Step multiplier of the full-pool reference (its own budget: 18 labels for 150 steps are
            seen ~70 times each, the whole pool ~3 times; chosen on a pool validation split, docs/active.md).
        selection_steps: Step multiplier of the selection model (SLPT trained on round-one labels to rank the pool).
        workers: Worker processes (one torch thread each).
    """

    datasets: tuple[str, ...] = ("lits", "synthliver_rare")
    seeds: int = 1
    budgets: tuple[float, ...] = (0.05,)
    arms: tuple[str, ...] = ("random", "entropy", "coreset", "tesla")
    full_arms: tuple[str, ...] = ("bald", "usl")
    tuners: tuple[str, ...] = ("slpt", "full_ft")
    extra_tuners: tuple[str, ...] = ("head_only", "scratch")
    reference: bool = True
    full_pool_steps: float = 4.0
    selection_steps: float = 0.5
    workers: int = 2
    data: DataConfig = field(default_factory=DataConfig)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    tune: TuneConfig = field(default_factory=TuneConfig)
    select: SelectConfig = field(default_factory=SelectConfig)
    full_seeds: int = 5
    full_budgets: tuple[float, ...] = (0.05, 0.10)
    full_steps_multiplier: float = 2.0

    def __post_init__(self) -> None:
        for d in self.datasets:
            if d not in ("lits", "synthliver", "synthliver_rare"):
                raise ValueError(f"datasets: expected 'lits', 'synthliver' and/or 'synthliver_rare', got {d!r}")
        for name in ("seeds", "workers", "full_seeds"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected an int >= 1, got {value!r}")
        if any(not 0 < b <= 1 for b in (*self.budgets, *self.full_budgets)):
            raise ValueError(f"budgets: expected fractions in (0, 1], got {self.budgets}, {self.full_budgets}")
        from tailorkit.active.methods import STRATEGIES, TUNERS

        for arm in (*self.arms, *self.full_arms):
            STRATEGIES.get(arm)
        for tuner in (*self.tuners, *self.extra_tuners):
            TUNERS.get(tuner)


@functools.lru_cache(maxsize=8)
def _dataset(data: DataConfig, backbone: BackboneConfig) -> tuple[Any, Any]:
    from tailorkit.active.backbone import pretrained_backbone
    from tailorkit.active.data import load_split

    split = load_split(data)
    return split, pretrained_backbone(split.upstream, backbone, progress=False)


def _for(config: ActiveBenchConfig, dataset: str, seed: int = 0) -> tuple[Any, Any]:
    """The split and pretrained backbone of `dataset` under the bench's data and backbone settings; SynthLiver's
    pool/test draw is `seed` (LiTS and folders have one draw)."""
    draw = seed if dataset.startswith("synthliver") else 0
    data = dataclasses.replace(config.data, dataset=cast(DatasetName, dataset), draw=draw)
    return _dataset(data, config.backbone)


SEED_STRIDE = 1000  # seed i of bench seed s is s + SEED_STRIDE * i


def bench_seeds(seed: int, k: int) -> list[int]:
    """The k seeds of one call at bench seed `seed`: the first is `seed` itself, so calls s, s+1, ... share none."""
    return [seed + SEED_STRIDE * i for i in range(k)]


def evaluate_model(model: Any, test: Any) -> dict[str, float]:
    """Global and per-case Dice of ``model``'s mean prediction over its prompt sets on the ``test`` split."""
    from tailorkit.active.tuning import dice_global, dice_per_case, predict

    pred = predict(model, test.images).mean(axis=1) > 0.5
    return {"dice_global": dice_global(pred, test.masks), "dice_per_case": dice_per_case(pred, test.masks)}


def _train_eval(split: Any, backbone: Any, idx: np.ndarray, tune: TuneConfig, seed: int) -> dict[str, float]:
    from tailorkit.active.methods import make_tuner
    from tailorkit.active.tuning import tune as train
    from tailorkit.core.seeding import derive_seed

    began = time.process_time()
    model = make_tuner(backbone, tune, derive_seed(seed, "final-init"))
    train(model, split.pool.images[idx], split.pool.masks[idx], tune, derive_seed(seed, "final-train"))
    out = evaluate_model(model, split.test)
    out["tunable_fraction"] = model.tunable_fraction()
    if model.n_sets > 1:
        from tailorkit.active.tuning import predict, set_agreement

        out["set_agreement"] = set_agreement(predict(model, split.test.images))
    out["cpu_seconds"] = time.process_time() - began
    return out


def run_cell(
    config: ActiveBenchConfig, dataset: str, seed: int, budget: float, group: tuple[str, ...], steps: int
) -> dict[str, Any]:
    """One (dataset, seed, budget, arm group) cell: selection + final tunings; top level for worker processes."""
    from tailorkit.active.loop import ActiveLearner

    torch.set_num_threads(1)
    began, cpu = time.perf_counter(), time.process_time()
    split, backbone = _for(config, dataset, seed)
    tune = dataclasses.replace(config.tune, steps=steps)
    results: dict[str, Any] = {}
    if group == ("full_pool",):
        idx = np.arange(len(split.pool))
        full = dataclasses.replace(tune, steps=round(steps * config.full_pool_steps))
        results["full_pool"] = {
            t: _train_eval(split, backbone, idx, dataclasses.replace(full, method=t), seed) for t in config.tuners
        }
        return {"results": results, "seconds": time.perf_counter() - began, "cpu_seconds": time.process_time() - cpu}
    n = budget_count(budget, len(split.pool))
    n1 = max(1, round(config.select.stage1_fraction * n)) if n > 1 else n
    cache: dict[Any, Any] = {}
    for arm in group:
        sel_began = time.process_time()
        learner = ActiveLearner(
            split.pool,
            backbone,
            dataclasses.replace(config.select, strategy=arm),
            dataclasses.replace(tune, method="slpt", steps=max(1, round(steps * config.selection_steps))),
            seed=seed,
            model_cache=cache,
        )
        for size in (n,) if arm == "usl" or n1 >= n else (n1, n - n1):
            ids = learner.propose(size)
            learner.update({i: split.pool.masks[learner.index[i]] for i in ids})
        idx = np.asarray([learner.index[i] for i in learner.labelled_ids])
        selection = {
            "selection_cpu_seconds": time.process_time() - sel_began,
            "lesion_positive_share": float(split.pool.masks[idx].reshape(len(idx), -1).any(axis=1).mean()),
        }
        if split.pool.tags:
            selection["rare_rim_items"] = float(sum("rim" in split.pool.tags[i] for i in idx))
            selection["small_items"] = float(sum("small" in split.pool.tags[i] for i in idx))
        tuners = list(config.tuners) + (list(config.extra_tuners) if arm == "random" else [])
        results[arm] = {
            t: {**_train_eval(split, backbone, idx, dataclasses.replace(tune, method=t), seed), **selection}
            for t in tuners
        }
        results[arm]["ids"] = learner.labelled_ids
    return {"results": results, "seconds": time.perf_counter() - began, "cpu_seconds": time.process_time() - cpu}


def _mean_sd(values: list[float]) -> tuple[float, float]:
    clean = [v for v in values if math.isfinite(v)]
    if not clean:
        return math.nan, math.nan
    return statistics.fmean(clean), statistics.stdev(clean) if len(clean) > 1 else 0.0


@register_bench(
    "active",
    config=ActiveBenchConfig,
    plan=EvidencePlan(
        budget_fields=("tune.steps",),  # every compared fit (selection model, tuners, reference) scales with it
        one_seed={"seeds": 1},
        seeds=5,
        curve=(1, 2),
        decisive={"datasets": ("synthliver_rare",), "arms": ("random", "tesla"), "reference": False},
        decisive_claims=("synthliver_rare-tesla-beats-random", "synthliver_rare-prompt-beats-full-ft"),
        base_mode="quick",
    ),
)
def active_bench(config: ActiveBenchConfig, mode: str, seed: int, device: torch.device) -> BenchOutcome:
    if device.type != "cpu":
        status("active bench: workers run on CPU (the small U-Net is faster there); --device ignored")
    full = mode == "full"
    seeds = bench_seeds(seed, config.full_seeds if full else config.seeds)
    budgets = config.full_budgets if full else config.budgets
    steps = round(config.tune.steps * (config.full_steps_multiplier if full else 1.0))
    if not full:
        config = dataclasses.replace(config, extra_tuners=())
    arms = tuple(config.arms) + (tuple(a for a in config.full_arms if a not in config.arms) if full else ())
    for dataset in config.datasets:  # pretrain (or load) each backbone once, before the workers need it
        _for(config, dataset, seed)
    cells: list[tuple[str, int, float, tuple[str, ...]]] = []
    for dataset in config.datasets:
        for s in seeds:
            for group in GROUPS if config.reference else GROUPS[:-1]:
                kept = group if group == ("full_pool",) else tuple(a for a in group if a in arms)
                if kept:
                    for b in budgets if kept != ("full_pool",) else (budgets[0],):
                        cells.append((dataset, s, b, kept))
    status(
        f"active bench: {len(cells)} cells ({len(config.datasets)} datasets x {len(seeds)} seeds), "
        f"{config.workers} workers"
    )
    outputs: list[dict[str, Any]] = [{} for _ in cells]
    if config.workers == 1:
        for i, cell in enumerate(cells):
            outputs[i] = run_cell(config, cell[0], cell[1], cell[2], cell[3], steps)
            _report(cell, outputs[i], i + 1, len(cells))
    else:
        with worker_pool(config.workers) as pool:
            futures = {pool.submit(run_cell, config, c[0], c[1], c[2], c[3], steps): i for i, c in enumerate(cells)}
            for done, future in enumerate(as_completed(futures), start=1):
                i = futures[future]
                outputs[i] = future.result()
                _report(cells[i], outputs[i], done, len(cells))
    rows, claims, per_seed = _rows_and_claims(config, arms, cells, outputs, seeds, budgets)
    splits = [_for(config, d, seed)[0] for d in config.datasets]
    data = DataInfo(
        " + ".join(s.name for s in splits),
        "; ".join(s.source for s in splits),
        sum(len(s.pool) for s in splits),
        sum(len(s.test) for s in splits),
    )
    worker_cpu = sum(o["cpu_seconds"] for o in outputs)
    extra = {
        "worker_cpu_seconds": round(worker_cpu, 1),
        "workers": config.workers,
        "seeds": seeds,
        "paper": {"fraction_of_full_at_5pct": PAPER_FRACTION_OF_FULL, "tunable_fraction": PAPER_TUNABLE_FRACTION},
        "per_seed": per_seed,
        "selected_ids": {
            f"{c[0]}/{arm}/b{c[2]:g}/seed{c[1]}": out["results"][arm]["ids"]
            for c, out in zip(cells, outputs, strict=True)
            for arm in out["results"]
            if arm != "full_pool"
        },
    }
    return BenchOutcome(data, rows, claims, extra=extra)


def _report(cell: tuple[str, int, float, tuple[str, ...]], output: dict[str, Any], done: int, total: int) -> None:
    dataset, s, b, _ = cell
    parts = []
    for arm, by_tuner in output["results"].items():
        for tuner, m in by_tuner.items():
            if tuner != "ids":
                parts.append(f"{arm}/{tuner} {m['dice_global']:.3f}")
    status(
        f"[{done}/{total}] {dataset} seed {s} budget {b:g}: global Dice "
        + ", ".join(parts)
        + f" ({output['seconds']:.0f} s)"
    )


def _rows_and_claims(
    config: ActiveBenchConfig,
    arms: tuple[str, ...],
    cells: list[tuple[str, int, float, tuple[str, ...]]],
    outputs: list[dict[str, Any]],
    seeds: list[int],
    budgets: tuple[float, ...],
) -> tuple[list[Row], list[Claim], dict[str, Any]]:
    # table[(dataset, budget, arm, tuner)][seed] = metrics
    table: dict[tuple[str, float, str, str], dict[int, dict[str, float]]] = {}
    for (dataset, s, b, _), out in zip(cells, outputs, strict=True):
        for arm, by_tuner in out["results"].items():
            for tuner, m in by_tuner.items():
                if tuner == "ids":
                    continue
                key = (dataset, b if arm != "full_pool" else 1.0, arm, tuner)
                table.setdefault(key, {})[s] = dict(m)
    for (dataset, _, arm, tuner), by_seed in table.items():
        if arm == "full_pool":
            continue
        ref = table.get((dataset, 1.0, "full_pool", tuner), {})
        for s, m in by_seed.items():
            full = ref.get(s, {}).get("dice_global", math.nan)
            if math.isfinite(full) and full > 0:  # tuners without a full-pool reference get no fraction
                m["fraction_of_full"] = m["dice_global"] / full
    rows = []
    for (dataset, b, arm, tuner), by_seed in table.items():
        metrics: dict[str, float] = {}
        keys = sorted({k for m in by_seed.values() for k in m if k != "cpu_seconds"})
        for k in keys:
            mean, sd = _mean_sd([by_seed[s].get(k, math.nan) for s in sorted(by_seed)])
            if math.isfinite(mean):
                metrics[k] = mean
                metrics[f"{k}_std"] = sd
        label = f"{dataset}/{arm}/{tuner}" + (f"@{b:g}" if len(budgets) > 1 and arm != "full_pool" else "")
        rows.append(
            Row(
                label,
                metrics,
                {"dataset": dataset, "arm": arm, "tuner": tuner, "budget": b, "seeds": sorted(by_seed)},
                sum(by_seed[s].get("cpu_seconds", 0.0) for s in by_seed),
            )
        )
    claims: list[Claim] = []

    def dice(dataset: str, arm: str, tuner: str, budget: float) -> dict[int, float]:
        return {s: m["dice_global"] for s, m in table.get((dataset, budget, arm, tuner), {}).items()}

    def beats(cid: str, text: str, a: dict[int, float], b: dict[int, float]) -> None:
        both = [s for s in seeds if s in a and s in b]
        if both:
            claims.append(Claim.beats(cid, text, [a[s] for s in both], [b[s] for s in both]))

    b5 = budgets[0]
    for dataset in config.datasets:
        if "tesla" in arms and {"slpt", "full_ft"} <= set(config.tuners):
            beats(
                f"{dataset}-prompt-beats-full-ft",
                f"{dataset}: SLPT prompts > full fine-tuning at {b5:.0%} labels (TESLA selection): per-seed paired "
                "global-Dice difference, 95 % t interval > 0",
                dice(dataset, "tesla", "slpt", b5),
                dice(dataset, "tesla", "full_ft", b5),
            )
            frac = statistics.fmean(v["tunable_fraction"] for v in table[(dataset, b5, "tesla", "slpt")].values())
            claims.append(
                Claim.within(
                    f"{dataset}-tunable-fraction",
                    f"{dataset}: SLPT tunable fraction {frac:.3f} is about the paper's 6 % (0.02..0.10)",
                    frac,
                    PAPER_TUNABLE_FRACTION,
                    0.04,
                )
            )
        if "tesla" in arms and "slpt" in config.tuners:
            for other in ("random", "entropy", "coreset"):
                if other in arms:
                    beats(
                        f"{dataset}-tesla-beats-{other}",
                        f"{dataset}: TESLA > {other} (SLPT-tuned global Dice at {b5:.0%}): per-seed paired "
                        "difference, 95 % t interval > 0",
                        dice(dataset, "tesla", "slpt", b5),
                        dice(dataset, other, "slpt", b5),
                    )
            fractions = [v.get("fraction_of_full", math.nan) for v in table[(dataset, b5, "tesla", "slpt")].values()]
            if fractions:  # NaN where the reference scored 0 (no ratio): left out of the interval, not hidden
                claims.append(
                    Claim.beats(
                        f"{dataset}-tesla-fraction-of-full",
                        f"{dataset}: TESLA + SLPT at {b5:.0%} labels / the full-pool SLPT reference (its own "
                        f"{config.full_pool_steps:g}x steps) > the paper's {PAPER_FRACTION_OF_FULL} (its own data; not "
                        "comparable in scale): per-seed ratio, 95 % t interval",
                        fractions,
                        None,
                        PAPER_FRACTION_OF_FULL,
                    )
                )
        if "slpt" in config.tuners and {"random", "entropy", "coreset"} <= set(arms):
            rnd, ent, core = (dice(dataset, a, "slpt", b5) for a in ("random", "entropy", "coreset"))
            shared = [s for s in seeds if s in rnd and s in ent and s in core]
            claims.append(
                Claim.beats(
                    f"gate-selection-beats-random-{dataset}",
                    f"validity gate, {dataset}: selection matters on this pool: mean of entropy's and core-set's "
                    "SLPT global Dice minus random's, per seed, 95 % t interval > 0 (if it fails, no selection "
                    "method can be judged on this pool)",
                    [(ent[s] + core[s]) / 2 - rnd[s] for s in shared],
                )
            )
    per_seed = {  # JSON has no NaN: undefined values (per-case Dice without lesions) become null
        f"{d}/{a}/{t}/b{b:g}": {
            str(s): {k: x if math.isfinite(x) else None for k, x in v.items()} for s, v in by_seed.items()
        }
        for (d, b, a, t), by_seed in table.items()
    }
    return rows, claims, per_seed
