"""The video bench end to end on a tiny config over two paired seeds, and the seeded arrow-of-time windows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tailorkit.core.seeding import numpy_generator
from tailorkit.video.data import window_starts


def test_window_starts_even_without_a_seed() -> None:
    assert window_starts(0, 70, 8).tolist() == [0, 10, 20, 30, 40, 50, 60, 70]
    assert window_starts(5, 4, 8).tolist() == []  # the video is too short for a clip
    assert window_starts(3, 5, 8).tolist() == [3, 4, 5]  # fewer positions than windows: each once


def test_window_starts_seeded_draw_is_stratified_and_changes_with_the_seed() -> None:
    draws = [
        window_starts(280, 371, 8, numpy_generator(s, "video-arrow-windows", "vtest.avi", "test")) for s in range(4)
    ]
    edges = np.linspace(280, 372, 9)
    for starts in draws:
        assert len(starts) == 8 and starts.min() >= 280 and starts.max() <= 371
        assert np.all((starts >= np.floor(edges[:-1])) & (starts < np.floor(edges[1:])))  # one per stratum
    assert len({tuple(d.tolist()) for d in draws}) == 4  # the seed moves the windows
    again = window_starts(280, 371, 8, numpy_generator(2, "video-arrow-windows", "vtest.avi", "test"))
    assert again.tolist() == draws[2].tolist()


def test_tiny_bench_over_two_paired_seeds(tmp_path: Path, encoder: Any) -> None:
    """run_bench with two paired seeds on a tiny config: per-seed rows, claims over seeds, exact sanity checks."""
    from tailorkit.core.bench import run_bench
    from tailorkit.video.bench import VideoBenchConfig
    from tailorkit.video.train import OptimSettings

    config = VideoBenchConfig(
        methods=("zero_shot", "coop_mean", "coop_temporal", "motion_static", "motion_dynamic", "sif"),
        shots=(1,),
        pool_per_class=1,
        test_per_class=1,
        frames=4,
        size=32,
        optim=OptimSettings(steps=2, batch=8),
        arrow=False,  # decoding the six real videos would make this test slow; window_starts is tested above
        workers=1,
        cache_dir=str(tmp_path / "cache"),
    )
    doc = run_bench("video", mode="quick", seed=3, seeds=2, config=config, out=tmp_path / "video.json")
    assert doc["seeds"] == [3, 4] and (tmp_path / "video.json").is_file()
    sif = next(r for r in doc["rows"] if r["method"] == "sif")
    assert len(sif["metrics_per_seed"]["accuracy_k1"]) == 2
    claims = {c["id"]: c for c in doc["claims"]}
    assert {"sif-beats-coop_temporal-every-k", "sif-beats-static", "dynamic-beats-static"} <= set(claims)
    assert all(c["n"] == 2 for c in claims.values())
    assert "shapes-mean-pooling-direction-blind" not in claims and "arrow-motion-above-chance" not in claims
    for seed in ("3", "4"):
        checks = doc["extra"]["per_seed"][seed]["sanity"]
        assert [c["id"] for c in checks] == ["shapes-mean-pooling-direction-blind"] and checks[0]["passed"]
