from __future__ import annotations

import pytest
import torch

from tailorkit.continual.evaluation import (
    average_incremental_accuracy,
    extract_features,
    final_accuracy,
    forgetting,
    knn_predict,
    linear_probe,
)

# Hand-computed: after phase 0 phase-0 acc 0.9; after phase 1 (0.7, 0.8); after phase 2 (0.6, 0.75, 0.85).
MATRIX = [[0.9], [0.7, 0.8], [0.6, 0.75, 0.85]]
SEEN = [0.9, 0.75, 0.7333333333333334]


def test_metrics_on_a_hand_computed_matrix() -> None:
    assert final_accuracy(SEEN) == pytest.approx(0.7333333333)
    assert average_incremental_accuracy(SEEN) == pytest.approx((0.9 + 0.75 + 0.7333333333) / 3)
    # phase 0: best before the end 0.9 (not 0.7), final 0.6 -> 0.3; phase 1: best 0.8, final 0.75 -> 0.05
    assert forgetting(MATRIX) == pytest.approx((0.3 + 0.05) / 2)


def test_forgetting_edge_cases() -> None:
    assert forgetting([[0.5]]) == 0.0
    assert forgetting([[0.5], [0.7, 0.4]]) == pytest.approx(-0.2)  # backward transfer shows as negative forgetting
    with pytest.raises(ValueError, match="accuracy matrix"):
        forgetting([[0.5], []])
    with pytest.raises(ValueError):
        average_incremental_accuracy([])


def _blobs(n: int, classes: int, dim: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centres = torch.eye(dim)[:classes] * 5
    labels = torch.arange(classes).repeat_interleave(n)
    return centres[labels] + 0.3 * torch.randn(len(labels), dim, generator=g), labels + 10  # ids need not start at 0


def test_knn_and_probe_on_separable_features() -> None:
    x, y = _blobs(30, 4, 8, 0)
    xt, yt = _blobs(10, 4, 8, 1)
    assert torch.equal(knn_predict(x, y, xt, k=20, temperature=0.1), yt)
    assert torch.equal(linear_probe(x, y, xt, l2=1e-3, iters=50), yt)


def test_knn_votes_are_temperature_weighted() -> None:
    # One very close neighbour of class 0 against two far ones of class 1: weighted vote picks 0, majority picks 1.
    bank = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.05, 1.0]])
    labels = torch.tensor([0, 1, 1])
    query = torch.tensor([[1.0, 0.02]])
    assert knn_predict(bank, labels, query, k=3, temperature=0.1).item() == 0
    assert knn_predict(bank, labels, query, k=3, temperature=100.0).item() == 1


def test_linear_probe_beats_chance_only_when_features_carry_labels() -> None:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(200, 8, generator=g), torch.randint(0, 4, (200,), generator=g)
    xt, yt = torch.randn(200, 8, generator=g), torch.randint(0, 4, (200,), generator=g)
    acc = (linear_probe(x, y, xt) == yt).float().mean().item()
    assert acc < 0.45  # noise features: near chance (0.25)


def test_extract_features_restores_mode() -> None:
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    net.train()
    out = extract_features(net, torch.zeros(5, 1, 2, 2, dtype=torch.uint8), batch_size=2)
    assert out.shape == (5, 3) and net.training
