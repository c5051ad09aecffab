"""Worker processes for benches whose method fits are independent: `worker_pool` and `timed`.

Most fits here are small single-thread torch loops, so one process per core (not more torch threads) is what
fills a 2-core machine. Workers are *spawned*, not forked: a forked child inherits torch's thread pool in an
undefined state. Each worker runs `initializer(*initargs)` once (e.g. to receive a data set it then keeps), so jobs
only carry their small settings.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any

__all__ = ["timed", "worker_pool"]


def _start(threads: int, initializer: Callable[..., None] | None, initargs: tuple[Any, ...]) -> None:
    import torch

    torch.set_num_threads(threads)
    if initializer is not None:
        initializer(*initargs)


def worker_pool(
    workers: int,
    *,
    threads: int = 1,
    initializer: Callable[..., None] | None = None,
    initargs: tuple[Any, ...] = (),
) -> ProcessPoolExecutor:
    """A pool of `workers` spawned processes with `threads` torch threads each; use it as a context manager."""
    if workers < 1 or threads < 1:
        raise ValueError(f"worker_pool: expected workers >= 1 and threads >= 1, got {workers} and {threads}")
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=get_context("spawn"),
        initializer=_start,
        initargs=(threads, initializer, initargs),
    )


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float, float]:
    """`fn(*args, **kwargs)` with its wall and CPU seconds (CPU of the calling process: the worker's own)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - wall, time.process_time() - cpu
