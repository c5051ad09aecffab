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


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="the few-minute mode (default: full)")
    parser.add_argument("--seed", type=int, default=0, help="run seed (default 0)")
    parser.add_argument("--device", type=device_arg, default="cpu", help="auto, cpu, cuda or cuda:N (default cpu)")


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
    doc = run_bench(args.subsystem, quick=args.quick, seed=args.seed, device=device, out=out, config=config)
    print(out)
    return 0 if doc["rows"] else 1


def run_reproduce_cmd(args: argparse.Namespace) -> int:
    from tailorkit.cli.main import device_from
    from tailorkit.core.bench import BENCHES, available_benches, run_bench
    from tailorkit.core.errors import check_output_dir
    from tailorkit.core.progress import status
    from tailorkit.core.report import write_reproduce_report

    names = available_benches()
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        for name in names:
            BENCHES.get(name)  # unknown -> RegistryError, exit 2
    device = device_from(args.device)
    check_output_dir(args.out)
    docs, failures = [], {}
    for name in names:
        try:
            docs.append(
                run_bench(
                    name, quick=args.quick, seed=args.seed, device=device, out=args.out / "bench" / f"{name}.json"
                )
            )
        except Exception as err:  # one failing bench is reported; the others still run
            traceback.print_exc()
            failures[name] = f"{type(err).__name__}: {err}"
    index = write_reproduce_report(docs, args.out, failures)
    status(f"report: {index}")
    print(index)
    return 1 if failures else 0
