from __future__ import annotations

import os
import time

import pytest
import torch

from tailorkit.core.workers import timed, worker_pool

_SEEN: list[int] = []


def _remember(value: int) -> None:
    _SEEN.append(value)


def _report() -> tuple[int, int, list[int]]:
    return os.getpid(), torch.get_num_threads(), list(_SEEN)


def test_workers_are_separate_processes_with_the_requested_threads_and_initializer() -> None:
    with worker_pool(1, threads=2, initializer=_remember, initargs=(7,)) as pool:
        pid, threads, seen = pool.submit(_report).result()
    assert pid != os.getpid() and threads == 2 and seen == [7]
    assert _SEEN == []  # the initializer ran there, not here


def test_timed_returns_the_result_with_wall_and_cpu_seconds() -> None:
    result, wall, cpu = timed(time.sleep, 0.05)
    assert result is None and wall >= 0.05 and 0 <= cpu < wall


@pytest.mark.parametrize("workers, threads", [(0, 1), (1, 0)])
def test_impossible_pools_are_refused(workers: int, threads: int) -> None:
    with pytest.raises(ValueError, match="workers >= 1 and threads >= 1"):
        worker_pool(workers, threads=threads)
