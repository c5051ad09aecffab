"""The MNI/AAL atlas, the bench contract on untrained toy networks, and the demo (slow)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tailorkit.anatomy import BenchConfig, MatchConfig, NetConfig, SAMNet, bench_atlas, tissue_contrast
from tailorkit.anatomy.bench import landmark_metrics, make_queries, run_anatomy_bench
from tailorkit.anatomy.train import TrainedModel
from tailorkit.core.results import outcome_to_document
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
    claim = next(c for c in doc["claims"] if c["id"] == "embedding_beats_identity_hard")
    assert claim["target"] == pytest.approx(0.5 * ident["metrics"]["mre_mm"])


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
