"""Tiny settings shared by the continual tests: seconds per run on one core."""

from __future__ import annotations

import pytest

from tailorkit.continual.config import DataConfig, EvalConfig, ModelConfig, OptimConfig, RunConfig, StrategyConfig


def tiny_config(strategy: str = "finetune", ssl: str = "simclr", **cppf: bool) -> RunConfig:
    from tailorkit.continual.config import CPPFConfig, SSLConfig

    return RunConfig(
        data=DataConfig(n_classes=6, phases=3, train_per_class=16, test_per_class=6, image_size=16, probe_per_class=10),
        model=ModelConfig(width=4, proj_hidden=16, proj_dim=8, pred_hidden=16),
        ssl=SSLConfig(loss=ssl),
        strategy=StrategyConfig(name=strategy, cppf=CPPFConfig(prototypes_per_phase=2, **cppf)),
        optim=OptimConfig(steps_per_phase=3, batch_size=16, warmup_steps=1),
        eval=EvalConfig(knn_k=5, probe_iters=10),
    )


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread: None) -> None:
    """Every test here runs on one torch thread (tests/conftest.py says why)."""


__all__ = ["tiny_config"]
