from __future__ import annotations

import numpy as np

from tailorkit.active.config import TuneConfig
from tailorkit.active.data import SegSet
from tailorkit.active.validation import choose, choose_discrepancy, choose_reference_steps, validation_halves
from tailorkit.nets.unet import UNet

from .conftest import toy_data


def test_choose_takes_the_best_mean_and_the_first_of_ties() -> None:
    assert choose({0.0: [0.5, 0.7], 0.1: [0.7, 0.6], 0.3: [0.1, 0.2]}) == 0.1
    assert choose({0.3: [0.5], 0.1: [0.5]}) == 0.3


def test_validation_halves_are_disjoint_seeded_and_cover_the_pool() -> None:
    images, masks = toy_data(21, seed=0)
    pool = SegSet(images, masks, [f"i{k}" for k in range(21)])
    a, b = validation_halves(pool, 3)
    assert len(a) == 10 and len(b) == 11 and not set(a) & set(b) and set(a) | set(b) == set(range(21))
    assert np.array_equal(a, validation_halves(pool, 3)[0]) and not np.array_equal(a, validation_halves(pool, 4)[0])


def test_choices_run_on_the_pool_only(tiny_backbone: UNet) -> None:
    images, masks = toy_data(24, seed=2)
    pool = SegSet(images, masks, [f"i{k}" for k in range(24)])
    tune = TuneConfig(steps=2, batch_size=4, prompt_sets=2)
    lam, scores = choose_discrepancy(pool, tiny_backbone, tune, (0.0, 0.3), 0.25, (0,))
    assert lam in (0.0, 0.3) and all(len(v) == 1 and 0 <= v[0] <= 1 for v in scores.values())
    steps, step_scores = choose_reference_steps(pool, tiny_backbone, tune, (1.0, 2.0), (0, 1))
    assert steps in (1.0, 2.0) and all(len(v) == 2 for v in step_scores.values())
