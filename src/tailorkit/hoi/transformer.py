"""DETR building blocks in plain torch: backbones, sine positions, encoder and decoder layers with query positions.

The decoder layer follows DETR (Carion et al., ECCV 2020): post-norm; self-attention with queries and keys
`tgt + query_pos`; cross-attention with queries `tgt + query_pos` and keys `memory + pos`; FFN. Every decoder
returns the normalised output of every layer (for the auxiliary losses). The positional query of a layer can be one
tensor for all layers or a list with one per layer (GEN-VLKT-style layer-wise linking).

Backbones: `tiny` (three stride-2 convs, for tests and small CPU runs; trained with the detector) and
`efficientnet_lite0` (the project's real ImageNet weights, `nets/efficientnet_lite.py`; one stage's feature map,
frozen by default so its features can be computed once and cached).
"""

from __future__ import annotations

import copy
import functools
import itertools
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

__all__ = ["MLP", "Decoder", "DecoderLayer", "Encoder", "FeatureBackbone", "sine_positions"]


def sine_positions(h: int, w: int, dim: int, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """DETR's normalised 2-D sine embedding, half the channels for y and half for x.

    Shapes:
        -> (h * w, dim)   (dim must be a multiple of 4)
    """
    if dim % 4:
        raise ValueError(f"sine_positions: expected dim divisible by 4, got {dim}")
    quarter = dim // 4
    y = (torch.arange(h, device=device, dtype=dtype) + 0.5) / h * 2 * math.pi
    x = (torch.arange(w, device=device, dtype=dtype) + 0.5) / w * 2 * math.pi
    freq = 10000 ** (torch.arange(quarter, device=device, dtype=dtype) / quarter)
    py = y[:, None] / freq
    px = x[:, None] / freq
    ey = torch.cat([py.sin(), py.cos()], dim=-1)  # (h, dim/2)
    ex = torch.cat([px.sin(), px.cos()], dim=-1)  # (w, dim/2)
    return torch.cat([ey[:, None, :].expand(h, w, -1), ex[None, :, :].expand(h, w, -1)], dim=-1).reshape(h * w, dim)


class MLP(nn.Module):
    """A few linear layers with ReLU between them (DETR's box head)."""

    def __init__(self, d_in: int, d_hidden: int, d_out: int, layers: int) -> None:
        super().__init__()
        dims = [d_in] + [d_hidden] * (layers - 1) + [d_out]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(dims))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = torch.relu(x)
        return x


