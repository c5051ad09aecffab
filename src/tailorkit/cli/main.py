"""`tailorkit`: the command-line entry point.

    tailorkit assets list|install|verify [NAME ...]
    tailorkit bench <subsystem> [--quick] [--seed N] [--out FILE] [--device auto|cpu|cuda]
    tailorkit reproduce [--quick] [--only a,b] [--out DIR]
    tailorkit demo [--out DIR]
    tailorkit <subsystem> <verb> ...        (each subsystem's own commands)

Usage errors (a bad option, a bad config key or value) print one line and exit with status 2; a missing asset
prints the command that installs it and exits with status 1.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from tailorkit import __version__
from tailorkit.core.config import ConfigError
from tailorkit.core.registry import RegistryError

USAGE_ERROR = 2


class UsageError(Exception):
    """Bad command-line usage; reported on one line with exit status 2."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage dump) so scripts and people see just the problem.

    Abbreviated options are off: `--se=3` must not silently mean `--seed=3` when it was meant as a settings override.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: error: {message} (see {self.prog} --help)")


# Each subsystem's top-level command: name -> (package under tailorkit, one-line help). Only the package of the
# command being run is imported (a subsystem's package may load numba, transformers, ...): `tailorkit --help` and
# the built-in commands stay fast. A subsystem adds its line here and defines `add_parser(sub)` in its cli.py.
SUBSYSTEM_COMMANDS: dict[str, tuple[str, str]] = {
    "patch": ("patching", "patch a fine-tuned model so it keeps the pretrained model's abilities (Model Tailor)"),
    "film": ("films", "glassy polymer films: the DPLM lattice model with rejection-free kinetic Monte Carlo"),
    "anatomy": ("anatomy", "SAM / SAMv2 anatomical embeddings: train, embed, locate landmarks"),
    "register": ("registration", "SAME++ registration of 3D scans beside ANTs, elastix and SimpleITK"),
    "adapters": ("adapters", "multi-task dense PETL on a frozen backbone (VMT-Adapter and baselines)"),
    "prompts": ("prompts", "multi-task prompt learning on a CLIP-like dual encoder (MmAP and baselines)"),
    "video": ("video", "motion prompts for CLIP action recognition (SiF and baselines)"),
    "active": ("active", "selective labelling (TESLA) + prompt tuning of a frozen segmenter (SLPT)"),
    "continual": ("continual", "self-supervised class-incremental learning (CPPF and baselines)"),
    "hoi": ("hoi", "human-object interaction detection (HODN and its QPIC / CDN baselines)"),
}


def build_parser(argv: Sequence[str] = ()) -> ArgumentParser:
    """The full parser for the command named in `argv` (subsystem commands not named get a help line only)."""
    parser = ArgumentParser(
        prog="tailorkit",
        description="Ten published research systems as tested tools, each beside its baselines.",
    )
    parser.add_argument("--version", action="version", version=f"tailorkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser, required=True)
    for module in ("assets", "bench", "demo"):
        importlib.import_module(f"tailorkit.cli.{module}").add_parser(sub)
    command = next((a for a in argv if not a.startswith("-")), None)
    for name, (package, help_text) in SUBSYSTEM_COMMANDS.items():
        if importlib.util.find_spec(f"tailorkit.{package}") is None:
            continue
        if name == command:
            importlib.import_module(f"tailorkit.{package}.cli").add_parser(sub)
        else:
            sub.add_parser(name, help=help_text)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from tailorkit.assets.base import AssetError

    try:
        argv = list(sys.argv[1:] if argv is None else argv)
        parser = build_parser(argv)
        args, extra = parser.parse_known_args(argv)
        # `--key=value` settings overrides pass through to commands that take them; anything else is an error.
        # argparse leaves `key=value` positionals that follow an option here too (it fills positionals only once).
        overrides = [a for a in extra if "=" in a and (a.startswith("--") or not a.startswith("-"))]
        unknown = [a for a in extra if a not in overrides]
        if unknown or (overrides and not hasattr(args, "overrides")):
            parser.error(f"unrecognized arguments: {' '.join(unknown or overrides)}")
        if overrides:
            args.overrides = [*args.overrides, *overrides]
        result = args.func(args)
        return int(result or 0)
    except (UsageError, ConfigError, RegistryError) as err:
        print(_one_line(err if isinstance(err, UsageError) else f"tailorkit: error: {err}"), file=sys.stderr)
        return USAGE_ERROR
    except AssetError as err:
        print(f"tailorkit: {err}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `tailorkit assets list | head`: the reader left, which is not an error
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("tailorkit: interrupted", file=sys.stderr)
        return 130


def device_from(spec: str) -> Any:
    """--device value -> torch.device; an unusable device (cuda without CUDA) is a usage error."""
    from tailorkit.core.device import resolve_device

    try:
        return resolve_device(spec)
    except ValueError as err:
        raise UsageError(f"tailorkit: error: {err}") from None


def _one_line(message: object) -> str:
    return " ".join(str(message).split())


def default_out(*parts: str) -> Path:
    return Path("reports").joinpath(*parts)


if __name__ == "__main__":
    # Under `python -m tailorkit.cli.main` this file runs as __main__ and again as tailorkit.cli.main (imported by the
    # commands): call the imported one so that UsageError is one class and is caught.
    from tailorkit.cli.main import main as _main

    sys.exit(_main())
