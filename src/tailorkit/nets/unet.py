"""A small 2D/3D U-Net (Ronneberger et al., MICCAI 2015; 3D: Cicek et al., MICCAI 2016) with stage hooks.

Plain torch, no MONAI. Every encoder stage (the last one is the bottleneck) and every decoder stage ends in a named
hook point: `forward(x, hook=fn)` calls `fn(name, features)` after each stage and continues with what it returns,
so prompt-tuning modules (tailorkit.active) can modulate the features of a frozen backbone without editing it.
Stage names are "enc0" .. "enc{L-1}" (enc{L-1} is the bottleneck) and "dec0" .. "dec{L-2}" (dec0 is the deepest
decoder stage); `stage_channels()` lists them with their channel counts.

Blocks: two (conv 3 -> norm -> ReLU) per stage, 2x max-pooling down, transposed-conv 2x up, skip concatenation,
a 1x1 head. Normalisation is BatchNorm (frozen backbones keep its running statistics in eval mode) or instance
norm. Optional dropout after each decoder stage and the bottleneck enables MC-dropout uncertainty (BALD).

Shapes:
    x: (B, in_channels, H, W) for spatial_dims=2, (B, in_channels, D, H, W) for 3; every spatial size must be
    divisible by 2 ** (len(channels) - 1).
    output: (B, out_channels, *spatial).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

__all__ = ["Hook", "UNet"]

Hook = Callable[[str, torch.Tensor], torch.Tensor]


def _conv(spatial_dims: int) -> type[nn.Conv2d] | type[nn.Conv3d]:
    return nn.Conv2d if spatial_dims == 2 else nn.Conv3d


def _block(cin: int, cout: int, spatial_dims: int, norm: str) -> nn.Sequential:
    conv = _conv(spatial_dims)
    layers: list[nn.Module] = []
    for i in range(2):
        layers.append(conv(cin if i == 0 else cout, cout, 3, padding=1, bias=norm == "none"))
        if norm == "batch":
            layers.append(nn.BatchNorm2d(cout) if spatial_dims == 2 else nn.BatchNorm3d(cout))
        elif norm == "instance":
            layers.append(
                nn.InstanceNorm2d(cout, affine=True) if spatial_dims == 2 else nn.InstanceNorm3d(cout, affine=True)
            )
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class UNet(nn.Module):
    """U-Net with `len(channels)` resolution levels and named stage hooks.

    Args:
        in_channels: Input channels (1 for CT).
        out_channels: Channels of the 1x1 head (1 for a binary logit).
        channels: Features per level, shallow to deep, e.g. (8, 16, 32, 64).
        spatial_dims: 2 (slices) or 3 (volumes).
        norm: "batch", "instance" or "none".
        dropout: Dropout probability after the bottleneck and each decoder stage (0 disables; MC-dropout needs > 0).
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        channels: Sequence[int] = (8, 16, 32, 64),
        spatial_dims: int = 2,
        norm: str = "batch",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims: expected 2 or 3, got {spatial_dims!r}")
        if len(channels) < 2 or any(int(c) < 1 for c in channels):
            raise ValueError(f"channels: expected >= 2 positive ints (shallow to deep), got {tuple(channels)!r}")
        if norm not in ("batch", "instance", "none"):
            raise ValueError(f"norm: expected 'batch', 'instance' or 'none', got {norm!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout: expected 0 <= p < 1, got {dropout!r}")
        self.spatial_dims = spatial_dims
        self.channels = tuple(int(c) for c in channels)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.encoders = nn.ModuleList()
        cin = in_channels
        for c in self.channels:
            self.encoders.append(_block(cin, c, spatial_dims, norm))
            cin = c
        up = nn.ConvTranspose2d if spatial_dims == 2 else nn.ConvTranspose3d
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for deep, shallow in zip(self.channels[:0:-1], self.channels[-2::-1], strict=True):
            self.ups.append(up(deep, shallow, 2, stride=2))
            self.decoders.append(_block(2 * shallow, shallow, spatial_dims, norm))
        self.pool = nn.MaxPool2d(2) if spatial_dims == 2 else nn.MaxPool3d(2)
        self.drop = (nn.Dropout2d(dropout) if spatial_dims == 2 else nn.Dropout3d(dropout)) if dropout > 0 else None
        self.head = _conv(spatial_dims)(self.channels[0], out_channels, 1)

    def stage_channels(self) -> list[tuple[str, int]]:
        """(stage name, channels) for every hook point, in forward order."""
        enc = [(f"enc{i}", c) for i, c in enumerate(self.channels)]
        dec = [(f"dec{i}", c) for i, c in enumerate(self.channels[-2::-1])]
        return enc + dec

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != self.spatial_dims + 2 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"UNet input: expected (B, {self.in_channels}, {', '.join('S' * self.spatial_dims)}), "
                f"got {tuple(x.shape)}"
            )
        factor = 2 ** (len(self.channels) - 1)
        if any(s % factor for s in x.shape[2:]):
            raise ValueError(f"UNet input: spatial sizes must be divisible by {factor}, got {tuple(x.shape[2:])}")

    def decode_features(self, x: torch.Tensor, hook: Hook | None = None) -> torch.Tensor:
        """The last decoder stage's features (B, channels[0], *spatial), before the head."""
        self._check(x)
        skips = []
        h = x
        for i, encoder in enumerate(self.encoders):
            if i:
                h = self.pool(h)
            h = encoder(h)
            if hook is not None:
                h = hook(f"enc{i}", h)
            skips.append(h)
        if self.drop is not None:
            h = self.drop(h)
        for i, (up, decoder) in enumerate(zip(self.ups, self.decoders, strict=True)):
            h = decoder(torch.cat([skips[-2 - i], up(h)], dim=1))
            if self.drop is not None:
                h = self.drop(h)
            if hook is not None:
                h = hook(f"dec{i}", h)
        return h

    def forward(self, x: torch.Tensor, hook: Hook | None = None) -> torch.Tensor:
        return self.head(self.decode_features(x, hook))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Global-average-pooled bottleneck features (B, channels[-1]): the frozen encoder's image descriptor."""
        self._check(x)
        h = x
        for i, encoder in enumerate(self.encoders):
            if i:
                h = self.pool(h)
            h = encoder(h)
        return h.flatten(2).mean(dim=2)