class EncoderLayer(nn.Module):
    def __init__(self, d: int, heads: int, ffn: int, dropout: float) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(d, ffn), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ffn, d))
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.drop = nn.Dropout(dropout)

    def forward(self, src: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        q = src + pos
        src = self.norm1(src + self.drop(self.attn(q, q, src, need_weights=False)[0]))
        return self.norm2(src + self.drop(self.ffn(src)))


class Encoder(nn.Module):
    """Shapes: src, pos (B, N, d) -> (B, N, d)."""

    def __init__(self, d: int, heads: int, ffn: int, layers: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(d, heads, ffn, dropout) for _ in range(layers))

    def forward(self, src: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            src = layer(src, pos)
        return src


class DecoderLayer(nn.Module):
    def __init__(self, d: int, heads: int, ffn: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(d, ffn), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ffn, d))
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.drop = nn.Dropout(dropout)

    def forward(
        self, tgt: torch.Tensor, memory: torch.Tensor, pos: torch.Tensor, query_pos: torch.Tensor
    ) -> torch.Tensor:
        q = tgt + query_pos
        tgt = self.norm1(tgt + self.drop(self.self_attn(q, q, tgt, need_weights=False)[0]))
        attended = self.cross_attn(tgt + query_pos, memory + pos, memory, need_weights=False)[0]
        tgt = self.norm2(tgt + self.drop(attended))
        return self.norm3(tgt + self.drop(self.ffn(tgt)))


class Decoder(nn.Module):
    """DETR decoder returning every layer's normalised output.

    Shapes:
        tgt (B, Q, d), memory / pos (B, N, d), query_pos (B, Q, d) or a list of one per layer -> (L, B, Q, d)
    """

    def __init__(self, d: int, heads: int, ffn: int, layers: int, dropout: float = 0.0) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"decoder layers: expected >= 1, got {layers}")
        self.layers = nn.ModuleList(DecoderLayer(d, heads, ffn, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(d)

    def forward(
        self,
        tgt: torch.Tensor,
        memory: torch.Tensor,
        pos: torch.Tensor,
        query_pos: torch.Tensor | Sequence[torch.Tensor],
    ) -> torch.Tensor:
        per_layer = list(query_pos) if isinstance(query_pos, list | tuple) else [query_pos] * len(self.layers)
        if len(per_layer) != len(self.layers):
            raise ValueError(f"decoder: expected {len(self.layers)} per-layer query positions, got {len(per_layer)}")
        outs = []
        for layer, qp in zip(self.layers, per_layer, strict=True):
            tgt = layer(tgt, memory, pos, qp)
            outs.append(self.norm(tgt))
        return torch.stack(outs)


class TinyBackbone(nn.Module):
    """Three stride-2 3x3 convs with GroupNorm (stride 8), trained with the detector."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        chans = [3, width, 2 * width, 2 * width]
        layers: list[nn.Module] = []
        for a, b in itertools.pairwise(chans):
            layers += [nn.Conv2d(a, b, 3, stride=2, padding=1), nn.GroupNorm(4, b), nn.ReLU()]
        self.net = nn.Sequential(*layers)
        self.out_channels = chans[-1]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images * 2 - 1)


@functools.lru_cache(maxsize=1)
def _pretrained_lite0() -> nn.Module:
    """The ImageNet EfficientNet-Lite0, loaded once per process (every detector copies it)."""
    from tailorkit.nets.efficientnet_lite import load_efficientnet_lite0

    return load_efficientnet_lite0()


class EfficientNetStage(nn.Module):
    """EfficientNet-Lite0 (real ImageNet weights) cut after one stage; stage 3 has stride 16 and 112 channels."""

    CHANNELS = (16, 24, 40, 112, 320)

    def __init__(self, stage: int = 3) -> None:
        super().__init__()
        if stage not in range(5):
            raise ValueError(f"backbone_stage: expected 0..4, got {stage}")
        self.stage = stage
        self.net: Any = copy.deepcopy(_pretrained_lite0())
        self.out_channels = self.CHANNELS[stage]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # TF-style normalisation of the released weights: (x - 0.5) / 0.5 on [0, 1] pixels; no resize.
        h = self.net._stem(images * 2 - 1)
        for i, block in enumerate(self.net._blocks):
            h = block(h)
            if i == self.net._stage_ends[self.stage]:
                return h
        raise AssertionError("unreachable: stage end not found")


class FeatureBackbone(nn.Module):
    """A backbone by name; `frozen` keeps it in eval mode without gradients (features can then be cached).

    Shapes:
        images (B, 3, H, W) float in [0, 1] -> (B, out_channels, H/s, W/s)
    """

    def __init__(self, name: str, *, frozen: bool, stage: int = 3, width: int = 32) -> None:
        super().__init__()
        self.name = name
        self.frozen = frozen
        self.body: nn.Module
        if name == "tiny":
            self.body = TinyBackbone(width)
        elif name == "efficientnet_lite0":
            self.body = EfficientNetStage(stage)
        else:
            raise ValueError(f"backbone: expected 'tiny' or 'efficientnet_lite0', got {name!r}")
        self.out_channels: int = int(self.body.out_channels)
        if frozen:
            self.body.requires_grad_(False)

    def train(self, mode: bool = True) -> FeatureBackbone:
        super().train(mode)
        if self.frozen:
            self.body.eval()  # frozen BN statistics stay the pretrained ones
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"backbone: expected images of shape (B, 3, H, W) in [0, 1], got {tuple(images.shape)}")
        if self.frozen:
            with torch.no_grad():
                out: torch.Tensor = self.body(images)
            return out
        result: torch.Tensor = self.body(images)
        return result
