"""`tailorkit bench adapters`: VMT-Adapter beside its baselines on SynthContext with a frozen EfficientNet-Lite0.

Setting (docs/adapters.md#the-benchmark): the real ImageNet EfficientNet-Lite0, frozen; four tasks (semseg, parts,
saliency, normals) on photo-textured SynthContext scenes at 64x64; every method trains in the same loop with the
same decoders, batch and number of steps. Rows: each method's per-task metrics, ``delta_m`` (percent, versus
single-task full fine-tuning of the same run and seed), ``trainable_fraction`` (trainable encoder parameters /
backbone parameters, percent) and per-task parameters; cost rows (``params.kind = "cost"``) hold encoder GFLOPs
and median training-step seconds for T in {1, 2, 4, 8} tasks for VMT, per-task adapters and per-task LoRA.

Quick mode: one seed, 8 methods, 150 steps of batch 16, fitted in 2 worker processes (about 10 CPU-minutes in all;
docs/adapters.md has the measured times).
Full mode: 3 seeds (mean and 95 % t-interval of delta_m), every method that applies to a CNN (VPT-deep needs a
transformer), 600 steps on 2 000 scenes: about 1.5 CPU-hours on 2 cores (an estimate from the quick run's
per-step costs, not a measurement).

Choosing on validation scenes (docs/adapters.md#choosing-on-validation-scenes; all off by default, so the default
rows are today's): ``split="val"`` evaluates every row on validation scenes (a scene stream the test scenes never
use) instead of the test scenes; ``variants`` adds rows for method options (``"vmt:task_module=lowrank_up"``), several
per method only on ``split="val"``; ``reference="tuned"`` makes the single-task full fine-tuning reference choose its
backbone learning rate from ``reference_lrs`` and its stopping step on "tune" scenes (their own stream).

Claims (computed from the rows): VMT trainable fraction about 1 % (within 0.5 points), Lite about 0.35-0.5 % and
below VMT; encoder
FLOPs ratio T=8/T=1 below 1.15 for VMT and within 1 of T for per-task adapters and LoRA; delta_m of VMT > 0; VMT
above the best per-task PETL baseline; removing the task modules (shared adapter) lowers delta_m. Each claim is a
per-seed quantity: over paired seeds (`--seeds N`, `--mode evidence`) the runner decides it on its 95 % interval.
"""

from __future__ import annotations

import copy
import math
import statistics
import time
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Literal

import torch

from tailorkit.adapters.backbones import build_backbone
from tailorkit.adapters.config import DataConfig, MethodConfig, OptimConfig, TrainConfig
from tailorkit.adapters.cost import cost_curve, with_method
from tailorkit.adapters.data import make_split
from tailorkit.adapters.runner import build_model, evaluate, make_data, train_model
from tailorkit.adapters.selection import fit_with_early_stopping, parse_variant
from tailorkit.adapters.synth import PHOTOS, load_photo_textures
from tailorkit.adapters.tasks import TASKS, delta_m
from tailorkit.core.bench import EvidencePlan, register_bench
from tailorkit.core.config import check, check_int_at_least, to_dict
from tailorkit.core.progress import status
from tailorkit.core.results import BenchOutcome, Claim, DataInfo, Row
from tailorkit.core.workers import timed, worker_pool

QUICK_METHODS = (
    "single_task_full_ft",
    "decoders_only",
    "vmt",
    "vmt_lite",
    "shared_adapter",
    "per_task_adapter",
    "per_task_lora",
    "bitfit",
)
FULL_METHODS = (*QUICK_METHODS, "mtl_full_ft", "hyperformer_lite")
PER_TASK_PETL = ("per_task_adapter", "per_task_lora", "bitfit")


