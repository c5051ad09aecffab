"""The MNI/AAL atlas, the bench contract on untrained toy networks, and the demo (slow)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from tailorkit.anatomy import BenchConfig, MatchConfig, NetConfig, SAMNet, bench_atlas, tissue_contrast
from tailorkit.anatomy.bench import landmark_metrics, make_queries, run_anatomy_bench
from tailorkit.anatomy.train import TrainedModel
from tailorkit.core.results import Row, outcome_to_document
from tests.conftest import load_or_skip


@pytest.fixture(scope="module")
def atlas():
    return load_or_skip(bench_atlas, 3.0)


def test_atlas_landmarks_lie_in_their_regions(atlas):
    assert len(atlas.landmarks) == 116 and atlas.t1.shape == (65, 77, 69)
    vox = np.rint((atlas.landmarks - atlas.affine[:3, 3]) / 3.0).astype(int)
    inside = atlas.labels[vox[:, 0], vox[:, 1], vox[:, 2]] == atlas.landmark_ids
    assert inside.mean() > 0.8  # centroids of non-convex regions may fall just outside
    left = [i for i, n in enumerate(atlas.names) if n.endswith("_L")]
    assert (atlas.landmarks[left, 0] < 0).mean() > 0.95  # RAS: left hemisphere at negative x


def test_t2_like_contrast_inverts_tissue_order(atlas):
    t2 = tissue_contrast(atlas.gm, atlas.wm, atlas.brain)
    wm, csf = atlas.tissue_labels() == 3, atlas.tissue_labels() == 1
    assert t2[csf].mean() > t2[wm].mean() + 0.3  # CSF bright, WM dark
    assert atlas.t1[csf].mean() < atlas.t1[wm].mean()  # the opposite in T1


@pytest.mark.slow
def test_queries_have_known_truth_and_identity_error(atlas):
    queries = make_queries(atlas, BenchConfig(), 1, 0)
    assert [q.tier for q in queries] == ["easy", "hard", "cross"]
    easy, hard = (landmark_metrics(atlas.landmarks, q.truth)["mre_mm"] for q in queries[:2])
    assert 3 < easy < hard < 30


def test_bench_contract_with_untrained_toy_networks(atlas):
    torch.manual_seed(0)
    models = {
        "sam": TrainedModel(SAMNet(NetConfig(width=4, emb_dim=16)).eval(), BenchConfig().train.embed),
        "samv2": TrainedModel(SAMNet(NetConfig(width=4, emb_dim=16, semantic=True)).eval(), BenchConfig().train.embed),
    }
    config = BenchConfig(quick_pairs_per_tier=1, quick_fp_margin=0, match=MatchConfig(batch=8192))
    outcome = run_anatomy_bench(config, "quick", 0, torch.device("cpu"), models=models)
    doc = outcome_to_document(
        outcome, subsystem="anatomy", mode="quick", seed=0, started="now", seconds=1.0, cpu_seconds=1.0
    )
    methods = {(r["method"], r["params"].get("embedding"), r["params"]["tier"]) for r in doc["rows"]}
    assert len(methods) == 3 * 7
    assert {c["id"] for c in doc["claims"]} == {
        "fixed_point_beats_nn",
        "embedding_beats_identity_hard",
        "samv2_beats_sam_cross_modality",
    }
    assert "ants_syn" in doc["extra"]["skipped"]
    ident = next(r for r in doc["rows"] if r["method"] == "identity" and r["params"]["tier"] == "hard")
    fp = next(
        r
        for r in doc["rows"]
        if (r["method"], r["params"].get("embedding"), r["params"]["tier"]) == ("fixed_point", "samv2", "hard")
    )
    claim = next(c for c in doc["claims"] if c["id"] == "embedding_beats_identity_hard")
    assert claim["target"] == 0.5
    assert claim["value"] == pytest.approx(fp["metrics"]["mre_mm"] / ident["metrics"]["mre_mm"])


@pytest.mark.slow
def test_demo_runs(tmp_path):
    from tailorkit.anatomy.demo import anatomy_demo

    section = anatomy_demo(tmp_path, 0, torch.device("cpu"))
    assert section.image is not None and section.image.exists()
    assert len(section.table_rows) == 3


def test_asset_training_sources_carry_lits_labels():
    from tailorkit.anatomy import EmbedConfig, SAMTrainConfig
    from tailorkit.anatomy.train import make_sources

    config = SAMTrainConfig(volumes=("asset:lits_ct",), embed=EmbedConfig(spacing_mm=6.0, intensity="ct"))
    (source,) = load_or_skip(make_sources, config)
    assert source.labels is not None and set(np.unique(source.labels)) <= {0, 1, 2} and source.labels.max() >= 1
    assert source.image.min() >= 0.0 and source.image.max() <= 1.0


def test_training_in_a_worker_process_equals_training_here(atlas):
    """The bench trains SAM and SAMv2 in two spawned processes; seeded, the networks equal in-process training."""
    import dataclasses
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from tailorkit.anatomy.bench import _train_job

    base = BenchConfig().train
    config = BenchConfig(train=dataclasses.replace(base, net=dataclasses.replace(base.net, width=4, emb_dim=16)))
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        remote, _ = pool.submit(_train_job, config, 2, True, 0).result()
    threads = torch.get_num_threads()
    try:
        local, _ = _train_job(config, 2, True, 0)
    finally:
        torch.set_num_threads(threads)
    assert remote.losses == local.losses and len(local.losses) == 2
    for (name, a), b in zip(remote.net.state_dict().items(), local.net.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


def _toy_rows(mre: dict[tuple[str, str | None, str], float]) -> list[Row]:
    return [
        Row(method, {"mre_mm": value}, {"embedding": embedding, "tier": tier})
        for (method, embedding, tier), value in mre.items()
    ]


def test_claims_are_per_seed_gaps_against_fixed_targets():
    """Each claim is this seed's paired quantity (an MRE gap in mm or a ratio) against a constant target."""
    from tailorkit.anatomy.bench import _claims

    mre = {("identity", None, "hard"): 14.0}
    for tier in ("easy", "hard", "cross"):
        for emb in ("sam", "samv2"):
            mre[("nn", emb, tier)] = 12.0
            mre[("fixed_point", emb, tier)] = 10.0
    mre[("fixed_point", "sam", "cross")] = 24.0
    claims = {c.id: c for c in _claims(_toy_rows(mre))}
    assert claims["fixed_point_beats_nn"].value == pytest.approx(2.0) and claims["fixed_point_beats_nn"].holds
    assert claims["embedding_beats_identity_hard"].value == pytest.approx(10 / 14)
    assert claims["embedding_beats_identity_hard"].target == 0.5 and not claims["embedding_beats_identity_hard"].holds
    assert claims["samv2_beats_sam_cross_modality"].value == pytest.approx(14.0)
    assert all(c.target in (0.0, 0.5) for c in claims.values())  # no target taken from another row
    mre[("fixed_point", "sam", "cross")] = 9.0  # SAM better on the cross tier: the claim fails
    assert not {c.id: c for c in _claims(_toy_rows(mre))}["samv2_beats_sam_cross_modality"].holds


