"""`tailorkit bench continual`: CPPF beside its baselines, single-module rows and ablations, paired over seeds.

Benchmark (all choices [inferred] where the papers are silent): by default `dataset="domains"`, 4 phases, each one
visual domain with 10 classes of its own (glyphs dark on light, Fashion-MNIST, MNIST-5k, OpenCV digits; the seed
and order permute which domain comes when), 20x20, a width-8 CNN, SimCLR, 200 AdamW steps of batch 64 per phase.
This is the regime where SSL continual learning matters: measured at seed 100 (never a bench seed), glyph phases
with phase styles made fine-tuning forget about as much as a fixed random network does (0.12 vs 0.11, linear),
while the domain phases made it forget 0.15-0.17 against random-init's 0.06, and CaSSLe's final accuracy rose above
fine-tuning's with steps per phase (+1.0 point at 110 steps, +3.6 at 300; docs/continual.md, "Choosing the
benchmark"). `dataset="glyphs"` keeps the earlier glyph bench.

Every method starts from the same initialisation per seed and trains the same SimCLR loss for the same steps per
phase (Joint on all seen data; random-init not at all; "cassle_matched" is CaSSLe given `matched_compute` x the
steps, since CPPF costs more). After every phase: linear probe and kNN on all seen classes.

Claims, each written as THIS seed's paired quantity (mean over its `orders`), decided over seeds by the runner's
95 % t interval (one seed: indicative only):
- gates: `gate-cassle-beats-finetune` (CaSSLe - FT final linear accuracy > 0, CaSSLe's own headline metric) and
  `gate-finetune-forgets` (FT forgetting >= 0.15). A failed gate means the setting, not the method, is measured;
- `validity-ft-random` (FT - random-init final accuracy >= 5 points);
- AIA (linear) CPPF vs CaSSLe, vs FT, vs random-init, CaSSLe vs FT; forgetting CPPF vs CaSSLe, CaSSLe vs FT;
  CPPF vs CaSSLe at matched compute;
- `module-{pc,esr,mtd}-helps`: one module alone minus FT (holds = helps, fails = hurts, else undecided);
- `ablation-*` (with `ablations=true`): CPPF minus CPPF without one module, decided by interval, never by the
  sign of a mean. "CPPF <= Joint" cannot fail for a sound run: it is a sanity check in `extra.sanity`.

Cost (docs/results/continual-quick.json): quick mode is one seed, one order, 10 rows: 479 worker CPU seconds,
263 s wall on 2 cores (load average 1.5). Evidence mode (plan below): 5 seeds x ~480 s + curve x1, x4 of the
decisive rows (FT, CaSSLe, CPPF: 166 worker CPU s per seed at x1) x 5 seeds = 2400 + 4150 CPU s, about 55 minutes
on 2 idle cores. A x16
curve point alone would cost ~4 hours on 2 cores: it is not in the plan (ask for it with `--curve 1,4,16`).
Full mode uses a larger encoder and image and 450 steps per phase (not timed here).
"""

from __future__ import annotations

import dataclasses
import functools
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
from tailorkit.core.bench import EvidencePlan, register_bench
from tailorkit.core.progress import status
from tailorkit.core.results import BenchOutcome, Claim, DataInfo, Row
from tailorkit.core.workers import worker_pool

__all__ = ["METHODS", "ContinualBenchConfig", "continual_bench"]

# method label -> (strategy, CPPF settings that differ from the bench's `cppf`)
_OFF = {"pc": False, "esr": False, "mtd_past": False, "mtd_present": False}
METHODS: dict[str, tuple[str, dict[str, Any]]] = {
    "random_init": ("random_init", {}),
    "finetune": ("finetune", {}),
    "cassle": ("cassle", {}),
    "cassle_matched": ("cassle", {}),
    "pfr": ("pfr", {}),
    "cppf": ("cppf", {}),
    "cppf_pc_only": ("cppf", {**_OFF, "pc": True}),
    "cppf_esr_only": ("cppf", {**_OFF, "esr": True}),
    "cppf_mtd_only": ("cppf", {**_OFF, "mtd_past": True, "mtd_present": True}),
    "cppf-pc": ("cppf", {"pc": False}),
    "cppf-esr": ("cppf", {"esr": False}),
    "cppf-mtd_present": ("cppf", {"mtd_present": False}),
    "cppf-mtd_past": ("cppf", {"mtd_past": False}),
    "joint": ("joint", {}),
}
SINGLE_MODULES = ("cppf_pc_only", "cppf_esr_only", "cppf_mtd_only")
ABLATIONS = ("cppf-pc", "cppf-esr", "cppf-mtd_present", "cppf-mtd_past")
FASHION_METHODS = ("random_init", "finetune", "cassle", "cppf", "joint")
DECISIVE = ("finetune", "cassle", "cppf")
# CPPF's options were chosen on these glyph classes (characters 40..79, phase styles), never on the bench's classes.
TUNING_CLASS_OFFSET = 40
# The CPPF option values chosen on the tuning classes (docs/continual.md, "CPPF's options"): the best validation AIA
# of three pre-registered candidates (the specification's default weights; reserve_fraction 0.1; lambda_pc,
# lambda_res, lambda_rel / 10).
TUNED_CPPF = CPPFConfig(lambda_pc=0.05, lambda_res=0.01, lambda_rel=0.1)


