"""A small plain-torch Swin Transformer with "adapter slots" (the interface of :mod:`tailorkit.nets.vit`).

Architecture: Liu et al., "Swin Transformer: Hierarchical Vision Transformer using Shifted Windows", ICCV 2021:
patch embedding, stages of pre-norm blocks with window attention (alternating regular and shifted windows, with
the attention mask for shifted windows and a learned relative position bias), patch merging between stages. The
stage outputs (after a LayerNorm) are the multi-scale maps a dense decoder reads.

Adapter slots: at every block ``i`` the backbone calls ``hook(i, tap)`` with ``tap = LN2(x')`` (``x' = x +
W-MSA(LN1(x))``) as a channel-last ``(B, h, w, d)`` grid and adds the returned delta to the block output, in
parallel to the MLP: where VMT-Adapter inserts its modules (its Fig. 3). No deep prompts (VPT on windowed
attention is not the standard form): ``prompts`` must be None.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from tailorkit.nets.vit import Mlp, SlotHook, SlotInfo

__all__ = ["Swin"]


def _windows(x: torch.Tensor, w: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * H/w * W/w, w*w, C)."""
    b, h, wd, c = x.shape
    x = x.reshape(b, h // w, w, wd // w, w, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, w * w, c)


def _merge_windows(x: torch.Tensor, w: int, b: int, h: int, wd: int) -> torch.Tensor:
    c = x.shape[-1]
    x = x.reshape(b, h // w, wd // w, w, w, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h, wd, c)


class WindowAttention(nn.Module):
    """Multi-head attention inside w x w windows with a learned relative position bias.

    Shapes:
        x: (nW*B, w*w, C), mask: (nW, w*w, w*w) or None -> (nW*B, w*w, C)
    """

    def __init__(self, dim: int, heads: int, window: int) -> None:
        super().__init__()
        self.heads, self.window = heads, window
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.rel_bias = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.rel_bias, std=0.02)
        coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
        self.register_buffer("rel_index", rel[..., 0] * (2 * window - 1) + rel[..., 1], persistent=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        n_b, n, c = x.shape
        qkv = self.qkv(x).reshape(n_b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        rel_index: torch.Tensor = self.rel_index  # type: ignore[assignment]
        bias = self.rel_bias[rel_index.reshape(-1)].reshape(n, n, -1).permute(2, 0, 1)  # (heads, n, n)
        attn_mask = bias.unsqueeze(0)
        if mask is not None:
            n_w = mask.shape[0]
            # windows are ordered batch-major: window j of image i is row i * nW + j
            attn_mask = (attn_mask + mask[:, None]).unsqueeze(0).expand(n_b // n_w, -1, -1, -1, -1)
            attn_mask = attn_mask.reshape(n_b, self.heads, n, n)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=attn_mask.to(qkv.dtype))
        result: torch.Tensor = self.proj(out.transpose(1, 2).reshape(n_b, n, c))
        return result


class SwinBlock(nn.Module):
    def __init__(self, dim: int, heads: int, window: int, shift: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.window, self.shift = window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, heads, window)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def _mask(self, h: int, w: int, device: torch.device) -> torch.Tensor | None:
        if not self.shift:
            return None
        region = torch.zeros(h, w, device=device)
        cuts = (slice(0, -self.window), slice(-self.window, -self.shift), slice(-self.shift, None))
        label = 0
        for hs in cuts:
            for ws in cuts:
                region[hs, ws] = label
                label += 1
        win = _windows(region[None, :, :, None], self.window)[..., 0]  # (nW, w*w)
        diff = win[:, :, None] != win[:, None, :]
        return torch.zeros(diff.shape, device=device).masked_fill(diff, float("-inf"))

    def forward(self, x: torch.Tensor, adapter: SlotHook | None, index: int) -> torch.Tensor:
        b, h, w, _ = x.shape
        y = self.norm1(x)
        if self.shift:
            y = torch.roll(y, (-self.shift, -self.shift), (1, 2))
        y = _merge_windows(self.attn(_windows(y, self.window), self._mask(h, w, x.device)), self.window, b, h, w)
        if self.shift:
            y = torch.roll(y, (self.shift, self.shift), (1, 2))
        x = x + y
        tap = self.norm2(x)
        out = x + self.mlp(tap)
        if adapter is not None:
            delta = adapter(index, tap)
            if delta is not None:
                out = out + delta
        return out


class PatchMerging(nn.Module):
    """2x2 neighbourhood concat + LayerNorm + Linear(4C -> 2C): halves the resolution, doubles the width."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        out: torch.Tensor = self.reduction(self.norm(x))
        return out


class Swin(nn.Module):
    """Mini-Swin (CPU-scale sizes: widths 32..256 or 48..384, depths 2,2,2,2, window 4, patch 4).

    Shapes:
        x: (B, 3, image_size, image_size); image_size / patch must be divisible by 2^(stages-1)
        forward_stages: maps (B, embed * 2^k, image_size / (patch * 2^k), ...) for k = 0..stages-1
    """

    supports_prompts = False

    def __init__(
        self,
        image_size: int = 64,
        patch: int = 4,
        embed: int = 32,
        depths: Sequence[int] = (2, 2, 2, 2),
        heads: Sequence[int] = (1, 2, 4, 8),
        window: int = 2,
    ) -> None:
        super().__init__()
        grid = image_size // patch
        if image_size % patch or grid % 2 ** (len(depths) - 1):
            raise ValueError(
                f"Swin: expected image_size / patch divisible by 2^(stages-1); got image_size={image_size}, "
                f"patch={patch}, stages={len(depths)}"
            )
        if len(heads) != len(depths):
            raise ValueError(f"Swin: expected one heads entry per stage, got {len(heads)} for {len(depths)} stages")
        self.image_size = image_size
        self.patch_embed = nn.Conv2d(3, embed, patch, patch)
        self.embed_norm = nn.LayerNorm(embed)
        self.stages = nn.ModuleList()
        self.merges = nn.ModuleList()
        self.out_norms = nn.ModuleList()
        slots = []
        dims = []
        index = 0
        for k, (depth, n_heads) in enumerate(zip(depths, heads, strict=True)):
            dim = embed * 2**k
            dims.append(dim)
            res = grid // 2**k
            # as in Swin: a stage no larger than the window uses one window over the whole map, without shifting
            w = min(window, res)
            if res % w:
                raise ValueError(f"Swin: stage {k} map side {res} is not a multiple of window {w}")
            self.stages.append(
                nn.ModuleList(
                    SwinBlock(dim, n_heads, w, 0 if j % 2 == 0 or res <= window else w // 2) for j in range(depth)
                )
            )
            self.out_norms.append(nn.LayerNorm(dim))
            for _ in range(depth):
                slots.append(SlotInfo(index, k, dim, dim))
                index += 1
            if k < len(depths) - 1:
                self.merges.append(PatchMerging(dim))
        self._slots = slots
        self.stage_channels: tuple[int, ...] = tuple(dims)
        self.stage_strides: tuple[int, ...] = tuple(patch * 2**k for k in range(len(depths)))

    @property
    def slots(self) -> list[SlotInfo]:
        return list(self._slots)

    def forward_stages(
        self, x: torch.Tensor, hook: SlotHook | None = None, prompts: object | None = None
    ) -> list[torch.Tensor]:
        if prompts is not None:
            raise ValueError("Swin takes no prompt tokens (VPT-deep here needs the ViT backbone)")
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] != self.image_size or x.shape[3] != self.image_size:
            raise ValueError(
                f"Swin: expected a (B, 3, {self.image_size}, {self.image_size}) batch, got shape {tuple(x.shape)}"
            )
        h = self.embed_norm(self.patch_embed(x).permute(0, 2, 3, 1))
        out = []
        index = 0
        for k, blocks in enumerate(self.stages):
            for block in blocks:  # type: ignore[attr-defined]
                h = block(h, hook, index)
                index += 1
            out.append(self.out_norms[k](h).permute(0, 3, 1, 2))
            if k < len(self.merges):
                h = self.merges[k](h)
        return out