@dataclass(frozen=True)
class AdaptersBenchConfig:
    """Bench settings (quick values; full mode multiplies as the module docstring says).

    Attributes:
        methods: Methods to run (empty: the mode's default list). single_task_full_ft is always run (Delta_m).
        steps, n_train: Quick-mode training steps and scenes; full mode uses steps_full and n_train_full.
        seeds_full: Seeds in full mode.
        cost_tasks: Task counts of the cost rows; cost_timing: also time training steps.
        threads: torch threads per fit; workers: processes fitting methods side by side on CPU (1: in this one).
        split: Scenes every row is evaluated on: "test" (default) or "val" (validation scenes, a seed stream the
            test scenes never use: choose options here).
        variants: Extra rows, each ``METHOD:KEY=VALUE+KEY=VALUE`` over the method's options (the row is named by
            the string). On split="test" at most one variant per method (the one chosen on split="val").
        reference: "fixed" (default: single-task full FT at ``full_ft_lr`` for the whole budget) or "tuned" (its
            backbone learning rate chosen from ``reference_lrs`` by the lowest validation loss on "tune" scenes,
            with early stopping: the checkpoint of lowest tune loss, evaluated every ``reference_eval_every``
            steps and after the last).
    """

    methods: tuple[str, ...] = ()
    tasks: tuple[str, ...] = ("semseg", "parts", "saliency", "normals")
    image_size: int = 64
    n_train: int = 800
    n_test: int = 200
    n_train_full: int = 2000
    steps: int = 150
    steps_full: int = 600
    batch_size: int = 16
    lr: float = 1e-2
    full_ft_lr: float = 1e-3
    r: int = 8
    seeds_full: int = 3
    cost_tasks: tuple[int, ...] = (1, 2, 4, 8)
    cost_methods: tuple[str, ...] = ("vmt", "per_task_adapter", "per_task_lora")
    cost_timing: bool = True
    cost_batch: int = 8
    cost_steps: int = 3
    threads: int = 1
    workers: int = 2
    textures: str = "photos"
    pretrained: bool = True
    split: Literal["test", "val"] = "test"
    variants: tuple[str, ...] = ()
    reference: Literal["fixed", "tuned"] = "fixed"
    reference_lrs: tuple[float, ...] = (3e-4, 1e-3, 3e-3)
    reference_eval_every: int = 25
    #: settings added for issue 19: at their defaults they leave the evidence parts' keys unchanged (core.bench)
    part_key_omit_at_default: ClassVar[tuple[str, ...]] = (
        "split",
        "variants",
        "reference",
        "reference_lrs",
        "reference_eval_every",
    )

    def __post_init__(self) -> None:
        check_int_at_least("workers", self.workers, 1)
        check(self.split in ("test", "val"), f"split: expected 'test' or 'val', got {self.split!r}")
        check(self.reference in ("fixed", "tuned"), f"reference: expected 'fixed' or 'tuned', got {self.reference!r}")
        check(
            len(self.reference_lrs) >= 1 and all(isinstance(v, int | float) and v > 0 for v in self.reference_lrs),
            f"reference_lrs: expected one or more learning rates > 0, got {self.reference_lrs!r}",
        )
        check_int_at_least("reference_eval_every", self.reference_eval_every, 1)
        check(
            len(set(self.reference_lrs)) == len(self.reference_lrs),
            f"reference_lrs: expected distinct learning rates, got {self.reference_lrs!r}",
        )
        check(len(set(self.variants)) == len(self.variants), f"variants: expected distinct specs, got {self.variants}")
        per_method: dict[str, int] = {}
        for spec in self.variants:
            _, method = parse_variant(spec, MethodConfig("vmt", {"r": self.r}))
            per_method[method.name] = per_method.get(method.name, 0) + 1
            check(
                self.split == "val" or per_method[method.name] == 1,
                f"variants: several {method.name} variants on split=test; expected them on split=val (choose there, "
                "then run the one chosen on test)",
            )


