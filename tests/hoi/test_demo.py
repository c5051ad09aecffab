from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tailorkit.hoi import demo
from tailorkit.hoi.config import ModelConfig, OptimConfig, SynthConfig, TrainConfig


def test_demo_writes_one_picture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tiny = TrainConfig(
        data=SynthConfig(image_size=48, n_train=8, n_test=6, texture="flat"),
        model=ModelConfig(d_model=16, heads=2, ffn=32, enc_layers=1, num_queries=4),
        optim=OptimConfig(steps=2, batch_size=4),
    )
    monkeypatch.setattr(demo, "DEMO_CONFIG", tiny)
    section = demo.hoi_demo(tmp_path, 0, torch.device("cpu"))
    assert section.image is not None and section.image.exists() and section.image.stat().st_size > 1000
    assert [row[0] for row in section.table_rows][:1] == ["role_map"]
    assert list(tmp_path.iterdir()) == [section.image]
