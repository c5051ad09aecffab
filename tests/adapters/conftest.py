"""Tiny settings shared by the adapters tests (one torch thread, 32x32 images, a few steps)."""

from __future__ import annotations

import pytest

from tailorkit.adapters.config import BackboneConfig, DataConfig, MethodConfig, OptimConfig, TrainConfig


def tiny_config(method: str = "vmt", backbone: str = "vit", **method_kw: object) -> TrainConfig:
    return TrainConfig(
        data=DataConfig(n_train=16, n_test=8, image_size=32, textures="procedural"),
        backbone=BackboneConfig(name=backbone, pretrained=False, vit_dim=32, vit_depth=2, vit_patch=8),
        method=MethodConfig(name=method, r=4, lora_rank=2, prompt_len=2, hyper_dim=4, **method_kw),  # type: ignore[arg-type]
        optim=OptimConfig(steps=3, batch_size=4, warmup_steps=1),
        decoder_width=8,
    )


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread: None) -> None:
    """Every test here runs on one torch thread (tests/conftest.py says why)."""


__all__ = ["tiny_config"]
