"""`tailorkit hoi train|eval|predict|bench`.

tailorkit hoi train CONFIG.yaml [key=value ...] --out runs/hoi
    generates SynthHOI (config `data`) or reads your QPIC-format HICO-DET / V-COCO files (config `files`), trains the
    detector (config `model`, `optim`, `loss`), evaluates on the test split and writes RUN/config.yaml, RUN/model.pt
    and RUN/metrics.json.
tailorkit hoi eval RUN/model.pt [--annotations test_hico.json --images DIR --format hico|vcoco]
    evaluates on the SynthHOI test split of the run's config, or on QPIC-format annotations with their images.
tailorkit hoi predict IMAGE --model RUN/model.pt --out pred.png [--top 3]
    detects triplets in one image (resized to the model's training side) and draws them on it.
tailorkit hoi bench [--quick] [key=value ...]
    the same as `tailorkit bench hoi`.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from tailorkit.cli.bench import PROGRESS_HELP, RESUME_FILE, add_checkpoint_arg, device_arg


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("hoi", help="human-object interaction detection (HODN and its baselines)")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True, parser_class=type(parser))

    tr = verbs.add_parser("train", help="train a detector (SynthHOI or your HICO-DET / V-COCO files) and evaluate it")
    tr.add_argument("config", type=Path, help="YAML or TOML run settings (see src/tailorkit/hoi/configs/)")
    tr.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="setting overrides (dotted keys)")
    tr.add_argument("--out", type=Path, default=None, help="run folder (default reports/hoi/<config name>)")
    tr.add_argument("--device", type=device_arg, default="cpu", help="auto, cpu, cuda or cuda:N (default cpu)")
    tr.add_argument("--progress", action="store_true", default=None, help=PROGRESS_HELP)
    add_checkpoint_arg(tr)
    tr.set_defaults(func=train_cmd)

    ev = verbs.add_parser("eval", help="evaluate a trained model (triplet mAP, V-COCO role AP, human / object AP)")
    ev.add_argument("model", type=Path, help="model.pt written by `tailorkit hoi train`")
    ev.add_argument("--annotations", type=Path, default=None, help="QPIC-format annotation JSON (default: SynthHOI)")
    ev.add_argument("--images", type=Path, default=None, help="folder of the annotation file's images")
    ev.add_argument("--format", choices=("hico", "vcoco"), default="hico", help="annotation id scheme (default hico)")
    ev.add_argument("--device", type=device_arg, default="cpu", help="auto, cpu, cuda or cuda:N (default cpu)")
    ev.set_defaults(func=eval_cmd)

    pr = verbs.add_parser("predict", help="detect triplets in an image and draw them as a PNG")
    pr.add_argument("image", type=Path, help="an RGB image file (PNG, JPEG)")
    pr.add_argument("--model", type=Path, required=True, help="model.pt written by `tailorkit hoi train`")
    pr.add_argument("--out", type=Path, default=None, help="PNG to write (default <image>.hoi.png)")
    pr.add_argument("--top", type=int, default=3, help="triplets to draw (default 3)")
    pr.set_defaults(func=predict_cmd)

    be = verbs.add_parser("bench", help="the reproduction benchmark (same as `tailorkit bench hoi`)")
    be.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="bench setting overrides")
    be.add_argument("--quick", action="store_true", help="the few-minute mode (default: full)")
    be.add_argument("--seed", type=int, default=0, help="run seed (default 0)")
    be.add_argument("--out", type=Path, default=Path("reports/bench/hoi.json"), help="JSON file")
    be.set_defaults(func=bench_cmd)


def _print(metrics: dict[str, float]) -> None:
    for key, value in metrics.items():
        print(f"{key}: {value:.4f}")


def train_cmd(args: argparse.Namespace) -> int:
    import torch

    from tailorkit.cli.main import UsageError, device_from
    from tailorkit.core.config import load_config, save_config
    from tailorkit.core.errors import check_output_dir
    from tailorkit.core.results import write_json_atomic
    from tailorkit.hoi.config import TrainConfig
    from tailorkit.hoi.data import load_datasets
    from tailorkit.hoi.train import backbone_features, evaluate, rare_categories, save_checkpoint, train

    cfg = load_config(TrainConfig, args.config, args.overrides)
    out = check_output_dir(args.out or Path("reports/hoi") / args.config.stem)
    device = device_from(args.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        train_data, test_data = load_datasets(cfg, progress=args.progress)
    except ValueError as err:
        raise UsageError(f"tailorkit hoi train: error: {err}") from None
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    feats = None
    if cfg.model.freeze_backbone:
        assert train_data.images is not None and test_data.images is not None
        from tailorkit.hoi.methods import build_model

        probe = build_model(cfg.model, len(train_data.object_names), len(train_data.verb_names)).to(device)
        feats = (
            backbone_features(probe, train_data.images, progress=args.progress),
            backbone_features(probe, test_data.images),
        )
    result = train(
        cfg, train_data, features=None if feats is None else feats[0], device=device, progress=args.progress,
        checkpoint=out / RESUME_FILE, checkpoint_every=args.checkpoint_every,
    )  # fmt: skip
    metrics = evaluate(
        result.model, test_data, cfg.eval, features=None if feats is None else feats[1],
        rare=rare_categories(train_data, cfg.eval.rare_threshold),
    )  # fmt: skip
    save_checkpoint(out / "model.pt", cfg, result.model, (train_data.object_names, train_data.verb_names))
    finite = {k: (v if math.isfinite(v) else None) for k, v in metrics.items()}  # JSON has no NaN: null = undefined
    doc = {
        "variant": cfg.model.variant,
        "metrics": finite,
        "train_cpu_seconds": result.cpu_seconds,
        "losses": result.losses,
        "resumed_from_step": result.start_step,
    }
    write_json_atomic(out / "metrics.json", doc)
    resumed = f" (resumed at step {result.start_step})" if result.start_step else ""
    print(f"variant {cfg.model.variant}: {cfg.optim.steps} steps{resumed}, final loss {result.losses[-1]:.3f}")
    _print(metrics)
    print(out / "model.pt")
    return 0


def _read_rgb(path: Path) -> Any:
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    from tailorkit.cli.main import UsageError

    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except (OSError, UnidentifiedImageError) as err:
        raise UsageError(f"tailorkit hoi: error: {path}: expected a readable image file ({err})") from None


def _load(path: Path, device: Any = None) -> Any:
    import pickle

    from tailorkit.cli.main import UsageError
    from tailorkit.hoi.train import load_checkpoint

    try:
        return load_checkpoint(path, device)
    except ValueError as err:
        raise UsageError(f"tailorkit hoi: error: {err}") from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, KeyError, TypeError) as err:  # a foreign or damaged file
        raise UsageError(
            f"tailorkit hoi: error: {path}: cannot be read ({type(err).__name__}: {err}); "
            "expected a model.pt written by `tailorkit hoi train`"
        ) from None


def eval_cmd(args: argparse.Namespace) -> int:
    import dataclasses

    from tailorkit.cli.main import UsageError, device_from
    from tailorkit.core.errors import check_input_dir, check_input_file
    from tailorkit.hoi.config import FilesConfig
    from tailorkit.hoi.data import load_qpic_split, make_synth
    from tailorkit.hoi.train import evaluate

    if args.annotations is not None:
        check_input_file(args.annotations, "a QPIC-format annotation JSON", what="--annotations")
        if args.images is not None:
            check_input_dir(args.images, "the folder of the annotation file's images", what="--images")
    cfg, model, objects, verbs = _load(args.model, device_from(args.device))
    if args.annotations is None:
        data = make_synth(cfg.data, cfg.seed, "test")
    else:
        if args.images is None:
            raise UsageError("tailorkit hoi eval: error: --annotations needs --images (the folder of its images)")
        n_obj, n_verb = (80, 117) if args.format == "hico" else (80, 29)
        if (len(objects), len(verbs)) != (n_obj, n_verb):
            raise UsageError(
                f"tailorkit hoi eval: error: the model knows {len(objects)} objects and {len(verbs)} verbs; "
                f"{args.format} annotations expect {n_obj} and {n_verb}"
            )
        files = dataclasses.replace(
            cfg.files if cfg.files.format else FilesConfig(),
            format=args.format,
            test_annotations=str(args.annotations),
            test_images=str(args.images),
            image_size=cfg.image_size,
            limit=0,
        )
        try:
            data = load_qpic_split(files, "test")
        except ValueError as err:
            raise UsageError(f"tailorkit hoi eval: error: {err}") from None
    _print(evaluate(model, data, cfg.eval))
    return 0


def predict_cmd(args: argparse.Namespace) -> int:
    from tailorkit.cli.main import UsageError
    from tailorkit.core.errors import check_output_file
    from tailorkit.hoi.draw import draw_triplets
    from tailorkit.hoi.train import predict

    out = check_output_file(args.out or args.image.with_suffix(".hoi.png"))
    image = _read_rgb(args.image)  # a bad image fails before the model loads
    if args.top < 1:
        raise UsageError(f"tailorkit hoi predict: error: --top: expected an integer >= 1, got {args.top}")
    cfg, model, objects, verbs = _load(args.model)
    det = predict(model, image, top_k=max(args.top, 1), size=cfg.image_size)
    for t in range(min(args.top, len(det.scores))):
        print(f"{verbs[int(det.verbs[t])]} {objects[int(det.obj_labels[t])]} score {det.scores[t]:.3f} "
              f"human {det.sub_boxes[t].round(1).tolist()} object {det.obj_boxes[t].round(1).tolist()}")  # fmt: skip
    from tailorkit.core.results import atomic_open

    with atomic_open(out) as handle:
        draw_triplets(image, det, objects, verbs, top=args.top, scale=max(1, 384 // max(image.shape[:2]))).save(
            handle, format="PNG"
        )
    print(out)
    return 0


def bench_cmd(args: argparse.Namespace) -> int:
    from tailorkit.core.bench import bench_config, import_bench_module, run_bench
    from tailorkit.core.errors import check_output_file

    import_bench_module("hoi")
    config = bench_config("hoi", None, args.overrides)
    check_output_file(args.out)
    doc = run_bench("hoi", quick=args.quick, seed=args.seed, out=args.out, config=config)
    for claim in doc["claims"]:
        print(
            f"{'holds' if claim['holds'] else 'FAILS'}  {claim['id']}: value {claim['value']:.4f} "
            f"(target {claim['target']})"
        )
    print(args.out)
    return 0
