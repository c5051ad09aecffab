"""Every plotting function draws on toy data with labelled axes and legends that cover neither ticks nor labels.

Each function saves a PNG and closes its figure; `Figure.savefig` is wrapped to keep the figure, whose artists are
then measured with the Agg renderer. A legend must lie inside the saved figure, hold at most 12 entries and overlap
no tick label and no axis label of any panel (the fault of docs/films-full.png, whose 30-entry legend hid the x
ticks). hoi's picture is drawn with PIL: its labels must stay inside the image and not overlap each other.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

from matplotlib.figure import Figure  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> list[Figure]:
    kept: list[Figure] = []
    original = Figure.savefig

    def savefig(self: Figure, *args: Any, **kwargs: Any) -> Any:
        kept.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    return kept


def _text_boxes(fig: Figure, renderer: Any) -> list[tuple[str, Any]]:
    boxes = []
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        for label in [*ax.get_xticklabels(), *ax.get_yticklabels(), ax.xaxis.label, ax.yaxis.label]:
            if label.get_visible() and label.get_text():
                boxes.append((label.get_text(), label.get_window_extent(renderer)))
    return boxes


def check_figure(fig: Figure, *, labelled: int) -> None:
    """At least `labelled` panels with both axis labels; every legend inside the figure, small, over no text."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)  # the function closed the figure, which detached its canvas
    canvas.draw()
    renderer = canvas.get_renderer()
    full = fig.bbox
    with_labels = [ax for ax in fig.axes if ax.get_visible() and ax.get_xlabel() and ax.get_ylabel()]
    assert len(with_labels) >= labelled, [(ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) for ax in fig.axes]
    texts = _text_boxes(fig, renderer)
    for ax in fig.axes:
        legend = ax.get_legend()
        if legend is None:
            continue
        box = legend.get_window_extent(renderer)
        assert full.x0 - 1 <= box.x0 and box.x1 <= full.x1 + 1 and full.y0 - 1 <= box.y0 and box.y1 <= full.y1 + 1, (
            f"legend of {ax.get_title()!r} leaves the figure"
        )
        assert len(legend.get_texts()) <= 12, f"legend of {ax.get_title()!r}: {len(legend.get_texts())} entries"
        covered = [text for text, other in texts if box.overlaps(other)]
        assert not covered, f"legend of {ax.get_title()!r} covers {covered[:5]}"


# ---- films --------------------------------------------------------------------------------------------------------


def _films_doc(bulk: bool) -> dict[str, Any]:
    rows, films = [], {}
    for h in (6, 16):
        for T in (0.2, 0.3):
            rows.append(
                {
                    "method": "dplm-film",
                    "params": {
                        "h": h,
                        "T": T,
                        "substrate": "smooth",
                        "phi_v": 0.02,
                        "tau_z": [1.0 + z for z in range(h)],
                    },
                    "metrics": {"eta_eff_over_bulk": 0.9 if bulk else None, "surface_fraction": 0.001 * h},
                }
            )
            films[f"h{h}_smooth_T{T}"] = {"t_obs": [0.1, 1.0, 10.0], "front_depth": [0, 2, h]}
    for k in range(30):  # many other runs: the front panel must not list them all
        films[f"h16_pinned_T0.{k + 10}"] = {"t_obs": [0.1, 1.0], "front_depth": [0, 1]}
    if bulk:
        rows += [
            {"method": "dplm-bulk", "params": {"T": T, "phi_v": 0.02}, "metrics": {"tau": 1 / T}} for T in (0.2, 0.3)
        ]
    return {"rows": rows, "extra": {"films": films, "bulk_fits": {}}}


@pytest.mark.parametrize("bulk", [True, False])
def test_films_plot_study(tmp_path: Path, figures: list[Figure], bulk: bool) -> None:
    from tailorkit.films.plots import plot_study

    plot_study(_films_doc(bulk), tmp_path / "study.png")
    (fig,) = figures
    check_figure(fig, labelled=5)
    axes = fig.axes
    assert [ax.get_ylabel() for ax in axes] == [
        "tau(z)",
        "tau_bulk",
        "eta_eff / eta_bulk",
        "S(h, T)",
        "front depth d(t) [layers]",
    ]
    front = axes[4].get_legend()
    assert front is not None and [t.get_text() for t in front.get_texts()] == ["0.2", "0.3"]  # h=16 smooth, by T
    assert axes[3].get_yscale() == "symlog"  # S stays near 0: not one flat line on 0..1
    notes = [t.get_text() for ax in axes for t in ax.texts]
    assert any("max S" in n for n in notes)
    assert any("no bulk runs" in n for n in notes) is (not bulk)  # an empty panel says why


def test_films_plot_study_of_the_committed_full_run(tmp_path: Path, figures: list[Figure]) -> None:
    from tailorkit.films.plots import plot_study

    doc = json.loads((ROOT / "docs" / "results" / "films-full.json").read_text(encoding="utf-8"))
    plot_study(doc, tmp_path / "full.png")
    check_figure(figures[0], labelled=5)


def test_films_plot_run(tmp_path: Path, figures: list[Figure]) -> None:
    from tailorkit.films.plots import plot_run

    h, lx = 6, 8
    lattice = SimpleNamespace(geometry="film", h=h, Lx=lx, Ly=1, dim=2)
    run = {
        "config": SimpleNamespace(lattice=lattice, model=SimpleNamespace(T=0.3)),
        "obs": {
            "t": np.geomspace(0.1, 100, 20),
            "fs": np.exp(-np.outer(np.geomspace(0.1, 100, 20), 1 / (1 + np.arange(h)))),
        },
        "summary": {"tau_z": list(1.0 + np.arange(h)), "t_half_relax_z": list(0.5 + np.arange(h))},
        "state": {"t_relax": np.linspace(0.1, 10, h * lx)},
        "init": {"pos0": np.arange(h * lx)},
    }
    plot_run(run, tmp_path / "run.png")
    check_figure(figures[0], labelled=6)


