from __future__ import annotations

import json

from tailorkit.cli.main import main
from tailorkit.core.results import load_bench

TINY = [
    "dataset=glyphs",
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
    "single_modules=false",
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
    for claim_id in (
        "gate-cassle-beats-finetune",
        "gate-finetune-forgets",
        "aia-cppf-gt-cassle",
        "aia-cppf-gt-finetune",
    ):
        assert claim_id in ids
    assert not any(i.startswith(("module-", "ablation-")) for i in ids)  # their rows were not run
    # claims are computed from the rows: the gate equals the difference of the two rows' means
    gap = next(c for c in doc["claims"] if c["id"] == "gate-cassle-beats-finetune")
    expected = by["cassle"]["metrics"]["final_acc_linear"] - by["finetune"]["metrics"]["final_acc_linear"]
    assert abs(gap["value"] - expected) < 1e-9 and gap["holds"] == (expected >= 0)
    assert doc["extra"]["valid"] == all(c["holds"] for c in doc["claims"] if c["id"].startswith("gate-"))
    assert "joint-minus-cppf-aia" in doc["extra"]["sanity"]
    assert json.loads(out.read_text())["config"]["orders"] == 2


def test_plan_budget_fields_scale_every_fit() -> None:
    from tailorkit.continual.bench import ContinualBenchConfig, run_config
    from tailorkit.core.bench import BENCHES, scale_budget

    plan = BENCHES.get("continual").plan
    config = ContinualBenchConfig()
    doubled = scale_budget(config, plan.budget_fields, 2)
    for name in plan.budget_fields:
        assert getattr(doubled, name) == 2 * getattr(config, name)
    assert plan.seeds >= 5 and plan.one_seed == {"orders": 1} and plan.curve
    # every fit of every row doubles: the method's steps, CaSSLe-matched's, and CPPF's present teacher's
    for mode in ("quick", "full"):
        for method in ("finetune", "cassle_matched", "cppf", "joint"):
            a, b = run_config(config, mode, 0, 0, method), run_config(doubled, mode, 0, 0, method)
            assert b.optim.steps_per_phase == 2 * a.optim.steps_per_phase
            fraction = a.strategy.cppf.present_fraction
            assert round(fraction * b.optim.steps_per_phase) == 2 * round(fraction * a.optim.steps_per_phase)


def test_decisive_overrides_keep_the_decisive_rows_and_their_claims() -> None:
    from tailorkit.continual.bench import DECISIVE, ContinualBenchConfig, _claims, bench_methods
    from tailorkit.core.bench import BENCHES, with_settings

    plan = BENCHES.get("continual").plan
    decisive = with_settings(with_settings(ContinualBenchConfig(), plan.one_seed), plan.decisive)
    assert bench_methods(decisive) == list(DECISIVE)
    rows = {m: [_toy_metrics(0.5, 0.1)] for m in DECISIVE}
    ids = {c.id for c in _claims(rows, decisive)}
    assert set(plan.decisive_claims) <= ids


def _toy_metrics(aia: float, forgetting: float, final: float | None = None) -> dict[str, float]:
    return {
        "aia_linear": aia,
        "final_acc_linear": aia if final is None else final,
        "forgetting_linear": forgetting,
        "aia_knn": aia,
        "final_acc_knn": aia,
        "forgetting_knn": forgetting,
        "train_seconds": 1.0,
    }


def test_claims_are_paired_per_seed_quantities_on_toy_rows() -> None:
    from tailorkit.continual.bench import METHODS, ContinualBenchConfig, _claims
    from tailorkit.core.results import merge_claims

    # two orders in this seed: the claim value is the mean over orders of the paired difference
    rows = {m: [_toy_metrics(0.50, 0.10), _toy_metrics(0.60, 0.10)] for m in METHODS}
    rows["cassle"] = [_toy_metrics(0.52, 0.05, final=0.55), _toy_metrics(0.61, 0.07, final=0.64)]
    rows["finetune"] = [_toy_metrics(0.50, 0.20, final=0.50), _toy_metrics(0.60, 0.16, final=0.60)]
    rows["cppf_pc_only"] = [_toy_metrics(0.45, 0.1), _toy_metrics(0.57, 0.1)]  # hurts: -0.04 on average
    claims = {c.id: c for c in _claims(rows, ContinualBenchConfig(ablations=True))}
    assert abs(claims["gate-cassle-beats-finetune"].value - 0.045) < 1e-12
    assert claims["gate-cassle-beats-finetune"].holds
    assert abs(claims["gate-finetune-forgets"].value - 0.18) < 1e-12 and claims["gate-finetune-forgets"].holds
    assert abs(claims["module-pc-helps"].value + 0.04) < 1e-12 and not claims["module-pc-helps"].holds
    assert abs(claims["forgetting-cassle-lt-finetune"].value - 0.12) < 1e-12
    assert {f"ablation-{a}" for a in ("cppf-pc", "cppf-esr", "cppf-mtd_present", "cppf-mtd_past")} <= set(claims)
    assert "cppf-le-joint" not in claims  # a sanity check (cannot fail), not a claim
    # an ablation with a positive mean but a wide spread over seeds is undecided, not "holds" (issue 18's audit)
    seeds = []
    for d in (0.03, -0.02, 0.025, -0.015, 0.0):
        r = dict(rows)
        r["cppf-pc"] = [_toy_metrics(0.50 - d, 0.1), _toy_metrics(0.60 - d, 0.1)]
        seeds.append(_claims(r, ContinualBenchConfig(ablations=True)))
    merged = {c.id: c for c in merge_claims(seeds)}
    assert merged["ablation-cppf-pc"].value > 0 and merged["ablation-cppf-pc"].verdict == "undecided"
    assert merged["gate-cassle-beats-finetune"].verdict == "holds"  # constant +0.045 on every seed


def test_tuning_classes_and_test_classes_are_disjoint() -> None:
    from tailorkit.continual.bench import ContinualBenchConfig, glyph_classes, run_config, tuning_data

    for dataset in ("domains", "glyphs"):
        config = ContinualBenchConfig(dataset=dataset)
        tuning = glyph_classes(tuning_data(config))
        assert len(tuning) == config.n_classes and tuning_data(config).dataset == "glyphs"
        for mode in ("quick", "full"):
            test = glyph_classes(run_config(config, mode, 0, 0, "cppf").data)
            assert test and not (tuning & test), (dataset, mode, tuning & test)
    # the domains bench's other classes (Fashion-MNIST, MNIST, OpenCV digits) never appear in tuning: glyphs only
    assert tuning_data(ContinualBenchConfig()).dataset == "glyphs"


def test_single_module_rows_switch_on_one_module() -> None:
    from tailorkit.continual.bench import SINGLE_MODULES, ContinualBenchConfig, run_config

    modules = ("pc", "esr", "mtd_past", "mtd_present")
    expected = {"cppf_pc_only": {"pc"}, "cppf_esr_only": {"esr"}, "cppf_mtd_only": {"mtd_past", "mtd_present"}}
    for name in SINGLE_MODULES:
        cppf = run_config(ContinualBenchConfig(), "quick", 0, 0, name).strategy.cppf
        assert {m for m in modules if getattr(cppf, m)} == expected[name]
    cppf = run_config(ContinualBenchConfig(), "quick", 0, 0, "cppf").strategy.cppf
    assert all(getattr(cppf, m) for m in modules)
