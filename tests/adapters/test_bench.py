from __future__ import annotations

from tailorkit.cli.main import main
from tailorkit.core.results import load_bench

TINY = [
    "methods=single_task_full_ft,vmt,vmt_lite,shared_adapter,per_task_adapter",
    "tasks=semseg,saliency",
    "image_size=32",
    "n_train=8",
    "n_test=4",
    "steps=2",
    "batch_size=4",
    "cost_tasks=1,2",
    "cost_methods=vmt,per_task_adapter",
    "cost_timing=false",
    "textures=procedural",
    "pretrained=false",
]


def test_bench_writes_the_contract_json(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "adapters.json"
    assert main(["bench", "adapters", "--quick", "--out", str(out), *TINY]) == 0
    doc = load_bench(out)
    acc = {r["method"]: r for r in doc["rows"] if r["params"]["kind"] == "accuracy"}
    cost = {r["method"]: r for r in doc["rows"] if r["params"]["kind"] == "cost"}
    assert list(acc) == ["single_task_full_ft", "vmt", "vmt_lite", "shared_adapter", "per_task_adapter"]
    assert acc["single_task_full_ft"]["metrics"]["delta_m"] == 0.0
    for row in acc.values():
        assert {"semseg_miou", "sal_miou", "delta_m", "trainable_fraction"} <= set(row["metrics"])
    assert cost["per_task_adapter"]["metrics"]["flops_ratio"] > 1.9
    claims = {c["id"]: c for c in doc["claims"]}
    assert claims["vmt-flops-o1"]["value"] == cost["vmt"]["metrics"]["flops_ratio"]
    gap = acc["vmt"]["metrics"]["delta_m"] - acc["shared_adapter"]["metrics"]["delta_m"]
    assert abs(claims["task-modules-help"]["value"] - gap) < 1e-9 and claims["task-modules-help"]["holds"] == (gap > 0)
    assert claims["lite-params-below-vmt"]["holds"]
    assert doc["extra"]["workers"] == 2 and set(doc["extra"]["worker_cpu_seconds"]) == set(acc)


def test_worker_processes_give_the_rows_of_the_serial_run(tmp_path) -> None:  # type: ignore[no-untyped-def]
    docs = []
    for workers in (1, 2):
        out = tmp_path / f"adapters-{workers}.json"
        args = [a for a in TINY if not a.startswith(("methods", "cost_"))]
        args += ["methods=single_task_full_ft,vmt,per_task_lora", "cost_methods=", f"workers={workers}"]
        assert main(["bench", "adapters", "--quick", "--out", str(out), *args]) == 0
        docs.append({r["method"]: r["metrics"] for r in load_bench(out)["rows"]})
    assert list(docs[0]) == ["single_task_full_ft", "vmt", "per_task_lora"]
    assert docs[0] == docs[1]


def test_cost_plot_from_a_bench_document(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pytest

    from tailorkit.adapters.plots import plot_cost

    doc = {
        "mode": "quick",
        "rows": [
            {
                "method": "vmt",
                "params": {"kind": "cost", "tasks": [1, 2]},
                "metrics": {"gflops_T1": 1.0, "gflops_T2": 1.01},
            },
        ],
    }
    assert plot_cost(doc, tmp_path / "cost.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="no cost rows"):
        plot_cost({"mode": "quick", "rows": []}, tmp_path / "x.png")
