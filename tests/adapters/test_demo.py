from __future__ import annotations

import dataclasses

import pytest
import torch

from tailorkit.adapters import demo


def test_demo_writes_one_picture(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    base = demo.DEMO_CONFIG
    tiny = dataclasses.replace(
        base,
        data=dataclasses.replace(base.data, n_train=8, n_test=4, image_size=32, textures="procedural"),
        optim=dataclasses.replace(base.optim, steps=2, batch_size=4),
    )
    monkeypatch.setattr(demo, "DEMO_CONFIG", tiny)
    section = demo.adapters_demo(tmp_path, 0, torch.device("cpu"))
    assert section.image is not None and section.image.stat().st_size > 1000
    assert list(tmp_path.iterdir()) == [section.image]
    rows = dict(section.table_rows)
    assert float(rows["encoder FLOPs ratio T=8 / T=1, VMT"]) < 1.15
    assert float(rows["encoder FLOPs ratio T=8 / T=1, per-task adapters"]) == pytest.approx(8.0)
    assert 0.5 < float(rows["trainable encoder parameters (% of backbone)"]) < 1.5
