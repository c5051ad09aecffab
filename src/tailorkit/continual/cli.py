"""`tailorkit continual train CONFIG.yaml` and `tailorkit continual eval RUN_DIR` (`run` is the older name of `train`).

tailorkit continual train CONFIG.yaml --out runs/cppf [key=value ...]
    trains phase by phase, evaluating after each; writes RUN_DIR/config.yaml, RUN_DIR/phase<t>.pt (per-phase
    checkpoints; rerunning the same command resumes) and RUN_DIR/metrics.json.
tailorkit continual eval runs/cppf [eval.knn_k=10 ...]
    re-evaluates every saved phase (linear probe and kNN on all seen classes) and prints the named metrics.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tailorkit.cli.bench import PROGRESS_HELP, device_arg


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("continual", help="self-supervised class-incremental learning (CPPF and baselines)")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True, parser_class=type(parser))

    run = verbs.add_parser(
        "train", aliases=["run"], help="train and evaluate phase by phase (per-phase checkpoints, resumable)"
    )
    run.add_argument("config", type=Path, help="YAML or TOML run settings (RunConfig; docs/continual.md)")
    run.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="setting overrides (dotted keys)")
    run.add_argument("--out", type=Path, default=None, help="run folder (default reports/continual/<config name>)")
    run.add_argument("--device", type=device_arg, default="cpu", help="auto, cpu, cuda or cuda:N (default cpu)")
    run.add_argument("--stop-after-phase", type=int, default=None, help="stop after this 1-based phase")
    run.add_argument("--progress", action="store_true", default=None, help=PROGRESS_HELP)
    run.set_defaults(func=run_cmd)

    ev = verbs.add_parser("eval", help="re-evaluate a run folder's phase checkpoints and print the metrics")
    ev.add_argument("run_dir", type=Path, help="folder written by `tailorkit continual run`")
    ev.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="evaluation overrides: eval.* only")
    ev.add_argument("--device", type=device_arg, default="cpu", help="auto, cpu, cuda or cuda:N (default cpu)")
    ev.set_defaults(func=eval_cmd)


def _print_metrics(
    strategy: str, linear: list[list[float]], knn: list[list[float]], seen: dict[str, list[float]]
) -> dict[str, float]:
    from tailorkit.continual.runner import RunResult

    result = RunResult(strategy, linear, knn, seen["linear"], seen["knn"])
    metrics = result.metrics()
    metrics.pop("train_seconds")
    for name, matrix in (("linear probe", linear), ("kNN", knn)):
        print(f"accuracy matrix ({name}; row t = after phase t, column j = test images of phase j's classes):")
        for t, row in enumerate(matrix):
            print(f"  after phase {t + 1}: " + " ".join(f"{a:.3f}" for a in row))
    for key, label in (("linear", "linear probe"), ("knn", "kNN k=20")):
        print(f"final accuracy ({label}; all classes after the last phase): {metrics[f'final_acc_{key}']:.4f}")
        print(
            f"average incremental accuracy, AIA ({label}; mean over phases of seen-class accuracy): "
            f"{metrics[f'aia_{key}']:.4f}"
        )
        print(
            f"forgetting ({label}; mean best-earlier minus final accuracy on old phases): "
            f"{metrics[f'forgetting_{key}']:.4f}"
        )
    return metrics


def run_cmd(args: argparse.Namespace) -> int:
    import torch

    from tailorkit.cli.main import UsageError, device_from
    from tailorkit.continual.config import RunConfig
    from tailorkit.continual.data import make_benchmark
    from tailorkit.continual.runner import run_continual
    from tailorkit.core.config import load_config, save_config
    from tailorkit.core.errors import InputError, check_input_dir, check_output_dir
    from tailorkit.core.results import write_json_atomic
    from tailorkit.core.train import is_main_process

    config = load_config(RunConfig, args.config, args.overrides)
    if args.stop_after_phase is not None and not 1 <= args.stop_after_phase <= config.data.phases:
        raise UsageError(f"tailorkit continual run: error: --stop-after-phase: expected 1..{config.data.phases}")
    out = check_output_dir(args.out or Path("reports/continual") / args.config.stem)
    device = device_from(args.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    bench = None
    if config.data.dataset == "folder":  # the user's images are read (and checked) before the run folder exists
        expected = "a folder root/{train,test}/<class>/<image> (PNG, JPEG, ...)"
        check_input_dir(config.data.root, expected, what="data.root")
        try:
            bench = make_benchmark(config.data, config.seed, config.order)
        except (ValueError, OSError) as err:  # the reader names the folder or image; PIL's errors are OSErrors
            raise InputError(f"data.root {config.data.root}: {err}; expected {expected}") from None
    out.mkdir(parents=True, exist_ok=True)
    if is_main_process():  # under torchrun only rank 0 writes
        save_config(config, out / "config.yaml")
    stop = None if args.stop_after_phase is None else args.stop_after_phase - 1
    result = run_continual(
        config, out_dir=out, device=device, stop_after_phase=stop, progress=args.progress, benchmark=bench
    )
    print(
        f"strategy {config.strategy.name}, SSL {config.ssl.loss}, {len(result.linear)}/{config.data.phases} phases, "
        f"order {config.order}"
    )
    metrics = _print_metrics(
        config.strategy.name, result.linear, result.knn, {"linear": result.seen_linear, "knn": result.seen_knn}
    )
    if not is_main_process():
        return 0
    write_json_atomic(
        out / "metrics.json",
        {
            "strategy": config.strategy.name,
            "phases_done": len(result.linear),
            "metrics": {**metrics, "train_seconds": result.train_seconds},
            "accuracy_matrix_linear": result.linear,
            "accuracy_matrix_knn": result.knn,
            "seen_accuracy_linear": result.seen_linear,
            "seen_accuracy_knn": result.seen_knn,
        },
    )
    print(out / "metrics.json")
    return 0


def eval_cmd(args: argparse.Namespace) -> int:
    from tailorkit.cli.main import UsageError, device_from
    from tailorkit.continual.config import RunConfig
    from tailorkit.continual.data import make_benchmark
    from tailorkit.continual.nets import Student
    from tailorkit.continual.runner import evaluate_phase, load_phase_checkpoint
    from tailorkit.core.config import from_dict, merge, parse_overrides

    paths = sorted(args.run_dir.glob("phase*.pt"), key=lambda p: p.name)
    paths = [p for p in paths if p.name[5:-3].isdigit()]
    if not paths:
        raise UsageError(f"tailorkit continual eval: error: {args.run_dir}: no phase<t>.pt checkpoints (run first)")
    bad = [o for o in args.overrides if not o.lstrip("-").startswith("eval.")]
    if bad:
        raise UsageError(f"tailorkit continual eval: error: only eval.* settings can change, got {bad[0]!r}")
    payloads = [load_phase_checkpoint(p) for p in sorted(paths, key=lambda p: int(p.name[5:-3]))]
    config = from_dict(RunConfig, merge(payloads[0]["config"], parse_overrides(args.overrides)))
    bench = make_benchmark(config.data, config.seed, config.order)
    device = device_from(args.device)
    student = Student(bench.channels, config.model).to(device)
    linear: list[list[float]] = []
    knn: list[list[float]] = []
    seen: dict[str, list[float]] = {"linear": [], "knn": []}
    for t, payload in enumerate(payloads):
        student.load_state_dict(payload["student"])
        m = evaluate_phase(student, bench, t, config)
        linear.append(m["linear"])
        knn.append(m["knn"])
        seen["linear"].append(m["seen_linear"])
        seen["knn"].append(m["seen_knn"])
    print(
        f"strategy {config.strategy.name}, {len(payloads)}/{config.data.phases} phases evaluated, order {config.order}"
    )
    _print_metrics(config.strategy.name, linear, knn, seen)
    return 0
