from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tailorkit.hoi.config import FilesConfig, SynthConfig
from tailorkit.hoi.data import (
    MIN_OBJECT_PX,
    SYNTH_OBJECTS,
    SYNTH_VALID,
    SYNTH_VERBS,
    HOIAnnotation,
    _Figure,
    _labels,
    load_qpic_split,
    make_synth,
    read_hico_det,
    read_vcoco,
    to_targets,
)
from tailorkit.hoi.evaluation import Detections, triplet_map

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


def test_held_look_changes_only_held_objects_deterministically() -> None:
    """held_look: the same scenes (boxes and labels) as without it; an image differs exactly when it has a `hold`
    label, and only inside the held objects' boxes (fist included: it sits at the hand, inside the box); a rerun
    under the same seed gives the same pixels."""
    cfg = SynthConfig(image_size=96, n_train=60, n_test=4)
    plain, held = make_synth(cfg, 3, "train"), make_synth(dataclasses.replace(cfg, held_look=True), 3, "train")
    again = make_synth(dataclasses.replace(cfg, held_look=True), 3, "train")
    assert plain.images is not None and held.images is not None and again.images is not None
    assert np.array_equal(held.images, again.images)
    n_held = 0
    hold = SYNTH_VERBS.index("hold")
    for i, (a, b) in enumerate(zip(plain.annotations, held.annotations, strict=True)):
        assert np.array_equal(a.boxes, b.boxes) and np.array_equal(a.hois, b.hois)
        changed = (plain.images[i] != held.images[i]).any(axis=2)
        held_objects = {int(o) for _, o, v in a.hois if v == hold}
        assert changed.any() == bool(held_objects), i
        if held_objects:
            n_held += 1
            inside = np.zeros_like(changed)
            for o in held_objects:
                x1, y1, x2, y2 = a.boxes[o]
                inside[int(y1) - 3 : int(np.ceil(y2)) + 3, int(x1) - 3 : int(np.ceil(x2)) + 3] = True
            assert changed[inside].sum() > 0.9 * changed.sum(), i  # (the fist may spill a little past the box)
    assert n_held >= 10


def test_a_held_object_is_drawn_differently_from_the_same_object_not_held() -> None:
    from tailorkit.hoi.data import _draw_object

    box = np.array([10.0, 8.0, 30.0, 40.0])
    out = []
    for held in (0, 1, -1, 1):
        img = Image.new("RGB", (48, 48), (100, 100, 100))
        _draw_object(img, "box", box, np.random.default_rng(5), "photo", held)
        out.append(np.asarray(img))
    plain, right, left, right_again = out
    assert not np.array_equal(plain, right) and not np.array_equal(right, left)
    assert np.array_equal(right, right_again)
    # tilted: the box's corners are background when held, object when not
    assert (plain[9, 11] != 100).any() and (right[9, 11] == 100).all()
    # shaded: where both cover the object, the held one is darker
    both = (plain != 100).any(axis=2) & (right != 100).any(axis=2)
    assert right[both].mean() < 0.75 * plain[both].mean()


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


def _photo_fixture(tmp: Path) -> Path:
    """Two images of different shapes and a QPIC-format HICO-DET file naming them."""
    Image.new("RGB", (80, 40), (200, 10, 10)).save(tmp / "wide.png")
    Image.new("RGB", (60, 60), (10, 200, 10)).save(tmp / "square.png")
    second = {**GOOD[0], "file_name": "square.png"}
    return _write(tmp, [{**GOOD[0], "file_name": "wide.png", "width": 999}, second])


def test_load_qpic_split_resizes_images_and_boxes_alike(tmp_path: Path) -> None:
    ann_path = _photo_fixture(tmp_path)
    files = FilesConfig(format="hico", test_annotations=str(ann_path), test_images=str(tmp_path), image_size=48)
    data = load_qpic_split(files, "test")
    assert data.images is not None and data.images.shape == (2, 48, 48, 3)
    assert tuple(data.images[0, 24, 24]) == (200, 10, 10) and tuple(data.images[1, 24, 24]) == (10, 200, 10)
    wide, square = data.annotations
    # the image's real size (80 x 40), not the file's stale "width", sets the scale: x * 48/80, y * 48/40
    assert np.allclose(wide.boxes[0], [1 * 0.6, 2 * 1.2, 30 * 0.6, 60 * 1.2]) and (wide.width, wide.height) == (48, 48)
    assert np.allclose(square.boxes[1], np.array([20, 20, 40, 40]) * 0.8)
    assert data.object_names[int(wide.labels[1])] == "sports ball" and len(data.object_names) == 80
    assert data.verb_names[87] == "hico_88" and len(data.verb_names) == 117
    assert len(load_qpic_split(dataclasses.replace(files, limit=1), "test").annotations) == 1
    with pytest.raises(ValueError, match="train_annotations: expected a path"):
        load_qpic_split(files, "train")
    (tmp_path / "square.png").unlink()
    with pytest.raises(ValueError, match=r"square.png: expected a readable image file"):
        load_qpic_split(files, "test")


def test_triplet_map_is_invariant_under_per_axis_scaling() -> None:
    """Why resizing to a square loses nothing in evaluation: IoU, hence every AP, is unchanged by scaling x and y."""
    rng = np.random.default_rng(0)
    anns, dets = [], []
    for _ in range(6):
        xy = rng.uniform(0, 50, (3, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(5, 30, (3, 2))], 1).astype(np.float32)
        anns.append(HOIAnnotation(boxes, np.array([0, 1, 2]), np.array([[0, 1, 0], [0, 2, 1]]), 80, 80))
        noisy = boxes + rng.normal(0, 4, boxes.shape).astype(np.float32)
        rows = [(noisy[0], noisy[o], int(lab), int(v), float(rng.uniform())) for o, lab, v in ((1, 1, 0), (2, 2, 1))]
        dets.append(Detections.from_rows(rows))
    sx, sy = 0.37, 2.9
    scale = np.array([sx, sy, sx, sy], dtype=np.float32)
    scaled_anns = [dataclasses.replace(a, boxes=a.boxes * scale) for a in anns]
    scaled_dets = [dataclasses.replace(d, sub_boxes=d.sub_boxes * scale, obj_boxes=d.obj_boxes * scale) for d in dets]
    before, after = triplet_map(dets, anns)["full"], triplet_map(scaled_dets, scaled_anns)["full"]
    assert 0 < before < 1 and after == pytest.approx(before)
