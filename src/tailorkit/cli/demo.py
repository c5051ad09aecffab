"""`tailorkit demo`: the newcomer's tour, one short demonstration per subsystem in one HTML report."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tailorkit.cli.bench import device_arg


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("demo", help="the tour: each subsystem's main verb on embedded data, in one HTML report")
    parser.add_argument("--out", type=Path, default=Path("reports/demo"), help="output folder (default reports/demo)")
    parser.add_argument("--only", default="", help="comma-separated parts to run (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    parser.add_argument("--device", type=device_arg, default="cpu", help="auto, cpu, cuda or cuda:N (default cpu)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tailorkit.cli.main import device_from
    from tailorkit.core.demo import run_demo

    only = [n.strip() for n in args.only.split(",") if n.strip()] or None
    index, failures = run_demo(args.out, seed=args.seed, device=device_from(args.device), only=only)
    print(f"demo report: {index.resolve()}")
    return 1 if failures else 0
