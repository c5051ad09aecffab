"""Shared fixtures of the HOI tests: one torch thread, tiny model settings."""

from __future__ import annotations

import pytest

from tailorkit.hoi.config import ModelConfig, OptimConfig, SynthConfig, TrainConfig


def tiny_config(variant: str = "hodn", steps: int = 3, **model: object) -> TrainConfig:
    return TrainConfig(
        data=SynthConfig(image_size=48, n_train=16, n_test=8, texture="flat"),
        model=ModelConfig(
            variant=variant,  # type: ignore[arg-type]
            backbone="tiny",
            freeze_backbone=False,
            tiny_width=8,
            d_model=16,
            heads=2,
            ffn=32,
            enc_layers=1,
            num_queries=4,
            **({"dec_layers": 2} if variant == "single" else {}),  # an option of `single` only
            **model,  # type: ignore[arg-type]
        ),
        optim=OptimConfig(steps=steps, batch_size=4),
    )


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread: None) -> None:
    """Every test here runs on one torch thread (tests/conftest.py says why)."""


__all__ = ["tiny_config"]
