from __future__ import annotations

import numpy as np
import pytest

from tailorkit.nets.unet import UNet


@pytest.fixture(scope="session")
def tiny_backbone() -> UNet:
    """A small U-Net quickly trained on a toy organ task (square foreground), frozen in eval mode."""
    import torch

    from tailorkit.active.backbone import _Plain
    from tailorkit.active.config import TuneConfig
    from tailorkit.active.tuning import tune

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng():
            torch.manual_seed(0)
            net = UNet(1, 1, (4, 8, 16), dropout=0.1)
        images, masks = toy_data(24, seed=1)
        tune(_Plain(net), images, masks, TuneConfig(method="full_ft", steps=20, batch_size=8), seed=0)
    finally:
        torch.set_num_threads(threads)
    return net.eval()


def toy_data(n: int, seed: int, size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Bright squares of random size and place on noise; masks are the squares."""
    rng = np.random.default_rng(seed)
    images = rng.normal(0.2, 0.05, (n, 1, size, size)).astype(np.float32)
    masks = np.zeros((n, size, size), np.uint8)
    for i in range(n):
        w = int(rng.integers(3, 7))
        y, x = rng.integers(0, size - w, 2)
        masks[i, y : y + w, x : x + w] = 1
        images[i, 0][masks[i] == 1] += 0.6
    return images, masks


@pytest.fixture(scope="session")
def toy() -> object:
    return toy_data


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread: None) -> None:
    """Every test here runs on one torch thread (tests/conftest.py says why)."""