# Relative training cost of each method in the quick run (train seconds, docs/adapters.md): the submission order.
FIT_COST = {
    "single_task_full_ft": 190,
    "per_task_lora": 101,
    "per_task_adapter": 68,
    "bitfit": 61,
    "vmt_lite": 33,
    "vmt": 32,
    "shared_adapter": 23,
    "decoders_only": 21,
}

_FIT_INPUTS: dict[str, Any] = {}


def _keep_fit_inputs(backbone: torch.nn.Module, train: Any, test: Any, tune: Any = None) -> None:
    """Worker initializer (and the serial path): the frozen backbone and the data every fit of a seed shares
    (``test`` is the evaluation split: test or validation scenes; ``tune``: the tuned reference's scenes)."""
    _FIT_INPUTS.update(backbone=backbone, train=train, test=test, tune=tune)


def _fit(
    cfg: TrainConfig, name: str, device: torch.device, eval_every: int = 0
) -> tuple[dict[str, float], dict[str, Any], float]:
    """Train and evaluate one method (top level so that it pickles): metrics, parameter counts, train seconds.
    ``eval_every`` > 0: early stopping on the tune scenes (fit_info then holds the best step and its tune loss)."""
    model = build_model(cfg, copy.deepcopy(_FIT_INPUTS["backbone"]))
    start = time.perf_counter()
    stop = None
    if eval_every:
        stop = fit_with_early_stopping(
            model, _FIT_INPUTS["train"], _FIT_INPUTS["tune"], cfg, eval_every=eval_every, device=device, label=name
        )
    else:
        train_model(model, _FIT_INPUTS["train"], cfg, device=device, label=name)
    train_s = time.perf_counter() - start
    metrics = evaluate(model, _FIT_INPUTS["test"], device=device)
    enc = model.encoder
    fit_info = {
        "trainable_fraction": 100.0 * enc.trainable_parameters() / enc.backbone_parameters(),
        "trainable_params": float(enc.trainable_parameters()),
        "task_params": float(enc.task_parameters()),
        "backbone_passes": enc.passes_per_batch,
    }
    if stop is not None:
        fit_info.update(best_step=stop.best_step, tune_loss=stop.best_loss, tune_history=list(stop.history))
    return metrics, fit_info, train_s


def _ci95(values: list[float]) -> float:
    if len(values) < 2:
        return 0.0
    t = {2: 12.706, 3: 4.303, 4: 3.182, 5: 2.776}.get(len(values), 2.262)
    return t * statistics.stdev(values) / math.sqrt(len(values))


def _metric_keys(tasks: tuple[str, ...]) -> dict[str, bool]:
    return {TASKS[t].metric: TASKS[t].lower_is_better for t in tasks}


# Evidence mode: 5 paired seeds of the quick setting (about 5.5 min each on 2 idle cores, from the committed quick
# run) plus the decisive pairs (single-task FT, VMT, the shared adapter without task modules) at twice the steps
# (about 6.5 min a seed, single-task FT dominating): about 60 min in all. `--curve 1,4,16` asks for more.
EVIDENCE = EvidencePlan(
    budget_fields=("steps", "steps_full"),
    one_seed={"seeds_full": 1},
    seeds=5,
    curve=(1, 2),
    decisive={"methods": ("single_task_full_ft", "vmt", "shared_adapter"), "cost_methods": ()},
    decisive_claims=("vmt-delta-m-positive", "task-modules-help"),
)


@register_bench("adapters", config=AdaptersBenchConfig, plan=EVIDENCE)
def adapters_bench(config: AdaptersBenchConfig, mode: str, seed: int, device: torch.device) -> BenchOutcome:
    full = mode == "full"
    methods = list(config.methods or (FULL_METHODS if full else QUICK_METHODS))
    if "single_task_full_ft" not in methods:
        methods.insert(0, "single_task_full_ft")
    seeds = [seed + k for k in range(config.seeds_full if full else 1)]
    threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        return _run(config, mode, methods, seeds, device)
    finally:
        torch.set_num_threads(threads)