def test_claims_merge_over_seeds():
    from tailorkit.anatomy.bench import _claims
    from tailorkit.core.results import merge_claims

    per_seed = []
    for gap in (3.0, 5.0, 4.0, 6.0, 2.0):
        mre = {("identity", None, "hard"): 14.0}
        for tier in ("easy", "hard", "cross"):
            for emb in ("sam", "samv2"):
                mre[("nn", emb, tier)] = 12.0
                mre[("fixed_point", emb, tier)] = 10.0
        mre[("fixed_point", "sam", "cross")] = 10.0 + gap
        per_seed.append(_claims(_toy_rows(mre)))
    merged = {c.id: c for c in merge_claims(per_seed)}
    assert merged["samv2_beats_sam_cross_modality"].verdict == "holds"
    assert merged["samv2_beats_sam_cross_modality"].value == pytest.approx(4.0)
    assert merged["embedding_beats_identity_hard"].verdict == "fails"  # 10/14 on every seed: a zero-width interval


def test_evidence_plan_budget_doubles_every_training():
    from tailorkit.anatomy.bench import PLAN
    from tailorkit.core.bench import BENCHES, scale_budget, with_settings

    plan = BENCHES.get("anatomy").plan
    assert plan is PLAN and plan.one_seed == {} and plan.seeds >= 5
    config = BenchConfig()
    doubled = scale_budget(config, plan.budget_fields, 2)
    assert (doubled.quick_steps, doubled.full_steps) == (2 * config.quick_steps, 2 * config.full_steps)
    assert dataclasses.replace(doubled, quick_steps=config.quick_steps, full_steps=config.full_steps) == config
    # the curve's decisive run is the whole bench (SAMv2 and SAM), so its x1 point is the main run's seeds
    assert with_settings(with_settings(config, plan.one_seed), plan.decisive) == config and 1 in plan.curve
