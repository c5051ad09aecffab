"""Progress bars and status lines on stderr, so stdout stays clean for results.

The one policy (every command, docs/architecture.md "Progress"):

- bars show by default when stderr is a terminal, and never when it is not (a log file, a pipe, CI), so logs carry
  no carriage-return noise;
- `--no-progress` (anywhere on the command line) or `TAILORKIT_PROGRESS=0` switches them off, also in worker
  processes; `TAILORKIT_PROGRESS=1` asks for them in a log anyway (one line per update);
- a caller's explicit False (a library call, a bench's inner loop) always wins; a caller's True means "if the
  policy allows", never "even into a log file".

Commands made of a few long parts (`tailorkit demo`, `tailorkit reproduce`, a multi-seed bench) print one status
line per part with its count and an ETA (:func:`parts`), in logs too.

Thin wrappers over tqdm.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")

_OFF = ("0", "false", "no", "off", "")


def progress_enabled(explicit: bool | None = None) -> bool:
    """Whether a bar shows: the caller's False, then TAILORKIT_PROGRESS when set, then whether stderr is a terminal.

    `explicit=True` is the same as None (bars if the policy allows); it no longer forces bars into a log file.
    """
    if explicit is False:
        return False
    env = os.environ.get("TAILORKIT_PROGRESS")
    if env is not None:
        return env.strip().lower() not in _OFF
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # a replaced or closed stderr
        return False


def format_duration(seconds: float) -> str:
    """'42 s', '3.5 min', '2.1 h'."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def parts(
    items: Sequence[T],
    label: str,
    *,
    name: Callable[[T], str] = str,
    clock: Callable[[], float] = time.perf_counter,
) -> Iterator[T]:
    """Iterate over the long parts of a command, with a status line per part: its count and, from the second part
    on, an ETA (the mean time of the parts done so far times the parts left); a last line gives the total time.

    `label 2/5: video (about 3.5 min left)`. Status lines, not a bar: they show in logs too.
    """
    n = len(items)
    start = clock()
    for k, item in enumerate(items):
        eta = f" (about {format_duration((clock() - start) / k * (n - k))} left)" if k else ""
        status(f"{label} {k + 1}/{n}: {name(item)}{eta}")
        yield item
    if n:
        status(f"{label}: {n}/{n} done in {format_duration(clock() - start)}")


def track(
    iterable: Iterable[T], description: str, total: int | None = None, enabled: bool | None = None
) -> Iterator[T]:
    """Iterate with a progress bar named `description`."""
    yield from tqdm(
        iterable,
        desc=description,
        total=total,
        disable=not progress_enabled(enabled),
        file=sys.stderr,
        dynamic_ncols=True,
        leave=False,
    )


def bar(description: str, total: int | None = None, enabled: bool | None = None) -> tqdm:
    """A manual bar (`.update(n)`, `.set_postfix(...)`, use as a context manager)."""
    return tqdm(
        desc=description,
        total=total,
        disable=not progress_enabled(enabled),
        file=sys.stderr,
        dynamic_ncols=True,
        leave=False,
    )


def status(message: str) -> None:
    """One status line on stderr (always shown: these are the few lines a long run should print)."""
    print(f"[tailorkit] {message}", file=sys.stderr, flush=True)


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Announce a stage and report its wall time when it ends."""
    status(f"{name} ...")
    start = time.perf_counter()
    yield
    status(f"{name} done in {time.perf_counter() - start:.1f} s")
