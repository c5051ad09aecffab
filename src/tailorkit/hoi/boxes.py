"""Box operations in plain torch (no torchvision): format conversion, area, IoU and generalised IoU.

Boxes are float tensors, either `xyxy` (x1, y1, x2, y2) or `cxcywh` (centre x, centre y, width, height), in any unit
(pixels or image-normalised [0, 1]). GIoU follows Rezatofighi et al., CVPR 2019: IoU - (|C| - |A u B|) / |C| with C
the smallest enclosing box.
"""

from __future__ import annotations

import torch

__all__ = ["box_area", "box_iou", "cxcywh_to_xyxy", "generalized_box_iou", "pairwise_iou", "xyxy_to_cxcywh"]


def _check(boxes: torch.Tensor, what: str) -> None:
    if boxes.shape[-1] != 4:
        raise ValueError(f"{what}: expected boxes of shape (..., 4), got {tuple(boxes.shape)}")


def cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """Shapes: (..., 4) -> (..., 4)."""
    _check(boxes, "cxcywh_to_xyxy")
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=-1)


def xyxy_to_cxcywh(boxes: torch.Tensor) -> torch.Tensor:
    """Shapes: (..., 4) -> (..., 4)."""
    _check(boxes, "xyxy_to_cxcywh")
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], dim=-1)


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Area of xyxy boxes (0 for degenerate ones). Shapes: (..., 4) -> (...)."""
    _check(boxes, "box_area")
    return (boxes[..., 2] - boxes[..., 0]).clamp(min=0) * (boxes[..., 3] - boxes[..., 1]).clamp(min=0)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairwise IoU and union of xyxy boxes.

    Shapes:
        a: (N, 4), b: (M, 4) -> iou (N, M), union (N, M)
    """
    _check(a, "box_iou a")
    _check(b, "box_iou b")
    area_a, area_b = box_area(a), box_area(b)
    lt = torch.max(a[:, None, :2], b[None, :, :2])
    rb = torch.min(a[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b[None, :] - inter
    iou = inter / union.clamp(min=torch.finfo(a.dtype).tiny)
    return iou, union


def pairwise_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of xyxy boxes, pairwise (N, M); empty inputs give an empty matrix."""
    return box_iou(a, b)[0]


def generalized_box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise generalised IoU of xyxy boxes, in [-1, 1].

    Raises:
        ValueError: a box with x2 < x1 or y2 < y1 (GIoU is undefined there; it usually means cxcywh was passed).

    Shapes:
        a: (N, 4), b: (M, 4) -> (N, M)
    """
    for name, boxes in (("a", a), ("b", b)):
        _check(boxes, f"generalized_box_iou {name}")
        if boxes.numel() and not bool((boxes[:, 2:] >= boxes[:, :2]).all()):
            raise ValueError(f"generalized_box_iou {name}: expected xyxy boxes with x2 >= x1 and y2 >= y1")
    iou, union = box_iou(a, b)
    lt = torch.min(a[:, None, :2], b[None, :, :2])
    rb = torch.max(a[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    enclosing = (wh[..., 0] * wh[..., 1]).clamp(min=torch.finfo(a.dtype).tiny)
    return iou - (enclosing - union) / enclosing