def _run(
    config: AdaptersBenchConfig, mode: str, methods: list[str], seeds: list[int], device: torch.device
) -> BenchOutcome:
    full = mode == "full"
    base = TrainConfig(
        data=DataConfig(
            tasks=config.tasks,
            image_size=config.image_size,
            n_train=config.n_train_full if full else config.n_train,
            n_test=config.n_test,
            textures=config.textures,  # type: ignore[arg-type]
        ),
        method=MethodConfig("vmt", {"r": config.r}),
        optim=OptimConfig(
            steps=config.steps_full if full else config.steps,
            batch_size=config.batch_size,
            lr=config.lr,
            full_ft_lr=config.full_ft_lr,
        ),
    )
    backbone = build_backbone("efficientnet_lite0", pretrained=config.pretrained)
    textures = load_photo_textures(config.textures, seed=0)  # type: ignore[arg-type]
    keys = _metric_keys(config.tasks)
    variants = dict(parse_variant(spec, base.method) for spec in config.variants)
    names = [*methods, *variants]
    tuned = config.reference == "tuned"
    per_seed: dict[str, list[dict[str, float]]] = {m: [] for m in names}
    info: dict[str, dict[str, Any]] = {}
    seconds: dict[str, float] = {m: 0.0 for m in names}
    worker_cpu: dict[str, float] = {m: 0.0 for m in names}
    reference_runs: list[dict[str, Any]] = []
    # Longest fits first, so that two workers finish together (the order does not change any result).
    order = sorted(names, key=lambda m: FIT_COST.get(variants[m].name if m in variants else m, 1), reverse=True)
    workers = config.workers if device.type == "cpu" else 1
    for s in seeds:
        run_cfg = replace(base, seed=s)
        if config.split == "val":  # every row is scored on validation scenes; test scenes are not even rendered
            train, test = make_split(run_cfg, "train", textures), make_split(run_cfg, "val", textures)
        else:
            train, test = make_data(run_cfg, textures)
        tune = make_split(run_cfg, "tune", textures) if tuned else None
        jobs: dict[str, tuple[TrainConfig, int]] = {}
        for name in order:
            if name in variants:
                jobs[name] = (replace(run_cfg, method=variants[name]), 0)
            elif name == "single_task_full_ft" and tuned:
                for lr in config.reference_lrs:
                    cfg = with_method(replace(run_cfg, optim=replace(run_cfg.optim, full_ft_lr=lr)), name)
                    jobs[f"{name}@full_ft_lr={lr:g}"] = (cfg, config.reference_eval_every)
            else:
                jobs[name] = (with_method(run_cfg, name), 0)
        status(f"adapters bench: seed {s}, {len(jobs)} fits on {workers} worker(s), scoring on {config.split} scenes")
        if workers == 1:
            _keep_fit_inputs(backbone, train, test, tune)
            done = ((name, timed(_fit, cfg, name, device, every)) for name, (cfg, every) in jobs.items())
            outputs = dict(done)
        else:
            # Every fit is seeded on its own, so worker processes give the rows of the serial run.
            with worker_pool(
                workers,
                threads=config.threads or 1,
                initializer=_keep_fit_inputs,
                initargs=(backbone, train, test, tune),
            ) as pool:
                futures = {
                    name: pool.submit(timed, _fit, cfg, name, device, every) for name, (cfg, every) in jobs.items()
                }
                outputs = {name: future.result() for name, future in futures.items()}
        if tuned:
            outputs["single_task_full_ft"] = _choose_reference(outputs, config, s, reference_runs)
        for name in names:
            (metrics, fit_info, train_s), _, cpu_s = outputs[name]
            per_seed[name].append(metrics)
            info[name] = fit_info
            seconds[name] += train_s
            worker_cpu[name] += cpu_s
    rows = []
    dms: dict[str, list[float]] = {}
    for name in names:
        dms[name] = [
            delta_m({k: m[k] for k in keys}, {k: st[k] for k in keys}, keys)
            for m, st in zip(per_seed[name], per_seed["single_task_full_ft"], strict=True)
        ]
        mean_metrics = {k: statistics.fmean(m[k] for m in per_seed[name]) for k in per_seed[name][0]}
        metrics = {
            **mean_metrics,
            "delta_m": statistics.fmean(dms[name]),
            "trainable_fraction": info[name]["trainable_fraction"],
            "trainable_params": info[name]["trainable_params"],
            "task_params": info[name]["task_params"],
        }
        params: dict[str, Any] = {"kind": "accuracy", "seeds": seeds, "backbone_passes": info[name]["backbone_passes"]}
        if config.split != "test":
            params["split"] = config.split
        if name in variants:
            params.update(method=variants[name].name, options=variant_options(base.method, variants[name]))
        if name == "single_task_full_ft" and tuned:
            # per seed (also after merging seeds: metrics_per_seed): the chosen learning rate and stopping step
            metrics["reference_lr"] = statistics.fmean(r["lr"] for r in reference_runs)
            metrics["reference_best_step"] = statistics.fmean(r["best_step"] for r in reference_runs)
            params.update(reference="tuned", reference_lrs=list(config.reference_lrs))
        if len(seeds) > 1:
            metrics["delta_m_ci95"] = _ci95(dms[name])
            params["delta_m_per_seed"] = dms[name]
        rows.append(Row(name, metrics, params, round(seconds[name], 3)))
    cost: dict[str, dict[str, float]] = {}
    for name in config.cost_methods:
        status(f"adapters bench: cost rows, {name}")
        start = time.perf_counter()
        cost[name] = cost_curve(
            with_method(base, name),
            backbone,
            config.cost_tasks,
            config.image_size,
            batch_size=config.cost_batch,
            steps=config.cost_steps,
            timing=config.cost_timing,
        )
        rows.append(
            Row(
                name,
                cost[name],
                {"kind": "cost", "tasks": list(config.cost_tasks)},
                round(time.perf_counter() - start, 3),
            )
        )
    claims = _claims(rows, cost, config)
    data = DataInfo(
        name=f"SynthContext-{len(config.tasks)} ({config.image_size}x{config.image_size}, {config.textures} textures)",
        source="tailorkit.adapters.synth (procedural, exact labels); textures: OpenCV sample photos "
        f"({', '.join(PHOTOS[:3])}, ...) from the opencv-photos asset; backbone: efficientnet-lite0 ImageNet weights",
        n_train=base.data.n_train,
        n_test=base.data.n_test,
    )
    # environment.threads is read after the bench restores the caller's setting; this is what training used
    extra = {
        "methods": methods,
        "seeds": seeds,
        "train_threads": config.threads or torch.get_num_threads(),
        "workers": workers,
        # The runner's cpu_seconds counts this process only; with workers the fits run elsewhere.
        "worker_cpu_seconds": {m: round(v, 1) for m, v in worker_cpu.items()},
    }
    if config.split != "test":
        extra["split"] = config.split
    if variants:
        extra["variants"] = list(variants)
    if tuned:
        extra["reference"] = {"kind": "tuned", "lrs": list(config.reference_lrs), "runs": reference_runs}
    return BenchOutcome(data, rows, claims, extra=extra)


