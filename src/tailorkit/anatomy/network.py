"""The SAM / SAMv2 network in plain PyTorch: a 2.5D 3D ResNet-18 with FPN heads (Yan et al., IEEE TMI 2022, SAM;
Liu et al., arXiv 2311.15111, SAMv2 / UAE).

Re-created from the official configuration (`alibaba-damo-academy/self-supervised-anatomical-embedding-v2`:
`sam/models/backbones/resnet3d.py`, `sam/models/necks/fpn3d.py`, `configs/sam/sam_NIHLN.py`), without mmcv:

- Backbone `ResNet3d(depth=18, conv1_kernel=(3,7,7), stride 1, no pool1, pool2 (max 2x1x1),
  spatial_strides=(2,2,2,2), temporal_strides=(1,1,1,2), inflate=((0,0),(0,0),(1,1),(1,1)))`: the two shallow
  stages use 1x3x3 kernels (2.5D), the deep stages 3x3x3; BatchNorm3d. Channels width x (1, 2, 4, 8); the official
  width is 64, CPU settings use 16-32.
- Fine (local) head `FPN3d([w, 2w, 4w] -> 128)`: 1x1 laterals, nearest top-down sum, one 3x3x3 conv on the finest
  level: a map at (D/2, H/2, W/2).
- Coarse (global) head `FPN3d([8w] -> 128)`: 1x1 + 3x3x3 on layer4: a map at (D/4, H/16, W/16).
- SAMv2 semantic head (optional): a second fine-style FPN with its own weights, at the fine resolution.
All heads are L2-normalised over channels.

Deviations: Kaiming initialisation instead of the inflated ImageNet ResNet-18 (a download); fp32 everywhere instead
of the official fp16 embeddings (fp16 matmul on CPU is slow); inputs of any size are padded inside `forward` to the
required multiples (4 along D, 16 along H and W) and the outputs cropped back to ceil(size / stride) [inferred: the
official code pads in the data pipeline].

Tensor axes follow the official (z, y, x) order: D is the slice axis (the "temporal" axis of mmaction).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tailorkit.anatomy.config import NetConfig

__all__ = ["COARSE_STRIDE", "FINE_STRIDE", "SAMNet", "SAMOutput", "output_shape"]

# Stride of each head relative to the input, in (D, H, W) order, and the input multiples that make them exact.
FINE_STRIDE = (2, 2, 2)
COARSE_STRIDE = (4, 16, 16)
PAD_MULTIPLE = (4, 16, 16)


@dataclass
class SAMOutput:
    """The L2-normalised embedding maps of one batch.

    Shapes:
        fine: (B, C, ceil(D/2), ceil(H/2), ceil(W/2))
        coarse: (B, C, ceil(D/4), ceil(H/16), ceil(W/16))
        semantic: like `fine`, or None when the network has no semantic head.
    """

    fine: torch.Tensor
    coarse: torch.Tensor
    semantic: torch.Tensor | None = None


def output_shape(size: tuple[int, int, int], stride: tuple[int, int, int]) -> tuple[int, int, int]:
    """The map size a head with `stride` gives for an input of `size` (D, H, W) after padding and cropping."""
    return tuple(math.ceil(n / s) for n, s in zip(size, stride, strict=True))  # type: ignore[return-value]


class BasicBlock3d(nn.Module):
    """ResNet basic block; `inflate` picks 3x3x3 kernels, else 1x3x3 (2.5D)."""

    def __init__(self, cin: int, cout: int, stride: tuple[int, int, int], inflate: bool) -> None:
        super().__init__()
        k, p = ((3, 3, 3), (1, 1, 1)) if inflate else ((1, 3, 3), (0, 1, 1))
        self.conv1 = nn.Conv3d(cin, cout, k, stride=stride, padding=p, bias=False)
        self.bn1 = nn.BatchNorm3d(cout)
        self.conv2 = nn.Conv3d(cout, cout, k, padding=p, bias=False)
        self.bn2 = nn.BatchNorm3d(cout)
        self.down: nn.Module | None = None
        if stride != (1, 1, 1) or cin != cout:
            self.down = nn.Sequential(nn.Conv3d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm3d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.down is None else self.down(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + identity)


class FPN3d(nn.Module):
    """mmdet-style FPN over 3D levels: 1x1 laterals, nearest top-down sum, a 3x3x3 conv on the finest output only."""

    def __init__(self, in_channels: list[int], out_channels: int) -> None:
        super().__init__()
        self.laterals = nn.ModuleList(nn.Conv3d(c, out_channels, 1) for c in in_channels)
        self.output = nn.Conv3d(out_channels, out_channels, 3, padding=1)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        lat = [conv(f) for conv, f in zip(self.laterals, feats, strict=True)]
        for i in range(len(lat) - 1, 0, -1):
            lat[i - 1] = lat[i - 1] + F.interpolate(lat[i], size=lat[i - 1].shape[2:], mode="nearest")
        return self.output(lat[0])


class SAMNet(nn.Module):
    """SAM (fine + coarse heads) or SAMv2 (+ semantic head) embedding network.

    Args:
        config: width, embedding size and whether the semantic head exists.

    Shapes:
        input: (B, 1, D, H, W), any size >= 1 (padded internally to multiples of (4, 16, 16)).
        output: `SAMOutput` (see there).
    """

    def __init__(self, config: NetConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or NetConfig()
        w = config.width
        self.stem = nn.Sequential(
            nn.Conv3d(config.in_channels, w, (3, 7, 7), padding=(1, 3, 3), bias=False),
            nn.BatchNorm3d(w),
            nn.ReLU(inplace=True),
        )
        widths = (w, 2 * w, 4 * w, 8 * w)
        strides = ((1, 2, 2), (1, 2, 2), (1, 2, 2), (2, 2, 2))
        inflate = (False, False, True, True)
        layers, cin = [], w
        for cout, stride, inf in zip(widths, strides, inflate, strict=True):
            layers.append(nn.Sequential(BasicBlock3d(cin, cout, stride, inf), BasicBlock3d(cout, cout, (1, 1, 1), inf)))
            cin = cout
        self.layers = nn.ModuleList(layers)
        self.pool2 = nn.MaxPool3d((2, 1, 1), (2, 1, 1))
        self.fine_head = FPN3d(list(widths[:3]), config.emb_dim)
        self.coarse_head = FPN3d([widths[3]], config.emb_dim)
        self.semantic_head = FPN3d(list(widths[:3]), config.emb_dim) if config.semantic else None
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> SAMOutput:
        if x.ndim != 5 or x.shape[1] != self.config.in_channels:
            raise ValueError(f"SAMNet input: expected (B, {self.config.in_channels}, D, H, W), got {tuple(x.shape)}")
        size = tuple(int(n) for n in x.shape[2:])
        pad = [(-n) % m for n, m in zip(size, PAD_MULTIPLE, strict=True)]
        if any(pad):
            # Pad with the per-volume minimum (the background of a rescaled scan), at the far end of each axis.
            low = x.amin(dim=(2, 3, 4), keepdim=True)
            x = F.pad(x - low, (0, pad[2], 0, pad[1], 0, pad[0])) + low
        h = self.stem(x)
        feats = []
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i == 0:
                h = self.pool2(h)
            feats.append(h)
        fs = output_shape(size, FINE_STRIDE)  # type: ignore[arg-type]
        cs = output_shape(size, COARSE_STRIDE)  # type: ignore[arg-type]
        fine = self.fine_head(feats[:3])[:, :, : fs[0], : fs[1], : fs[2]]
        coarse = self.coarse_head(feats[3:])[:, :, : cs[0], : cs[1], : cs[2]]
        semantic = None
        if self.semantic_head is not None:
            semantic = F.normalize(self.semantic_head(feats[:3])[:, :, : fs[0], : fs[1], : fs[2]], dim=1)
        return SAMOutput(F.normalize(fine, dim=1), F.normalize(coarse, dim=1), semantic)
