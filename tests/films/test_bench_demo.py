"""The bench writes the contract JSON with computed claims (tiny settings), and the demo part draws its picture."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from tailorkit.core.bench import run_bench
from tailorkit.core.results import load_bench
from tailorkit.films.bench import FilmsBenchConfig


def test_tiny_bench_follows_the_contract(tmp_path: Path) -> None:
    cfg = FilmsBenchConfig(
        temperatures_quick=(0.5, 0.4),
        thicknesses_quick=(4, 6),
        film_Lx=24,
        bulk_L_quick=12,
        budget_s_quick=20,
        baseline_events=5000,
        speed_sizes=(30, 12),
        phi_v=0.04,
        phi_v_nu=0.08,
        use_dask=False,
    )
    out = tmp_path / "films.json"
    doc = run_bench("films", quick=True, config=cfg, out=out)
    assert load_bench(out)["subsystem"] == "films"
    methods = {r["method"] for r in doc["rows"]}
    assert methods == {"dplm-bulk", "dplm-film", "rejection-free-kmc", "rejection-kmc"}
    films = [r for r in doc["rows"] if r["method"] == "dplm-film"]
    for row in films:
        for metric in ("tau", "tau_top_over_interior", "surface_fraction", "events_per_s"):
            assert metric in row["metrics"], (metric, row)
    ids = {c["id"] for c in doc["claims"]}
    assert {"surface-faster", "eta-below-bulk", "nu-grows", "front-from-surface", "front-advances", "speed-L30"} <= ids
    assert "bulk-tau-range" not in ids and "bulk-tau-range-quick" in doc["extra"]["sanity"]  # quick: a setting check
    assert "speed-L100" not in ids and "speedup-vs-rejection" in ids
    speed = [r for r in doc["rows"] if r["method"] == "rejection-free-kmc"]
    assert sorted(r["params"]["L"] for r in speed) == [12, 30] and all(r["metrics"]["events_per_s"] > 0 for r in speed)
    surface = next(c for c in doc["claims"] if c["id"] == "surface-faster")
    assert surface["holds"] is False and surface["value"] == -1.0  # no T <= 0.20 here: not measurable, not held
    assert "surface_dominated_reached" in doc["extra"]


def test_demo_part_draws_its_picture(tmp_path: Path) -> None:
    from tailorkit.films.demo import films_demo

    section = films_demo(tmp_path, 0, torch.device("cpu"))
    assert section.image is not None and section.image.stat().st_size > 20_000
    assert len(section.table_rows) == 4


def test_full_mode_plan() -> None:
    from tailorkit.films.bench import _jobs

    jobs = _jobs(FilmsBenchConfig(), "full", 0)
    films_2d = {(j.lattice.h, j.model.T) for j in jobs if j.lattice.geometry == "film" and j.lattice.dim == 2}
    assert {h for h, _ in films_2d} == {6, 10, 16, 32} and min(T for _, T in films_2d) == 0.15
    assert {j.run.seed for j in jobs} == {0, 1}
    assert any(j.lattice.substrate == "pinned" for j in jobs)
    assert any(j.lattice.dim == 3 and j.lattice.geometry == "bulk" for j in jobs)
    quick = _jobs(FilmsBenchConfig(), "quick", 0)
    assert len(quick) == 12 and {j.model.T for j in quick} == {0.30, 0.22, 0.18}


def test_front_from_surface_compares_the_top_with_every_other_layer() -> None:
    from tailorkit.films.bench import top_first_ratio

    assert top_first_ratio([5.0, 9.0, 8.0, 2.0]) == 2.0 / 5.0  # the top (last) relaxes first: < 1
    # the audit's case: the top beats the middle layer but the substrate layer (first) relaxes fastest
    assert top_first_ratio([1.0, 9.0, 8.0, 2.0]) == 2.0
    assert math.isnan(top_first_ratio([3.0, None, 2.0]))  # a layer that never half-relaxed: not measurable


def test_front_levels_count_a_gradual_front_not_a_jump() -> None:
    from tailorkit.films.bench import front_levels

    assert front_levels([0, 1, 3, 16], 16) == 2.0  # the audit's 0 -> 1 -> 3 -> 16: a jump with two stutters
    assert front_levels([0, 0, 16, 16], 16) == 0.0  # the whole film at once
    assert front_levels([0, 1, 2, 2, 4, 5, 7, 9, 16], 16) == 6.0  # layer by layer
    assert front_levels([0, 3, 2, 16], 16) == -1.0  # a retreat