def variant_options(base: MethodConfig, variant: MethodConfig) -> dict[str, Any]:
    """A variant row's ``params.options``: the options that differ from what its method gets in the bench without
    the variant (``base`` switched to the method, the shared width ``r`` carried over)."""
    default = to_dict(base.with_method(variant.name).options)
    return {k: v for k, v in to_dict(variant.options).items() if v != default[k]}


def _choose_reference(
    outputs: dict[str, Any], config: AdaptersBenchConfig, seed: int, runs: list[dict[str, Any]]
) -> Any:
    """The tuned reference of one seed: the learning rate whose early-stopped fit has the lowest tune-scene loss
    (ties: the first in ``reference_lrs``). Only tune-scene losses choose; the scored split plays no part."""
    fits = {lr: outputs.pop(f"single_task_full_ft@full_ft_lr={lr:g}") for lr in config.reference_lrs}
    best = min(config.reference_lrs, key=lambda lr: fits[lr][0][1]["tune_loss"])
    runs.append(
        {
            "seed": seed,
            "lr": best,
            "best_step": fits[best][0][1]["best_step"],
            "tune_history": [[int(k), float(v)] for k, v in fits[best][0][1].get("tune_history", [])],
            "tune_loss": {f"{lr:g}": round(fits[lr][0][1]["tune_loss"], 6) for lr in config.reference_lrs},
        }
    )
    (metrics, fit_info, _), wall, _ = fits[best]
    train_s = sum(f[0][2] for f in fits.values())  # the reference's cost is the whole grid
    cpu_s = sum(f[2] for f in fits.values())
    return (metrics, fit_info, train_s), wall, cpu_s


