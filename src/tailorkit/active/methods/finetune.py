"""Tuning baselines for SLPT: full fine-tuning, decoder-only, head-only, and training from scratch.

Each copies the pretrained U-Net (the shared backbone is never modified), replaces the head with a fresh lesion
head (initialised from the upstream head, TuneConfig.head_init) and trains a subset of the weights with
TuneConfig.lr_full. These are the conventional comparisons SLPT's abstract names ("traditional fine-tuning"); the
decoder/head-only variants are the usual partial fine-tuning comparisons [inferred].
"""

from __future__ import annotations

import copy
import dataclasses

import torch
from torch import nn

from tailorkit.active.config import TuneConfig
from tailorkit.active.methods.base import TUNERS, SegModel, init_head
from tailorkit.nets.unet import UNet

__all__ = ["FineTuned"]


class FineTuned(SegModel):
    """A copied U-Net with its `trainable` part ("all", "decoder", "head") trainable; the rest frozen in eval."""

    def __init__(self, net: UNet, trainable: str, config: TuneConfig, generator: torch.Generator) -> None:
        super().__init__()
        self.net = net
        self.trainable = trainable
        init_head(self.net.head, net, config.head_init, generator)
        for name, p in self.net.named_parameters():
            p.requires_grad_(
                trainable == "all"
                or name.startswith("head.")
                or (trainable == "decoder" and name.startswith(("ups.", "decoders.")))
            )

    def frozen_modules(self) -> list[nn.Module]:
        if self.trainable == "all":
            return []
        if self.trainable == "decoder":
            return list(self.net.encoders)
        return [self.net]

    def forward_views(self, views: torch.Tensor) -> torch.Tensor:
        if views.shape[0] != 1:
            raise ValueError(f"forward_views: expected 1 view (fine-tuning has one set), got {views.shape[0]}")
        return self.net(views[0])[:, 0].unsqueeze(0)


@TUNERS.register("full_ft")
def full_ft(backbone: UNet, config: TuneConfig, generator: torch.Generator) -> SegModel:
    """All weights and the fresh head train, normalisation statistics update (conventional fine-tuning)."""
    return FineTuned(copy.deepcopy(backbone), "all", config, generator)


@TUNERS.register("decoder_ft")
def decoder_ft(backbone: UNet, config: TuneConfig, generator: torch.Generator) -> SegModel:
    """Decoder (up-convolutions and decoder blocks) and head train; the encoder stays frozen."""
    return FineTuned(copy.deepcopy(backbone), "decoder", config, generator)


@TUNERS.register("head_only")
def head_only(backbone: UNet, config: TuneConfig, generator: torch.Generator) -> SegModel:
    """Only the fresh 1x1 head trains (a linear probe per pixel)."""
    return FineTuned(copy.deepcopy(backbone), "head", config, generator)


@TUNERS.register("scratch")
def scratch(backbone: UNet, config: TuneConfig, generator: torch.Generator) -> SegModel:
    """A randomly initialised U-Net of the same shape trained on the labels alone (no upstream knowledge)."""
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    with torch.random.fork_rng():
        torch.manual_seed(seed)  # nn.Module init draws from the global stream; fork_rng keeps the caller's intact
        net = UNet(
            backbone.in_channels,
            1,
            backbone.channels,
            backbone.spatial_dims,
            dropout=backbone.drop.p if backbone.drop is not None else 0.0,
        )
    return FineTuned(net, "all", dataclasses.replace(config, head_init="random"), generator)
