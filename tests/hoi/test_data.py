from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tailorkit.hoi.config import SynthConfig
from tailorkit.hoi.data import (
    MIN_OBJECT_PX,
    SYNTH_OBJECTS,
    SYNTH_VALID,
    SYNTH_VERBS,
    HOIAnnotation,
    _Figure,
    _labels,
    make_synth,
    read_hico_det,
    read_vcoco,
    to_targets,
)

CFG = SynthConfig(image_size=64, n_train=40, n_test=4, texture="flat")


def test_synth_is_seeded_exact_and_valid() -> None:
    a, b = make_synth(CFG, 1, "train"), make_synth(CFG, 1, "train")
    assert a.images is not None and b.images is not None
    assert np.array_equal(a.images, b.images) and a.images.shape == (40, 64, 64, 3) and a.images.dtype == np.uint8
    assert not np.array_equal(a.images, make_synth(CFG, 2, "train").images)
    verbs_seen = set()
    for ann in a.annotations:
        assert ((ann.boxes[:, 2:] > ann.boxes[:, :2]).all()) and ann.boxes.min() >= 0 and ann.boxes.max() <= 64
        for s, o, v in ann.hois:
            assert ann.labels[s] == 0, "subjects are people"
            assert SYNTH_OBJECTS[ann.labels[o]] in SYNTH_VALID[SYNTH_VERBS[v]]
            verbs_seen.add(SYNTH_VERBS[v])
    assert verbs_seen == set(SYNTH_VERBS)
    with pytest.raises(ValueError, match="split"):
        make_synth(CFG, 0, "val")


def test_crowded_scenes_keep_no_degenerate_object_box() -> None:
    """The bench's full-mode scenes (2 humans, 3 objects) put held objects at the frame's edge; once clipped, a box
    must keep at least MIN_OBJECT_PX of extent (this draw used to crash the renderer with a zero-width box)."""
    cfg = SynthConfig(image_size=128, n_train=200, n_test=4, max_humans=2, max_objects=3)
    data = make_synth(cfg, 0, "train")
    sizes = np.concatenate([ann.boxes[:, 2:] - ann.boxes[:, :2] for ann in data.annotations])
    assert sizes.min() >= MIN_OBJECT_PX
    assert max(len(ann.boxes) for ann in data.annotations) == 5


def _figure(facing: int = 1) -> _Figure:
    joints = {
        "head": (20.0, 10.0), "shoulder": (20.0, 15.0), "hip": (20.0, 30.0),
        "hand0": (18.0, 25.0), "hand1": (35.0, 15.0), "foot0": (18.0, 45.0), "foot1": (40.0, 38.0),
    }  # fmt: skip
    return _Figure(facing, joints, 3.0, 2.0)


def test_labels_follow_the_geometry() -> None:
    held = np.array([33.0, 12.0, 40.0, 18.0])  # contains hand1
    ball = np.array([39.0, 36.0, 45.0, 42.0])  # contains foot1
    seat = np.array([10.0, 30.0, 30.0, 45.0])  # top edge at the hip
    behind = np.array([0.0, 0.0, 6.0, 6.0])  # on the back side
    labels = _labels([_figure()], [held, ball, seat, behind], ["box", "ball", "box", "kite"], look=100.0)
    assert set(labels) == {(0, 0, "hold"), (0, 1, "kick"), (0, 2, "sit_on"), (0, 0, "look")}
    # facing the other way, the figure looks at the object behind it and still holds what its hand is in
    labels = _labels([_figure(-1)], [held, behind], ["box", "kite"], look=100.0)
    assert set(labels) == {(0, 0, "hold"), (0, 1, "look")}
    # a kicked box is not a kick (kick is defined for balls only); beyond look_distance nothing is looked at
    labels = _labels([_figure()], [ball], ["box"], look=5.0)
    assert labels == []


def test_to_targets_merges_verbs_per_pair() -> None:
    ann = HOIAnnotation(
        np.array([[0, 0, 10, 20], [10, 10, 20, 20]], np.float32),
        np.array([0, 2]),
        np.array([[0, 1, 0], [0, 1, 2], [0, -1, 1]]),
        20,
        20,
    )
    t = to_targets(ann, 4)
    assert t["verb_labels"].tolist() == [[1, 0, 1, 0], [0, 1, 0, 0]]
    assert torch.allclose(t["sub_boxes"][0], torch.tensor([0.25, 0.5, 0.5, 1.0]))
    assert t["obj_labels"].tolist() == [2, -1] and t["obj_boxes"][1].abs().sum() == 0


def _write(tmp: Path, data: object) -> Path:
    path = tmp / "ann.json"
    path.write_text(json.dumps(data))
    return path


GOOD = [
    {
        "file_name": "a.jpg",
        "annotations": [{"bbox": [1, 2, 30, 60], "category_id": 1}, {"bbox": [20, 20, 40, 40], "category_id": 37}],
        "hoi_annotation": [
            {"subject_id": 0, "object_id": 1, "category_id": 88},
            {"subject_id": 0, "object_id": 1, "category_id": 1},
        ],
    }
]


def test_hico_reader_on_a_fixture(tmp_path: Path) -> None:
    (ann,) = read_hico_det(_write(tmp_path, GOOD))
    assert ann.file_name == "a.jpg" and ann.labels.tolist() == [0, 32]  # COCO id 37 (sports ball) -> index 32
    assert ann.hois.tolist() == [[0, 1, 87], [0, 1, 0]] and (ann.width, ann.height) == (40, 60)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: {"images": d}, "a list of image entries"),
        (lambda d: [{**d[0], "annotations": None}], '"annotations" and "hoi_annotation" lists'),
        (lambda d: [{**d[0], "annotations": [{"bbox": [5, 5, 1, 1], "category_id": 1}]}], r"\[x1, y1, x2, y2\]"),
        (lambda d: [{**d[0], "annotations": [{"bbox": [0, 0, 1, 1], "category_id": 12}]}], "object ids"),
        (lambda d: [{**d[0], "hoi_annotation": [{"subject_id": 1, "object_id": 0, "category_id": 1}]}], "person box"),
        (
            lambda d: [{**d[0], "hoi_annotation": [{"subject_id": 0, "object_id": -1, "category_id": 1}]}],
            "instance index",
        ),
        (lambda d: [{**d[0], "hoi_annotation": [{"subject_id": 0, "object_id": 1, "category_id": 118}]}], "verb ids"),
        (lambda d: [{**d[0], "hoi_annotation": [{"subject_id": "0"}]}], "integer subject_id"),
    ],
)
def test_readers_reject_malformed_files(tmp_path: Path, mutate: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        read_hico_det(_write(tmp_path, mutate(GOOD)))  # type: ignore[operator]


def test_vcoco_reader_allows_missing_objects_and_bad_json_fails(tmp_path: Path) -> None:
    data = [{**GOOD[0], "hoi_annotation": [{"subject_id": 0, "object_id": -1, "category_id": 28}]}]
    (ann,) = read_vcoco(_write(tmp_path, data))
    assert ann.hois.tolist() == [[0, -1, 28]]
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="QPIC-style JSON"):
        read_vcoco(tmp_path / "bad.json")
