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
