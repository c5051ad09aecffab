"""Dense tasks: output channels, losses, metrics and the multi-task relative improvement Delta_m.

Follows the PASCAL-Context multi-task benchmark of ASTMT/ATRC as MTLoRA's open code runs it, re-implemented from the
description, not copied (docs/adapters.md#tasks-metrics-delta_m):

- semseg and parts: softmax cross-entropy with ignore label 255; metric mIoU over classes present (in percent);
- saliency: balanced binary cross-entropy (positive weight = fraction of negatives in the batch); metrics: the
  best-threshold foreground IoU averaged over images (``sal_miou``, percent; thresholds 0.05..0.95) and max
  F-measure with beta^2 = 0.3 (``sal_maxf``);
- normals: L1 between the L2-normalised prediction and the target on valid pixels; metrics mean angular error and
  RMSE of the angle in degrees (lower is better); Delta_m uses the mean (``normals_mean``);
- depth: L1 on valid pixels (target > 0); metric RMSE; edges: balanced BCE with positive weight 0.95 (ASTMT);
  metric best-threshold pixel-exact F (no matching tolerance: a simplification of ODS-F, marked [inferred]).
- Loss weights (MTLoRA ``main.py``): semseg 1, parts 2, saliency 5, normals 10, depth 1, edges 50.

Delta_m = (1/T) sum_t (-1)^{l_t} (M_t - M_t^ST) / M_t^ST in percent, l_t = 1 when lower is better
(``evaluation/evaluate_utils.py`` of MTLoRA; the tests recompute the Polyhistor benchmark's published table).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = [
    "IGNORE",
    "TASKS",
    "TaskMeter",
    "TaskSpec",
    "delta_m",
    "task_loss",
]

IGNORE = 255
_SAL_THRESHOLDS = torch.linspace(0.05, 0.95, 19)


@dataclass(frozen=True)
class TaskSpec:
    """One dense task: decoder output channels, loss weight, its headline metric and whether lower is better."""

    name: str
    kind: str  # "classes", "binary", "normals", "regression"
    weight: float
    metric: str
    lower_is_better: bool


TASKS: dict[str, TaskSpec] = {
    "semseg": TaskSpec("semseg", "classes", 1.0, "semseg_miou", False),
    "parts": TaskSpec("parts", "classes", 2.0, "parts_miou", False),
    "saliency": TaskSpec("saliency", "binary", 5.0, "sal_miou", False),
    "normals": TaskSpec("normals", "normals", 10.0, "normals_mean", True),
    "depth": TaskSpec("depth", "regression", 1.0, "depth_rmse", True),
    "edges": TaskSpec("edges", "binary", 50.0, "edge_f", False),
}


def task_spec(name: str) -> TaskSpec:
    """The spec of task ``name``; a family name with a suffix (``semseg_3`` for cost runs) maps to its family."""
    base = name if name in TASKS else name.rsplit("_", 1)[0]
    if base not in TASKS:
        raise ValueError(f"unknown task {name!r}; expected one of {', '.join(TASKS)} (optionally with _N suffix)")
    return TASKS[base]


def _balanced_bce(logits: torch.Tensor, target: torch.Tensor, pos_weight: float | None) -> torch.Tensor:
    """Balanced BCE: w on positives, 1 - w on negatives; w = negatives' share of pixels unless given."""
    if pos_weight is None:
        w = 1.0 - target.mean()
    else:
        w = torch.tensor(pos_weight, device=logits.device, dtype=logits.dtype)
    per = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return (torch.where(target > 0.5, w, 1.0 - w) * per).mean()


