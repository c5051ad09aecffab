"""Tiny settings shared by the adapters tests (one torch thread, 32x32 images, a few steps)."""

from __future__ import annotations

from dataclasses import fields

import pytest

from tailorkit.adapters.config import BackboneConfig, DataConfig, MethodConfig, OptimConfig, TrainConfig
from tailorkit.adapters.methods import METHODS

# Small sizes for whichever of these options a method has.
TINY_OPTIONS: dict[str, object] = {"r": 4, "lora_rank": 2, "prompt_len": 2, "hyper_dim": 4}


def tiny_options(method: str, **method_kw: object) -> dict[str, object]:
    """The method's tiny options (TINY_OPTIONS it has) with ``method_kw`` on top."""
    names = {f.name for f in fields(METHODS.get(method).options)}
    return {**{k: v for k, v in TINY_OPTIONS.items() if k in names}, **method_kw}


def tiny_config(method: str = "vmt", backbone: str = "vit", **method_kw: object) -> TrainConfig:
    return TrainConfig(
        data=DataConfig(n_train=16, n_test=8, image_size=32, textures="procedural"),
        backbone=BackboneConfig(name=backbone, pretrained=False, vit_dim=32, vit_depth=2, vit_patch=8),
        method=MethodConfig(method, tiny_options(method, **method_kw)),
        optim=OptimConfig(steps=3, batch_size=4, warmup_steps=1),
        decoder_width=8,
    )


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread: None) -> None:
    """Every test here runs on one torch thread (tests/conftest.py says why)."""


__all__ = ["tiny_config", "tiny_options"]
