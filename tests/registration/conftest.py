"""One torch thread for the registration tests: the toy 3D convolutions gain nothing from more, and spin-waiting threads
on a busy 2-core machine multiply the time."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
