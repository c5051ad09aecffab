"""The building blocks of motion prompts on a frozen dual encoder (SiF, Wang et al., ACM MM 2023, arXiv:2308.04828).

Only the paper's abstract is available: every equation below is our reconstruction, marked **[inferred]**, with each
choice a constructor option (docs/video.md#the-method-as-implemented).

- :class:`TemporalTransformer` (spatial stream; ActionCLIP's "Transf" head / X-CLIP's MIT): pre-norm transformer
  layers over the T frame embeddings with learned positions; the residual branch's output projections and the
  positions start at zero, so the block starts as the identity **[inferred: zero-init for the neutral start]**.
  Spatial feature ``s = mean_t f_t + mean_t (TT(f + pos) - f)_t``.
- :class:`MotionStream`: short-term differences ``d1_t = f_{t+1} - f_t`` and long-term ``dk_t = f_{t+k} - f_t``
  (k = ``long_stride``, default T / 2) **[inferred operators]**, each through a light temporal Conv1d -> GELU ->
  Linear and mean over time; ``m = g1(d1) + g2(dk)``. A time-reversed clip negates and reverses the differences,
  so ``m`` changes, while any mean over frames does not.
- :class:`MotionBlock` (MMB): ``v = s + gamma * m`` with gamma a zero-initialised gate (scalar by default,
  per-dimension by option) **[inferred]**, so training starts from frozen CLIP + mean pooling.
- :class:`DynamicPrompts` (MAP): a MetaNet of the motion cue (Linear -> ReLU -> Linear, zero-initialised last layer,
  CoCoOp's shape conditioned on motion instead of the image) gives either a shift of the learnable context tokens
  per video (``mode="context"``, CoCoOp-style; one text pass per (video, class)) or, the cheaper option, a
  per-video modulation of the class text embeddings after the text encoder (``mode="after"``):
  ``t_c(x) = normalise(t_c * (1 + a(m)))`` **[inferred: multiplicative (FiLM-like), because an additive shift
  common to all classes moves every class embedding toward one direction and, measured, collapses the logits]**.
- :class:`CommunicationBlock` (MCB): class text embeddings attend to the frame tokens and the video token,
  ``t_c <- t_c + beta * CrossAttn(q = t_c, kv = [f_1..f_T, v / |v|])`` with beta zero-initialised **[inferred
  direction text -> video, as X-CLIP's video-specific prompting; no LayerNorm on the unit-norm tokens, so the
  update has the tokens' scale]**.

Shapes:
    f: (B, T, D) unit-norm frame embeddings; s, m, v: (B, D); text: (K, D) or (B, K, D)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CommunicationBlock", "DynamicPrompts", "MotionBlock", "MotionStream", "TemporalTransformer"]


class _Layer(nn.Module):
    """One pre-norm transformer layer whose residual branches start at zero."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, int(dim * mlp_ratio))
        self.fc2 = nn.Linear(int(dim * mlp_ratio), dim)
        nn.init.zeros_(self.attn.out_proj.weight)
        nn.init.zeros_(self.attn.out_proj.bias)
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        x = self.norm1(h)
        h = h + self.attn(x, x, x, need_weights=False)[0]
        out: torch.Tensor = h + self.fc2(F.gelu(self.fc1(self.norm2(h))))
        return out


class TemporalTransformer(nn.Module):
    """Pre-norm transformer encoder over frames, identity at initialisation.

    Args:
        dim: D.
        frames: Maximum T (size of the learned position table).
        layers: Transformer layers (1 by default; 1-2 as ActionCLIP's "Transf" head or X-CLIP's MIT).
        heads: Attention heads.
        mlp_ratio: Width of the feed-forward layer as a multiple of D.
    """

    def __init__(self, dim: int, frames: int, layers: int = 1, heads: int = 4, mlp_ratio: float = 2.0) -> None:
        super().__init__()
        if layers < 1 or dim % heads:
            raise ValueError(f"temporal transformer: expected layers >= 1 and dim % heads == 0; got {layers}, {heads}")
        self.pos = nn.Parameter(torch.zeros(frames, dim))
        self.layers = nn.ModuleList([_Layer(dim, heads, mlp_ratio) for _ in range(layers)])

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (B, T, D); equals f at initialisation."""
        t = f.shape[1]
        if t > self.pos.shape[0]:
            raise ValueError(f"temporal transformer: built for at most {self.pos.shape[0]} frames, got {t}")
        h = f + self.pos[:t]
        for layer in self.layers:
            h = layer(h)
        return h - self.pos[:t]  # positions only steer attention; the residual stream returns to frame space


class _DiffEncoder(nn.Module):
    """Temporal Conv1d -> GELU -> Linear over a difference sequence, mean over time."""

    def __init__(self, dim: int, hidden: int, kernel: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(dim, hidden, kernel, padding=kernel // 2)
        self.out = nn.Linear(hidden, dim)

    def forward(self, d: torch.Tensor) -> torch.Tensor:
        h = F.gelu(self.conv(d.transpose(1, 2))).transpose(1, 2)
        out: torch.Tensor = self.out(h).mean(1)
        return out


class MotionStream(nn.Module):
    """m = g1(f_{t+1} - f_t) + g2(f_{t+k} - f_t).

    Args:
        dim: D.
        hidden: Width of each difference encoder.
        long_stride: k of the long-term differences; 0 = T // 2 of each clip.
        kernel: Temporal kernel of the Conv1d.
        scale: Differences are multiplied by this first (frame embeddings are unit-norm, consecutive differences
            small) **[inferred]**.
        use_long: Include the long-term branch (ablation).
    """

    def __init__(
        self,
        dim: int,
        hidden: int = 128,
        long_stride: int = 0,
        kernel: int = 3,
        scale: float = 4.0,
        use_long: bool = True,
    ) -> None:
        super().__init__()
        if long_stride < 0 or hidden < 1 or kernel < 1 or kernel % 2 == 0:
            raise ValueError(f"motion stream: expected hidden >= 1, odd kernel, long_stride >= 0; got {hidden, kernel}")
        self.long_stride = long_stride
        self.scale = scale
        self.short = _DiffEncoder(dim, hidden, kernel)
        self.long = _DiffEncoder(dim, hidden, kernel) if use_long else None

    def stride(self, frames: int) -> int:
        return min(self.long_stride or max(frames // 2, 1), frames - 1)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (B, D)."""
        t = f.shape[1]
        if t < 2:
            raise ValueError(f"motion stream: expected at least 2 frames, got {t}")
        m = self.short(self.scale * (f[:, 1:] - f[:, :-1]))
        if self.long is not None:
            k = self.stride(t)
            m = m + self.long(self.scale * (f[:, k:] - f[:, :-k]))
        return m


