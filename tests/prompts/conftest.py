"""Shared fixtures: the aligned dual encoder (from the on-disk cache) and a tiny two-label-set task set."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import load_or_skip


@pytest.fixture(scope="session")
def encoder():  # type: ignore[no-untyped-def]
    from tailorkit.nets.dual_encoder import load_dual_encoder

    torch.set_num_threads(1)
    return load_or_skip(load_dual_encoder)[0]


@pytest.fixture(scope="session")
def tiny_tasks():  # type: ignore[no-untyped-def]
    from tailorkit.prompts.data import make_tasks

    return load_or_skip(
        make_tasks, ("digits-mnist", "fashion-sketch", "fashion-photo"), shots=2, test_per_class=2, size=32
    )


@pytest.fixture(scope="session")
def engine(encoder, tiny_tasks):  # type: ignore[no-untyped-def]
    from tailorkit.prompts.engine import Engine

    return Engine(encoder, tiny_tasks, image_size=32)