def _claims(rows: list[Row], cost: dict[str, dict[str, float]], config: AdaptersBenchConfig) -> list[Claim]:
    acc = {r.method: r.metrics for r in rows if r.params.get("kind") == "accuracy"}
    claims = []
    if "vmt" in acc:
        claims.append(
            Claim.within(
                "vmt-params-1pct",
                "VMT-Adapter trains about 1 % of the backbone's parameters (percent)",
                acc["vmt"]["trainable_fraction"],
                1.0,
                0.5,
            )
        )
        claims.append(
            Claim.at_least(
                "vmt-delta-m-positive",
                "VMT-Adapter delta_m > 0 vs single-task full FT (%)",
                acc["vmt"]["delta_m"],
                1e-9,
            )
        )
    if "vmt_lite" in acc:
        claims.append(
            Claim.within(
                "lite-params-about-0.4pct",
                "VMT-Adapter-Lite trains about 0.35-0.5 % of the backbone's parameters (percent)",
                acc["vmt_lite"]["trainable_fraction"],
                0.425,
                0.075,
            )
        )
    if "vmt" in acc and "vmt_lite" in acc:
        claims.append(
            Claim.at_most(
                "lite-params-below-vmt",
                "VMT-Adapter-Lite trains fewer parameters than VMT (percent)",
                acc["vmt_lite"]["trainable_fraction"],
                acc["vmt"]["trainable_fraction"],
            )
        )
    if "vmt" in cost:
        claims.append(
            Claim.at_most(
                "vmt-flops-o1",
                f"VMT encoder FLOPs ratio T={config.cost_tasks[-1]} / T={config.cost_tasks[0]} below 1.15",
                cost["vmt"]["flops_ratio"],
                1.15,
            )
        )
    expected = config.cost_tasks[-1] / config.cost_tasks[0]
    for name in ("per_task_adapter", "per_task_lora"):
        if name in cost:
            claims.append(
                Claim.within(
                    f"{name}-flops-linear",
                    f"{name} encoder FLOPs ratio about T (= {expected:g})",
                    cost[name]["flops_ratio"],
                    expected,
                    1.0,
                )
            )
    petl = [n for n in PER_TASK_PETL if n in acc]
    if "vmt" in acc and petl:
        best = max(petl, key=lambda n: acc[n]["delta_m"])
        claims.append(
            Claim.at_least(
                "vmt-above-per-task-petl",
                f"VMT delta_m minus the best per-task PETL baseline's ({best})",
                acc["vmt"]["delta_m"] - acc[best]["delta_m"],
                1e-9,
            )
        )
    if "vmt" in acc and "shared_adapter" in acc:
        claims.append(
            Claim.at_least(
                "task-modules-help",
                "delta_m of VMT minus the shared adapter without task modules (ablation)",
                acc["vmt"]["delta_m"] - acc["shared_adapter"]["delta_m"],
                1e-9,
            )
        )
    return claims
