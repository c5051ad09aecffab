"""The second original-ability suite of the patching bench: WordNet gloss -> lemma retrieval."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tailorkit.patching.bench import ORIGINAL_TASKS, PatchingBenchConfig, _derive, original_tasks
from tailorkit.patching.gloss import gloss_items, retrieval_scores
from tests.conftest import load_or_skip


def test_perfect_embedder_scores_one() -> None:
    emb = torch.nn.functional.normalize(torch.randn(50, 16, generator=torch.Generator().manual_seed(0)), dim=1)
    assert retrieval_scores(emb, emb) == {"r1": 1.0, "mrr": 1.0}


@pytest.mark.parametrize("n", [2, 7, 400])
def test_constant_embedder_scores_chance(n: int) -> None:
    emb = torch.nn.functional.normalize(torch.ones(n, 8), dim=1)
    scores = retrieval_scores(emb, emb)
    assert scores["r1"] == pytest.approx(1.0 / n)
    assert scores["mrr"] == pytest.approx(sum(1.0 / r for r in range(1, n + 1)) / n)


def test_known_ranks_and_a_tie() -> None:
    # sims[i, j] = query i . key j; with queries = identity, keys = sims.T.
    sims = torch.tensor([[0.9, 0.1, 0.0], [0.8, 0.5, 0.1], [0.3, 0.6, 0.2]], dtype=torch.float64)
    scores = retrieval_scores(torch.eye(3, dtype=torch.float64), sims.t().contiguous())
    assert scores["r1"] == pytest.approx(1 / 3)  # ranks 1, 2, 3
    assert scores["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)
    tied = torch.tensor([[0.5, 0.5], [0.0, 1.0]], dtype=torch.float64)  # query 0 ties with key 1
    scores = retrieval_scores(torch.eye(2, dtype=torch.float64), tied.t().contiguous())
    assert scores["r1"] == pytest.approx((0.5 + 1.0) / 2)
    assert scores["mrr"] == pytest.approx(((1 + 1 / 2) / 2 + 1.0) / 2)


def test_shape_mismatch_is_refused() -> None:
    with pytest.raises(ValueError, match="same shape"):
        retrieval_scores(torch.zeros(3, 4), torch.zeros(4, 4))


@pytest.fixture(scope="module")
def items() -> tuple[tuple[str, str], ...]:
    return load_or_skip(gloss_items, 400)  # type: ignore[no-any-return]


def test_items_are_fixed_and_do_not_follow_global_seeds(items) -> None:
    gloss_items.cache_clear()
    np.random.seed(123)
    torch.manual_seed(123)
    again = gloss_items(400)
    assert again == items
    assert [lemma for lemma, _ in items[:5]] == ["code", "equate", "inherent", "vast", "snarl"]  # pinned
    assert gloss_items(100) == items[:100]  # a smaller suite is a prefix of the larger one


def test_items_follow_the_selection_rule(items) -> None:
    lemmas = [lemma for lemma, _ in items]
    assert len(items) == 400 and len(set(lemmas)) == 400
    for lemma, gloss in items:
        assert lemma.isalpha() and len(lemma) >= 3 and len(gloss.split()) >= 3
        assert '"' not in gloss and not gloss.endswith(";")  # examples removed
        # no string-match shortcut: no gloss word starts like its lemma
        assert not any(w[:5] == lemma[:5] for w in gloss.lower().split() if len(w) >= 5 and len(lemma) >= 5)
        assert lemma not in gloss.lower().split()


def test_retention_includes_the_gloss_task() -> None:
    pre = {"lee": 0.6, "ws353": 0.7, "simlex": 0.4, "gloss_r1": 0.5, "acc": 0.6}
    raw = {"lee": 0.6, "ws353": 0.7, "simlex": 0.4, "gloss_r1": 0.25, "acc": 0.8}
    on = original_tasks(PatchingBenchConfig())
    assert on == (*ORIGINAL_TASKS, "gloss_r1")
    m = _derive(raw, {"pre": pre, "ft_acc": 0.8, "original": on})
    assert m["retention"] == pytest.approx((1 + 1 + 1 + 0.5) / 4)
    # Switched off: the old three-task formula, with or without the key in ref.
    off = original_tasks(PatchingBenchConfig(gloss_retrieval=False))
    assert off == ("lee", "ws353", "simlex")
    assert _derive(raw, {"pre": pre, "ft_acc": 0.8, "original": off})["retention"] == pytest.approx(1.0)
    assert _derive(raw, {"pre": pre, "ft_acc": 0.8})["retention"] == pytest.approx(1.0)


def test_gloss_items_setting_is_validated() -> None:
    with pytest.raises(ValueError, match="gloss_items"):
        PatchingBenchConfig(gloss_items=1)


def test_minilm_retrieves_defined_words_far_above_chance(items) -> None:
    """Zero-shot sanity of the suite on the real model: its first 100 items, chance R@1 = 0.01."""
    from tailorkit.nets import load_minilm_l6

    encoder = load_or_skip(load_minilm_l6)
    n = 100
    lemmas, glosses = zip(*items[:n], strict=True)
    scores = retrieval_scores(encoder.encode(list(glosses), max_length=64), encoder.encode(list(lemmas), max_length=16))
    print(f"MiniLM-L6 gloss -> lemma, {n} items: R@1 {scores['r1']:.4f}, MRR {scores['mrr']:.4f}")
    assert scores["r1"] > 0.3 and scores["mrr"] > scores["r1"]
