"""MotionShapes: opposite motions are exact time reversals, so frame pooling cannot separate them."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from tailorkit.video.shapes import MOTIONS, OPPOSITE, MotionShapes, class_names, make_dataset, render_clip


@pytest.fixture(scope="module")
def gen() -> MotionShapes:
    return MotionShapes(frames=6, size=32)


@pytest.mark.parametrize("motion", range(len(MOTIONS)))
def test_opposite_motion_is_time_reversal(gen: MotionShapes, motion: int) -> None:
    rng = np.random.default_rng(motion)
    params = gen.draw("star", motion, rng)
    texture, background = gen.textures("train", rng)
    clip = render_clip(params, texture, background, 6, 32)
    opposite = render_clip(dataclasses.replace(params, motion=OPPOSITE[motion]), texture, background, 6, 32)
    assert np.array_equal(clip[::-1], opposite)
    assert not np.array_equal(clip, opposite)  # but the clip itself moves
    # any order-invariant pooling (here the pixel mean over frames) is identical
    assert np.array_equal(clip.astype(np.int64).sum(0), opposite.astype(np.int64).sum(0))


def test_motion_actually_moves(gen: MotionShapes) -> None:
    rng = np.random.default_rng(0)
    clip = gen.clip("square", 1, "train", rng)  # moving right
    mask = (clip != clip[0, 0, 0]).any(-1)  # shape pixels differ from the flat background corner
    xs = [np.nonzero(m)[1].mean() for m in mask]
    assert all(b > a for a, b in itertools.pairwise(xs))


def test_dataset_labels_and_names(gen: MotionShapes) -> None:
    frames, labels, names = make_dataset(gen, ["square", "cross"], 2, "test", seed=3)
    assert frames.shape == (32, 6, 32, 32, 3)
    assert names[0] == "square moving left" and names[8] == "cross moving left" and len(names) == 16
    assert np.bincount(labels).tolist() == [2] * 16
    again, _, _ = make_dataset(gen, ["square", "cross"], 2, "test", seed=3)
    assert np.array_equal(frames, again)
    other, _, _ = make_dataset(gen, ["square", "cross"], 2, "train", seed=3)
    assert not np.array_equal(frames, other)


def test_bad_settings() -> None:
    with pytest.raises(ValueError, match="shape: expected one of"):
        class_names(["circle"])
    with pytest.raises(ValueError, match="frames: expected >= 2"):
        MotionShapes(frames=1)
    with pytest.raises(ValueError, match="background"):
        MotionShapes(background="noise")
