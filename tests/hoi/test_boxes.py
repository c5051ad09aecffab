from __future__ import annotations

import pytest
import torch

from tailorkit.hoi.boxes import box_area, box_iou, cxcywh_to_xyxy, generalized_box_iou, xyxy_to_cxcywh


def test_conversions_hand_values_and_round_trip() -> None:
    xyxy = torch.tensor([[1.0, 2.0, 5.0, 4.0]])
    assert torch.equal(xyxy_to_cxcywh(xyxy), torch.tensor([[3.0, 3.0, 4.0, 2.0]]))
    assert torch.equal(cxcywh_to_xyxy(torch.tensor([[3.0, 3.0, 4.0, 2.0]])), xyxy)
    boxes = torch.rand(10, 4)
    assert torch.allclose(xyxy_to_cxcywh(cxcywh_to_xyxy(boxes)), boxes, atol=1e-6)


def test_area_and_iou_hand_computed() -> None:
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 2.0, 2.0], [5.0, 5.0, 6.0, 6.0]])
    assert torch.equal(box_area(b), torch.tensor([4.0, 4.0, 1.0]))
    iou, union = box_iou(a, b)
    assert torch.allclose(iou, torch.tensor([[1 / 7, 1.0, 0.0]]))
    assert torch.allclose(union, torch.tensor([[7.0, 4.0, 5.0]]))


def test_giou_hand_computed() -> None:
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0]])
    # IoU 1/7, enclosing box 3x3 = 9, union 7: GIoU = 1/7 - 2/9 = -5/63
    assert generalized_box_iou(a, b).item() == pytest.approx(-5 / 63)
    # disjoint unit boxes one apart: IoU 0, union 2, enclosing 3 -> -1/3
    c = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    d = torch.tensor([[2.0, 0.0, 3.0, 1.0]])
    assert generalized_box_iou(c, d).item() == pytest.approx(-1 / 3)
    assert generalized_box_iou(a, a).item() == pytest.approx(1.0)


def test_giou_rejects_cxcywh_looking_boxes() -> None:
    with pytest.raises(ValueError, match="x2 >= x1"):
        generalized_box_iou(torch.tensor([[3.0, 3.0, 1.0, 1.0]]), torch.tensor([[0.0, 0.0, 1.0, 1.0]]))
    with pytest.raises(ValueError, match=r"\(\.\.\., 4\)"):
        box_area(torch.zeros(3, 5))
