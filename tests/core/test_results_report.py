from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from tailorkit.core.bench import BENCHES, register_bench, run_bench
from tailorkit.core.report import write_reproduce_report
from tailorkit.core.results import (
    BenchOutcome,
    Claim,
    DataInfo,
    Row,
    load_bench,
    outcome_to_document,
    validate_bench,
    write_json_atomic,
)


def _outcome() -> BenchOutcome:
    rows = [Row("ours", {"acc": 0.9}, {"k": 1}, 1.0), Row("baseline", {"acc": 0.7}, {}, 0.5)]
    claims = [
        Claim.at_least("beats", "ours beats baseline by 0.1", rows[0].metrics["acc"] - rows[1].metrics["acc"], 0.1)
    ]
    return BenchOutcome(DataInfo("toy", "tests", 10, 5), rows, claims)


def test_document_follows_contract() -> None:
    doc = outcome_to_document(
        _outcome(), subsystem="x", mode="quick", seed=0, started="t", seconds=1.0, cpu_seconds=2.0
    )
    assert set(doc) >= {
        "subsystem",
        "mode",
        "seed",
        "started",
        "seconds",
        "cpu_seconds",
        "environment",
        "data",
        "rows",
        "claims",
    }
    assert doc["claims"][0]["holds"] is True
    assert doc["environment"]["torch"] == torch.__version__


def test_claims_are_computed() -> None:
    assert Claim.at_least("a", "", 0.5, 0.6).holds is False
    assert Claim.at_most("a", "", 0.5, 0.6).holds is True
    assert Claim.at_least("a", "", float("nan"), 0.0).holds is False
    assert Claim.within("a", "", 0.667, 0.66, 0.01).holds and not Claim.within("a", "", 0.68, 0.66, 0.01).holds


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("rows"), "missing key 'rows'"),
        (lambda d: d.update(mode="fast"), "bench.mode: expected one of"),
        (lambda d: d.update(seed=True), "bench.seed: expected int"),
        (lambda d: d["rows"][0]["metrics"].update(acc="high"), r"rows\[0\].metrics.acc: expected a number"),
        (lambda d: d["claims"][0].update(holds=1), r"claims\[0\].holds: expected bool"),
        (lambda d: d.update(rows=[]), "at least one measured row"),
        (lambda d: d["data"].pop("source"), "data: missing key 'source'"),
    ],
)
def test_validate_bench_rejects(mutate, message: str) -> None:
    doc = outcome_to_document(_outcome(), subsystem="x", mode="full", seed=0, started="t", seconds=1.0, cpu_seconds=1.0)
    mutate(doc)
    with pytest.raises(ValueError, match=message):
        validate_bench(doc)


def test_atomic_write_leaves_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "r.json"
    write_json_atomic(target, {"a": 1})
    with pytest.raises(ValueError):
        write_json_atomic(target, {"a": float("nan")})  # NaN is not JSON: refused before anything is replaced
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"], "no temp files left behind"


def test_run_bench_and_report(tmp_path: Path) -> None:
    name = "test-toy-bench"
    if name not in BENCHES:
        register_bench(name)(lambda config, mode, seed, device: _outcome())
    doc = run_bench(name, quick=True, seed=3, out=tmp_path / "b.json")
    assert load_bench(tmp_path / "b.json") == doc and doc["seed"] == 3 and doc["mode"] == "quick"
    index = write_reproduce_report([doc], tmp_path / "rep", {"broken": "RuntimeError: x"})
    html = index.read_text()
    assert "test-toy-bench" in html and "broken" in html and "holds" in html
    assert (tmp_path / "rep" / f"{name}.png").stat().st_size > 1000
    results = json.loads((tmp_path / "rep" / "results.json").read_text())
    assert results["benches"][name]["rows"][0]["method"] == "ours"
    assert os.path.getsize(index) > 0


def test_bench_threads_setting_is_applied_recorded_and_restored() -> None:
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Settings:
        threads: int = 1

    seen: list[int] = []

    def fn(config: Settings, mode: str, seed: int, device: torch.device) -> BenchOutcome:
        seen.append(torch.get_num_threads())
        return _outcome()

    name = "test-threads-bench"
    if name not in BENCHES:
        register_bench(name, config=Settings)(fn)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        doc = run_bench(name, config=Settings(threads=1))
        assert seen[-1] == 1 and doc["environment"]["threads"] == 1
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_running_one_bench_imports_only_its_subsystem() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from tailorkit.core.bench import import_bench_module; import_bench_module('selfcheck'); "
        "print(sorted(m for m in sys.modules if m.startswith('tailorkit.') and m.endswith('.bench')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['tailorkit.core.bench', 'tailorkit.selfcheck.bench']"
