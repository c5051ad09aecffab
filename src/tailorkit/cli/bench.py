"""`tailorkit bench <subsystem>` and `tailorkit reproduce`."""

from __future__ import annotations

import argparse
import traceback
from pathlib import Path
from typing import Any

from tailorkit.core.device import DEVICE_CHOICES


def device_arg(value: str) -> str:
    if value not in DEVICE_CHOICES and not value.startswith("cuda:"):
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(DEVICE_CHOICES)} or cuda:N, got {value!r}")
    return value


PROGRESS_HELP = (
    "progress bars (already the default on a terminal; never in a log file; --no-progress or TAILORKIT_PROGRESS=0 "
    "turns them off)"
)

RESUME_FILE = "resume.pt"  # a train verb's core.train checkpoint inside its run folder


def add_checkpoint_arg(parser: argparse.ArgumentParser) -> None:
    """`--checkpoint-every N` of every train verb that trains through core.train: what makes the run resumable."""
    parser.add_argument(
        "--checkpoint-every",
        type=non_negative_int,
        default=50,
        metavar="N",
        help=f"write OUT/{RESUME_FILE} every N optimiser steps and at the end (0: only at the end); rerunning the "
        "same command with the same --out continues from it, exactly as if never interrupted (a changed training "
        "setting is refused; delete the file to start over). Default 50",
    )


SEED_HELP = (
    "first seed (default 0). A seed fixes the data draw and every initialisation of every method; --seeds N runs "
    "the paired seeds S, S+1, ..., S+N-1, the same for every method"
)


def budget_list(value: str) -> tuple[float, ...]:
    if value.strip().lower() == "none":  # skip the plan's curve (an evidence run in parts: seeds first)
        return ()
    try:
        budgets = tuple(float(v) for v in value.split(",") if v.strip())
    except ValueError:
        budgets = ()
    if not budgets or any(not b > 0 for b in budgets):
        raise argparse.ArgumentTypeError(f"expected positive numbers separated by commas (1,4,16), got {value!r}")
    return budgets


def positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not number > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value!r}")
    return number


def non_negative_int(value: str) -> int:
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {value!r}")
    return int(value)


def positive_int(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value!r}")
    return int(value)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="the few-minute smoke mode (same as --mode quick)")
    parser.add_argument(
        "--mode",
        choices=("quick", "evidence", "full"),
        default=None,
        help="quick: one seed, a smoke run, verdicts indicative; evidence: paired seeds (5 or more) and the budget "
        "curve, within about an hour on 2 cores; full: the largest setting (default full, or quick with --quick)",
    )
    parser.add_argument("--seed", type=int, default=0, help=SEED_HELP)
    parser.add_argument("--seeds", type=positive_int, default=None, help="paired seeds (default 1; 5 in evidence)")
    parser.add_argument(
        "--budget", type=positive_float, default=1.0, help="multiply the training steps of every fit (default 1)"
    )
    parser.add_argument(
        "--curve",
        type=budget_list,
        default=None,
        help="budgets at which the decisive pairs run, e.g. 1,4,16: the gap against budget, as rows and a PNG "
        "(none: no curve, even in evidence mode)",
    )
    parser.add_argument("--device", type=device_arg, default="cpu", help="auto, cpu, cuda or cuda:N (default cpu)")


def _mode(args: argparse.Namespace) -> str:
    from tailorkit.cli.main import UsageError

    if args.quick and args.mode not in (None, "quick"):
        raise UsageError(f"tailorkit: error: --quick contradicts --mode {args.mode}")
    return args.mode or ("quick" if args.quick else "full")


def add_parser(sub: Any) -> None:
    bench = sub.add_parser("bench", help="run one subsystem's reproduction benchmark and write its JSON")
    bench.add_argument("subsystem", help="which bench (tailorkit bench --list shows them)", nargs="?")
    bench.add_argument("--list", action="store_true", help="list the registered benches and exit")
    bench.add_argument("--config", type=Path, default=None, help="YAML or TOML file with the bench's settings")
    bench.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="setting overrides (also --key=value)")
    bench.add_argument("--out", type=Path, default=None, help="JSON file (default reports/bench/<subsystem>.json)")
    _common(bench)
    bench.set_defaults(func=run_bench_cmd)

    repro = sub.add_parser("reproduce", help="run every registered bench; write DIR/index.html and DIR/results.json")
    repro.add_argument("--only", default="", help="comma-separated benches to run (default: all)")
    repro.add_argument("--out", type=Path, default=Path("reports/reproduce"), help="output folder")
    repro.add_argument(
        "--check",
        type=Path,
        default=None,
        metavar="FILE.json",
        help="rerun a committed bench result with its own settings and report, per claim, whether the new value "
        "falls inside the committed interval (exit 1 if any falls outside)",
    )
    repro.add_argument(
        "--verdicts",
        type=Path,
        default=None,
        metavar="FILE.json",
        help="print a bench result's claims as a Markdown Verdicts table (claim, value, target, interval, seeds "
        "won, verdict) for docs/<subsystem>.md, and exit; runs nothing",
    )
    _common(repro)
    repro.set_defaults(func=run_reproduce_cmd)


