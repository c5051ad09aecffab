"""`tailorkit bench continual`: CPPF beside its baselines and ablations on the glyph benchmark, over class orders.

Protocol (docs/continual.md#protocol-and-metrics, all choices [inferred] where the paper is silent): glyphs rendered
from matplotlib's fonts, 4 phases with phase-specific styles, 3 seeded class orders; every method starts from the same
initialisation per seed and trains the same SimCLR loss for the same steps per phase (Joint on all seen data;
random-init not at all; "cassle_matched" is CaSSLe given `matched_compute` x the steps, since CPPF costs more compute).
After every phase: linear probe and kNN on all seen classes. Rows average over orders; `params.per_order` keeps each
order's numbers.

Claims (computed from the rows):
- validity: Joint - FT and FT - random-init final linear accuracy both >= 5 points, else the benchmark cannot
  discriminate and says so (`extra.verdict`);
- ordering: CPPF AIA > CaSSLe AIA > FT AIA and CPPF forgetting < CaSSLe < FT, each as "mean paired difference over
  orders minus twice its standard deviation > 0";
- each ablation (-PC, -ESR, -MTD present teacher, -MTD past teacher) lowers mean AIA; CPPF AIA <= Joint AIA.
Quick mode aims at <= 8 minutes on 2 idle cores (two worker processes, one thread each); measured: 1123 worker
CPU seconds, i.e. about 9.4 minutes on 2 idle cores, a fifth over (docs/continual.md). Full mode uses a
larger encoder and image, 3x the steps, and adds a Fashion-MNIST run of the main rows (not timed here).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, cast

import torch

from tailorkit.continual.config import (
    CPPFConfig,
    DataConfig,
    EvalConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    SSLConfig,
    StrategyConfig,
)
from tailorkit.core.bench import register_bench
from tailorkit.core.progress import status
from tailorkit.core.results import BenchOutcome, Claim, DataInfo, Row
from tailorkit.core.workers import worker_pool

__all__ = ["METHODS", "ContinualBenchConfig", "continual_bench"]

# method label -> (strategy, CPPF switches turned off, step multiplier key)
METHODS: dict[str, tuple[str, tuple[str, ...]]] = {
    "random_init": ("random_init", ()),
    "finetune": ("finetune", ()),
    "cassle": ("cassle", ()),
    "cassle_matched": ("cassle", ()),
    "pfr": ("pfr", ()),
    "cppf": ("cppf", ()),
    "cppf-pc": ("cppf", ("pc",)),
    "cppf-esr": ("cppf", ("esr",)),
    "cppf-mtd_present": ("cppf", ("mtd_present",)),
    "cppf-mtd_past": ("cppf", ("mtd_past",)),
    "joint": ("joint", ()),
}
ABLATIONS = ("cppf-pc", "cppf-esr", "cppf-mtd_present", "cppf-mtd_past")
FASHION_METHODS = ("random_init", "finetune", "cassle", "cppf", "joint")


@dataclass(frozen=True)
class ContinualBenchConfig:
    """Settings of the continual bench (quick-mode values; `full_*` replace them in full mode).

    Attributes:
        orders: Class orders (seeded permutations) per method; the paired claims need >= 2 (3 by default).
        workers: Worker processes (one torch thread each); 1 runs everything in this process.
        matched_compute: Step multiplier of the "cassle_matched" row (CPPF costs about 2x FT per phase:
            docs/continual.md#inferred-details).
        ablations: Run the four CPPF ablation rows.
    """

    orders: int = 3
    workers: int = 2
    n_classes: int = 40
    phases: int = 4
    train_per_class: int = 100
    test_per_class: int = 50
    probe_per_class: int = 100
    image_size: int = 20
    width: int = 8
    steps_per_phase: int = 110  # 150 measured ~9.4 min idle on 2 cores, over the 8-minute quick budget
    batch_size: int = 64
    lr: float = 2e-3
    ssl: str = "simclr"
    lambda_distill: float = 1.0
    lambda_pfr: float = 1.0
    cppf: CPPFConfig = field(default_factory=CPPFConfig)
    matched_compute: float = 2.0
    ablations: bool = True
    full_image_size: int = 24
    full_width: int = 16
    full_steps_per_phase: int = 450
    full_train_per_class: int = 300
    full_test_per_class: int = 100
    full_fashion: bool = True

    def __post_init__(self) -> None:
        for name in ("orders", "workers", "steps_per_phase", "full_steps_per_phase"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected an int >= 1, got {value!r}")
        if not self.matched_compute >= 1:
            raise ValueError(f"matched_compute: expected >= 1, got {self.matched_compute!r}")


def run_config(
    config: ContinualBenchConfig, mode: str, seed: int, order: int, method: str, dataset: str = "glyphs"
) -> RunConfig:
    """The RunConfig of one (method, order) cell of the bench."""
    full = mode == "full"
    strategy, off = METHODS[method]
    steps = config.full_steps_per_phase if full else config.steps_per_phase
    if method == "cassle_matched":
        steps = round(steps * config.matched_compute)
    if dataset == "glyphs":
        data = DataConfig(
            n_classes=config.n_classes,
            phases=config.phases,
            train_per_class=config.full_train_per_class if full else config.train_per_class,
            test_per_class=config.full_test_per_class if full else config.test_per_class,
            probe_per_class=min(
                config.probe_per_class, config.full_train_per_class if full else config.train_per_class
            ),
            image_size=config.full_image_size if full else config.image_size,
        )
    else:  # Fashion-MNIST: 8 of its 10 classes in 4 phases of 2
        data = DataConfig(
            dataset="fashion_mnist",
            n_classes=8,
            phases=4,
            train_per_class=500,
            test_per_class=200,
            probe_per_class=300,
            image_size=config.full_image_size,
        )
    return RunConfig(
        data=data,
        model=ModelConfig(width=config.full_width if full else config.width),
        ssl=SSLConfig(loss=config.ssl),
        strategy=StrategyConfig(
            name=strategy,
            lambda_distill=config.lambda_distill,
            lambda_pfr=config.lambda_pfr,
            cppf=dataclasses.replace(config.cppf, **cast(dict[str, Any], dict.fromkeys(off, False))),
        ),
        optim=OptimConfig(
            steps_per_phase=steps, batch_size=config.batch_size, lr=config.lr, warmup_steps=min(10, steps)
        ),
        eval=EvalConfig(),
        seed=seed,
        order=order,
        threads=1,
    )


@functools.lru_cache(maxsize=4)
def _benchmark(data: DataConfig, seed: int, order: int) -> Any:
    from tailorkit.continual.data import make_benchmark

    return make_benchmark(data, seed, order)


def _run_cell(config: RunConfig) -> dict[str, Any]:
    """One (method, order) run; top level so worker processes can import it."""
    from tailorkit.continual.runner import run_continual

    if config.threads:
        torch.set_num_threads(config.threads)
    began, cpu = time.perf_counter(), time.process_time()
    result = run_continual(config, benchmark=_benchmark(config.data, config.seed, config.order), verbose=False)
    return {
        "metrics": result.metrics(),
        "linear": result.linear,
        "knn": result.knn,
        "seconds": time.perf_counter() - began,
        "cpu_seconds": time.process_time() - cpu,
    }


def _paired(per_order: dict[str, list[dict[str, float]]], a: str, b: str, metric: str) -> tuple[float, float]:
    """Mean and standard deviation over orders of metric(a) - metric(b)."""
    diffs = [x[metric] - y[metric] for x, y in zip(per_order[a], per_order[b], strict=True)]
    mean = statistics.fmean(diffs)
    sd = statistics.stdev(diffs) if len(diffs) > 1 else math.nan
    return mean, sd


def _strict(id: str, text: str, value: float, target: float) -> Claim:
    return Claim(id, text, float(value), float(target), bool(math.isfinite(value) and value > target))


@register_bench("continual", config=ContinualBenchConfig)
def continual_bench(config: ContinualBenchConfig, mode: str, seed: int, device: torch.device) -> BenchOutcome:
    if device.type != "cpu":
        status("continual bench: workers run on CPU (the tiny encoder is faster there); --device ignored")
    methods = [m for m in METHODS if config.ablations or m not in ABLATIONS]
    cells = [("glyphs", m, o) for o in range(config.orders) for m in methods]
    if mode == "full" and config.full_fashion:
        cells += [("fashion_mnist", m, o) for o in range(config.orders) for m in FASHION_METHODS]
    configs = [run_config(config, mode, seed, o, m, d) for d, m, o in cells]
    status(
        f"continual bench: {len(cells)} runs ({len(methods)} methods x {config.orders} orders), "
        f"{config.workers} workers"
    )
    outputs: list[dict[str, Any]] = [{} for _ in cells]
    if config.workers == 1:
        for i, cfg in enumerate(configs):
            outputs[i] = _run_cell(cfg)
            _report(cells[i], outputs[i], i + 1, len(cells))
    else:
        with worker_pool(config.workers) as pool:
            futures = {pool.submit(_run_cell, cfg): i for i, cfg in enumerate(configs)}
            for done, future in enumerate(_as_completed(futures), start=1):
                i = futures[future]
                outputs[i] = future.result()
                _report(cells[i], outputs[i], done, len(cells))

    rows: list[Row] = []
    per_order: dict[str, list[dict[str, float]]] = {}
    for dataset in dict.fromkeys(d for d, _, _ in cells):
        for method in dict.fromkeys(m for d, m, _ in cells if d == dataset):
            idx = [i for i, (d, m, _) in enumerate(cells) if d == dataset and m == method]
            metrics = [outputs[i]["metrics"] for i in idx]
            label = method if dataset == "glyphs" else f"{dataset}/{method}"
            per_order[label] = metrics
            mean = {k: statistics.fmean(m[k] for m in metrics) for k in metrics[0]}
            std = {f"{k}_std": statistics.pstdev(m[k] for m in metrics) for k in metrics[0] if k != "train_seconds"}
            strategy, off = METHODS[method]
            rows.append(
                Row(
                    label,
                    {**mean, **std},
                    {
                        "strategy": strategy,
                        "cppf_modules_off": list(off),
                        "steps_per_phase": configs[idx[0]].optim.steps_per_phase,
                        "orders": len(idx),
                        "per_order": metrics,
                        "accuracy_matrix_linear_order0": outputs[idx[0]]["linear"],
                    },
                    sum(outputs[i]["seconds"] for i in idx),
                )
            )
    claims = _claims(per_order, config)
    valid = all(c.holds for c in claims if c.id.startswith("validity"))
    verdict = (
        "the benchmark discriminates (Joint - FT and FT - random-init gaps >= 5 points)"
        if valid
        else "the benchmark cannot discriminate at this budget: a validity gap is below 5 points"
    )
    status(f"continual bench: {verdict}")
    for row in rows:
        m = row.metrics
        status(
            f"  {row.method:18s} final accuracy (linear) {m['final_acc_linear']:.3f}  average incremental accuracy "
            f"(linear) {m['aia_linear']:.3f}  forgetting (linear) {m['forgetting_linear']:.3f}  final accuracy (kNN) "
            f"{m['final_acc_knn']:.3f}  train {m['train_seconds']:.0f} s"
        )
    first = configs[0].data
    data = DataInfo(
        f"glyphs-{first.n_classes} ({first.phases} phases, {first.image_size}x{first.image_size}, phase styles)"
        + (" + Fashion-MNIST-8" if mode == "full" and config.full_fashion else ""),
        "matplotlib mpl-data/fonts/ttf (DejaVu, STIX) rendered with matplotlib.ft2font"
        + ("; tailorkit asset fashion-mnist" if mode == "full" and config.full_fashion else ""),
        first.n_classes * first.train_per_class,
        first.n_classes * first.test_per_class,
    )
    # The runner's cpu_seconds counts this process only; the work happens in the workers.
    worker_cpu = sum(o["cpu_seconds"] for o in outputs)
    extra = {"verdict": verdict, "valid": valid, "worker_cpu_seconds": round(worker_cpu, 1), "workers": config.workers}
    return BenchOutcome(data, rows, claims, extra=extra)


def _as_completed(futures: dict[Any, int]) -> Any:
    from concurrent.futures import as_completed

    return as_completed(futures)


def _report(cell: tuple[str, str, int], output: dict[str, Any], done: int, total: int) -> None:
    dataset, method, order = cell
    m = output["metrics"]
    status(
        f"[{done}/{total}] {dataset} {method} order {order}: AIA (linear) {m['aia_linear']:.3f}, final accuracy "
        f"(linear) {m['final_acc_linear']:.3f}, forgetting (linear) {m['forgetting_linear']:.3f} "
        f"({output['seconds']:.0f} s)"
    )


def _claims(per_order: dict[str, list[dict[str, float]]], config: ContinualBenchConfig) -> list[Claim]:
    mean = {name: {k: statistics.fmean(m[k] for m in ms) for k in ms[0]} for name, ms in per_order.items()}
    claims = [
        Claim.at_least(
            "validity-joint-ft",
            "Joint - FT final accuracy (linear) >= 5 points: there is forgetting to prevent",
            mean["joint"]["final_acc_linear"] - mean["finetune"]["final_acc_linear"],
            0.05,
        ),
        Claim.at_least(
            "validity-ft-random",
            "FT - random-init final accuracy (linear) >= 5 points: SSL training learns something",
            mean["finetune"]["final_acc_linear"] - mean["random_init"]["final_acc_linear"],
            0.05,
        ),
    ]
    for a, b in (("cppf", "cassle"), ("cassle", "finetune")):
        m, sd = _paired(per_order, a, b, "aia_linear")
        claims.append(
            _strict(
                f"aia-{a}-gt-{b}",
                f"AIA (linear) {a} > {b}: mean paired difference over orders ({m:+.4f}) minus 2 SD ({sd:.4f}) > 0",
                m - 2 * sd,
                0.0,
            )
        )
    for a, b in (("cppf", "cassle"), ("cassle", "finetune")):
        m, sd = _paired(per_order, b, a, "forgetting_linear")
        claims.append(
            _strict(
                f"forgetting-{a}-lt-{b}",
                f"forgetting (linear) {a} < {b}: mean paired difference over orders ({m:+.4f}) minus 2 SD "
                f"({sd:.4f}) > 0",
                m - 2 * sd,
                0.0,
            )
        )
    if config.ablations:
        for ablation in ABLATIONS:
            claims.append(
                _strict(
                    f"ablation-{ablation}",
                    f"removing {ablation.split('-', 1)[1]} lowers CPPF's mean AIA (linear): CPPF - ablation > 0",
                    mean["cppf"]["aia_linear"] - mean[ablation]["aia_linear"],
                    0.0,
                )
            )
    claims.append(
        Claim.at_least(
            "cppf-le-joint",
            "CPPF AIA (linear) <= Joint AIA (linear): Joint - CPPF >= 0",
            mean["joint"]["aia_linear"] - mean["cppf"]["aia_linear"],
            0.0,
        )
    )
    m, sd = _paired(per_order, "cppf", "cassle_matched", "aia_linear")
    claims.append(
        _strict(
            "aia-cppf-gt-cassle-matched-compute",
            f"AIA (linear) CPPF > CaSSLe given {config.matched_compute:g}x steps: mean paired difference "
            f"({m:+.4f}) minus 2 SD ({sd:.4f}) > 0",
            m - 2 * sd,
            0.0,
        )
    )
    return claims
