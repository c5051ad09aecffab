"""`tailorkit`: the command-line entry point.

    tailorkit assets list|install|verify [NAME ...]
    tailorkit bench <subsystem> [--quick] [--seed N] [--out FILE] [--device auto|cpu|cuda]
    tailorkit reproduce [--quick] [--only a,b] [--out DIR]
    tailorkit demo [--out DIR]
    tailorkit <subsystem> <verb> ...        (each subsystem's own commands)

Subsystems answer to their package name (`patching`, `films`, `registration`, ...); the older command names
`patch`, `film` and `register` stay as aliases.

Errors (docs/architecture.md, "Errors"): an error caused by the user's input or environment (a bad option, config
key or value; a missing, unreadable or malformed file; an output location that exists or cannot be written) prints
one line naming the file or value and the expected form, and exits with status 2. A missing asset prints the command
that installs it and exits with status 1. Anything else is a bug: the traceback is printed with a request to report
it, exit status 1.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any, NoReturn

from tailorkit import __version__
from tailorkit.core.errors import describe, is_input_error

USAGE_ERROR = 2
BUG = 1


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


# Each subsystem's top-level command, named after its package: package -> (older alias or "", one-line help). Only
# the package of the command being run is imported (a subsystem's package may load numba, transformers, ...):
# `tailorkit --help` and the built-in commands stay fast. A subsystem adds its line here and defines
# `add_parser(sub)` in its cli.py.
SUBSYSTEM_COMMANDS: dict[str, tuple[str, str]] = {
    "patching": ("patch", "patch a fine-tuned model so it keeps the pretrained model's abilities (Model Tailor)"),
    "films": ("film", "glassy polymer films: the DPLM lattice model with rejection-free kinetic Monte Carlo"),
    "anatomy": ("", "SAM / SAMv2 anatomical embeddings: train, embed, locate landmarks"),
    "registration": ("register", "SAME++ registration of 3D scans beside ANTs, elastix and SimpleITK"),
    "adapters": ("", "multi-task dense PETL on a frozen backbone (VMT-Adapter and baselines)"),
    "prompts": ("", "multi-task prompt learning on a CLIP-like dual encoder (MmAP and baselines)"),
    "video": ("", "motion prompts for CLIP action recognition (SiF and baselines)"),
    "active": ("", "selective labelling (TESLA) + prompt tuning of a frozen segmenter (SLPT)"),
    "continual": ("", "self-supervised class-incremental learning (CPPF and baselines)"),
    "hoi": ("", "human-object interaction detection (HODN and its QPIC / CDN baselines)"),
}
ALIASES: dict[str, str] = {alias: package for package, (alias, _) in SUBSYSTEM_COMMANDS.items() if alias}


class _PackageNamed:
    """The subparsers action as a subsystem's `add_parser(sub)` sees it: a parser added under an older command name
    is registered under the package name, with the old name as its alias (`patch` -> `patching`, alias `patch`)."""

    def __init__(self, sub: Any) -> None:
        self._sub = sub

    def add_parser(self, name: str, **kwargs: Any) -> Any:
        package = ALIASES.get(name)
        if package is not None:
            kwargs["aliases"] = [name, *kwargs.get("aliases", ())]
            name = package
        return self._sub.add_parser(name, **kwargs)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._sub, attr)


def build_parser(argv: Sequence[str] = ()) -> ArgumentParser:
    """The full parser for the command named in `argv` (subsystem commands not named get a help line only)."""
    parser = ArgumentParser(
        prog="tailorkit",
        description="Ten published research systems as tested tools, each beside its baselines.",
    )
    parser.add_argument("--version", action="version", version=f"tailorkit {__version__}")
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bars in any command (same as TAILORKIT_PROGRESS=0)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser, required=True)
    for module in ("assets", "bench", "demo"):
        importlib.import_module(f"tailorkit.cli.{module}").add_parser(sub)
    command = next((a for a in argv if not a.startswith("-")), None)
    command = ALIASES.get(command or "", command)
    for package, (alias, help_text) in SUBSYSTEM_COMMANDS.items():
        if importlib.util.find_spec(f"tailorkit.{package}") is None:
            continue
        if package == command:
            importlib.import_module(f"tailorkit.{package}.cli").add_parser(_PackageNamed(sub))
        else:
            sub.add_parser(package, help=help_text, aliases=[alias] if alias else [])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from tailorkit.assets.base import AssetError

    args: argparse.Namespace | None = None
    restore_progress: list[str | None] = []  # TAILORKIT_PROGRESS before --no-progress set it (restored on return)
    try:
        argv = list(sys.argv[1:] if argv is None else argv)
        parser = build_parser(argv)
        args, extra = parser.parse_known_args(argv)
        # --no-progress anywhere (before or after the command) switches bars off; a command's own flag of that name
        # must not undo the global one (argparse lets a subcommand's default overwrite it)
        no_progress = "--no-progress" in argv[: argv.index("--")] if "--" in argv else "--no-progress" in argv
        extra = [a for a in extra if a != "--no-progress"]
        # `--key=value` settings overrides pass through to commands that take them; anything else is an error.
        # argparse leaves `key=value` positionals that follow an option here too (it fills positionals only once).
        overrides = [a for a in extra if "=" in a and (a.startswith("--") or not a.startswith("-"))]
        unknown = [a for a in extra if a not in overrides]
        if unknown or (overrides and not hasattr(args, "overrides")):
            parser.error(f"unrecognized arguments: {' '.join(unknown or overrides)}")
        if overrides:
            args.overrides = [*args.overrides, *overrides]
        if no_progress:  # read by core.progress.progress_enabled, also in worker processes
            args.no_progress = True
            restore_progress.append(os.environ.get("TAILORKIT_PROGRESS"))
            os.environ["TAILORKIT_PROGRESS"] = "0"
        result = args.func(args)
        return int(result or 0)
    except UsageError as err:
        print(_one_line(err), file=sys.stderr)
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
    except Exception as err:
        if is_input_error(err):
            print(_one_line(f"{_prog(args)}: error: {describe(err)}"), file=sys.stderr)
            return USAGE_ERROR
        traceback.print_exc()
        print(
            f"{_prog(args)}: internal error ({type(err).__name__}); this is a bug in tailorkit, not in your input. "
            "Please report it as an issue, with the command and the traceback above.",
            file=sys.stderr,
        )
        return BUG
    finally:
        for value in restore_progress:  # an in-process caller (a test, a notebook) gets its environment back
            if value is None:
                os.environ.pop("TAILORKIT_PROGRESS", None)
            else:
                os.environ["TAILORKIT_PROGRESS"] = value


def _prog(args: argparse.Namespace | None) -> str:
    """`tailorkit <command> [<verb>]` of the command that failed, for the one-line message."""
    parts = ["tailorkit"]
    if args is not None:
        command = getattr(args, "command", None)
        parts += [ALIASES.get(command, command)] if command else []
        verb = getattr(args, "verb", None)
        parts += [verb] if isinstance(verb, str) else []
    return " ".join(parts)


def device_from(spec: str) -> Any:
    """--device value -> torch.device; an unusable device (cuda without CUDA) is a usage error."""
    from tailorkit.core.device import resolve_device

    try:
        return resolve_device(spec)
    except ValueError as err:
        raise UsageError(f"tailorkit: error: {err}") from None


def _one_line(message: object) -> str:
    return " ".join(str(message).split())


if __name__ == "__main__":
    # Under `python -m tailorkit.cli.main` this file runs as __main__ and again as tailorkit.cli.main (imported by the
    # commands): call the imported one so that UsageError is one class and is caught.
    from tailorkit.cli.main import main as _main

    sys.exit(_main())
