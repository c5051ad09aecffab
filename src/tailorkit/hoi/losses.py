"""QPIC / CDN set losses for HOI triplets, with auxiliary losses on every decoder layer.

After Hungarian matching (matcher.py), per image (QPIC `SetCriterionHOI`):
- object class: cross-entropy over C object classes + the "no pair" class (weight `eos_coef` on that class);
- verbs: the focal-style loss of QPIC/CDN (CornerNet's `_neg_loss` on sigmoid scores, normalised by positives);
- boxes: L1 and 1 - GIoU on the matched human and object boxes, normalised by the number of pairs (object terms
  only for pairs that have an object).
The total is the weighted sum over the final layer and every auxiliary layer (`aux_outputs`). `loss_terms` also
returns the verb (interaction) loss on its own, which the stop-gradient tests backpropagate alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from tailorkit.hoi.boxes import cxcywh_to_xyxy, generalized_box_iou
from tailorkit.hoi.config import LossConfig
from tailorkit.hoi.matcher import HungarianMatcher, Target

__all__ = ["SetCriterion", "focal_verb_loss"]


def focal_verb_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """QPIC's `_neg_loss`: -sum(t log p (1-p)^2 + (1-t) log(1-p) p^2) / max(#positives, 1).

    Shapes:
        logits, targets: (N, V) -> scalar
    """
    p = logits.sigmoid().clamp(1e-4, 1 - 1e-4)
    t = targets.to(p.dtype)
    pos = torch.log(p) * (1 - p) ** 2 * t
    neg = torch.log(1 - p) * p**2 * (1 - t)
    return -(pos.sum() + neg.sum()) / t.sum().clamp(min=1.0)


@dataclass
class SetCriterion:
    """Matches, then sums the weighted losses over the final and auxiliary outputs.

    Attributes:
        num_obj_classes: C (the "no pair" class is index C).
        matcher: The Hungarian matcher.
        weights: Loss weights (QPIC's defaults; `aux` is read by the training loop).
    """

    num_obj_classes: int
    matcher: HungarianMatcher = field(default_factory=HungarianMatcher)
    weights: LossConfig = field(default_factory=LossConfig)

    def single(self, outputs: dict[str, torch.Tensor], targets: list[Target]) -> dict[str, torch.Tensor]:
        """The unweighted loss terms of one layer's outputs."""
        indices = self.matcher(outputs, targets)
        logits = outputs["pred_obj_logits"]
        device = logits.device
        batch_idx = torch.cat([torch.full_like(src, i) for i, (src, _) in enumerate(indices)])
        src_idx = torch.cat([src for src, _ in indices])
        target_classes = torch.full(logits.shape[:2], self.num_obj_classes, dtype=torch.long, device=device)
        matched_labels = torch.cat([t["obj_labels"][j] for t, (_, j) in zip(targets, indices, strict=True)])
        # a pair without an object (label -1, V-COCO agent-only roles) is trained towards the "no object" class
        no_obj = (matched_labels < 0) | (matched_labels > self.num_obj_classes)
        target_classes[batch_idx, src_idx] = torch.where(no_obj, self.num_obj_classes, matched_labels)
        empty = torch.ones(self.num_obj_classes + 1, device=device, dtype=logits.dtype)
        empty[-1] = self.weights.eos_coef
        loss_ce = F.cross_entropy(logits.transpose(1, 2), target_classes, weight=empty)

        verb_targets = torch.zeros_like(outputs["pred_verb_logits"])
        matched_verbs = torch.cat([t["verb_labels"][j] for t, (_, j) in zip(targets, indices, strict=True)])
        verb_targets[batch_idx, src_idx] = matched_verbs.to(verb_targets.dtype)
        loss_verb = focal_verb_loss(outputs["pred_verb_logits"], verb_targets)

        n = max(int(src_idx.numel()), 1)
        sub_p = outputs["pred_sub_boxes"][batch_idx, src_idx]
        obj_p = outputs["pred_obj_boxes"][batch_idx, src_idx]
        sub_t = torch.cat([t["sub_boxes"][j] for t, (_, j) in zip(targets, indices, strict=True)]).to(sub_p.dtype)
        obj_t = torch.cat([t["obj_boxes"][j] for t, (_, j) in zip(targets, indices, strict=True)]).to(obj_p.dtype)
        has_obj = (obj_t != 0).any(-1).to(obj_p.dtype)
        zero = logits.sum() * 0
        if src_idx.numel():
            l1 = (
                F.l1_loss(sub_p, sub_t, reduction="sum")
                + (F.l1_loss(obj_p, obj_t, reduction="none").sum(-1) * has_obj).sum()
            )
            g_sub = torch.diag(generalized_box_iou(cxcywh_to_xyxy(sub_p), cxcywh_to_xyxy(sub_t)))
            g_obj = torch.diag(generalized_box_iou(cxcywh_to_xyxy(obj_p), cxcywh_to_xyxy(obj_t)))
            giou = (1 - g_sub).sum() + ((1 - g_obj) * has_obj).sum()
        else:
            l1, giou = zero, zero
        return {"obj_ce": loss_ce, "verb": loss_verb, "bbox": l1 / n, "giou": giou / n}

    def loss_terms(self, outputs: dict[str, Any], targets: list[Target]) -> dict[str, torch.Tensor]:
        """Unweighted terms summed over the final and auxiliary layers (keys obj_ce, verb, bbox, giou)."""
        layers = [outputs, *outputs.get("aux_outputs", [])]
        total: dict[str, torch.Tensor] = {}
        for layer in layers:
            tensors = {k: v for k, v in layer.items() if isinstance(v, torch.Tensor)}
            for key, value in self.single(tensors, targets).items():
                total[key] = total[key] + value if key in total else value
        return total

    def __call__(self, outputs: dict[str, Any], targets: list[Target]) -> tuple[torch.Tensor, dict[str, float]]:
        """The weighted total loss and its terms as floats (for logging)."""
        terms = self.loss_terms(outputs, targets)
        w = self.weights
        loss = w.obj_ce * terms["obj_ce"] + w.verb * terms["verb"] + w.bbox * terms["bbox"] + w.giou * terms["giou"]
        return loss, {k: float(v.detach()) for k, v in terms.items()}