class MotionBlock(nn.Module):
    """Two-stream motion modelling block: ``v = s + gamma * m`` (gamma zero-initialised).

    Args:
        dim, frames: D and the maximum T.
        temporal_layers: Layers of the spatial stream's temporal transformer (0 = plain mean pooling).
        motion: Include the motion stream (False gives the CoOp + temporal transformer baseline's head).
        gate: ``scalar`` or ``vector`` (per-dimension) zero-initialised gate on the motion stream.
        motion_hidden, long_stride, kernel, diff_scale, use_long: :class:`MotionStream` options.
    """

    def __init__(
        self,
        dim: int,
        frames: int,
        *,
        temporal_layers: int = 1,
        motion: bool = True,
        gate: str = "scalar",
        motion_hidden: int = 128,
        long_stride: int = 0,
        kernel: int = 3,
        diff_scale: float = 4.0,
        use_long: bool = True,
        heads: int = 4,
    ) -> None:
        super().__init__()
        if gate not in ("scalar", "vector"):
            raise ValueError(f"gate: expected 'scalar' or 'vector', got {gate!r}")
        self.temporal = TemporalTransformer(dim, frames, temporal_layers, heads) if temporal_layers else None
        self.motion = MotionStream(dim, motion_hidden, long_stride, kernel, diff_scale, use_long) if motion else None
        self.gamma = nn.Parameter(torch.zeros(1 if gate == "scalar" else dim)) if motion else None

    def spatial(self, f: torch.Tensor) -> torch.Tensor:
        s = f.mean(1)
        if self.temporal is not None:
            s = s + (self.temporal(f) - f).mean(1)
        return s

    def forward(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, T, D) -> (video v (B, D), motion cue m (B, D) or None)."""
        s = self.spatial(f)
        if self.motion is None or self.gamma is None:
            return s, None
        m = self.motion(f)
        return s + self.gamma * m, m


class DynamicPrompts(nn.Module):
    """MetaNet of the motion cue: a per-video shift of the context tokens or of the text embeddings.

    Args:
        dim: D (input: the motion cue).
        text_width: Width of the text tower's token embeddings (context shifts).
        mode: ``context`` (CoCoOp-style, before the text encoder) or ``after`` (shift the class embeddings).
        reduction: MetaNet hidden width = dim // reduction (CoCoOp: 16).
    """

    def __init__(self, dim: int, text_width: int, mode: str = "context", reduction: int = 16) -> None:
        super().__init__()
        if mode not in ("context", "after"):
            raise ValueError(f"dynamic prompts mode: expected 'context' or 'after', got {mode!r}")
        self.mode = mode
        hidden = max(dim // reduction, 4)
        out = text_width if mode == "context" else dim
        self.hidden = nn.Linear(dim, hidden)
        self.out = nn.Linear(hidden, out)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, m: torch.Tensor) -> torch.Tensor:
        """(B, D) -> (B, text_width) context shift or (B, D) modulation ``a(m)``; zero at initialisation."""
        out: torch.Tensor = self.out(F.relu(self.hidden(m)))
        return out


class CommunicationBlock(nn.Module):
    """Zero-initialised cross-attention of class text embeddings over a video's frame tokens and video token.

    Args:
        dim: D.
        heads: Attention heads.
    """

    def __init__(self, dim: int, heads: int = 4) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.beta = nn.Parameter(torch.zeros(1))

    def forward(self, text: torch.Tensor, frames: torch.Tensor, video: torch.Tensor) -> torch.Tensor:
        """text (K, D) or (B, K, D), frames (B, T, D), video (B, D) -> per-video class embeddings (B, K, D)."""
        b = frames.shape[0]
        q = text.unsqueeze(0).expand(b, -1, -1) if text.ndim == 2 else text
        kv = torch.cat([frames, F.normalize(video, dim=-1).unsqueeze(1)], dim=1)
        upd = self.attn(q, kv, kv, need_weights=False)[0]
        return q + self.beta * upd
