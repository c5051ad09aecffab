"""The task-agnostic upstream model: a 2D U-Net pretrained on organ (liver) segmentation, cached on disk.

SLPT freezes "a task-agnostic pre-trained segmentation model" [verified: abstract]; which model and upstream task is
[unknown]. Here [inferred, docs/active.md#the-method-as-implemented]: the pool's liver labels (LiTS) or a separate
liver-only SynthLiver draw train the U-Net with BCE + soft Dice; it never sees lesion labels. Weights are cached as
safetensors under $TAILORKIT_HOME/active/backbones/, keyed by a hash of the upstream data, the backbone settings and
the training procedure, so the bench, tests and demo train each backbone once. The pretraining seed is fixed (0):
bench seeds vary selection and tuning, not the upstream model.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from tailorkit.active.config import BackboneConfig, TuneConfig
from tailorkit.active.data import SegSet
from tailorkit.active.methods.base import SegModel
from tailorkit.core.progress import status
from tailorkit.core.results import write_bytes_atomic
from tailorkit.nets.unet import UNet

__all__ = ["backbone_cache_path", "encoder_features", "pretrained_backbone"]

# The training procedure is part of the cache key: a backbone cached by an older loop (before issue 23: its own
# sampling with replacement) must not be reused as if this code had trained it.
_TRAINING = "core.train/1"


class _Plain(SegModel):
    def __init__(self, net: UNet) -> None:
        super().__init__()
        self.net = net

    def forward_views(self, views: torch.Tensor) -> torch.Tensor:
        return self.net(views[0])[:, 0].unsqueeze(0)


def backbone_cache_path(upstream: SegSet, config: BackboneConfig) -> Path:
    from tailorkit.assets.base import tailorkit_home

    h = hashlib.sha256(json.dumps(asdict(config), sort_keys=True).encode())
    h.update(_TRAINING.encode())
    h.update(np.ascontiguousarray(upstream.images).tobytes())
    h.update(np.ascontiguousarray(upstream.masks).tobytes())
    return tailorkit_home() / "active" / "backbones" / f"unet2d-{h.hexdigest()[:16]}.safetensors"


def _build(config: BackboneConfig) -> UNet:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return UNet(1, 1, config.channels, spatial_dims=2, dropout=config.dropout)


def pretrained_backbone(
    upstream: SegSet, config: BackboneConfig, cache: bool = True, progress: bool | None = None
) -> UNet:
    """The U-Net trained on `upstream` (organ masks), loaded from the cache when present; returned in eval mode."""
    from safetensors.torch import load_file, save

    from tailorkit.active.tuning import tune

    net = _build(config)
    path = backbone_cache_path(upstream, config)
    if cache and path.exists():
        net.load_state_dict(load_file(str(path)))
        return net.eval()
    status(f"active: pretraining the upstream U-Net ({config.steps} steps on {len(upstream)} organ masks)")
    tune_config = TuneConfig(method="full_ft", steps=config.steps, batch_size=config.batch_size, lr_full=config.lr)
    tune(_Plain(net), upstream.images, upstream.masks, tune_config, seed=0, progress=progress)
    if cache:
        write_bytes_atomic(path, save({k: v.contiguous() for k, v in net.state_dict().items()}))
    return net.eval()


@torch.no_grad()
def encoder_features(net: UNet, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """L2-normalised GAP bottleneck descriptors (N, channels[-1]) of the frozen encoder."""
    net.eval()
    device = next(net.parameters()).device
    out = [
        net.encode(torch.as_tensor(images[s : s + batch_size], dtype=torch.float32, device=device)).cpu().numpy()
        for s in range(0, len(images), batch_size)
    ]
    f = np.concatenate(out).astype(np.float64)
    return f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
