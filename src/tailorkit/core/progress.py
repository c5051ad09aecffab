"""Progress bars and status lines on stderr, so stdout stays clean for results.

Thin wrappers over tqdm. Bars disappear when stderr is not a terminal unless TAILORKIT_PROGRESS=1 asks for them
(CI logs then get one line per update instead of carriage-return noise); TAILORKIT_PROGRESS=0 silences them.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress_enabled(explicit: bool | None = None) -> bool:
    """False if the caller says False; otherwise TAILORKIT_PROGRESS decides when set (so =0 silences bars that a
    library call asked for, e.g. in worker processes of a bench); otherwise the caller's True or a terminal."""
    if explicit is False:
        return False
    env = os.environ.get("TAILORKIT_PROGRESS")
    if env is not None:
        return env not in ("0", "false", "no", "")
    return True if explicit else sys.stderr.isatty()


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
