"""The bench end to end at toy size: the contract JSON, and worker processes reproducing the serial rows."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tailorkit.cli.main import main
from tailorkit.core.results import load_bench

TINY = [
    "tasks=digits-mnist,fashion-sketch,fashion-photo,fashion-pencil",
    "shots=1",
    "test_per_class=1",
    "render_size=32",
    "image_size=32",
    "steps=2",
    "batch=2",
    "depth=1",
    "group_steps=1",
    "random_partitions=1",
]


def test_a_fit_does_not_depend_on_what_ran_before_or_where(encoder) -> None:  # type: ignore[no-untyped-def]
    from tailorkit.core.workers import worker_pool
    from tailorkit.prompts.bench import PromptsBenchConfig, _fit_job

    tasks = ("digits-mnist", "fashion-sketch")
    config = PromptsBenchConfig(tasks, 1, 1, render_size=32, image_size=32, steps=2, batch=2, depth=1)
    device = torch.device("cpu")
    fresh = _fit_job(config, "quick", 0, device, "coop", "mt")
    _fit_job(config, "quick", 0, device, "vpt", "mt")  # moves every stream this process has
    again = _fit_job(config, "quick", 0, device, "coop", "mt")
    with worker_pool(1) as pool:
        elsewhere = pool.submit(_fit_job, config, "quick", 0, device, "coop", "mt").result()
    assert fresh["accuracy"] == again["accuracy"] == elsewhere["accuracy"]
    assert fresh["final_loss"] == again["final_loss"] == elsewhere["final_loss"]


def test_repair_options_reach_the_learners_only_when_set() -> None:
    from tailorkit.prompts.bench import PromptsBenchConfig, _options

    base = PromptsBenchConfig()
    assert _options(base, "mmap") == {"depth": 4} and _options(base, "coop") == {}  # default rows unchanged
    cfg = PromptsBenchConfig(image_slot="film", mmap_source_init="normal", mmap_budget=0.0009, group_wrt="prompts")
    assert _options(cfg, "vpt") == _options(cfg, "maple") == {"depth": 4, "image_slot": "film"}
    assert _options(cfg, "mmap") == {"depth": 4, "image_slot": "film", "source_init": "normal", "budget": 0.0009}
    assert _options(cfg, "clip_adapter") == {}
    bad: list[tuple[dict[str, object], str]] = [
        ({"image_slot": "tokens"}, "image_slot"),
        ({"group_wrt": "bank"}, "group_wrt"),
        ({"mmap_source_init": "ones"}, "mmap_source_init"),
        ({"mmap_d_s": -1}, "mmap_d_s"),
        ({"mmap_budget": 1.5}, "mmap_budget"),
        ({"mmap_d_s": 8, "mmap_budget": 0.001}, "both set"),
        ({"encoder": "clip"}, "encoder"),
    ]
    for kwargs, match in bad:
        with pytest.raises(ValueError, match=match):
            PromptsBenchConfig(**kwargs)  # type: ignore[arg-type]


@pytest.mark.slow
def test_worker_processes_give_the_rows_of_the_serial_run(tmp_path: Path, encoder) -> None:  # type: ignore[no-untyped-def]
    docs = []
    for workers in (1, 2):
        out = tmp_path / f"prompts-{workers}.json"
        assert main(["bench", "prompts", "--quick", "--out", str(out), *TINY, f"workers={workers}"]) == 0
        docs.append(load_bench(out))
    rows = [{r["method"]: r["metrics"] for r in doc["rows"]} for doc in docs]
    assert list(rows[0])[:2] == ["zero_shot", "linear_probe-st"] and list(rows[0])[-1] == "mmap-random"
    assert rows[0] == rows[1]
    assert docs[1]["extra"]["workers"] == 2 and docs[1]["extra"]["worker_cpu_seconds"] > 0
    claims = {c["id"]: c for c in docs[1]["claims"]}
    gap = rows[1]["mmap"]["accuracy"] - rows[1]["coop-mt"]["accuracy"]
    assert claims["mmap-ge-coop-mt"]["value"] == pytest.approx(gap)
