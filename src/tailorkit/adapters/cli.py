"""`tailorkit adapters train CONFIG.yaml` and `tailorkit adapters eval RUN_DIR`.

tailorkit adapters train vmt.yaml --out runs/vmt [--checkpoint-every N] [key=value ...]
    trains one method on the configured data (through tailorkit.core.train: torchrun runs it as DDP) and writes
    RUN_DIR/trainable.safetensors (the trainable parameters only), RUN_DIR/manifest.json (backbone name and
    fingerprint, method, tasks, config) and RUN_DIR/metrics.json. It keeps RUN_DIR/resume.pt (every N steps, default
    50, and at the end) and resumes from it when the command is run again with the same --out.
tailorkit adapters eval runs/vmt
    rebuilds the backbone, refuses a manifest whose backbone does not match, loads the saved parameters and prints
    every task's metrics on the configured test split. A user's backbone weights are the training setting
    `backbone.weights=FILE.safetensors` (loaded strictly); eval rebuilds the backbone from the run's saved config.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tailorkit.cli.bench import PROGRESS_HELP, RESUME_FILE, add_checkpoint_arg, device_arg


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("adapters", help="multi-task dense PETL on a frozen backbone (VMT-Adapter and baselines)")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True, parser_class=type(parser))
    train = verbs.add_parser("train", help="train one method; save trainable parameters + manifest")
    train.add_argument("config", type=Path, help="YAML or TOML settings (TrainConfig; see docs/adapters.md)")
    train.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="setting overrides (dotted keys)")
    train.add_argument("--out", type=Path, default=None, help="run folder (default reports/adapters/<config name>)")
    train.add_argument("--device", type=device_arg, default="cpu", help="auto, cpu, cuda or cuda:N (default cpu)")
    add_checkpoint_arg(train)
    train.add_argument("--progress", action="store_true", default=None, help=PROGRESS_HELP)
    train.set_defaults(func=train_cmd)
    ev = verbs.add_parser("eval", help="evaluate a saved run (refuses a mismatched backbone)")
    ev.add_argument("run_dir", type=Path, help="folder written by `tailorkit adapters train`")
    ev.add_argument("--device", type=device_arg, default="cpu", help="auto, cpu, cuda or cuda:N (default cpu)")
    ev.set_defaults(func=eval_cmd)


def _print(metrics: dict[str, float]) -> None:
    for key, value in metrics.items():
        print(f"{key}: {value:.4f}")


def train_cmd(args: argparse.Namespace) -> int:
    import torch

    from tailorkit.adapters.config import TrainConfig
    from tailorkit.adapters.runner import build_model, evaluate, make_data, save_run, train_model
    from tailorkit.cli.main import device_from
    from tailorkit.core.config import load_config
    from tailorkit.core.errors import InputError, check_input_dir, check_output_dir
    from tailorkit.core.results import write_json_atomic

    config = load_config(TrainConfig, args.config, args.overrides)
    out = check_output_dir(args.out or Path("reports/adapters") / args.config.stem)
    device = device_from(args.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    if config.data.source == "pascal_context":
        expected = "a PASCAL-Context multi-task folder (ImageSets/Context/train.txt, JPEGImages/, ...)"
        check_input_dir(config.data.root, expected, what="data.root")
        try:
            train, test = make_data(config)
        except ValueError as err:  # the reader names the file and the expected layout
            raise InputError(str(err)) from None
    else:
        train, test = make_data(config)
    model = build_model(config)
    history = train_model(
        model,
        train,
        config,
        device=device,
        progress=args.progress,
        checkpoint=out / RESUME_FILE,  # a checkpoint of other settings is an InputError naming what differs
        checkpoint_every=args.checkpoint_every,
    )
    metrics = evaluate(model, test, device=device)
    enc = model.encoder
    fraction = 100.0 * enc.trainable_parameters() / enc.backbone_parameters()
    save_run(model.cpu(), config, out)
    write_json_atomic(
        out / "metrics.json",
        {"metrics": metrics, "trainable_fraction": fraction, "final_loss": history["loss"][-1]},
    )
    print(f"method {config.method.name}, tasks {', '.join(config.data.tasks)}, backbone {config.backbone.name}")
    print(f"trainable encoder parameters: {enc.trainable_parameters()} ({fraction:.3f} % of the backbone)")
    _print(metrics)
    print(out / "manifest.json")
    return 0


def eval_cmd(args: argparse.Namespace) -> int:
    from tailorkit.adapters.runner import evaluate, load_run, make_data
    from tailorkit.cli.main import UsageError, device_from
    from tailorkit.core.errors import check_input_dir, check_safetensors

    check_input_dir(args.run_dir, "a run folder written by `tailorkit adapters train`", what="RUN_DIR")
    if (args.run_dir / "trainable.safetensors").exists():
        check_safetensors(args.run_dir / "trainable.safetensors")
    try:
        model, config = load_run(args.run_dir)
    except ValueError as err:
        raise UsageError(f"tailorkit adapters eval: error: {err}") from err
    _, test = make_data(config)
    metrics = evaluate(model, test, device=device_from(args.device))
    print(f"method {config.method.name}, tasks {', '.join(config.data.tasks)}, backbone {config.backbone.name}")
    _print(metrics)
    return 0
