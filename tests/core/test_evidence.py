"""The evidence layer: paired intervals, three-way verdicts, the per-seed merge, and the runner's seeds/budget/curve."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import pytest
from scipy import stats

from tailorkit.core import bench as bench_module
from tailorkit.core.bench import BENCHES, EvidencePlan, register_bench, run_bench, scale_budget
from tailorkit.core.config import ConfigError
from tailorkit.core.evidence import check_against, paired, t_interval, verdict
from tailorkit.core.results import BenchOutcome, Claim, DataInfo, Row, merge_outcomes, validate_bench


def test_constant_difference_gives_a_zero_width_interval_that_holds() -> None:
    p = paired([0.7, 0.8, 0.9, 1.0], [0.6, 0.7, 0.8, 0.9])
    assert p.ci_low == pytest.approx(0.1) and p.ci_high == pytest.approx(0.1)
    assert p.n == 4 and p.wins == 4 and p.sd == pytest.approx(0.0, abs=1e-12)
    assert verdict(p.ci_low, p.ci_high, 0.0) == "holds"
    assert verdict(p.ci_low, p.ci_high, 0.2) == "fails"


def test_symmetric_difference_is_undecided() -> None:
    p = paired([0.1, -0.1, 0.2, -0.2])
    assert p.mean == pytest.approx(0.0)
    assert p.ci_low < 0 < p.ci_high
    assert verdict(p.ci_low, p.ci_high, 0.0) == "undecided"
    assert p.wins == 2


def test_t_interval_matches_scipy_on_a_fixed_sample() -> None:
    sample = [0.031, -0.012, 0.054, 0.022, 0.008, 0.041, -0.003]
    low, high = t_interval(sample, 0.95)
    ref = stats.t.interval(0.95, len(sample) - 1, loc=stats.tmean(sample), scale=stats.sem(sample))
    assert (low, high) == pytest.approx(ref, rel=1e-12)


def test_one_seed_has_no_interval_and_is_undecided() -> None:
    p = paired([0.5])
    assert p.ci_low is None and p.ci_high is None and p.n == 1
    assert verdict(p.ci_low, p.ci_high) == "undecided"


def test_bootstrap_interval_is_seeded_and_covers_the_mean() -> None:
    sample = [0.3, 0.1, 0.25, 0.4, 0.05, 0.2]
    a = paired(sample, interval="bootstrap")
    b = paired(sample, interval="bootstrap")
    assert (a.ci_low, a.ci_high) == (b.ci_low, b.ci_high)
    assert a.ci_low < a.mean < a.ci_high
    with pytest.raises(ValueError, match="interval"):
        paired(sample, interval="jackknife")


def test_lower_is_better_counts_wins_below_zero() -> None:
    assert paired([1.0, 2.0, 3.0], [2.0, 1.0, 4.0], higher_is_better=False).wins == 2


def test_claim_beats_decides_on_the_interval() -> None:
    holds = Claim.beats("a>b", "A beats B", [0.8, 0.82, 0.81], [0.7, 0.71, 0.69])
    assert holds.verdict == "holds" and holds.holds and holds.n == 3 and holds.wins == 3
    assert holds.ci_low is not None and holds.ci_low > 0
    close = Claim.beats("a>b", "A beats B by 0.1", [0.8, 0.82, 0.81], [0.7, 0.71, 0.69], margin=0.1)
    assert close.verdict == "undecided" and not close.holds
    # lower is better (an error): A's smaller error is the improvement
    err = Claim.beats("a<b", "A's error below B's", [1.0, 1.1, 1.05], [2.0, 2.1, 2.0], higher_is_better=False)
    assert err.verdict == "holds" and err.value == pytest.approx(0.983333, rel=1e-5)


def test_claim_refuses_a_verdict_that_contradicts_holds() -> None:
    with pytest.raises(ValueError, match="contradicts"):
        Claim("x", "x", 1.0, 0.0, True, verdict="fails")
    assert Claim.at_least("x", "x", 0.5, 0.4).verdict == "holds"
    assert Claim.at_most("x", "x", 0.5, 0.4).verdict == "fails"


def _outcome(seed: int, acc_a: float, acc_b: float) -> BenchOutcome:
    rows = [Row("a", {"acc": acc_a}), Row("b", {"acc": acc_b}), Row("b", {"acc": acc_b + 1})]
    claims = [
        Claim.at_least("a-beats-b", "a > b", acc_a - acc_b, 0.0),
        Claim.at_most("time", "time ratio <= 2", 1.5 + 0.01 * seed, 2.0),
        Claim.within("fraction", "about 1 %", 0.01 + 0.0001 * seed, 0.01, 0.002),
    ]
    return BenchOutcome(DataInfo("toy", "made here"), rows, claims, extra={"seed": seed})


def test_merge_outcomes_keeps_per_seed_values_and_decides_each_kind() -> None:
    outcomes = [_outcome(0, 0.9, 0.8), _outcome(1, 0.88, 0.8), _outcome(2, 0.92, 0.8)]
    merged = merge_outcomes(outcomes, [0, 1, 2])
    assert [r.method for r in merged.rows] == ["a", "b", "b"]
    assert merged.rows[0].metrics_per_seed == {"acc": [0.9, 0.88, 0.92]}
    assert merged.rows[2].metrics["acc"] == pytest.approx(1.8)  # the second "b" row merges with its own kind
    by_id = {c.id: c for c in merged.claims}
    assert by_id["a-beats-b"].verdict == "holds" and by_id["a-beats-b"].wins == 3
    assert by_id["time"].verdict == "holds"  # interval wholly below the 2.0 ceiling
    assert by_id["fraction"].verdict == "holds"
    assert merged.extra["per_seed"]["1"] == {"seed": 1}


def test_merge_outcomes_at_most_fails_above_its_ceiling() -> None:
    outcomes = [
        BenchOutcome(DataInfo("t", "t"), [Row("a", {"x": 1.0})], [Claim.at_most("c", "c", v, 1.0)])
        for v in (1.5, 1.6, 1.55)
    ]
    assert merge_outcomes(outcomes, [0, 1, 2]).claims[0].verdict == "fails"


def _document(**claim_fields: object) -> dict:
    return {
        "subsystem": "toy",
        "mode": "evidence",
        "seed": 0,
        "started": "2026-01-01T00:00:00+00:00",
        "seconds": 1.0,
        "cpu_seconds": 1.0,
        "environment": {"python": "3.11", "torch": "2.13", "device": "cpu", "threads": 2},
        "data": {"name": "toy", "source": "here", "n_train": 1, "n_test": 1},
        "rows": [{"method": "a", "params": {}, "seconds": 0.0, "metrics": {"x": 1.0}}],
        "claims": [{"id": "c", "text": "c", "value": 1.0, "target": 0.0, "holds": True, **claim_fields}],
    }


def test_validator_accepts_old_and_new_documents_and_refuses_contradictions() -> None:
    validate_bench(_document())  # written before the evidence fields
    validate_bench(_document(verdict="holds", ci_low=0.5, ci_high=1.5, n=5, wins=5))
    validate_bench(_document(verdict="holds", ci_low=None, ci_high=None, n=1, wins=None))
    with pytest.raises(ValueError, match="contradicts"):
        validate_bench(_document(verdict="undecided"))
    with pytest.raises(ValueError, match="verdict"):
        validate_bench(_document(verdict="maybe"))
    with pytest.raises(ValueError, match="ci_low"):
        validate_bench(_document(verdict="holds", ci_low="low"))


@dataclass(frozen=True)
class ToyConfig:
    steps: int = 10
    inner_seeds: int = 3
    methods: tuple[str, ...] = ("ours", "baseline", "extra")


SEEN: list[tuple[int, ToyConfig]] = []
INTERRUPT_AT: set[int] = set()  # seeds whose next call stops the run, as a session ending mid-run would


def _toy(config: ToyConfig, mode: str, seed: int, device: object) -> BenchOutcome:
    """Ours gains on the baseline with training: gap = 0.01 * log2(steps / 10) + seed noise."""
    SEEN.append((seed, config))
    if seed in INTERRUPT_AT:
        INTERRUPT_AT.discard(seed)
        raise KeyboardInterrupt
    gap = 0.01 * math.log2(config.steps / 10) + 0.002 * ((seed * 7919) % 5 - 2)
    rows = [Row(m, {"acc": 0.5 + (gap if m == "ours" else 0.0)}) for m in config.methods]
    claims = [Claim.at_least("ours-beats-baseline", "ours > baseline", gap, 0.0)]
    return BenchOutcome(DataInfo("toy", "made here", 1, 1), rows, claims)


@pytest.fixture
def toy_bench(monkeypatch: pytest.MonkeyPatch) -> str:
    name = "toy-evidence"
    if name not in BENCHES:
        plan = EvidencePlan(
            budget_fields=("steps",),
            one_seed={"inner_seeds": 1},
            seeds=4,
            curve=(1, 4),
            decisive={"methods": ["ours", "baseline"]},
        )
        register_bench(name, config=ToyConfig, plan=plan)(_toy)
    monkeypatch.setattr(bench_module, "import_bench_module", lambda name: None)
    SEEN.clear()
    return name


def test_budget_multiplies_the_declared_steps() -> None:
    assert scale_budget(ToyConfig(), ("steps",), 2).steps == 20
    assert scale_budget(ToyConfig(), ("steps",), 0.01).steps == 1
    with pytest.raises(ConfigError, match="declares no"):
        scale_budget(ToyConfig(), (), 2)


def test_run_bench_budget_2_doubles_the_steps_of_every_fit(toy_bench: str) -> None:
    doc = run_bench(toy_bench, mode="quick", budget=2, seeds=2)
    assert {cfg.steps for _, cfg in SEEN} == {20}
    assert doc["budget"] == 2 and doc["config"]["steps"] == 20


def test_evidence_mode_pairs_seeds_and_draws_the_curve(toy_bench: str, tmp_path) -> None:
    out = tmp_path / "toy.json"
    doc = run_bench(toy_bench, mode="evidence", seed=3, out=out)
    assert doc["seeds"] == [3, 4, 5, 6] and not doc["evidence"]["indicative"]
    main_runs = [(s, c) for s, c in SEEN if c.methods == ("ours", "baseline", "extra")]
    assert [s for s, _ in main_runs] == [3, 4, 5, 6] and all(c.inner_seeds == 1 for _, c in main_runs)
    curve_runs = [c for _, c in SEEN if c.methods == ("ours", "baseline")]
    assert {c.steps for c in curve_runs} == {40} and len(curve_runs) == 4  # budget 1 reuses the main run
    row = doc["rows"][0]
    assert len(row["metrics_per_seed"]["acc"]) == 4
    points = {r["budget"]: r for r in doc["curve"]}
    assert points[4.0]["value"] == pytest.approx(0.02 + points[1.0]["value"], abs=1e-12)
    assert points[4.0]["verdict"] == "holds"
    written = json.loads(out.read_text())
    validate_bench(written)
    assert (tmp_path / doc["curve_plot"]).stat().st_size > 1000


def test_reproduce_check_reports_inside_and_outside(toy_bench: str) -> None:
    doc = run_bench(toy_bench, mode="quick", seeds=3, budget=4)
    same = run_bench(toy_bench, mode="quick", seeds=3, budget=4)
    lines, outside = check_against(doc, same)
    assert outside == 0 and "inside" in lines[0]
    shifted = json.loads(json.dumps(doc))
    shifted["claims"][0]["ci_low"] += 1.0
    shifted["claims"][0]["ci_high"] += 1.0
    lines, outside = check_against(shifted, same)
    assert outside == 1 and "OUTSIDE" in lines[0]


def test_cli_reproduce_check_reruns_a_committed_document(toy_bench: str, tmp_path, capsys) -> None:
    from tailorkit.cli.main import main
    from tailorkit.core.results import write_json_atomic

    committed = tmp_path / "committed.json"
    write_json_atomic(committed, run_bench(toy_bench, mode="quick", seeds=3, budget=4))
    SEEN.clear()
    assert main(["reproduce", "--check", str(committed), "--out", str(tmp_path / "rerun")]) == 0
    assert {cfg.steps for _, cfg in SEEN} == {40}  # the recorded (scaled) config, not scaled twice
    assert "1/1 claims inside" in capsys.readouterr().out


def test_cli_refuses_bad_evidence_options(capsys) -> None:
    from tailorkit.cli.main import main

    assert main(["bench", "video", "--curve", "1,-4"]) == 2
    assert main(["bench", "video", "--seeds", "0"]) == 2
    assert main(["bench", "video", "--quick", "--mode", "full"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3


def test_an_interrupted_multi_seed_run_resumes_from_its_parts(toy_bench: str, tmp_path) -> None:
    out = tmp_path / "toy.json"
    INTERRUPT_AT.add(2)
    with pytest.raises(KeyboardInterrupt):
        run_bench(toy_bench, mode="quick", seeds=4, out=out)
    assert not out.exists() and [s for s, _ in SEEN] == [0, 1, 2]
    assert len(list((tmp_path / "toy.json.parts").glob("*.json"))) == 2
    doc = run_bench(toy_bench, mode="quick", seeds=4, out=out)
    assert [s for s, _ in SEEN] == [0, 1, 2, 2, 3]  # seeds 0 and 1 were reused, not rerun
    # each seed's cost is kept with its part, so the resumed document still says what every seed took
    timings = doc["evidence"]["seed_timings"]
    assert [t["seed"] for t in timings] == [0, 1, 2, 3] and all(t["seconds"] >= 0 for t in timings)
    fresh = run_bench(toy_bench, mode="quick", seeds=4)  # no parts: every seed runs
    assert [c["value"] for c in doc["claims"]] == [c["value"] for c in fresh["claims"]]
    SEEN.clear()
    run_bench(toy_bench, mode="quick", seeds=4, budget=2, out=out)  # other settings: other parts
    assert [s for s, _ in SEEN] == [0, 1, 2, 3]


def _gated(config: ToyConfig, mode: str, seed: int, device: object) -> BenchOutcome:
    """gate-a holds on every seed; gate-b straddles its target (+-1 around 0), so the pair is undecided."""
    claims = [
        Claim.at_least("gate-a", "a", 1.0 + 0.1 * seed, 0.0),
        Claim.at_least("gate-b", "b", (-1.0) ** seed, 0.0),
        Claim.at_least("ours-beats-baseline", "ours > baseline", 1.0, 0.0),
    ]
    return BenchOutcome(DataInfo("toy", "made here", 1, 1), [Row("ours", {"acc": 1.0})], claims)


def test_the_gates_joint_verdict_is_written_beside_the_claims(monkeypatch: pytest.MonkeyPatch) -> None:
    if "toy-gated" not in BENCHES:
        register_bench("toy-gated", config=ToyConfig, plan=EvidencePlan(one_seed={"inner_seeds": 1}))(_gated)
    monkeypatch.setattr(bench_module, "import_bench_module", lambda name: None)
    doc = run_bench("toy-gated", mode="quick", seeds=3)
    assert doc["evidence"]["gate"] == {"verdict": "undecided", "claims": ["gate-a", "gate-b"]}
    one = run_bench("toy-gated", mode="quick", seeds=1)  # seed 0 alone: both gates hold, indicatively
    assert one["evidence"]["gate"]["verdict"] == "holds" and one["evidence"]["indicative"]


def test_a_seed_is_won_by_its_own_value_not_by_its_inner_verdict() -> None:
    from tailorkit.core.results import merge_claims

    # each call decided its claim on one inner seed: undecided by construction, yet seeds 0-2 beat B
    calls = [[Claim.beats("a-beats-b", "a > b", [d])] for d in (0.1, 0.2, 0.05, -0.1, 0.0)]
    assert all(c[0].verdict == "undecided" for c in calls)
    (merged,) = merge_claims(calls)
    assert merged.wins == 3 and merged.n == 5  # the tie (0.0) is not a win
    low = [[Claim.at_most("t", "time <= 1", v, 1.0)] for v in (0.5, 1.0, 1.5)]
    assert merge_claims(low)[0].wins == 2