def run_bench_cmd(args: argparse.Namespace) -> int:
    from tailorkit.cli.main import UsageError, device_from
    from tailorkit.core.bench import available_benches, bench_config, import_bench_module, run_bench
    from tailorkit.core.errors import check_output_file

    if args.list:
        print("\n".join(available_benches()))
        return 0
    if not args.subsystem:
        raise UsageError(f"tailorkit bench: error: name a bench: {', '.join(available_benches())}")
    import_bench_module(args.subsystem)
    config = bench_config(args.subsystem, args.config, args.overrides)
    device = device_from(args.device)
    out = check_output_file(args.out or Path("reports/bench") / f"{args.subsystem}.json")  # before the work
    doc = run_bench(
        args.subsystem,
        mode=_mode(args),
        seed=args.seed,
        seeds=args.seeds,
        budget=args.budget,
        curve=args.curve,
        device=device,
        out=out,
        config=config,
    )
    print(out)
    return 0 if doc["rows"] else 1


def run_reproduce_cmd(args: argparse.Namespace) -> int:
    from tailorkit.cli.main import device_from
    from tailorkit.core.bench import BENCHES, available_benches, run_bench
    from tailorkit.core.errors import check_output_dir
    from tailorkit.core.progress import parts, status
    from tailorkit.core.report import write_reproduce_report

    if args.verdicts is not None:
        return print_verdicts_cmd(args)
    if args.check is not None:
        return run_check_cmd(args)
    mode = _mode(args)
    names = available_benches()
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        for name in names:
            BENCHES.get(name)  # unknown -> RegistryError, exit 2
    device = device_from(args.device)
    check_output_dir(args.out)
    docs, failures = [], {}
    for name in parts(names, "reproduce"):  # "reproduce 3/10: registration (about 12 min left)"
        try:
            docs.append(
                run_bench(
                    name,
                    mode=mode,
                    seed=args.seed,
                    seeds=args.seeds,
                    budget=args.budget,
                    curve=args.curve,
                    device=device,
                    out=args.out / "bench" / f"{name}.json",
                )
            )
        except Exception as err:  # one failing bench is reported; the others still run
            traceback.print_exc()
            failures[name] = f"{type(err).__name__}: {err}"
    index = write_reproduce_report(docs, args.out, failures)
    status(f"report: {index}")
    print(index)
    return 1 if failures else 0


def _load_committed(path: Path) -> dict[str, Any]:
    from tailorkit.cli.main import UsageError
    from tailorkit.core.results import load_bench

    try:
        return load_bench(path)
    except OSError as err:
        raise UsageError(f"tailorkit: error: {path}: cannot read ({err.strerror})") from None
    except ValueError as err:
        raise UsageError(f"tailorkit: error: {path}: expected a bench JSON document ({err})") from None


def print_verdicts_cmd(args: argparse.Namespace) -> int:
    """`tailorkit reproduce --verdicts FILE.json`: the Markdown Verdicts table of a committed result."""
    from tailorkit.core.report import verdicts_markdown

    print(verdicts_markdown(_load_committed(args.verdicts)))
    return 0


def run_check_cmd(args: argparse.Namespace) -> int:
    """`tailorkit reproduce --check FILE.json`: rerun a committed result and compare claim by claim."""
    from tailorkit.cli.main import device_from
    from tailorkit.core.bench import rerun_document
    from tailorkit.core.evidence import check_against

    old = _load_committed(args.check)
    new = rerun_document(old, device=device_from(args.device), out=args.out / "check" / f"{old['subsystem']}.json")
    lines, outside = check_against(old, new)
    print("\n".join(lines))
    return 1 if outside else 0
