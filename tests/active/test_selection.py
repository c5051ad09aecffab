from __future__ import annotations

import numpy as np
import pytest

from tailorkit.active import STRATEGIES, k_center_greedy, kmeans_representatives, prompt_uncertainty
from tailorkit.active.methods.tesla import cluster_constrained_top
from tailorkit.active.uncertainty import bald_score, binary_entropy, foreground_region


def _brute_force_k_center(features: np.ndarray, n: int, centers: list[int]) -> list[int]:
    chosen = list(centers)
    picks = []
    for _ in range(n):
        best, best_d = -1, -1.0
        for i in range(len(features)):
            if i in chosen:
                continue
            d = min(np.linalg.norm(features[i] - features[c]) for c in chosen)
            if d > best_d:
                best, best_d = i, d
        chosen.append(best)
        picks.append(best)
    return picks


def test_k_center_greedy_matches_brute_force_on_random_points() -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(50, 3))
    assert k_center_greedy(features, 8, [3, 17]) == _brute_force_k_center(features, 8, [3, 17])
    picks = k_center_greedy(features, 5, [], rng=np.random.default_rng(1))
    assert len(set(picks)) == 5
    assert picks[1:] == _brute_force_k_center(features, 4, [picks[0]])


def test_k_center_greedy_known_answer() -> None:
    # points on a line 0, 1, 2, 10: from center 0 the farthest is 10, then 2 (distance 2 > 1 from 10? no: 2 is 2 from 0)
    features = np.array([[0.0], [1.0], [2.0], [10.0]])
    assert k_center_greedy(features, 2, [0]) == [3, 2]
    with pytest.raises(ValueError, match=r"expected 0\.\.3"):
        k_center_greedy(features, 4, [0])


def test_kmeans_representatives_pick_one_per_blob() -> None:
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], float)
    features = np.concatenate([c + rng.normal(0, 0.3, (20, 2)) for c in centres])
    picks = kmeans_representatives(features, 4, seed=0)
    assert sorted(p // 20 for p in picks) == [0, 1, 2, 3]
    for p in picks:  # each pick is the member nearest its blob's mean
        blob = features[(p // 20) * 20 : (p // 20 + 1) * 20]
        assert np.argmin(((blob - blob.mean(0)) ** 2).sum(1)) == p % 20
    assert picks == kmeans_representatives(features, 4, seed=0)  # deterministic given the seed
    sub = kmeans_representatives(features, 2, seed=0, candidates=np.arange(20, 60))
    assert all(20 <= p < 60 for p in sub) and len(set(sub)) == 2


def test_uncertainty_ranks_the_ambiguous_sample_first() -> None:
    probs = np.zeros((3, 3, 8, 8))
    probs[0] = 0.02  # confident background
    probs[1, :, 2:6, 2:6] = 0.98  # confident lesion
    probs[1][probs[1] == 0] = 0.02
    probs[2] = 0.02
    probs[2, 0, 2:6, 2:6], probs[2, 1, 2:6, 2:6], probs[2, 2, 2:6, 2:6] = 0.9, 0.5, 0.1  # sets disagree
    for region in ("all", "foreground"):
        scores = prompt_uncertainty(probs, alpha=1.0, region=region, threshold=0.3, dilation=1)
        assert int(np.argmax(scores)) == 2
    fg = prompt_uncertainty(probs, region="foreground", threshold=0.3, dilation=1)
    assert fg[0] == 0.0  # a pure-background prediction has no region: ignored
    assert prompt_uncertainty(probs, region="all")[0] > 0  # whole-image entropy counts background noise
    # disagreement term: equal means, different spread
    same = np.full((2, 2, 4, 4), 0.5)
    same[1, 0], same[1, 1] = 0.1, 0.9
    u0 = prompt_uncertainty(same, alpha=0.0, region="all")
    u1 = prompt_uncertainty(same, alpha=1.0, region="all")
    assert u0[0] == pytest.approx(u0[1]) and u1[1] > u1[0]


def test_entropy_bald_and_region_reference_values() -> None:
    assert binary_entropy(np.array([0.5]))[0] == pytest.approx(np.log(2))
    samples = np.zeros((2, 2, 2, 2))
    samples[0] = 0.5  # agreeing passes: aleatoric only, MI 0
    samples[1, 0], samples[1, 1] = 0.0, 1.0  # disagreeing confident passes: MI = log 2
    mi = bald_score(samples, region="all")
    assert mi[0] == pytest.approx(0.0, abs=1e-6) and mi[1] == pytest.approx(np.log(2), rel=1e-4)
    mask = foreground_region(np.pad(np.ones((1, 1, 1)), ((0, 0), (2, 2), (2, 2))), 0.5, 1)
    assert mask.sum() == 9
    with pytest.raises(ValueError, match="MC samples"):
        bald_score(np.zeros((2, 1, 4, 4)))


def test_cluster_constrained_top_takes_one_per_cluster_first() -> None:
    cand = np.array([10, 11, 12, 13, 14])
    scores = np.array([0.9, 0.8, 0.1, 0.5, 0.7])
    labels = np.array([0, 0, 1, 1, 2])
    assert cluster_constrained_top(cand, scores, labels, 3) == [10, 14, 13]
    assert cluster_constrained_top(cand, scores, labels, 4) == [10, 14, 13, 11]


def test_every_strategy_is_registered() -> None:
    assert STRATEGIES.names() == ["bald", "coreset", "entropy", "random", "tesla", "usl"]
