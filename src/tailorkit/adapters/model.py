"""Light per-task dense decoders and the multi-task model (encoder + one decoder per task).

Each decoder is a small All-MLP (SegFormer-style, Polyhistor's choice [unverified]) head: a 1x1 projection of every
stage map to ``width`` channels, resized to the stride-4 map (or the finest map when none is at stride 4), summed,
a 3x3 conv + BatchNorm + ReLU, a 1x1 prediction conv, and bilinear upsampling to the input size. Every method gets
the same decoders, so differences come from the encoders.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from tailorkit.adapters.methods.base import MultiTaskEncoder
from tailorkit.adapters.tasks import task_spec

__all__ = ["DenseDecoder", "MultiTaskModel", "task_channels"]


def task_channels(task: str, n_classes: dict[str, int]) -> int:
    """Decoder output channels of ``task``: classes for semseg/parts, 3 for normals, else 1."""
    spec = task_spec(task)
    if spec.kind == "classes":
        return n_classes[spec.name]
    return 3 if spec.kind == "normals" else 1


class DenseDecoder(nn.Module):
    """Multi-scale fusion head.

    Shapes:
        feats: [(B, C_k, H_k, W_k)], size (H, W) -> (B, out_channels, H, W)
    """

    def __init__(self, in_channels: Sequence[int], strides: Sequence[int], width: int, out_channels: int) -> None:
        super().__init__()
        self.proj = nn.ModuleList(nn.Conv2d(c, width, 1) for c in in_channels)
        self.fuse_index = min(range(len(strides)), key=lambda k: (abs(strides[k] - 4), strides[k]))
        self.fuse = nn.Sequential(nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.pred = nn.Conv2d(width, out_channels, 1)

    def forward(self, feats: Sequence[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        target = feats[self.fuse_index].shape[-2:]
        total = None
        for proj, f in zip(self.proj, feats, strict=True):
            y = proj(f)
            if y.shape[-2:] != target:
                if y.shape[-2] > target[0]:
                    y = F.adaptive_avg_pool2d(y, (int(target[0]), int(target[1])))
                else:
                    y = F.interpolate(y, size=target, mode="bilinear", align_corners=False)
            total = y if total is None else total + y
        assert total is not None
        out = self.pred(self.fuse(total))
        return F.interpolate(out, size=size, mode="bilinear", align_corners=False)


class MultiTaskModel(nn.Module):
    """An encoder (any registered method) and one :class:`DenseDecoder` per task.

    Shapes:
        x: (B, 3, H, W) -> {task: prediction (B, C_task, H, W)}
    """

    def __init__(self, encoder: MultiTaskEncoder, n_classes: dict[str, int], width: int = 32) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoders = nn.ModuleDict(
            {
                task: DenseDecoder(encoder.stage_channels, encoder.stage_strides, width, task_channels(task, n_classes))
                for task in encoder.tasks
            }
        )

    @property
    def tasks(self) -> tuple[str, ...]:
        return self.encoder.tasks

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.encoder(x)
        size = (x.shape[-2], x.shape[-1])
        return {task: self.decoders[task](feats[task], size) for task in self.tasks}

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """Only the trainable parameters (what a checkpoint saves), plus the decoders' BatchNorm statistics."""
        keep = {n for n, p in self.named_parameters() if p.requires_grad}
        return {
            n: t.detach().cpu().contiguous()
            for n, t in self.state_dict().items()
            if n in keep or (n.startswith("decoders.") and ("running_" in n or "num_batches" in n))
        }