@dataclass(frozen=True)
class ContinualBenchConfig:
    """Settings of the continual bench (quick-mode values; `full_*` replace them in full mode).

    Attributes:
        dataset: "domains" (one visual domain per phase: glyphs, Fashion-MNIST, MNIST-5k, OpenCV digits; the
            default, where fine-tuning forgets) or "glyphs" (glyph classes with phase styles, the earlier bench).
        orders: Class orders per seed (a seed's paired value is the mean over its orders; evidence mode uses 1).
        workers: Worker processes (one torch thread each); 1 runs everything in this process.
        steps_per_phase: Training steps per phase of every method (CaSSLe-matched: x matched_compute; CPPF's present
            teacher: x cppf.present_fraction more). `--budget K` scales it.
        width: Encoder width (channels of the first block).
        matched_compute: Step multiplier of the "cassle_matched" row (CPPF costs about 2-2.5x FT per phase:
            docs/continual.md#inferred-details).
        single_modules: Run the rows with one CPPF module alone (PC only, ESR only, MTD only).
        ablations: Run the four leave-one-module-out rows (off by default: the quick budget).
        methods: Run only these rows (empty: every row the switches above allow); claims need their rows.
    """

    dataset: str = "domains"
    orders: int = 1
    workers: int = 2
    n_classes: int = 40
    phases: int = 4
    train_per_class: int = 100
    test_per_class: int = 50
    probe_per_class: int = 100
    image_size: int = 20
    width: int = 8
    steps_per_phase: int = 200
    batch_size: int = 64
    lr: float = 2e-3
    ssl: str = "simclr"
    lambda_distill: float = 1.0
    lambda_pfr: float = 1.0
    cppf: CPPFConfig = field(default_factory=lambda: TUNED_CPPF)
    matched_compute: float = 2.0
    single_modules: bool = True
    ablations: bool = False
    methods: tuple[str, ...] = ()
    full_image_size: int = 24
    full_width: int = 16
    full_steps_per_phase: int = 450
    full_train_per_class: int = 300
    full_test_per_class: int = 100
    full_fashion: bool = False

    def __post_init__(self) -> None:
        for name in ("orders", "workers", "steps_per_phase", "full_steps_per_phase"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected an int >= 1, got {value!r}")
        if not self.matched_compute >= 1:
            raise ValueError(f"matched_compute: expected >= 1, got {self.matched_compute!r}")
        if self.dataset not in ("domains", "glyphs"):
            raise ValueError(f"dataset: expected 'domains' or 'glyphs', got {self.dataset!r}")
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ValueError(f"methods: expected names from {list(METHODS)}, got {unknown}")


def bench_methods(config: ContinualBenchConfig) -> list[str]:
    """The rows this configuration runs, in table order."""
    if config.methods:
        return [m for m in METHODS if m in config.methods]
    return [
        m
        for m in METHODS
        if (config.ablations or m not in ABLATIONS) and (config.single_modules or m not in SINGLE_MODULES)
    ]


def tuning_data(config: ContinualBenchConfig) -> DataConfig:
    """The data CPPF's options were tuned on: glyph classes from TUNING_CLASS_OFFSET, phase styles, the bench's
    sizes. Never the bench's own classes (tested: `glyph_classes` of the two are disjoint)."""
    return DataConfig(
        dataset="glyphs",
        n_classes=config.n_classes,
        phases=config.phases,
        train_per_class=config.train_per_class,
        test_per_class=config.test_per_class,
        probe_per_class=min(config.probe_per_class, config.train_per_class),
        image_size=config.image_size,
        class_offset=TUNING_CLASS_OFFSET,
    )


def glyph_classes(data: DataConfig) -> set[str]:
    """The glyph characters a data setting uses (the digit and Fashion-MNIST domains add none)."""
    from tailorkit.continual.data import GLYPHS

    if data.dataset == "glyphs":
        return set(GLYPHS[data.class_offset : data.class_offset + data.n_classes])
    if data.dataset == "domains" and "glyphs" in data.domains:
        return set(GLYPHS[data.class_offset : data.class_offset + data.n_classes // data.phases])
    return set()


def run_config(
    config: ContinualBenchConfig, mode: str, seed: int, order: int, method: str, dataset: str | None = None
) -> RunConfig:
    """The RunConfig of one (method, order) cell of the bench."""
    full = mode == "full"
    dataset = dataset or config.dataset
    strategy, cppf = METHODS[method]
    steps = config.full_steps_per_phase if full else config.steps_per_phase
    if method == "cassle_matched":
        steps = round(steps * config.matched_compute)
    train = config.full_train_per_class if full else config.train_per_class
    if dataset in ("glyphs", "domains"):
        data = DataConfig(
            dataset=cast(Any, dataset),
            n_classes=config.n_classes,
            phases=config.phases,
            train_per_class=train,
            test_per_class=config.full_test_per_class if full else config.test_per_class,
            probe_per_class=min(config.probe_per_class, train),
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
            cppf=dataclasses.replace(config.cppf, **cppf),
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


def _paired(per_order: dict[str, list[dict[str, float]]], a: str, b: str, metric: str) -> float:
    """This seed's paired difference metric(a) - metric(b), averaged over its class orders."""
    return statistics.fmean(x[metric] - y[metric] for x, y in zip(per_order[a], per_order[b], strict=True))


@register_bench(
    "continual",
    config=ContinualBenchConfig,
    plan=EvidencePlan(
        budget_fields=("steps_per_phase", "full_steps_per_phase"),
        one_seed={"orders": 1},
        seeds=5,
        curve=(1, 4),
        decisive={"methods": list(DECISIVE)},
        decisive_claims=(
            "gate-cassle-beats-finetune",
            "gate-finetune-forgets",
            "aia-cppf-gt-cassle",
            "aia-cppf-gt-finetune",
        ),
    ),
)
def continual_bench(config: ContinualBenchConfig, mode: str, seed: int, device: torch.device) -> BenchOutcome:
    if device.type != "cpu":
        status("continual bench: workers run on CPU (the tiny encoder is faster there); --device ignored")
    methods = bench_methods(config)
    cells = [(config.dataset, m, o) for o in range(config.orders) for m in methods]
    if mode == "full" and config.full_fashion:
        cells += [("fashion_mnist", m, o) for o in range(config.orders) for m in FASHION_METHODS if m in methods]
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
            label = method if dataset == config.dataset else f"{dataset}/{method}"
            per_order[label] = metrics
            mean = {k: statistics.fmean(m[k] for m in metrics) for k in metrics[0]}
            strategy, cppf = METHODS[method]
            rows.append(
                Row(
                    label,
                    mean,
                    {
                        "strategy": strategy,
                        "cppf_settings": cppf,
                        "steps_per_phase": configs[idx[0]].optim.steps_per_phase,
                        "orders": len(idx),
                        "per_order": metrics,
                        "accuracy_matrix_linear_order0": outputs[idx[0]]["linear"],
                    },
                    sum(outputs[i]["seconds"] for i in idx),
                )
            )
    claims = _claims(per_order, config)
    sanity = _sanity(per_order)
    gates = [c for c in claims if c.id.startswith("gate-")]
    valid = bool(gates) and all(c.holds for c in gates)
    verdict = (
        "the gate holds on this seed: CaSSLe beats fine-tuning and fine-tuning forgets (indicative if one seed)"
        if valid
        else "a gate fails or was not run: the setting, not the method, is what this run measures"
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
    name = (
        f"domains-{first.n_classes} ({first.phases} phases, one domain each: {', '.join(first.domains)})"
        if first.dataset == "domains"
        else f"glyphs-{first.n_classes} ({first.phases} phases, phase styles)"
    )
    data = DataInfo(
        f"{name}, {first.image_size}x{first.image_size}"
        + (" + Fashion-MNIST-8" if mode == "full" and config.full_fashion else ""),
        "matplotlib mpl-data/fonts/ttf (DejaVu, STIX) rendered with matplotlib.ft2font"
        + ("; tailorkit assets fashion-mnist, mnist-5k, opencv-digits" if first.dataset == "domains" else ""),
        first.n_classes * first.train_per_class,
        first.n_classes * first.test_per_class,
    )
    # The runner's cpu_seconds counts this process only; the work happens in the workers.
    worker_cpu = sum(o["cpu_seconds"] for o in outputs)
    extra = {
        "verdict": verdict,
        "valid": valid,
        "sanity": sanity,
        "worker_cpu_seconds": round(worker_cpu, 1),
        "workers": config.workers,
        "tuning_data": {"dataset": "glyphs", "class_offset": TUNING_CLASS_OFFSET, "n_classes": config.n_classes},
    }
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


# Gate on final accuracy (linear), CaSSLe's own headline metric (accuracy of the model after the last phase).
GATE_FORGETTING = 0.15


def _claims(per_order: dict[str, list[dict[str, float]]], config: ContinualBenchConfig) -> list[Claim]:
    """Every claim is this seed's paired difference (mean over its orders) against its target; the runner decides
    each over seeds by the 95 % t interval. Claims whose rows were not run are left out."""
    have = set(per_order)
    claims: list[Claim] = []

    def add(needs: tuple[str, ...], claim: Any) -> None:
        if set(needs) <= have:
            claims.append(claim())

    add(
        ("cassle", "finetune"),
        lambda: Claim.at_least(
            "gate-cassle-beats-finetune",
            "gate: CaSSLe - FT final accuracy (linear) > 0 (the established result; interval over paired seeds)",
            _paired(per_order, "cassle", "finetune", "final_acc_linear"),
            0.0,
        ),
    )
    add(
        ("finetune",),
        lambda: Claim.at_least(
            "gate-finetune-forgets",
            f"gate: FT forgetting (linear) >= {GATE_FORGETTING:g}: there is forgetting to prevent",
            statistics.fmean(m["forgetting_linear"] for m in per_order["finetune"]),
            GATE_FORGETTING,
        ),
    )
    add(
        ("finetune", "random_init"),
        lambda: Claim.at_least(
            "validity-ft-random",
            "FT - random-init final accuracy (linear) >= 5 points: SSL training learns something",
            _paired(per_order, "finetune", "random_init", "final_acc_linear"),
            0.05,
        ),
    )
    for a, b in (("cppf", "cassle"), ("cppf", "finetune"), ("cppf", "random_init"), ("cassle", "finetune")):
        add(
            (a, b),
            lambda a=a, b=b: Claim.at_least(
                f"aia-{a}-gt-{b}",
                f"AIA (linear) {a} - {b} > 0 (paired)",
                _paired(per_order, a, b, "aia_linear"),
                0.0,
            ),
        )
    for a, b in (("cppf", "cassle"), ("cassle", "finetune")):
        add(
            (a, b),
            lambda a=a, b=b: Claim.at_least(
                f"forgetting-{a}-lt-{b}",
                f"forgetting (linear) {b} - {a} > 0 (paired): {a} forgets less",
                _paired(per_order, b, a, "forgetting_linear"),
                0.0,
            ),
        )
    for single in SINGLE_MODULES:
        module = single.removeprefix("cppf_").removesuffix("_only")
        add(
            (single, "finetune"),
            lambda single=single, module=module: Claim.at_least(
                f"module-{module}-helps",
                f"{module.upper()} alone - FT, AIA (linear) > 0 (paired): holds = helps, fails = hurts",
                _paired(per_order, single, "finetune", "aia_linear"),
                0.0,
            ),
        )
    for ablation in ABLATIONS:
        add(
            ("cppf", ablation),
            lambda ablation=ablation: Claim.at_least(
                f"ablation-{ablation}",
                f"removing {ablation.split('-', 1)[1]} lowers CPPF's AIA (linear): CPPF - ablation > 0 (paired)",
                _paired(per_order, "cppf", ablation, "aia_linear"),
                0.0,
            ),
        )
    add(
        ("cppf", "cassle_matched"),
        lambda: Claim.at_least(
            "aia-cppf-gt-cassle-matched-compute",
            f"AIA (linear) CPPF - CaSSLe given {config.matched_compute:g}x steps > 0 (paired)",
            _paired(per_order, "cppf", "cassle_matched", "aia_linear"),
            0.0,
        ),
    )
    return claims


def _sanity(per_order: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    """Checks that cannot fail for a sound run (kept out of the claims): Joint is the upper reference."""
    if not {"cppf", "joint"} <= set(per_order):
        return {}
    gap = _paired(per_order, "joint", "cppf", "aia_linear")
    return {"joint-minus-cppf-aia": {"value": gap, "pass": gap >= 0, "text": "CPPF AIA (linear) <= Joint AIA"}}
