"""The small encoder, projector and predictors used at CPU scale, and plain-torch augmentations.

The CaSSLe protocol uses a ResNet-18 with a CIFAR stem; on 2 CPU cores we train a 3-block conv net from scratch
(32-64-128 channels at width 32, `width` scales it; docs/continual.md#inferred-details). Predictors follow CaSSLe's
`Linear-BN-ReLU-Linear`.

Augmentations are written in torch (torchvision cannot import beside the CPU torch here) and draw from the global
torch RNG on purpose: `core.train` forks and reseeds that RNG before every step from (seed, rank, step), so the views
of a step are reproducible and a resumed run draws exactly the views the uninterrupted run drew.

Shapes: images (B, C, H, W) uint8 or float in [0, 1]; features h (B, 4*width); projections z (B, proj_dim).
"""

from __future__ import annotations

import copy
import math
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from tailorkit.continual.config import ModelConfig

M = TypeVar("M", bound=nn.Module)

__all__ = ["Encoder", "Student", "augment", "frozen_copy", "mlp", "params_to_buffers", "to_float"]


class Encoder(nn.Module):
    """Three conv blocks (conv-BN-ReLU x2 for the last, max-pool between), global average pool."""

    def __init__(self, in_channels: int, width: int) -> None:
        super().__init__()
        w = width

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        self.net = nn.Sequential(
            *block(in_channels, w),
            nn.MaxPool2d(2),
            *block(w, 2 * w),
            nn.MaxPool2d(2),
            *block(2 * w, 4 * w),
            *block(4 * w, 4 * w),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.out_dim = 4 * w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def mlp(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    """Linear-BN-ReLU-Linear (SimCLR projector; CaSSLe predictor)."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_dim)
    )


class Student(nn.Module):
    """Encoder f and projector g: forward(x) -> (h = f(x), z = g(h))."""

    def __init__(self, in_channels: int, config: ModelConfig) -> None:
        super().__init__()
        self.encoder = Encoder(in_channels, config.width)
        self.projector = mlp(self.encoder.out_dim, config.proj_hidden, config.proj_dim)
        self.feat_dim = self.encoder.out_dim
        self.proj_dim = config.proj_dim

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        return h, self.projector(h)


def frozen_copy(module: M) -> M:
    """A deep copy in eval mode whose parameters are buffers (saved in checkpoints, never optimized)."""
    clone = copy.deepcopy(module)
    params_to_buffers(clone)
    clone.__dict__["is_frozen_teacher"] = True  # PhaseModel.train() keeps modules with this flag in eval mode
    return clone.eval()


def params_to_buffers(module: nn.Module) -> None:
    """Turn every parameter of `module` into a buffer of the same name, in place.

    `core.train` checkpoints trainable parameters and buffers: teachers and EMA targets stored as buffers travel with
    the checkpoint, so resuming restores them exactly.
    """
    for sub in module.modules():
        for name in list(sub._parameters):
            param = sub._parameters.pop(name)
            sub.register_buffer(name, None if param is None else param.detach().clone())


_MEAN, _STD = 0.5, 0.25


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 or [0, 1] float images -> normalised float32 (what the encoder sees at evaluation)."""
    x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    return (x - _MEAN) / _STD


def augment(images: torch.Tensor) -> torch.Tensor:
    """One random view per image: affine (scale 0.8-1.2, rotation +-20 degrees, shift +-10 %), brightness and
    contrast jitter, Gaussian noise, random erasing (p = 0.5, 4-16 % of the area). Draws from the global RNG.

    Polarity is never inverted: it is part of the glyph benchmark's phase style (see data.py).
    """
    x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    b, _, h, w = x.shape
    dev = x.device
    u = torch.rand(b, 10, device=dev)
    angle = (u[:, 0] * 2 - 1) * math.radians(20)
    zoom = 0.8 + 0.4 * u[:, 1]
    cos, sin = torch.cos(angle) * zoom, torch.sin(angle) * zoom
    tx, ty = (u[:, 2] * 2 - 1) * 0.1, (u[:, 3] * 2 - 1) * 0.1
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    contrast = (0.6 + 0.8 * u[:, 4]).view(b, 1, 1, 1)
    brightness = ((u[:, 5] * 2 - 1) * 0.2).view(b, 1, 1, 1)
    x = (x - mean) * contrast + mean + brightness
    x = x + 0.05 * torch.randn(x.shape, device=dev)
    # random erasing: one rectangle per image, filled with noise, for half the images
    area = (0.04 + 0.12 * u[:, 6]) * h * w
    rh = area.sqrt().clamp(1, h)
    rw = (area / rh).clamp(1, w)
    top = (u[:, 7] * (h - rh)).view(b, 1, 1)
    left = (u[:, 8] * (w - rw)).view(b, 1, 1)
    ys = torch.arange(h, device=dev).view(1, h, 1).float()
    xs = torch.arange(w, device=dev).view(1, 1, w).float()
    inside = (ys >= top) & (ys < top + rh.view(b, 1, 1)) & (xs >= left) & (xs < left + rw.view(b, 1, 1))
    inside = inside & (u[:, 9] < 0.5).view(b, 1, 1)
    x = torch.where(inside[:, None], torch.rand(x.shape, device=dev), x)
    return (x.clamp(0, 1) - _MEAN) / _STD
