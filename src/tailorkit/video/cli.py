"""`tailorkit video train|eval|predict|bench`.

tailorkit video train CONFIG.yaml [key=value ...] [--out DIR]
    trains one arm (method=sif by default) on MotionShapes or a video folder; writes DIR/config.yaml,
    DIR/model.safetensors and DIR/metrics.json, prints the test accuracy.
tailorkit video eval DIR
    re-evaluates a run folder on its test split.
tailorkit video predict CLIP.mp4 --classes "walking,running,..." [--model DIR/model.safetensors] [--top-k 5]
    zero-shot (mean pooling, hand prompts) or with a trained arm; prints top-k classes with probabilities.
tailorkit video bench [--quick] [--out FILE]
    the same as `tailorkit bench video`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tailorkit.cli.bench import PROGRESS_HELP, RESUME_FILE, add_checkpoint_arg


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("video", help="motion prompts for CLIP action recognition (SiF and baselines)")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True, parser_class=type(parser))

    train = verbs.add_parser("train", help="train one arm and evaluate it; writes a run folder")
    train.add_argument(
        "config", type=Path, help="YAML or TOML settings (keys of tailorkit.video.config.TrainRunConfig)"
    )
    train.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="setting overrides (dotted keys)")
    train.add_argument("--out", type=Path, default=None, help="run folder (default reports/video/<config name>)")
    train.add_argument("--progress", action="store_true", default=None, help=PROGRESS_HELP)
    add_checkpoint_arg(train)
    train.set_defaults(func=train_cmd)

    ev = verbs.add_parser("eval", help="re-evaluate a run folder on its test split")
    ev.add_argument("run_dir", type=Path, help="folder written by `tailorkit video train`")
    ev.set_defaults(func=eval_cmd)

    pr = verbs.add_parser("predict", help="top-k class names for one video file")
    pr.add_argument("clip", type=Path, help="a video file (mp4, avi, ...)")
    pr.add_argument("--classes", required=True, help='comma-separated class names, e.g. "walking,running"')
    pr.add_argument("--model", type=Path, default=None, help="a trained model.safetensors (default: zero-shot)")
    pr.add_argument("--top-k", type=int, default=5, help="how many classes to print (default 5)")
    pr.add_argument("--frames", type=int, default=8, help="frames sampled from the clip (default 8)")
    pr.add_argument("--sampling", choices=("uniform", "segment"), default="uniform", help="frame sampling")
    pr.set_defaults(func=predict_cmd)

    be = verbs.add_parser("bench", help="run the video benchmark (same as `tailorkit bench video`)")
    be.add_argument("--quick", action="store_true", help="the quick mode (a few minutes on 2 cores)")
    be.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    be.add_argument("--out", type=Path, default=None, help="where to write the bench JSON")
    be.set_defaults(func=bench_cmd)


def _check_folder_data(config: Any) -> None:
    """Folder data is listed (and its CSV checked) before anything is trained or written."""
    from tailorkit.core.errors import check_input_dir, check_input_file
    from tailorkit.video.io import VideoFolder

    data = config.data
    if data.kind != "folder":
        return
    check_input_dir(data.root, "a folder root/<class_name>/<clip>.mp4", what="data.root")
    if data.splits_csv:
        check_input_file(data.splits_csv, "a CSV with columns path,label,split", what="data.splits_csv")
    folder = VideoFolder(data.root, data.splits_csv or None)
    if data.splits_csv:
        folder.split(data.train_split)
        folder.split(data.test_split)


def train_cmd(args: argparse.Namespace) -> int:
    import torch

    from tailorkit.core.config import load_config
    from tailorkit.core.errors import check_output_dir
    from tailorkit.video.config import TrainRunConfig
    from tailorkit.video.runner import train_run

    config = load_config(TrainRunConfig, args.config, args.overrides)
    out = check_output_dir(args.out or Path("reports/video") / args.config.stem)
    _check_folder_data(config)  # VideoError (an InputError): one line, exit 2, no run folder
    if config.threads:
        torch.set_num_threads(config.threads)
    metrics = train_run(
        config, out, progress=args.progress or None, checkpoint=out / RESUME_FILE,
        checkpoint_every=args.checkpoint_every,
    )  # fmt: skip
    print(
        f"method {metrics['method']}: test accuracy {metrics['accuracy']:.4f} on {metrics['n_test']} clips "
        f"({len(metrics['classes'])} classes), train accuracy {metrics['train_accuracy']:.4f} on "
        f"{metrics['n_train']} clips, {metrics['trainable_params']} trainable parameters"
    )
    print(out / "metrics.json")
    return 0


def eval_cmd(args: argparse.Namespace) -> int:
    from tailorkit.core.errors import InputError
    from tailorkit.video.runner import evaluate_run

    try:
        result = evaluate_run(args.run_dir)
    except ValueError as err:  # no run folder, or one without config.yaml / model.safetensors
        raise InputError(str(err)) from None
    print(f"method {result['method']}: test accuracy {result['accuracy']:.4f} on {result['n_test']} clips")
    return 0


def predict_cmd(args: argparse.Namespace) -> int:
    from tailorkit.cli.main import UsageError
    from tailorkit.core.errors import InputError, check_safetensors
    from tailorkit.video.api import cached_encoder, load_model, parse_classes, predict_clip
    from tailorkit.video.io import read_video

    if args.top_k < 1 or args.frames < 2:
        raise UsageError("tailorkit video predict: error: --top-k must be >= 1 and --frames >= 2")
    try:
        names = parse_classes(args.classes)
    except ValueError as err:
        raise UsageError(f"tailorkit video predict: error: {err}") from err
    # the clip and the model file are checked before the encoder loads (seconds)
    read_video(args.clip, size=16, max_frames=1)  # VideoError naming the file if missing or not a video
    if args.model:
        check_safetensors(args.model, what="--model")
    encoder, manifest = cached_encoder()
    try:
        model = load_model(args.model, encoder)[0] if args.model else None
        top = predict_clip(
            args.clip,
            names,
            encoder=encoder,
            manifest=manifest,
            model=model,
            frames=args.frames,
            sampling=args.sampling,
            k=args.top_k,
        )
    except ValueError as err:  # VideoError included: too few frames, a model file for other towers
        raise InputError(str(err)) from None
    print(f"{args.clip} ({'zero-shot' if model is None else args.model}):")
    for name, p in top:
        print(f"  {p:.4f}  {name}")
    return 0


def bench_cmd(args: argparse.Namespace) -> int:
    from tailorkit.core.bench import run_bench
    from tailorkit.core.errors import check_output_file

    if args.out is not None:
        check_output_file(args.out)
    doc = run_bench("video", quick=args.quick, seed=args.seed, out=args.out)
    for claim in doc["claims"]:
        print(
            f"{'holds' if claim['holds'] else 'FAILS'}  {claim['id']}: {claim['value']:.4f} (target {claim['target']})"
        )
    return 0
