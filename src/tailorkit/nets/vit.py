"""A small plain-torch Vision Transformer with "adapter slots" and deep-prompt hooks, for dense prediction.

Architecture: Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021 (pre-norm blocks, learned position
embeddings), without a class token: dense heads read the patch-token grid. The blocks are grouped into ``stages``
(equal runs of blocks) whose last outputs are the multi-scale-style feature maps a dense decoder reads; they all
share one resolution (H/patch), as plain ViTs do.

The adapter-slot interface (shared with :mod:`tailorkit.nets.swin` and the EfficientNet-Lite0 wrapper in
:mod:`tailorkit.adapters.backbones`): a backbone lists its slots (:class:`SlotInfo`, one per block) and runs
``forward_stages(x, hook)``; at every block ``i`` it calls ``hook(i, tap)`` with ``tap`` the input of the block's
MLP path, channel-last ``(B, h, w, d_in)`` (here ``LN2(x')`` with ``x' = x + MSA(LN1(x))``), and adds the returned
``(B, h, w, d_out)`` tensor (or nothing for ``None``) to the block output, i.e. in parallel to the MLP (AdaptFormer,
Chen et al. NeurIPS 2022; VMT-Adapter Fig. 3). ``prompts`` (one ``(n, d)`` tensor per block) are VPT-deep prompt
tokens (Jia et al., ECCV 2022): prepended before each block and dropped after it, so each block sees fresh ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SlotHook", "SlotInfo", "ViT"]

#: ``hook(slot_index, tap)`` -> delta to add to the block output (or None). Shapes in the module docstring.
SlotHook = Callable[[int, torch.Tensor], "torch.Tensor | None"]


@dataclass(frozen=True)
class SlotInfo:
    """One adapter slot: the block's index, the stage its output belongs to, its MLP-input and output widths."""

    index: int
    stage: int
    d_in: int
    d_out: int


class Attention(nn.Module):
    """Multi-head self-attention with an explicit qkv Linear (so LoRA and BitFit find plain Linear layers).

    Shapes:
        x: (B, N, d) -> (B, N, d)
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"ViT: expected dim divisible by heads, got dim={dim}, heads={heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        result: torch.Tensor = self.proj(out.transpose(1, 2).reshape(b, n, d))
        return result


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.fc2(F.gelu(self.fc1(x)))
        return out


class Block(nn.Module):
    """Pre-norm transformer block: x' = x + MSA(LN1 x); out = x' + MLP(LN2 x') [+ slot delta(LN2 x')]."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(
        self, x: torch.Tensor, adapter: Callable[[torch.Tensor], torch.Tensor | None] | None = None
    ) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        tap = self.norm2(x)
        out = x + self.mlp(tap)
        if adapter is not None:
            delta = adapter(tap)
            if delta is not None:
                out = out + delta
        return out


class ViT(nn.Module):
    """Small ViT returning a list of token-grid feature maps (one per stage).

    Args:
        image_size: Input side (square); a multiple of ``patch``.
        patch: Patch side.
        dim: Token width.
        depth: Number of blocks.
        heads: Attention heads.
        mlp_ratio: MLP hidden width / dim.
        stages: Number of equal groups of blocks; each group's last output is one feature map.

    Shapes:
        x: (B, 3, image_size, image_size)
        forward_stages: ``stages`` maps of (B, dim, image_size / patch, image_size / patch)
    """

    supports_prompts = True

    def __init__(
        self,
        image_size: int = 64,
        patch: int = 8,
        dim: int = 128,
        depth: int = 6,
        heads: int = 4,
        mlp_ratio: float = 4.0,
        stages: int = 3,
    ) -> None:
        super().__init__()
        if image_size % patch:
            raise ValueError(f"ViT: expected image_size divisible by patch, got {image_size} and {patch}")
        if depth % stages:
            raise ValueError(f"ViT: expected depth divisible by stages, got depth={depth}, stages={stages}")
        self.image_size, self.patch, self.dim = image_size, patch, dim
        self.grid = image_size // patch
        self.patch_embed = nn.Conv2d(3, dim, patch, patch)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid * self.grid, dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        per = depth // stages
        self.stage_ends = tuple(per * (k + 1) - 1 for k in range(stages))
        self.stage_channels: tuple[int, ...] = (dim,) * stages
        self.stage_strides: tuple[int, ...] = (patch,) * stages

    @property
    def slots(self) -> list[SlotInfo]:
        per = len(self.blocks) // len(self.stage_ends)
        return [SlotInfo(i, i // per, self.dim, self.dim) for i in range(len(self.blocks))]

    def forward_stages(
        self,
        x: torch.Tensor,
        hook: SlotHook | None = None,
        prompts: Sequence[torch.Tensor] | None = None,
    ) -> list[torch.Tensor]:
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] != self.image_size or x.shape[3] != self.image_size:
            raise ValueError(
                f"ViT: expected a (B, 3, {self.image_size}, {self.image_size}) batch, got shape {tuple(x.shape)}"
            )
        if prompts is not None and len(prompts) != len(self.blocks):
            raise ValueError(f"ViT: expected one prompt tensor per block ({len(self.blocks)}), got {len(prompts)}")
        b, g = x.shape[0], self.grid
        h = self.patch_embed(x).flatten(2).transpose(1, 2) + self.pos_embed
        out = []
        for i, block in enumerate(self.blocks):
            n_p = 0
            if prompts is not None:
                p = prompts[i]
                n_p = p.shape[0]
                h = torch.cat([p.unsqueeze(0).expand(b, -1, -1).to(h.dtype), h], dim=1)
            adapter = None
            if hook is not None:
                adapter = _grid_adapter(hook, i, n_p, g)
            h = block(h, adapter)
            if n_p:
                h = h[:, n_p:]
            if i in self.stage_ends:
                feat = self.norm(h) if i == len(self.blocks) - 1 else h
                out.append(feat.transpose(1, 2).reshape(b, self.dim, g, g))
        return out


def _grid_adapter(
    hook: SlotHook, index: int, n_prompts: int, grid: int
) -> Callable[[torch.Tensor], torch.Tensor | None]:
    """Present the patch tokens of a block's MLP input as a (B, h, w, d) grid; prompt tokens get no adapter delta."""

    def apply(tap: torch.Tensor) -> torch.Tensor | None:
        b, _, d = tap.shape
        tokens = tap[:, n_prompts:]
        delta = hook(index, tokens.reshape(b, grid, grid, d))
        if delta is None:
            return None
        delta = delta.reshape(b, grid * grid, -1)
        if n_prompts:
            delta = torch.cat([delta.new_zeros(b, n_prompts, delta.shape[-1]), delta], dim=1)
        return delta

    return apply