def task_loss(name: str, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Unweighted loss of task ``name``.

    Shapes:
        classes: pred (B, C, H, W), target (B, H, W) int64 (255 ignored)
        binary, regression: pred (B, 1, H, W), target (B, H, W)
        normals: pred (B, 3, H, W), target (B, H, W, 3) (all-zero vectors are ignored)
    """
    spec = task_spec(name)
    if spec.kind == "classes":
        if (target != IGNORE).any():
            return F.cross_entropy(pred, target, ignore_index=IGNORE)
        return pred.sum() * 0.0  # a batch with every pixel ignored contributes nothing (and no nan)
    if spec.kind == "binary":
        return _balanced_bce(pred[:, 0], target, 0.95 if spec.name == "edges" else None)
    if spec.kind == "normals":
        unit = F.normalize(pred, dim=1).permute(0, 2, 3, 1)
        valid = target.norm(dim=-1) > 0
        return (unit - target).abs().sum(-1)[valid].mean() if valid.any() else pred.sum() * 0.0
    valid = target > 0
    return (pred[:, 0] - target).abs()[valid].mean() if valid.any() else pred.sum() * 0.0


class TaskMeter:
    """Accumulates one task's metrics over batches (confusion matrices, threshold sweeps, angle sums).

    Args:
        name: Task name (a TASKS key, optionally with a ``_N`` suffix).
        n_classes: Classes of a ``classes`` task (ignored otherwise).
    """

    def __init__(self, name: str, n_classes: int = 0) -> None:
        self.spec = task_spec(name)
        self.n_classes = n_classes
        if self.spec.kind == "classes" and n_classes < 2:
            raise ValueError(f"TaskMeter({name!r}): expected n_classes >= 2, got {n_classes}")
        self.confusion = torch.zeros(max(n_classes, 1), max(n_classes, 1), dtype=torch.float64)
        self.sal_iou = torch.zeros(len(_SAL_THRESHOLDS), dtype=torch.float64)
        self.f_stats = torch.zeros(len(_SAL_THRESHOLDS), 3, dtype=torch.float64)  # tp, predicted, positive
        self.images = 0
        self.angles: list[torch.Tensor] = []
        self.sq_err = 0.0
        self.count = 0

    @torch.no_grad()
    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch; shapes as in :func:`task_loss`."""
        pred, target = pred.detach().float().cpu(), target.detach().cpu()
        kind = self.spec.kind
        if kind == "classes":
            labels = pred.argmax(1)
            keep = target != IGNORE
            idx = target[keep] * self.n_classes + labels[keep]
            self.confusion += torch.bincount(idx, minlength=self.n_classes**2).reshape(self.n_classes, -1).double()
        elif kind == "binary":
            prob = torch.sigmoid(pred[:, 0]).flatten(1)
            gt = (target > 0.5).flatten(1)
            hard = prob[:, None, :] > _SAL_THRESHOLDS[None, :, None]  # (B, K, P)
            inter = (hard & gt[:, None]).sum(-1).double()
            union = (hard | gt[:, None]).sum(-1).double()
            self.sal_iou += torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union)).sum(0)
            self.f_stats[:, 0] += inter.sum(0)
            self.f_stats[:, 1] += hard.sum(-1).double().sum(0)
            self.f_stats[:, 2] += gt.sum().double()
            self.images += prob.shape[0]
        elif kind == "normals":
            unit = F.normalize(pred, dim=1).permute(0, 2, 3, 1)
            valid = target.norm(dim=-1) > 0
            cos = (unit * target).sum(-1)[valid].clamp(-1, 1)
            self.angles.append(torch.rad2deg(torch.acos(cos)))
        else:
            valid = target > 0
            self.sq_err += float(((pred[:, 0] - target)[valid] ** 2).sum())
            self.count += int(valid.sum())

    def compute(self) -> dict[str, float]:
        """Metric name -> value (IoU and F in percent, angles in degrees)."""
        name, kind = self.spec.name, self.spec.kind
        if kind == "classes":
            inter = self.confusion.diag()
            union = self.confusion.sum(0) + self.confusion.sum(1) - inter
            present = union > 0
            miou = float((inter[present] / union[present]).mean()) * 100 if present.any() else float("nan")
            return {f"{name}_miou": miou}
        if kind == "binary":
            if self.images == 0:
                return {}
            tp, predicted, positive = self.f_stats.unbind(1)
            precision = tp / predicted.clamp(min=1)
            recall = tp / positive.clamp(min=1)
            f = 1.3 * precision * recall / (0.3 * precision + recall).clamp(min=1e-12)
            best_iou = float((self.sal_iou / self.images).max()) * 100
            if name == "edges":
                f1 = 2 * precision * recall / (precision + recall).clamp(min=1e-12)
                return {"edge_f": float(f1.max()) * 100}
            return {"sal_miou": best_iou, "sal_maxf": float(f.max()) * 100}
        if kind == "normals":
            angles = torch.cat(self.angles) if self.angles else torch.zeros(0)
            if angles.numel() == 0:
                return {}
            return {"normals_mean": float(angles.mean()), "normals_rmse": float(angles.pow(2).mean().sqrt())}
        return {"depth_rmse": (self.sq_err / max(self.count, 1)) ** 0.5}


def delta_m(
    metrics: Mapping[str, float], single_task: Mapping[str, float], lower_is_better: Mapping[str, bool]
) -> float:
    """Multi-task relative improvement in percent over single-task baselines (module docstring).

    Args:
        metrics: Metric name -> value of the multi-task model, one entry per task.
        single_task: The same metrics of the single-task baselines.
        lower_is_better: Metric name -> True when a lower value is better.

    Raises:
        ValueError: The three mappings do not name the same metrics, or a baseline value is 0.
    """
    if not metrics or set(metrics) != set(single_task) or set(metrics) != set(lower_is_better):
        raise ValueError(
            "delta_m: expected the same metric names in all three mappings, got "
            f"{sorted(metrics)}, {sorted(single_task)}, {sorted(lower_is_better)}"
        )
    total = 0.0
    for key, value in metrics.items():
        base = single_task[key]
        if base == 0:
            raise ValueError(f"delta_m: single-task value of {key!r} is 0; the relative change is undefined")
        sign = -1.0 if lower_is_better[key] else 1.0
        total += sign * (value - base) / base
    return 100.0 * total / len(metrics)