# ---- core reports, adapters, prompts ------------------------------------------------------------------------------


def test_bench_plot_and_curve_plot(tmp_path: Path, figures: list[Figure]) -> None:
    from tailorkit.core.report import bench_plot, curve_plot

    doc = {
        "subsystem": "toy",
        "mode": "quick",
        "seeds": [0, 1, 2],
        "rows": [
            {"method": m, "metrics": {"accuracy": a, "seconds": s}} for m, a, s in (("ours", 0.9, 3), ("base", 0.8, 1))
        ],
        "curve": [
            {"claim": c, "budget": b, "value": v, "ci_low": v - 0.1, "ci_high": v + 0.1, "target": 0.0}
            for c in ("gap_a", "gap_b")
            for b, v in ((1, 0.3), (4, 0.1))
        ],
    }
    bench_plot(doc, tmp_path / "bench.png")
    check_figure(figures[-1], labelled=2)
    assert sorted(ax.get_ylabel() for ax in figures[-1].axes if ax.get_visible()) == ["accuracy", "seconds"]
    curve_plot(doc, tmp_path / "curve.png")
    check_figure(figures[-1], labelled=1)
    legend = figures[-1].axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["gap_a", "gap_b"]


def test_adapters_plot_cost(tmp_path: Path, figures: list[Figure]) -> None:
    from tailorkit.adapters.plots import plot_cost

    rows = [
        {
            "method": m,
            "params": {"kind": "cost", "tasks": [1, 2, 4]},
            "metrics": {**{f"gflops_T{n}": g * n for n in (1, 2, 4)}, **{f"step_s_T{n}": 0.1 * n for n in (1, 2, 4)}},
        }
        for m, g in (("vmt", 1.0), ("lora", 1.5))
    ]
    plot_cost({"rows": rows, "mode": "quick"}, tmp_path / "cost.png")
    check_figure(figures[0], labelled=2)
    assert [ax.get_xlabel() for ax in figures[0].axes] == ["number of tasks T"] * 2


def test_prompts_plot_affinity(tmp_path: Path, figures: list[Figure]) -> None:
    from tailorkit.prompts.plots import plot_affinity

    tasks = ["digits-mnist", "digits-opencv", "fashion-sketch"]
    doc = {"extra": {"tasks": tasks, "affinity_cosine": [np.eye(3).tolist()], "groups": [[tasks[:2], tasks[2:]]]}}
    (tmp_path / "bench.json").write_text(json.dumps(doc))
    plot_affinity(tmp_path / "bench.json", tmp_path / "affinity.png")
    fig = figures[0]
    check_figure(fig, labelled=0)  # a heat map: the tick labels name the tasks
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == tasks and "groups" in ax.get_title()


# ---- hoi (PIL) -----------------------------------------------------------------------------------------------------


def test_hoi_labels_stay_inside_and_do_not_overlap() -> None:
    from tailorkit.hoi.draw import draw_triplets, place_labels
    from tailorkit.hoi.evaluation import Detections

    # three triplets of one person and a fourth person right next to it, near the bottom edge: the old drawing
    # stacked labels 11 px apart from each person's corner, so the two people's labels ran over each other
    n = 4
    sub = np.array([[10, 40, 30, 60]] * 3 + [[12, 42, 32, 62]], float)
    det = Detections(sub, sub + 5, np.zeros(n, int), np.arange(n) % 2, np.linspace(0.9, 0.6, n))
    image = draw_triplets(np.zeros((64, 64, 3), np.uint8), det, ["bicycle"], ["ride", "hold"], top=4, scale=2)
    assert image.size == (128, 128)
    boxes = place_labels([(22, 86)] * 3 + [(26, 90)], [(80, 12)] * 4, image.size)
    for i, a in enumerate(boxes):
        assert a[0] >= 0 and a[2] <= 128 and a[1] >= 0 and a[3] <= 128, a
        for b in boxes[i + 1 :]:
            assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]), (a, b)
    assert boxes[0] == (22, 86, 102, 98)  # the first label stays where it was asked for


# ---- video demo picture --------------------------------------------------------------------------------------------


def test_video_demo_crop_keeps_the_moving_shape_and_drops_the_background() -> None:
    """The demo picture was mostly empty background: it now shows the square the shape sweeps through."""
    from tailorkit.video.demo import motion_crop
    from tailorkit.video.shapes import MotionShapes, make_dataset

    gen = MotionShapes(frames=8, size=64, speed=0.05, spin=0.25, growth=0.09)
    frames, labels, _ = make_dataset(gen, ("square",), 1, "test", 0)
    clip = frames[int(np.nonzero(labels == 1)[0][0])]
    rows, cols = motion_crop(clip)
    assert (rows.stop - rows.start) * (cols.stop - cols.start) < 0.7 * 64 * 64  # the empty background goes
    background = np.median(clip[:, 0, 0].astype(float), axis=0)
    shape = (np.abs(clip.astype(float) - background) > 12).any(axis=(0, -1))
    inside = shape[rows, cols].sum()
    assert inside == shape.sum()  # no pixel of the shape, in any frame, is cut off
    flat = np.full((4, 16, 16, 3), 40, np.uint8)
    assert motion_crop(flat) == (slice(0, 16), slice(0, 16))  # nothing moves: the whole frame
