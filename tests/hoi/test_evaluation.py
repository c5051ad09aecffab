from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tailorkit.hoi.data import HOIAnnotation
from tailorkit.hoi.evaluation import (
    Detections,
    average_precision,
    instance_aps,
    postprocess,
    role_ap_vcoco,
    triplet_map,
)

H = [10.0, 10.0, 50.0, 90.0]
OB = [60.0, 40.0, 80.0, 60.0]
OFF = [0.0, 0.0, 5.0, 5.0]  # IoU 0 with both


def _ann(verb: int = 1, obj_label: int = 2, with_object: bool = True) -> HOIAnnotation:
    return HOIAnnotation(
        np.array([H, OB], np.float32),
        np.array([0, obj_label]),
        np.array([[0, 1 if with_object else -1, verb]]),
        100,
        100,
    )


def test_average_precision_known_values() -> None:
    assert average_precision(np.array([1, 1]), 2) == 1.0
    assert average_precision(np.array([]), 3) == 0.0
    assert math.isnan(average_precision(np.array([1]), 0))
    # tp [1, 0, 1] of 2: recall .5, .5, 1; precision 1, .5, 2/3 -> VOC .5 * 1 + .5 * 2/3
    assert average_precision(np.array([1, 0, 1]), 2) == pytest.approx(0.5 + 1 / 3)
    # 11-point: 6 thresholds (0 .. .5) at precision 1, 5 (.6 .. 1) at 2/3
    assert average_precision(np.array([1, 0, 1]), 2, "11point") == pytest.approx((6 + 5 * 2 / 3) / 11)
    with pytest.raises(ValueError, match="voc"):
        average_precision(np.array([1]), 1, "coco")


def test_triplet_map_perfect_empty_duplicate_wrong_verb() -> None:
    anns = [_ann(), _ann()]
    perfect = [Detections.from_rows([(H, OB, 2, 1, 0.9)]) for _ in anns]
    assert triplet_map(perfect, anns)["full"] == 1.0
    empty = [Detections.from_rows([]) for _ in anns]
    assert triplet_map(empty, anns)["full"] == 0.0
    # the duplicate in image 0 outranks image 1's true positive: tp [1, 0, 1] -> AP 5/6
    dup = [Detections.from_rows([(H, OB, 2, 1, 0.9), (H, OB, 2, 1, 0.8)]), Detections.from_rows([(H, OB, 2, 1, 0.7)])]
    assert triplet_map(dup, anns)["full"] == pytest.approx(5 / 6)
    # right boxes, wrong verb: the annotated category gets nothing; the wrong one has no ground truth (ignored)
    wrong = [Detections.from_rows([(H, OB, 2, 0, 0.9)]) for _ in anns]
    result = triplet_map(wrong, anns)
    assert result["full"] == 0.0 and set(result["per_category"]) == {(1, 2)}  # type: ignore[arg-type]
    # right verb, object box off: min(IoU_h, IoU_o) = 0
    miss = [Detections.from_rows([(H, OFF, 2, 1, 0.9)]) for _ in anns]
    assert triplet_map(miss, anns)["full"] == 0.0


def test_triplet_map_rare_split() -> None:
    anns = [_ann(verb=1), _ann(verb=0)]
    dets = [Detections.from_rows([(H, OB, 2, 1, 0.9)]), Detections.from_rows([])]
    result = triplet_map(dets, anns, rare={(0, 2)})
    assert result["full"] == 0.5 and result["rare"] == 0.0 and result["non_rare"] == 1.0
    assert math.isnan(triplet_map(dets, anns)["rare"])  # type: ignore[arg-type]


def test_vcoco_role_ap_scenarios() -> None:
    anns = [_ann(with_object=False)]
    with_box = [Detections.from_rows([(H, OB, 2, 1, 0.9)])]
    no_box = [Detections.from_rows([(H, [0, 0, 0, 0], -1, 1, 0.9)])]
    assert role_ap_vcoco(with_box, anns, scenario=1)["role_map"] == 0.0
    assert role_ap_vcoco(with_box, anns, scenario=2)["role_map"] == 1.0
    assert role_ap_vcoco(no_box, anns, scenario=1)["role_map"] == 1.0
    anns_obj = [_ann()]
    assert role_ap_vcoco(no_box, anns_obj, scenario=2)["role_map"] == 0.0  # the role exists and was missed
    with pytest.raises(ValueError, match="scenario"):
        role_ap_vcoco(no_box, anns, scenario=3)


def test_instance_aps_merge_repeated_boxes() -> None:
    anns = [_ann()]
    # one query's boxes repeated over two verbs count once; a second, wrong human box is a false positive below it
    dets = [Detections.from_rows([(H, OB, 2, 1, 0.9), (H, OB, 2, 0, 0.5), (OFF, OB, 2, 1, 0.3)])]
    r = instance_aps(dets, anns)
    assert r["human_ap"] == 1.0 and r["object_map"] == 1.0
    dets = [Detections.from_rows([(OFF, OB, 3, 1, 0.9)])]  # object found with the wrong class
    r = instance_aps(dets, anns)
    assert r["human_ap"] == 0.0 and r["object_map"] == 0.0


def test_postprocess_picks_the_confident_triplet() -> None:
    q, c, v = 3, 2, 2
    logits = torch.full((1, q, c + 1), -5.0)
    logits[0, :, c] = 5.0
    logits[0, 1] = torch.tensor([-5.0, 5.0, -5.0])  # query 1: object class 1
    verbs = torch.full((1, q, v), -5.0)
    verbs[0, 1, 0] = 5.0
    boxes = torch.tensor([[[0.5, 0.5, 0.2, 0.4]] * q])
    out = postprocess(
        {"pred_obj_logits": logits, "pred_verb_logits": verbs, "pred_sub_boxes": boxes, "pred_obj_boxes": boxes},
        [(100, 50)],
        top_k=2,
    )[0]
    assert len(out.scores) == 2 and out.verbs[0] == 0 and out.obj_labels[0] == 1
    assert np.allclose(out.sub_boxes[0], [40, 15, 60, 35])
    assert out.scores[0] > 0.9 > out.scores[1]
