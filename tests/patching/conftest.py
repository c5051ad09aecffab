"""Fixtures for the patching tests (helpers live in tests/patching/_models.py)."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from tests.patching._models import perturb, tiny_bert, token_batches

logging.getLogger("transformers").setLevel(logging.ERROR)


@pytest.fixture
def bert_pair() -> tuple[nn.Module, nn.Module, list[dict[str, torch.Tensor]]]:
    base = tiny_bert()
    return base, perturb(base, 1, only="layer.1"), token_batches(4)
