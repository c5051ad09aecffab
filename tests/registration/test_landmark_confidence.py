"""Landmark confidence (issue 26 item 4): the AUC and reliability table on known cases, the confidence definitions
on an embedding with a repeated structure, and the bench's choice on validation pairs only."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tailorkit.anatomy.calibration import (
    CONFIDENCES,
    confidence,
    reliability_table,
    select_confidence,
    separation_auc,
)
from tailorkit.anatomy.embed import Embedding
from tailorkit.anatomy.matching import MatchResult, match_nn

ERRORS = np.array([1.0, 2.0, 3.0, 4.0, 10.0, 16.0, 20.0, 30.0])  # four good, one between, three bad


def test_auc_perfect_reversed_constant_and_ties() -> None:
    perfect = -ERRORS  # smaller error, higher confidence
    assert separation_auc(perfect, ERRORS) == 1.0
    assert separation_auc(ERRORS, ERRORS) == 0.0
    assert separation_auc(np.full(8, 0.97), ERRORS) == 0.5  # issue 26: 0.96-0.99 for every point
    # the 1 mm and the 16 mm point swap confidences: the 16 mm point now tops all four good ones (4 of the 4 x 3
    # good-bad pairs misordered), the 1 mm point still beats the two worse bad ones
    swapped = perfect.copy()
    swapped[0], swapped[5] = swapped[5], swapped[0]
    assert separation_auc(swapped, ERRORS) == pytest.approx(8 / 12)
    # the point between 5 and 15 mm is left out: moving it does not change the AUC
    moved = perfect.copy()
    moved[4] = 100.0
    assert separation_auc(moved, ERRORS) == 1.0
    assert math.isnan(separation_auc([0.1, 0.2], [1.0, 2.0]))  # no bad point: undefined, not 0.5
    with pytest.raises(ValueError, match="shape"):
        separation_auc([0.1], [1.0, 2.0])


def test_reliability_table_bins_by_confidence() -> None:
    conf = -ERRORS
    table = reliability_table(conf, ERRORS, bins=4)
    assert [t["n"] for t in table] == [2, 2, 2, 2]
    means = [t["mean_error_mm"] for t in table]
    assert means == sorted(means, reverse=True) == [25.0, 13.0, 3.5, 1.5]  # low confidence first: large errors
    assert table[0]["share_bad"] == 1.0 and table[-1]["share_good"] == 1.0
    assert all(t["conf_low"] <= t["conf_high"] for t in table)
    flat = reliability_table(np.zeros(8), ERRORS, bins=2)
    assert sum(t["n"] for t in flat) == 8


def _embedding(desc: torch.Tensor, spacing: float = 4.0) -> Embedding:
    aff = np.diag([spacing, spacing, spacing, 1.0])
    fine = torch.nn.functional.normalize(desc, dim=0)
    return Embedding(fine, aff, fine, aff, None, torch.zeros(fine.shape[1:]), aff)


def test_margin_and_cycle_flag_a_repeated_structure_the_score_misses() -> None:
    # Atlas and target share random descriptors, except that the target repeats landmark B's descriptor 24 mm away
    # (a structure that occurs twice): both landmarks match with score 1, only one of them is unambiguous.
    g = torch.Generator().manual_seed(0)
    desc = torch.randn(16, 10, 10, 10, generator=g)
    target_desc = desc.clone()
    a, b, twin = (2, 2, 2), (5, 5, 2), (5, 5, 8)
    target_desc[:, twin[0], twin[1], twin[2]] = desc[:, b[0], b[1], b[2]]
    atlas, target = _embedding(desc), _embedding(target_desc)
    points = torch.tensor([a, b], dtype=torch.float32) * 4.0
    heads = ("fine",)
    from tailorkit.anatomy.config import MatchConfig

    res = match_nn(atlas, target, points, MatchConfig(heads=heads, subvoxel="none"))
    score = confidence("score", atlas, target, points, res, heads)
    margin = confidence("margin", atlas, target, points, res, heads)
    assert torch.allclose(score, torch.ones(2), atol=1e-5)  # the score cannot tell them apart
    assert margin[0] > 0.2 and margin[1] < 1e-5  # B's rival peak is as high as its match
    # cycle: a found point that maps back to the landmark is trusted; a wrong point that maps elsewhere is not
    wrong = MatchResult(torch.tensor([a, (8, 8, 8)], dtype=torch.float32) * 4.0, torch.ones(2))
    cycle = confidence("cycle", atlas, target, points, wrong, heads)
    assert cycle[0] == pytest.approx(1.0) and cycle[1] < 0.2
    with pytest.raises(ValueError, match="score, margin, cycle"):
        confidence("entropy", atlas, target, points, res, heads)


def test_bench_chooses_the_confidence_on_validation_pairs_only() -> None:
    from tailorkit.registration.bench import _landmark_claim, landmark_calibration
    from tailorkit.registration.config import BenchConfig

    def found(tier: str, good_kind: str) -> dict:
        # `good_kind` ranks the errors correctly, the others rank them backwards
        conf = {k: (-ERRORS if k == good_kind else ERRORS).tolist() for k in CONFIDENCES}
        return {"tier": tier, "pair": 0, "error": ERRORS.tolist(), "confidence": conf}

    config = BenchConfig()
    # validation says "margin"; the test pairs would have preferred "cycle": the choice must not look at them
    marks = {"validation": [found("easy", "margin")], "test": [found(t, "cycle") for t in ("easy", "hard", "cross")]}
    cal = landmark_calibration(marks, config)
    assert cal["selected"] == "margin" and cal["validation"]["auc"]["margin"] == 1.0
    assert cal["test_auc"]["margin"] == 0.0 and cal["test_auc"]["cycle"] == 1.0
    claim = _landmark_claim(cal, config)
    assert claim.id == "landmark-confidence-auc" and not claim.holds and claim.value == 0.0 and claim.target == 0.8
    assert set(cal["reliability"]) == {"score", "margin"} and set(cal["tiers"]) == {"easy", "hard", "cross"}
    marks["test"] = [found(t, "margin") for t in ("easy", "hard", "cross")]
    assert _landmark_claim(landmark_calibration(marks, config), config).holds
    assert select_confidence({"score": float("nan"), "margin": 0.7, "cycle": 0.7}) == "margin"  # tie: list order
    assert select_confidence({k: float("nan") for k in CONFIDENCES}) == "score"


def test_landmark_job_scores_every_landmark_of_every_pair(tmp_path: object) -> None:
    # An untrained embedding (the job's plumbing, not its accuracy): errors against the known positions, every
    # confidence for every landmark.
    from tailorkit.anatomy.config import BenchConfig as AnatomyBench
    from tailorkit.anatomy.data import bench_atlas
    from tailorkit.anatomy.network import NetConfig, SAMNet
    from tailorkit.anatomy.train import TrainedModel, save_model
    from tailorkit.registration.bench import _landmark_job, make_pairs
    from tailorkit.registration.config import BenchConfig
    from tests.conftest import load_or_skip

    atlas = load_or_skip(bench_atlas, 3.0)
    config = BenchConfig()
    pairs = make_pairs(atlas, config, 1, 3)[:2]
    torch.manual_seed(0)
    path = save_model(TrainedModel(SAMNet(NetConfig(width=4, emb_dim=16)).eval(), AnatomyBench().train.embed),
                      f"{tmp_path}/sam.pt")  # fmt: skip
    out = _landmark_job(config, 3.0, pairs, {"model": str(path)})
    assert [f["tier"] for f in out["landmarks"]] == ["easy", "hard"]
    for f, pair in zip(out["landmarks"], pairs, strict=True):
        assert len(f["error"]) == len(atlas.landmarks) == 116 and set(f["confidence"]) == set(CONFIDENCES)
        assert all(len(v) == 116 and all(math.isfinite(x) for x in v) for v in f["confidence"].values())
        assert f["pair"] == pair.index and min(f["error"]) >= 0
