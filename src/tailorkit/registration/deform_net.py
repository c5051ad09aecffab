"""SAME++ step 3, SAM-Deform ([verified: code] `SAMReg/cores/voxelmorph.py`, `layers.py`;
docs/registration.md#the-method-as-implemented): a
VoxelMorph-style U-Net that sees the SAM correlation volume and predicts a stationary velocity field, integrated by
scaling and squaring (7 steps), trained with LNCC + diffusion on the velocity.

- Correlation (`correlation`): for every fixed feature voxel, the dot products of its descriptor with the
  pre-warped moving descriptors in its 3^n neighbourhood (27 channels in 3D). With the (fine + coarse) SAM
  descriptor the dot product is (cos_fine + cos_coarse) / 2, the official fine + coarse correlation sum up to a
  factor 2.
- Network: `tailorkit.nets.unet.UNet` (encoder widths (16, 32, 32, 32) as the official; the official decoder
  widths, LeakyReLU and nearest upsampling differ: ReLU and transposed convolutions here [inferred]); input =
  correlation (+ the pre-warped moving and the fixed image when `use_images`, official); output = a velocity in
  feature-voxel units, head initialised N(0, 1e-5) with zero bias (official). [CPU] The whole network runs on the
  fine feature grid (half the working resolution); the official network sees full-resolution images and joins
  the correlation at its first downsampled level.
- Loss (official `train_config_abdomen_wSAMLoss.py`): `lncc_weight` x (1 - squared-form LNCC, cc = cross^2 /
  (var_I var_J), window `lncc_window`) + `grad_weight` x VoxelMorph `Grad('l2', loss_mult=2)` on the velocity; the
  configured-but-unused `FeatSim` SAM loss is not added (as in the official `train_kernel`).
- Training (`train_deform`): Adam (`tailorkit.core.train`'s AdamW with no weight decay, constant rate `lr`) on
  pairs made by `pipeline.deform_pair` (features + the SAM-Affine + SAM-Coarse pre-alignment of each pair, computed
  once), one pair per step, in a reshuffled order every epoch of the pairs. It runs through the project's one
  training loop, so it resumes exactly from a checkpoint, shows progress and runs under torchrun (DDP: each rank
  takes its share of the pairs every epoch). [CPU] ~100 steps on a few random deformations of the atlas instead
  of 200 epochs x 380 AbdomenCTCT pairs.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from tailorkit.core.train import TrainConfig, train
from tailorkit.nets.unet import UNet
from tailorkit.registration.config import DeformNetConfig
from tailorkit.registration.features import FeatureMap
from tailorkit.registration.transforms import compose, exp_svf, grid_points, index_to_displacement, sample

__all__ = ["TRAINING_VERSION", "DeformNet", "DeformPair", "correlation", "deform_step", "lncc_loss", "train_deform"]

# Changes whenever training the same settings gives another network (cache keys include it). 2: through
# core.train (pairs reshuffled every epoch instead of drawn with replacement).
TRAINING_VERSION = 2


def correlation(fixed: torch.Tensor, warped: torch.Tensor) -> torch.Tensor:
    """Dot products of each fixed descriptor with the warped moving descriptors of its 3^n neighbourhood.

    Shapes:
        fixed, warped: (C, *shape) -> (3^n, *shape)
    """
    n = fixed.ndim - 1
    pad = F.pad(warped[None], (1, 1) * n)[0]
    out = []
    for off in itertools.product(range(3), repeat=n):
        sl = tuple(slice(o, o + s) for o, s in zip(off, fixed.shape[1:], strict=True))
        out.append((fixed * pad[(slice(None), *sl)]).sum(0))
    return torch.stack(out)


def lncc_loss(a: torch.Tensor, b: torch.Tensor, window: int) -> torch.Tensor:
    """1 - mean local squared correlation cross^2 / (var_a var_b) (VoxelMorph NCC form). Shapes: (*shape) -> ()."""
    n = a.ndim
    pool = F.avg_pool2d if n == 2 else F.avg_pool3d
    x, y = a[None, None], b[None, None]

    def box(t: torch.Tensor) -> torch.Tensor:
        return pool(t, window, stride=1, padding=window // 2, count_include_pad=False)

    mx, my = box(x), box(y)
    cross = box(x * y) - mx * my
    vx = (box(x * x) - mx * mx).clamp(min=0)
    vy = (box(y * y) - my * my).clamp(min=0)
    eps = 1e-5 / float(window**n) ** 2  # VoxelMorph's 1e-5 on window sums, expressed for window means
    return 1 - (cross * cross / (vx * vy + eps)).mean()


class DeformNet(nn.Module):
    """U-Net velocity predictor on the feature grid (see the module docstring)."""

    def __init__(self, config: DeformNetConfig, spatial_dims: int = 3) -> None:
        super().__init__()
        self.config = config
        self.spatial_dims = spatial_dims
        in_ch = 3**spatial_dims + (2 if config.use_images else 0)
        self.unet = UNet(in_ch, spatial_dims, config.channels, spatial_dims=spatial_dims, norm="none")
        nn.init.normal_(self.unet.head.weight, 0.0, 1e-5)
        nn.init.zeros_(self.unet.head.bias)  # type: ignore[arg-type]

    def forward(self, corr: torch.Tensor, images: torch.Tensor | None = None) -> torch.Tensor:
        """Velocity in feature-voxel units. Shapes: corr (3^n, *shape), images (2, *shape) -> (n, *shape)."""
        x = corr if images is None or not self.config.use_images else torch.cat([corr, images])
        shape = x.shape[1:]
        mult = 2 ** (len(self.config.channels) - 1)
        pads: list[int] = []
        for s in reversed(shape):
            pads += [0, (-s) % mult]
        out = self.unet(F.pad(x[None], pads))[0]
        return out[(slice(None), *[slice(0, s) for s in shape])]


@dataclass
class DeformPair:
    """One pair, prepared for the network: features, images on the feature grid and the pre-alignment.

    Shapes:
        previous: (n, *work_shape) fixed -> moving displacement (world mm) on the working grid (`work_affine`);
        fixed_image: (*feature_shape) in [0, 1]; moving_image: (*m_shape) in [0, 1] with `moving_affine`.
    """

    fixed: FeatureMap
    moving: FeatureMap
    fixed_image: torch.Tensor
    moving_image: torch.Tensor
    moving_affine: np.ndarray
    previous: torch.Tensor
    work_affine: np.ndarray
    _inputs: tuple[torch.Tensor, torch.Tensor] | None = field(default=None, repr=False)


@torch.no_grad()
def _inputs(pair: DeformPair) -> tuple[torch.Tensor, torch.Tensor]:
    """Correlation and image channels of the pre-warped pair (constant during training: cached on the pair)."""
    if pair._inputs is None:
        base = grid_points(pair.fixed.shape, pair.fixed.affine, pair.previous.device)
        moved = base + sample(pair.previous, pair.work_affine, base, padding="border")
        warped = F.normalize(sample(pair.moving.data, pair.moving.affine, moved, padding="border"), dim=0)
        corr = correlation(pair.fixed.data, warped)
        image = sample(pair.moving_image[None], pair.moving_affine, moved)[0]
        pair._inputs = (corr, torch.stack([image, pair.fixed_image]))
    return pair._inputs


def _velocity_mm(net: nn.Module, pair: DeformPair) -> tuple[torch.Tensor, torch.Tensor]:
    corr, images = _inputs(pair)
    v_idx = net(corr, images)
    return v_idx, index_to_displacement(v_idx, pair.fixed.affine)


def _loss(net: nn.Module, pair: DeformPair, cfg: DeformNetConfig) -> torch.Tensor:
    """The training loss of one pair; `net` is the DeformNet or its DDP wrapper (called, never unwrapped)."""
    v_idx, v_mm = _velocity_mm(net, pair)
    u = exp_svf(v_mm, pair.fixed.affine, cfg.int_steps)
    base = grid_points(pair.fixed.shape, pair.fixed.affine, u.device) + u
    moved = base + sample(pair.previous, pair.work_affine, base, padding="border")
    warped = sample(pair.moving_image[None], pair.moving_affine, moved)[0]
    grad = sum((torch.diff(v_idx, dim=a) ** 2).mean() for a in range(1, v_idx.ndim)) * 2 / (v_idx.ndim - 1)
    return cfg.lncc_weight * lncc_loss(warped, pair.fixed_image, cfg.lncc_window) + cfg.grad_weight * grad


@torch.no_grad()
def deform_step(net: DeformNet, pair: DeformPair) -> torch.Tensor:
    """SAM-Deform at inference: previous o exp(v), a displacement on the working grid. Shapes: (n, *work_shape)."""
    was = net.training
    net.eval()
    try:
        _, v_mm = _velocity_mm(net, pair)
    finally:
        net.train(was)
    u = exp_svf(v_mm, pair.fixed.affine, net.config.int_steps)
    work = grid_points(tuple(pair.previous.shape[1:]), pair.work_affine, u.device)
    dense = sample(u, pair.fixed.affine, work, padding="border")
    return compose(pair.previous, dense, pair.work_affine)


class _Pairs(Dataset[DeformPair]):
    def __init__(self, pairs: list[DeformPair]) -> None:
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> DeformPair:
        return self.pairs[index]


def _first(items: list[DeformPair]) -> DeformPair:
    return items[0]


def train_deform(
    pairs: list[DeformPair],
    config: DeformNetConfig,
    *,
    progress: bool = True,
    net: DeformNet | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    checkpoint_every: int = 0,
    on_step: Callable[[int, float], None] | None = None,
) -> tuple[DeformNet, list[float]]:
    """Train (or continue training) the network on prepared pairs; returns it in eval mode and every step's loss.

    Runs `tailorkit.core.train.train` (see the module docstring): `checkpoint` is resumed from when it exists and
    written every `checkpoint_every` steps and at the end, so an interrupted run continued with the same call
    equals an uninterrupted one; `on_step(step, loss)` is called after every step. A new network's weights are
    drawn from `config.seed` (the caller's global RNG state is restored). `config.steps == 0` returns the network
    untrained.
    """
    if not pairs:
        raise ValueError("train_deform: expected at least one prepared pair")
    n = len(pairs[0].fixed.shape)
    if net is None:
        gen_state = torch.random.get_rng_state()
        torch.manual_seed(config.seed)  # weight init only; the caller's RNG state is restored
        net = DeformNet(config, n)
        torch.random.set_rng_state(gen_state)
    net.to(pairs[0].previous.device).train()
    if config.steps == 0:
        return net.eval(), []
    core = TrainConfig(
        steps=config.steps,
        lr=config.lr,
        batch_size=1,
        log_every=10,
        checkpoint_every=checkpoint_every,
        seed=config.seed,
        optimizer="adamw",  # weight_decay 0: Adam's update
        schedule="constant",
    )

    def loss_fn(model: nn.Module, pair: Any) -> torch.Tensor:
        return _loss(model, pair, config)

    result = train(
        net,
        loss_fn,
        _Pairs(pairs),
        core,
        checkpoint=checkpoint,
        progress=progress,
        on_step=on_step,
        collate_fn=_first,
    )
    return net.eval(), list(result.losses)
