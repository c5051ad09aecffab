"""Inputs shared by the dual encoder's alignment stages (nets/dual_encoder.py and nets/align_pairs.py).

They live here, below both, so that the second stage (align_pairs) need not import the dual encoder module that
calls it: ImageNet's synonym lists, the image tower's input transform, the held-out class draw and batched text
features.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from tailorkit.nets.dual_encoder import AlignConfig, DualEncoder

__all__ = ["heldout_classes", "imagenet_names", "sentence_features", "to_model_input"]


def imagenet_names() -> list[list[str]]:
    """The 1000 ImageNet classes as synonym lists (``"tench, Tinca tinca"`` -> ``["tench", "Tinca tinca"]``)."""
    from tailorkit.assets import class_names

    return [[s.strip() for s in line.split(",") if s.strip()] for line in class_names("imagenet")]


def to_model_input(images: np.ndarray | torch.Tensor, size: int) -> torch.Tensor:
    """Grey or RGB uint8 images of any size -> the image tower's normalised square input.

    Resized bicubic with antialiasing (as :func:`tailorkit.nets.preprocess`, which is fixed at 224), grey
    replicated to 3 channels, scaled to [0, 1] and normalised TF-style ``(x - 0.5) / 0.5``.

    Shapes:
        images: (N, H, W) or (N, H, W, 3) uint8 -> (N, 3, size, size) float32
    """
    t = torch.as_tensor(np.asarray(images)) if isinstance(images, np.ndarray) else images
    if t.dtype != torch.uint8 or t.ndim not in (3, 4) or (t.ndim == 4 and t.shape[-1] != 3):
        raise ValueError(f"expected uint8 images (N, H, W) or (N, H, W, 3); got {t.dtype} {tuple(t.shape)}")
    if not 16 <= size <= 512:
        raise ValueError(f"size: expected 16..512, got {size}")
    x = t.to(torch.float32) / 255.0
    x = x.unsqueeze(1).expand(-1, 3, -1, -1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
    return ((x - 0.5) / 0.5).contiguous()


def heldout_classes(config: AlignConfig) -> list[int]:
    """The seeded held-out class indices (sorted)."""
    rng = np.random.default_rng(config.seed)
    n = round(1000 * config.held_out)
    return sorted(int(i) for i in rng.permutation(1000)[:n])


@torch.no_grad()
def sentence_features(model: DualEncoder, names: list[str], batch: int = 128) -> torch.Tensor:
    """Text-tower features of `names`, in batches (no gradient)."""
    out = []
    for i in range(0, len(names), batch):
        out.append(model.text_features(model.tokenize(names[i : i + batch])))
    return torch.cat(out)
