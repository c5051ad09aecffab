"""HOI evaluation: HICO-DET triplet mAP (full / rare / non-rare), V-COCO role AP (scenarios 1 and 2), and AP of
the interacting humans and (per class) objects; plus QPIC's post-processing from model outputs to triplets.

Matching follows PASCAL VOC: detections of one category, over all images, in descending score; each takes the
unmatched-or-matched ground truth with the highest overlap in its image; it is a true positive if that overlap
reaches the threshold and the ground truth was not matched before (a second hit is a duplicate, a false positive).
For a triplet the overlap is min(IoU(human), IoU(object)) (HICO-DET, Chao et al., WACV 2018). AP is "voc" (all-point
interpolation, VOC 2010+) or "11point" (the QPIC / CDN Python evaluator); every returned number says which.
Categories without ground truth are left out of the means (HICO-DET evaluates its 600 categories, all present).

V-COCO role AP (Gupta & Malik 2015): per verb; a detection must find the agent (IoU >= thr) and the role: if the
ground truth has an object, the predicted object box must reach the IoU too; if it has none, scenario 1 requires
the prediction to say "no object" (an empty box) and scenario 2 ignores the predicted object.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tailorkit.hoi.boxes import cxcywh_to_xyxy
from tailorkit.hoi.data import HOIAnnotation

__all__ = [
    "Detections",
    "average_precision",
    "instance_aps",
    "postprocess",
    "role_ap_vcoco",
    "triplet_map",
]


@dataclass
class Detections:
    """Scored triplets of one image; an object box of all zeros (label -1) means "no object".

    Shapes:
        sub_boxes / obj_boxes (T, 4) xyxy pixels, obj_labels / verbs / scores (T,)
    """

    sub_boxes: np.ndarray
    obj_boxes: np.ndarray
    obj_labels: np.ndarray
    verbs: np.ndarray
    scores: np.ndarray

    @classmethod
    def from_rows(cls, rows: Sequence[tuple[Sequence[float], Sequence[float], int, int, float]]) -> Detections:
        """From (sub_box, obj_box, obj_label, verb, score) rows (handy for tests and user data)."""
        if not rows:
            return cls(np.zeros((0, 4)), np.zeros((0, 4)), np.zeros(0, int), np.zeros(0, int), np.zeros(0))
        sub, obj, lab, verb, score = zip(*rows, strict=True)
        return cls(
            np.array(sub, float), np.array(obj, float), np.array(lab, int), np.array(verb, int), np.array(score, float)
        )


def average_precision(tp: np.ndarray, n_gt: int, method: str = "voc") -> float:
    """AP from true-positive flags sorted by descending score; NaN when there is no ground truth."""
    if method not in ("voc", "11point"):
        raise ValueError(f"AP method: expected 'voc' or '11point', got {method!r}")
    if n_gt <= 0:
        return float("nan")
    tp = np.asarray(tp, dtype=float)
    if tp.size == 0:
        return 0.0
    ctp = np.cumsum(tp)
    recall = ctp / n_gt
    precision = ctp / np.arange(1, tp.size + 1)
    if method == "11point":
        return float(
            np.mean([precision[recall >= t].max() if (recall >= t).any() else 0.0 for t in np.linspace(0, 1, 11)])
        )
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    idx = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[idx + 1] - mrec[idx]) * mpre[idx + 1]))


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one xyxy box with (N, 4) boxes."""
    if boxes.size == 0:
        return np.zeros(0)
    lt = np.maximum(box[:2], boxes[:, :2])
    rb = np.minimum(box[2:], boxes[:, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area = (box[2:] - box[:2]).clip(0).prod()
    areas = (boxes[:, 2:] - boxes[:, :2]).clip(0).prod(-1)
    union = area + areas - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _ap_by_category(
    dets: dict[object, list[tuple[float, int, np.ndarray]]],
    gts: dict[object, dict[int, list[np.ndarray]]],
    overlap: object,
    iou: float,
    method: str,
) -> dict[object, float]:
    """VOC matching per category: dets[c] = [(score, image, payload)], gts[c][image] = [payload]."""
    out = {}
    for cat, per_image in gts.items():
        n_gt = sum(len(v) for v in per_image.values())
        used = {img: np.zeros(len(v), bool) for img, v in per_image.items()}
        ranked = sorted(dets.get(cat, []), key=lambda d: -d[0])
        tp = np.zeros(len(ranked))
        for k, (_, img, payload) in enumerate(ranked):
            cands = per_image.get(img, [])
            if not cands:
                continue
            scores = np.array([overlap(payload, g) for g in cands])  # type: ignore[operator]
            best = int(np.argmax(scores))
            if scores[best] >= iou and not used[img][best]:
                tp[k] = 1
                used[img][best] = True
        out[cat] = average_precision(tp, n_gt, method)
    return out


def _pair_overlap(pred: np.ndarray, gt: np.ndarray) -> float:
    return float(min(_iou(pred[:4], gt[None, :4])[0], _iou(pred[4:], gt[None, 4:])[0]))


def triplet_map(
    detections: Sequence[Detections],
    annotations: Sequence[HOIAnnotation],
    *,
    iou: float = 0.5,
    ap: str = "voc",
    rare: set[tuple[int, int]] | None = None,
) -> dict[str, object]:
    """HICO-DET triplet mAP over (verb, object class) categories with ground truth.

    Args:
        rare: The rare categories (verb, object class); default none, so "rare" is NaN and non-rare = full.

    Returns:
        {"full", "rare", "non_rare": float, "per_category": {(verb, obj): AP}, "ap": method}
    """
    if len(detections) != len(annotations):
        raise ValueError(
            f"triplet_map: expected one Detections per annotation, got {len(detections)} vs {len(annotations)}"
        )
    gts: dict[object, dict[int, list[np.ndarray]]] = {}
    for i, ann in enumerate(annotations):
        for s, o, v in ann.hois:
            if o < 0:
                continue
            key = (int(v), int(ann.labels[o]))
            gts.setdefault(key, {}).setdefault(i, []).append(np.concatenate([ann.boxes[s], ann.boxes[o]]))
    dets: dict[object, list[tuple[float, int, np.ndarray]]] = {}
    for i, det in enumerate(detections):
        for t in range(len(det.scores)):
            key = (int(det.verbs[t]), int(det.obj_labels[t]))
            dets.setdefault(key, []).append(
                (float(det.scores[t]), i, np.concatenate([det.sub_boxes[t], det.obj_boxes[t]]))
            )
    per = _ap_by_category(dets, gts, _pair_overlap, iou, ap)
    rare = rare or set()

    def mean(keys: list[object]) -> float:
        return float(np.mean([per[k] for k in keys])) if keys else float("nan")

    return {
        "full": mean(list(per)),
        "rare": mean([k for k in per if k in rare]),
        "non_rare": mean([k for k in per if k not in rare]),
        "per_category": per,
        "ap": ap,
    }


def role_ap_vcoco(
    detections: Sequence[Detections],
    annotations: Sequence[HOIAnnotation],
    *,
    scenario: int = 1,
    iou: float = 0.5,
    ap: str = "voc",
) -> dict[str, object]:
    """V-COCO role AP per verb and its mean ("role_map") in scenario 1 or 2."""
    if scenario not in (1, 2):
        raise ValueError(f"scenario: expected 1 or 2, got {scenario!r}")
    gts: dict[object, dict[int, list[np.ndarray]]] = {}
    for i, ann in enumerate(annotations):
        for s, o, v in ann.hois:
            obj = ann.boxes[o] if o >= 0 else np.zeros(4, np.float32)
            gts.setdefault(int(v), {}).setdefault(i, []).append(np.concatenate([ann.boxes[s], obj]))
    dets: dict[object, list[tuple[float, int, np.ndarray]]] = {}
    for i, det in enumerate(detections):
        for t in range(len(det.scores)):
            payload = np.concatenate([det.sub_boxes[t], det.obj_boxes[t]])
            dets.setdefault(int(det.verbs[t]), []).append((float(det.scores[t]), i, payload))

    def overlap(pred: np.ndarray, gt: np.ndarray) -> float:
        agent = float(_iou(pred[:4], gt[None, :4])[0])
        if np.any(gt[4:] != 0):
            return min(agent, float(_iou(pred[4:], gt[None, 4:])[0]))
        if scenario == 2 or not np.any(pred[4:] != 0):
            return agent
        return 0.0

    per = _ap_by_category(dets, gts, overlap, iou, ap)
    return {"role_map": float(np.mean(list(per.values()))) if per else float("nan"), "per_verb": per, "ap": ap}


def instance_aps(
    detections: Sequence[Detections],
    annotations: Sequence[HOIAnnotation],
    *,
    iou: float = 0.5,
    ap: str = "voc",
) -> dict[str, object]:
    """AP of interacting humans and per-class mAP of interacting objects.

    Each image's triplets give instance detections: identical predicted boxes (one query's box repeated over verbs)
    merge, keeping the highest triplet score. Ground truth: the humans and objects that take part in an interaction.

    Returns:
        {"human_ap": float, "object_map": float, "object_ap": {class: AP}, "ap": method}
    """
    gts: dict[object, dict[int, list[np.ndarray]]] = {}
    dets: dict[object, list[tuple[float, int, np.ndarray]]] = {}
    for i, ann in enumerate(annotations):
        subjects = {int(s) for s, _, _ in ann.hois}
        objects = {int(o) for _, o, _ in ann.hois if o >= 0}
        for s in sorted(subjects):
            gts.setdefault("human", {}).setdefault(i, []).append(ann.boxes[s])
        for o in sorted(objects):
            gts.setdefault(int(ann.labels[o]), {}).setdefault(i, []).append(ann.boxes[o])
    for i, det in enumerate(detections):
        best: dict[tuple[object, tuple[float, ...]], float] = {}
        box: Any
        for t in range(len(det.scores)):
            items: list[tuple[object, np.ndarray]] = [("human", det.sub_boxes[t])]
            if det.obj_labels[t] >= 0:
                items.append((int(det.obj_labels[t]), det.obj_boxes[t]))
            for cat, box in items:
                key = (cat, tuple(np.round(box, 4).tolist()))
                best[key] = max(best.get(key, -np.inf), float(det.scores[t]))
        for (cat, box), score in best.items():
            dets.setdefault(cat, []).append((score, i, np.array(box)))
    per = _ap_by_category(dets, gts, lambda p, g: float(_iou(p, g[None])[0]), iou, ap)
    human = per.pop("human", float("nan"))
    return {
        "human_ap": human,
        "object_map": float(np.mean(list(per.values()))) if per else float("nan"),
        "object_ap": per,
        "ap": ap,
    }


@torch.no_grad()
def postprocess(outputs: dict[str, Any], sizes: Sequence[tuple[int, int]], top_k: int = 30) -> list[Detections]:
    """QPIC's PostProcessHOI: object score = max non-"no pair" class probability; each (query, verb) is a triplet
    scored sigmoid(verb) x object score; the `top_k` best per image are kept. `sizes` are (width, height).

    Shapes:
        outputs: pred_obj_logits (B, Q, C+1), pred_verb_logits (B, Q, V), boxes (B, Q, 4) -> B Detections
    """
    logits = outputs["pred_obj_logits"]
    assert isinstance(logits, torch.Tensor)
    obj_scores, obj_labels = logits.softmax(-1)[..., :-1].max(-1)
    verb_scores = outputs["pred_verb_logits"].sigmoid() * obj_scores[..., None]
    out = []
    for b, (w, h) in enumerate(sizes):
        scale = torch.tensor([w, h, w, h], dtype=logits.dtype, device=logits.device)
        sub = cxcywh_to_xyxy(outputs["pred_sub_boxes"][b]) * scale
        obj = cxcywh_to_xyxy(outputs["pred_obj_boxes"][b]) * scale
        scores = verb_scores[b].flatten()
        k = min(top_k, scores.numel())
        top, idx = scores.topk(k)
        num_verbs = verb_scores.shape[-1]
        q, v = idx // num_verbs, idx % num_verbs
        out.append(
            Detections(
                sub[q].cpu().numpy(),
                obj[q].cpu().numpy(),
                obj_labels[b, q].cpu().numpy(),
                v.cpu().numpy(),
                top.cpu().numpy(),
            )
        )
    return out
