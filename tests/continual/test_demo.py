from __future__ import annotations

import dataclasses

import pytest
import torch

from tailorkit.continual import demo

from .conftest import tiny_config


def test_demo_writes_one_picture(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    tiny = tiny_config()
    monkeypatch.setattr(demo, "DEMO_CONFIG", dataclasses.replace(tiny, data=dataclasses.replace(tiny.data, phases=3)))
    section = demo.continual_demo(tmp_path, 0, torch.device("cpu"))
    assert section.image is not None and section.image.exists() and section.image.stat().st_size > 1000
    assert [row[0] for row in section.table_rows] == ["random_init", "finetune", "cppf"]
    assert list(tmp_path.iterdir()) == [section.image]
