"""Fixtures of the video tests: the real aligned dual encoder (cached projections), tiny clips written with PyAV."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.conftest import load_or_skip


@pytest.fixture(scope="session")
def encoder_and_manifest() -> tuple[Any, Any]:
    from tailorkit.video.api import cached_encoder

    torch.set_num_threads(1)
    return load_or_skip(cached_encoder)  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def encoder(encoder_and_manifest: tuple[Any, Any]) -> Any:
    return encoder_and_manifest[0]


def moving_square(frames: int = 12, size: int = 32, step: int = 2) -> np.ndarray:
    """A bright square moving right on a dark background, with a per-frame red level = 20 * t (a frame clock)."""
    out = np.zeros((frames, size, size, 3), dtype=np.uint8)
    for t in range(frames):
        x = 2 + step * t
        out[t, 10:20, x : x + 8] = 230
        out[t, :, :, 0] = np.maximum(out[t, :, :, 0], 20 * t)
    return out


@pytest.fixture()
def tiny_clip(tmp_path: Path) -> Path:
    from tailorkit.video.io import write_video

    return write_video(tmp_path / "clip.mp4", moving_square())
