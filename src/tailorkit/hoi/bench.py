"""`tailorkit bench hoi`: HODN beside the QPIC-like and CDN-like baselines and its ablations, on SynthHOI.

Protocol [our design; docs/hoi.md#the-benchmark]: one SynthHOI train/test draw per bench seed; a frozen
EfficientNet-Lite0 (real ImageNet weights) whose stage-3 features are computed once and shared by every run; each row
trains the same transformer sizes with the same optimiser, steps and batch order for each training seed (3 by default),
so per-seed differences are paired. Rows: single, cascade, hodn (link=human, sg_obj), hodn_link_object, hodn_no_sg_obj,
hodn_sg_hum (the negative control). Metrics (means over seeds; per-seed values in params): role_map (HICO-style triplet
mAP, all-point VOC AP, IoU >= 0.5 on both boxes), human_ap (interacting humans), object_map (interacting objects, mean
over classes), vcoco_role_ap_s1, train_seconds (CPU seconds per training run).

Claims (computed from the rows): hodn > single and hodn > cascade on role mAP with mean paired difference > 2 SD of
the differences; link=human > link=object on mean role mAP; sg_obj gives equal or higher object mAP and role mAP
(within `equal_tolerance`); sg_hum lowers human AP or role mAP. Quick mode: small scenes (<= 1 human, <= 2 objects,
128 px), 600 training scenes, few hundred steps per run, two worker processes (one thread each); its budget is
<= 8 minutes on 2 idle cores. A DETR-style detector does not converge in minutes on CPU: quick mode measures an
early-training signal, stated in the JSON (`extra.mode_note`).
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tailorkit.core.bench import register_bench
from tailorkit.core.progress import status
from tailorkit.core.results import BenchOutcome, Claim, DataInfo, Row
from tailorkit.core.workers import worker_pool
from tailorkit.hoi.config import EvalConfig, ModelConfig, OptimConfig, SynthConfig, TrainConfig
from tailorkit.hoi.data import HOIDataset

__all__ = ["ROWS", "HOIBenchConfig", "hoi_bench"]

ROWS: dict[str, dict[str, Any]] = {
    "single": {"variant": "single"},
    "cascade": {"variant": "cascade"},
    "hodn": {"variant": "hodn", "link": "human", "sg_obj": True, "sg_hum": False},
    "hodn_link_object": {"variant": "hodn", "link": "object", "sg_obj": True, "sg_hum": False},
    "hodn_no_sg_obj": {"variant": "hodn", "link": "human", "sg_obj": False, "sg_hum": False},
    "hodn_sg_hum": {"variant": "hodn", "link": "human", "sg_obj": True, "sg_hum": True},
}
METRICS = ("role_map", "human_ap", "object_map", "vcoco_role_ap_s1")


@dataclass(frozen=True)
class HOIBenchConfig:
    """Settings of the HOI bench (quick-mode values; `full_*` replace them in full mode).

    Attributes:
        seeds: Training seeds per row (paired across rows).
        workers: Worker processes (one torch thread each); 1 runs everything in this process.
        equal_tolerance: "Equal or higher" for the stop-gradient claims means a mean drop of at most this.
    """

    seeds: int = 3
    workers: int = 2
    image_size: int = 128
    n_train: int = 600
    n_test: int = 200
    max_humans: int = 1
    max_objects: int = 2
    steps: int = 450
    batch_size: int = 16
    lr: float = 1e-3
    num_queries: int = 8
    equal_tolerance: float = 0.01
    full_n_train: int = 3000
    full_n_test: int = 500
    full_max_humans: int = 2
    full_max_objects: int = 3
    full_steps: int = 3000
    full_batch_size: int = 32
    full_num_queries: int = 12

    def __post_init__(self) -> None:
        for name in ("seeds", "workers", "n_train", "n_test", "steps", "batch_size", "full_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected an int >= 1, got {value!r}")
        if self.seeds < 2:
            raise ValueError(f"seeds: expected >= 2 (the paired claims need a spread), got {self.seeds}")


def train_config(config: HOIBenchConfig, mode: str, row: str) -> TrainConfig:
    full = mode == "full"
    data = SynthConfig(
        image_size=config.image_size,
        n_train=config.full_n_train if full else config.n_train,
        n_test=config.full_n_test if full else config.n_test,
        max_humans=config.full_max_humans if full else config.max_humans,
        max_objects=config.full_max_objects if full else config.max_objects,
    )
    model = ModelConfig(num_queries=config.full_num_queries if full else config.num_queries, **ROWS[row])
    optim = OptimConfig(
        steps=config.full_steps if full else config.steps,
        batch_size=config.full_batch_size if full else config.batch_size,
        lr=config.lr,
    )
    return TrainConfig(data=data, model=model, optim=optim, eval=EvalConfig())


def _job(args: tuple[TrainConfig, HOIDataset, HOIDataset, int, str, str]) -> dict[str, Any]:
    """One (row, seed) cell: load the shared features, train, evaluate. Runs in a worker process.

    The datasets come without their pixels (the cached features replace them)."""
    cfg, train_data, test_data, seed, row, cache = args
    torch.set_num_threads(1)
    from tailorkit.hoi.train import evaluate, rare_categories, train

    cpu = time.process_time()
    feats = torch.load(cache, weights_only=True)
    result = train(cfg, train_data, features=feats["train"], seed=seed, progress=False)
    rare = rare_categories(train_data, cfg.eval.rare_threshold)
    metrics = evaluate(result.model, test_data, cfg.eval, features=feats["test"], rare=rare)
    return {
        "row": row,
        "seed": seed,
        "metrics": metrics,
        "train_seconds": result.cpu_seconds,
        "wall": result.seconds,
        "cpu": time.process_time() - cpu,
        "pid": os.getpid(),
        "final_loss": sum(result.losses[-20:]) / len(result.losses[-20:]),
    }


def _progress_line(i: int, n: int, res: dict[str, Any]) -> str:
    return f"hoi bench: {i + 1}/{n} {res['row']} seed {res['seed']}: role mAP {res['metrics']['role_map']:.3f}"


def _paired(a: list[float], b: list[float]) -> tuple[float, float]:
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    return statistics.fmean(diffs), statistics.stdev(diffs) if len(diffs) > 1 else float("inf")


@register_bench("hoi", config=HOIBenchConfig)
def hoi_bench(config: HOIBenchConfig, mode: str, seed: int, device: torch.device) -> BenchOutcome:
    from tailorkit.hoi.data import make_synth
    from tailorkit.hoi.methods import build_model
    from tailorkit.hoi.train import backbone_features

    base = train_config(config, mode, "hodn")
    wall = time.perf_counter()
    status(f"hoi bench: SynthHOI {base.data.n_train}/{base.data.n_test} scenes at {base.data.image_size} px")
    train_data = make_synth(base.data, seed, "train")
    test_data = make_synth(base.data, seed, "test")
    backbone_model = build_model(base.model, len(train_data.object_names), len(train_data.verb_names))
    feats = {
        "train": backbone_features(backbone_model, train_data.images),  # type: ignore[arg-type]
        "test": backbone_features(backbone_model, test_data.images),  # type: ignore[arg-type]
    }
    feature_seconds = time.perf_counter() - wall
    bare_train = dataclasses.replace(train_data, images=None)
    bare_test = dataclasses.replace(test_data, images=None)
    jobs = [
        (train_config(config, mode, row), bare_train, bare_test, s, row) for s in range(config.seeds) for row in ROWS
    ]
    with tempfile.TemporaryDirectory(prefix="tailorkit-hoi-") as tmp:
        cache = str(Path(tmp) / "features.pt")
        torch.save({k: v.cpu() for k, v in feats.items()}, cache)
        args = [(*job, cache) for job in jobs]
        results: list[dict[str, Any]] = []
        if config.workers > 1:
            with worker_pool(config.workers) as pool:
                for i, res in enumerate(pool.map(_job, args)):
                    results.append(res)
                    status(_progress_line(i, len(args), res))
        else:
            for i, a in enumerate(args):
                results.append(_job(a))
                res = results[-1]
                status(_progress_line(i, len(args), res))
    per: dict[str, list[dict[str, Any]]] = {
        row: sorted((r for r in results if r["row"] == row), key=lambda r: r["seed"]) for row in ROWS
    }
    rows = []
    for row, cells in per.items():
        metrics = {m: statistics.fmean(c["metrics"][m] for c in cells) for m in METRICS}
        metrics["train_seconds"] = statistics.fmean(c["train_seconds"] for c in cells)
        params = {
            **ROWS[row],
            "seeds": config.seeds,
            "steps": base.optim.steps,
            "per_seed": {m: [round(c["metrics"][m], 4) for c in cells] for m in METRICS},
            "final_loss": [round(c["final_loss"], 3) for c in cells],
        }
        rows.append(Row(row, metrics, params, seconds=sum(c["wall"] for c in cells)))
    claims = make_claims(per, config.equal_tolerance)
    per_worker: dict[int, float] = {}
    for r in results:
        per_worker[r["pid"]] = per_worker.get(r["pid"], 0.0) + r["cpu"]
    return BenchOutcome(
        data=DataInfo(
            "SynthHOI",
            "tailorkit.hoi.data.make_synth (procedural; objects textured with OpenCV sample photos)",
            base.data.n_train,
            base.data.n_test,
        ),
        rows=rows,
        claims=claims,
        extra={
            "mode_note": (
                f"{mode}: {config.seeds} training seeds x {len(ROWS)} rows, {base.optim.steps} steps of batch "
                f"{base.optim.batch_size}, <= {base.data.max_humans} human(s) and <= {base.data.max_objects} objects "
                "per scene; frozen EfficientNet-Lite0 stage-3 features cached once."
                + (" An early-training signal, not converged detectors." if mode == "quick" else "")
            ),
            "feature_seconds": round(feature_seconds, 1),
            "worker_cpu_seconds": sorted(round(v, 1) for v in per_worker.values()),
            "idle_wall_estimate_seconds": round(max(per_worker.values()) + feature_seconds, 1),
        },
    )


def make_claims(per: dict[str, list[dict[str, Any]]], tolerance: float) -> list[Claim]:
    """The bench's claims from the per-seed cells of each row."""

    def values(row: str, metric: str) -> list[float]:
        return [float(c["metrics"][metric]) for c in per[row]]

    claims = []
    for other in ("single", "cascade"):
        mean, sd = _paired(values("hodn", "role_map"), values(other, "role_map"))
        claims.append(
            Claim(
                f"hodn_beats_{other}",
                f"HODN role mAP > {other} role mAP: mean paired difference over seeds minus 2 SD of the differences "
                f"> 0 (mean {mean:+.4f}, SD {sd:.4f})",
                mean - 2 * sd,
                0.0,
                bool(mean - 2 * sd > 0),
            )
        )
    mean, _ = _paired(values("hodn", "role_map"), values("hodn_link_object", "role_map"))
    claims.append(
        Claim(
            "link_human_beats_object",
            "link=human role mAP - link=object role mAP > 0 (mean over seeds)",
            mean,
            0.0,
            mean > 0,
        )
    )
    for metric in ("object_map", "role_map"):
        mean, _ = _paired(values("hodn", metric), values("hodn_no_sg_obj", metric))
        claims.append(
            Claim.at_least(
                f"sg_obj_{metric}",
                f"stop-gradient on objects gives equal or higher {metric}: mean(sg_obj on - off) >= -{tolerance}",
                mean,
                -tolerance,
            )
        )
    drop_h, _ = _paired(values("hodn", "human_ap"), values("hodn_sg_hum", "human_ap"))
    drop_r, _ = _paired(values("hodn", "role_map"), values("hodn_sg_hum", "role_map"))
    value = max(drop_h, drop_r)
    claims.append(
        Claim(
            "sg_hum_control_hurts",
            f"stop-gradient on humans (control) lowers human AP (by {drop_h:+.4f}) or role mAP (by {drop_r:+.4f}): "
            "the larger mean drop > 0",
            value,
            0.0,
            value > 0,
        )
    )
    return claims
