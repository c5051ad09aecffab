"""Task grouping: partition enumeration, the TAG objective, and recovery of planted gradient clusters."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tailorkit.prompts.grouping import (
    best_partition,
    gradient_affinity,
    groups_to_assignment,
    partition_exhaustive,
    partition_greedy,
    partition_score,
    random_partition,
    set_partitions,
)


@pytest.mark.parametrize(("n", "bell"), [(1, 1), (3, 5), (4, 15), (6, 203)])
def test_set_partitions_counts_bell_numbers(n: int, bell: int) -> None:
    parts = list(set_partitions(list(range(n))))
    assert len(parts) == bell
    assert len({str(sorted(map(sorted, p))) for p in parts}) == bell


def _block(pairs: list[list[int]], n: int, inside: float = 0.8, outside: float = 0.1) -> np.ndarray:
    a = np.full((n, n), outside)
    for g in pairs:
        for i in g:
            for j in g:
                a[i, j] = inside
    np.fill_diagonal(a, 1.0)
    return a


def test_partition_score_and_search_on_a_block_matrix() -> None:
    planted = [[0, 3], [1, 4], [2, 5]]
    a = _block(planted, 6)
    assert partition_score(a, planted) == pytest.approx(6 * 0.8)
    assert partition_score(a, [[0], [1]]) == 0.0
    assert partition_exhaustive(a) == [[0, 3], [1, 4], [2, 5]]
    assert partition_greedy(a) == [[0, 3], [1, 4], [2, 5]]
    assert best_partition(a, n_groups=2) != planted and len(best_partition(a, n_groups=2)) == 2


def test_gradient_affinity_recovers_planted_clusters_on_linear_tasks() -> None:
    # Six least-squares tasks on one shared weight vector: tasks in a cluster share a target direction, so their
    # gradients align; clusters are orthogonal. The cosine affinity must find the clusters exactly.
    gen = torch.Generator().manual_seed(0)
    d, clusters = 12, [[0, 2], [1, 4], [3, 5]]
    dirs = torch.linalg.qr(torch.randn(d, 3, generator=gen))[0].T
    targets = torch.zeros(6, d)
    for c, members in enumerate(clusters):
        for t in members:
            targets[t] = dirs[c] * 3 + 0.1 * torch.randn(d, generator=gen)
    w = torch.zeros(d, requires_grad=True)
    x = torch.randn(64, d, generator=gen)

    def losses(step: int) -> dict[int, torch.Tensor]:
        return {t: ((x @ w - x @ targets[t]) ** 2).mean() for t in range(6)}

    result = gradient_affinity([w], losses, 6, steps=3, optimizer=torch.optim.SGD([w], lr=1e-3), lookahead_every=1)
    assert result.cosine.shape == (6, 6) and np.allclose(np.diag(result.cosine), 1.0)
    assert best_partition(result.cosine) == sorted(clusters)
    assert result.lookahead is not None
    assert best_partition(result.lookahead) == sorted(clusters)


def test_grouping_on_generated_prompts_recovers_pairs_the_raw_parameters_hide() -> None:
    # An MmAP-like toy: the prompt P = S (x) A is generated from a zero source S (1 x 2) and a factor A = (1, 0, 0).
    # Task t's loss is <c_t, P>, so its gradient on the prompt is c_t: tasks 0 and 1 share c = u, tasks 2 and 3
    # share c = v (two pairs with identical prompt gradients). On the raw parameters the gradient is A's
    # projection of c (and zero on A, since S = 0): u and v differ only where A is 0, so all four look identical.
    source = torch.zeros(1, 2, requires_grad=True)
    factor = torch.tensor([[1.0, 0.0, 0.0]], requires_grad=True)
    u = torch.tensor([1.0, 1.0, 0.0, 1.0, 0.0, 0.0])
    v = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    made: list[torch.Tensor] = []

    def losses(step: int) -> dict[int, torch.Tensor]:
        made[:] = [torch.kron(source, factor).flatten()]
        return {t: (c * made[0]).sum() for t, c in enumerate((u, u, v, v))}

    on_prompts = gradient_affinity([source, factor], losses, 4, steps=1, measure=lambda: made)
    on_params = gradient_affinity([source, factor], losses, 4, steps=1)
    assert on_prompts.cosine[0, 1] == pytest.approx(1.0) and on_prompts.cosine[2, 3] == pytest.approx(1.0)
    assert on_prompts.cosine[0, 2] == pytest.approx(3**-0.5)  # <u, v> = 2, |u| = 3**0.5, |v| = 2
    assert best_partition(on_prompts.cosine) == [[0, 1], [2, 3]]
    assert np.allclose(on_params.cosine, 1.0)  # the raw gradients cannot tell the pairs apart
    assert best_partition(on_params.cosine) == [[0, 1, 2, 3]]


def test_discover_groups_on_generated_prompts_runs_on_the_engine(engine) -> None:  # type: ignore[no-untyped-def]
    from tailorkit.prompts.api import discover_groups

    result = discover_groups(engine, steps=2, batch=4, wrt="prompts", options={"depth": 2})
    assert sorted(i for g in result.groups for i in g) == [0, 1, 2]
    cos = result.affinity.cosine
    assert cos.shape == (3, 3) and np.allclose(np.diag(cos), 1.0) and np.allclose(cos, cos.T)
    params = discover_groups(engine, steps=2, batch=4, options={"depth": 2})
    assert not np.allclose(params.affinity.cosine, cos)  # a different gradient space
    with pytest.raises(ValueError, match="wrt"):
        discover_groups(engine, steps=1, wrt="bank")


def test_random_partition_and_assignment() -> None:
    rng = np.random.default_rng(0)
    part = random_partition([2, 2, 2], rng)
    assert sorted(i for g in part for i in g) == list(range(6)) and [len(g) for g in part] == [2, 2, 2]
    assert groups_to_assignment([[0, 2], [1]], 3) == [[0, 2], [1, 3], [0, 4]]
    assert groups_to_assignment([[0, 2], [1]], 3, task_banks=False) == [[0], [1], [0]]
    with pytest.raises(ValueError, match="cover"):
        groups_to_assignment([[0]], 2)
    with pytest.raises(ValueError, match="T <= 8"):
        partition_exhaustive(np.eye(9))
