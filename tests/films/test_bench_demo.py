"""The bench writes the contract JSON with computed claims (tiny settings), and the demo part draws its picture."""

from __future__ import annotations

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
    assert {"bulk-tau-range", "surface-faster", "eta-below-bulk", "nu-grows", "front-advances", "speed-L30"} <= ids
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
