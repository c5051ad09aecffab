"""Hungarian matching of predicted HOI triplets to ground-truth pairs (QPIC / CDN style; scipy's solver).

QPIC (Tamura et al., CVPR 2021, `hitachi-rd-cv/qpic`) matches each ground-truth (human, object, verbs) pair to one
query by minimising

    C = w_cls * (-p_obj[class]) + w_verb * C_verb + w_bbox * max(L1_sub, L1_obj) + w_giou * max(-GIoU_sub, -GIoU_obj)

where C_verb = -(p . t / |t| + (1 - p) . (1 - t) / |1 - t|) / 2 on sigmoid verb scores p and the multi-hot target t.
A pair without an object (V-COCO's agent-only roles, an all-zero object box) leaves the object terms out.
Predictions and targets use image-normalised cxcywh boxes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from tailorkit.hoi.boxes import cxcywh_to_xyxy, generalized_box_iou

__all__ = ["HungarianMatcher", "hungarian", "pair_cost"]

Target = dict[str, torch.Tensor]


def hungarian(cost: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost assignment of the rows (predictions) to columns (targets); returns (rows, cols), sorted by row.

    A rectangular matrix assigns min(N, M) pairs. Raises ValueError on NaN/inf costs (they usually mean a loss blew
    up), naming the expected form.
    """
    c = cost.detach().cpu().numpy() if isinstance(cost, torch.Tensor) else np.asarray(cost, dtype=float)
    if c.ndim != 2:
        raise ValueError(f"hungarian: expected a 2-D cost matrix (predictions x targets), got shape {c.shape}")
    if c.size and not np.isfinite(c).all():
        raise ValueError("hungarian: expected finite costs, got NaN or inf")
    rows, cols = linear_sum_assignment(c)
    return rows.astype(np.int64), cols.astype(np.int64)


@dataclass(frozen=True)
class HungarianMatcher:
    """The QPIC matching cost with its default weights (CDN uses the same).

    Attributes:
        cost_class: Weight of the object-class term.
        cost_verb: Weight of the verb term.
        cost_bbox: Weight of the L1 box term.
        cost_giou: Weight of the GIoU term.
    """

    cost_class: float = 1.0
    cost_verb: float = 1.0
    cost_bbox: float = 2.5
    cost_giou: float = 1.0

    @torch.no_grad()
    def __call__(
        self, outputs: dict[str, torch.Tensor], targets: list[Target]
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """One (query indices, target indices) pair of long tensors per image.

        Shapes:
            outputs: pred_obj_logits (B, Q, C+1), pred_verb_logits (B, Q, V), pred_sub_boxes / pred_obj_boxes (B, Q, 4)
            targets: per image obj_labels (K,), verb_labels (K, V), sub_boxes / obj_boxes (K, 4)
        """
        # DETR's batching: one cost matrix of all queries against all targets, then a block per image.
        b, q = outputs["pred_obj_logits"].shape[:2]
        flat = {k: v.flatten(0, 1) for k, v in outputs.items() if isinstance(v, torch.Tensor)}
        joined = {
            k: torch.cat([t[k] for t in targets]) for k in ("obj_labels", "verb_labels", "sub_boxes", "obj_boxes")
        }
        cost = pair_cost(flat, joined, self).view(b, q, -1).cpu()
        device = outputs["pred_obj_logits"].device
        out = []
        start = 0
        for i, target in enumerate(targets):
            k = int(target["obj_labels"].shape[0])
            rows, cols = hungarian(cost[i, :, start : start + k])
            start += k
            out.append((torch.as_tensor(rows, device=device), torch.as_tensor(cols, device=device)))
        return out


def pair_cost(pred: dict[str, torch.Tensor], target: Target, w: HungarianMatcher) -> torch.Tensor:
    """The matching cost matrix of one image.

    Shapes:
        pred: pred_obj_logits (Q, C+1), pred_verb_logits (Q, V), pred_sub_boxes / pred_obj_boxes (Q, 4)
        target: obj_labels (K,), verb_labels (K, V), sub_boxes / obj_boxes (K, 4) -> (Q, K)
    """
    q = pred["pred_obj_logits"].shape[0]
    k = target["obj_labels"].shape[0]
    if k == 0:
        return pred["pred_obj_logits"].new_zeros((q, 0))
    prob = pred["pred_obj_logits"].softmax(-1)
    has_obj = (target["obj_boxes"] != 0).any(-1)
    labels = target["obj_labels"].clamp(max=prob.shape[-1] - 1)
    cost_class = -prob[:, labels] * has_obj.to(prob.dtype)

    p = pred["pred_verb_logits"].sigmoid()
    t = target["verb_labels"].to(p.dtype)
    pos = p @ t.T / t.sum(-1).clamp(min=1e-6)
    neg = (1 - p) @ (1 - t).T / (1 - t).sum(-1).clamp(min=1e-6)
    cost_verb = -(pos + neg) / 2

    sub_l1 = torch.cdist(pred["pred_sub_boxes"], target["sub_boxes"].to(p.dtype), p=1)
    obj_l1 = torch.cdist(pred["pred_obj_boxes"], target["obj_boxes"].to(p.dtype), p=1) * has_obj.to(p.dtype)
    cost_bbox = torch.max(sub_l1, obj_l1)
    sub_giou = -generalized_box_iou(cxcywh_to_xyxy(pred["pred_sub_boxes"]), cxcywh_to_xyxy(target["sub_boxes"]))
    obj_giou = -generalized_box_iou(cxcywh_to_xyxy(pred["pred_obj_boxes"]), cxcywh_to_xyxy(target["obj_boxes"]))
    obj_giou = torch.where(has_obj[None, :], obj_giou, sub_giou)
    cost_giou = torch.max(sub_giou, obj_giou)
    return w.cost_class * cost_class + w.cost_verb * cost_verb + w.cost_bbox * cost_bbox + w.cost_giou * cost_giou
