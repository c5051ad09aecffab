from __future__ import annotations

import json

from tailorkit.cli.main import main
from tailorkit.core.results import load_bench

TINY = [
    "orders=2",
    "workers=1",
    "n_classes=8",
    "phases=2",
    "train_per_class=16",
    "test_per_class=6",
    "probe_per_class=10",
    "image_size=16",
    "width=4",
    "steps_per_phase=2",
    "batch_size=16",
    "matched_compute=1.5",
    "ablations=false",
]


def test_bench_writes_the_contract_json(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "continual.json"
    assert main(["bench", "continual", "--quick", "--out", str(out), *TINY]) == 0
    doc = load_bench(out)  # validates the contract
    methods = [row["method"] for row in doc["rows"]]
    # ablation rows are off here to keep the test short; the bench's defaults run them
    assert methods == ["random_init", "finetune", "cassle", "cassle_matched", "pfr", "cppf", "joint"]
    for row in doc["rows"]:
        for key in (
            "final_acc_linear",
            "aia_linear",
            "forgetting_linear",
            "final_acc_knn",
            "aia_knn",
            "forgetting_knn",
            "train_seconds",
        ):
            assert key in row["metrics"]
        assert len(row["params"]["per_order"]) == 2
    by = {row["method"]: row for row in doc["rows"]}
    assert by["cassle_matched"]["params"]["steps_per_phase"] == 3 and by["cassle"]["params"]["steps_per_phase"] == 2
    assert by["random_init"]["metrics"]["train_seconds"] == 0
    ids = [c["id"] for c in doc["claims"]]
    assert "validity-joint-ft" in ids and "aia-cppf-gt-cassle" in ids and "forgetting-cassle-lt-finetune" in ids
    # claims are computed from the rows: the validity gap equals the difference of the two rows' means
    gap = next(c for c in doc["claims"] if c["id"] == "validity-joint-ft")
    expected = by["joint"]["metrics"]["final_acc_linear"] - by["finetune"]["metrics"]["final_acc_linear"]
    assert abs(gap["value"] - expected) < 1e-9 and gap["holds"] == (expected >= 0.05)
    assert doc["extra"]["valid"] == all(c["holds"] for c in doc["claims"] if c["id"].startswith("validity"))
    assert json.loads(out.read_text())["config"]["orders"] == 2
