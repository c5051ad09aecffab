from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tailorkit.active import ActiveLearner, LoopStateError, SegSet, SelectConfig, TuneConfig

TUNE = TuneConfig(method="slpt", steps=3, batch_size=4, prompt_sets=2)


def _pool(toy) -> SegSet:
    images, masks = toy(30, seed=7)
    return SegSet(images, masks, [f"item{i:02d}" for i in range(30)])


def _oracle(pool: SegSet, ids: list[str]) -> dict[str, np.ndarray]:
    return {i: pool.masks[pool.ids.index(i)] for i in ids}


@pytest.mark.parametrize("strategy", ["tesla", "random", "entropy", "bald", "coreset", "usl"])
def test_two_rounds_return_exact_unique_new_ids(tiny_backbone, toy, strategy: str) -> None:
    pool = _pool(toy)
    learner = ActiveLearner(pool, tiny_backbone, SelectConfig(strategy=strategy, mc_samples=2), TUNE, seed=0)
    first = learner.propose(4)
    learner.update(_oracle(pool, first))
    second = learner.propose(3)
    assert len(first) == 4 and len(second) == 3 and len(set(first + second)) == 7
    assert [h["stage"] for h in learner.history] == ["cold", "warm"]
    if strategy in ("tesla", "entropy", "bald"):
        assert len(learner.history[1]["scores"]) == 3


def test_paired_warm_starts_and_tesla_stage_one_is_deterministic(tiny_backbone, toy) -> None:
    pool = _pool(toy)
    firsts = {
        s: ActiveLearner(pool, tiny_backbone, SelectConfig(strategy=s), TUNE, seed=3).propose(5)
        for s in ("random", "entropy", "coreset")
    }
    assert firsts["random"] == firsts["entropy"] == firsts["coreset"]
    a = ActiveLearner(pool, tiny_backbone, SelectConfig(strategy="tesla"), TUNE, seed=3).propose(5)
    b = ActiveLearner(pool, tiny_backbone, SelectConfig(strategy="tesla"), TUNE, seed=3).propose(5)
    assert a == b


def test_loop_resumes_from_saved_state(tiny_backbone, toy, tmp_path: Path) -> None:
    pool = _pool(toy)
    state = tmp_path / "state.json"
    select = SelectConfig(strategy="tesla")
    straight = ActiveLearner(pool, tiny_backbone, select, TUNE, seed=1)
    ids = straight.propose(4)
    straight.update(_oracle(pool, ids))
    expected = straight.propose(4)

    learner = ActiveLearner(pool, tiny_backbone, select, TUNE, seed=1, state=state)
    first = learner.propose(4)
    assert first == ids
    del learner  # the session ends with labels pending
    resumed = ActiveLearner.resume(state, pool, tiny_backbone)
    assert resumed.pending == ids
    with pytest.raises(LoopStateError, match="call update"):
        resumed.propose(2)
    resumed.update(_oracle(pool, ids))
    again = ActiveLearner.resume(state, pool, tiny_backbone)
    assert again.labelled_ids == ids and again.round == 1
    assert again.propose(4) == expected
    doc = json.loads(state.read_text())
    assert [h["ids"] for h in doc["history"]] == [ids, expected]


def test_bad_updates_and_states_are_refused(tiny_backbone, toy, tmp_path: Path) -> None:
    pool = _pool(toy)
    learner = ActiveLearner(pool, tiny_backbone, SelectConfig(strategy="random"), TUNE, seed=0)
    ids = learner.propose(2)
    with pytest.raises(ValueError, match="expected \\(16, 16\\)"):
        learner.update({ids[0]: np.zeros((8, 8))})
    with pytest.raises(ValueError, match="binary"):
        learner.update({ids[0]: np.full((16, 16), 2)})
    with pytest.raises(KeyError, match="not a pool id"):
        learner.update({"nope": np.zeros((16, 16))})
    fresh = ActiveLearner(pool, tiny_backbone, SelectConfig(strategy="random"), TUNE, seed=0)
    with pytest.raises(ValueError, match=r"budget: expected an int in 1\.\.30"):
        fresh.propose(0)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(LoopStateError, match="expected a JSON state"):
        ActiveLearner.resume(bad, pool, tiny_backbone)
    bad.write_text(json.dumps({"version": 1}))
    with pytest.raises(LoopStateError, match="missing"):
        ActiveLearner.resume(bad, pool, tiny_backbone)


def test_fit_trains_a_final_model_on_the_labels(tiny_backbone, toy) -> None:
    pool = _pool(toy)
    learner = ActiveLearner(pool, tiny_backbone, SelectConfig(strategy="random"), TUNE, seed=0)
    learner.update(_oracle(pool, learner.propose(6)))
    model = learner.fit(TuneConfig(method="head_only", steps=2, batch_size=4))
    assert model.n_sets == 1 and model.tunable_fraction() < 0.05
