from __future__ import annotations

from pathlib import Path

import pytest


@pytest.mark.slow
def test_demo_part_writes_one_picture(tmp_path: Path) -> None:
    import torch

    from tailorkit.active.demo import active_demo

    section = active_demo(tmp_path, 0, torch.device("cpu"))
    assert section.image is not None and section.image.exists()
    assert [row[0] for row in section.table_rows] == ["tesla", "random"]
    assert all(0.0 <= float(row[1]) <= 1.0 for row in section.table_rows)
