"""The video classifier every arm shares: frozen dual encoder + (optional) prompts, motion block, dynamic prompts,
communication block, or top-layer fine-tuning, scored CLIP-style against class-name text.

One class with switches (:class:`ArmSpec`) so that every arm of the benchmark runs through the same code, the same
loss and the same loop; the registered methods (tailorkit.video.methods) are named settings of it. The encoder is
held outside the module's parameters: ``model.parameters()`` are exactly the trainable ones (context, MetaNet,
motion and communication blocks, fine-tuning deltas).

Text: ``"a photo of a {class name}."`` through the frozen MiniLM; ``prompts="coop"`` learns the 4 context slots
("a photo of a", reusing :class:`tailorkit.prompts.methods.deep_prompts.CoOp`); ``prompts="hand"`` keeps the
template, whose text features are computed once per class list and cached in memory.

Logits: ``exp(logit_scale) * cos(v, t_c)`` with the encoder's aligned (frozen) temperature; loss cross-entropy
(docs/video.md#the-method-as-implemented; ActionCLIP's symmetric KL is not implemented).

Shapes:
    emb: (B, T, D) unit-norm frame embeddings (tailorkit.video.features); prefix: (B, T, C, h, w) for fine-tuning
    forward -> (B, K) logits for K class names
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tailorkit.nets.dual_encoder import N_IMAGE_STAGES, DualEncoder
from tailorkit.video.blocks import CommunicationBlock, DynamicPrompts, MotionBlock

__all__ = ["ArmSpec", "VideoModel"]

PROMPTS = ("hand", "coop")
DYNAMIC = ("none", "context", "after")


@dataclass(frozen=True)
class ArmSpec:
    """Switches of :class:`VideoModel` (the registered arms are named values of this).

    Attributes:
        prompts: ``hand`` (fixed template) or ``coop`` (learned context, 4 slots).
        n_ctx: Learned context slots (1..4).
        temporal_layers: Temporal transformer layers in the spatial stream (0 = mean pooling).
        motion: Motion stream with its zero-initialised gate.
        dynamic: ``none``, ``context`` (CoCoOp-style context shift) or ``after`` (shift after the text encoder).
        communication: Zero-initialised cross-attention of class texts over frame and video tokens.
        finetune_top: Fine-tune the image tower's last stage, head and image scale plus the text projection
            (ViFi-CLIP-like; mean pooling, hand prompts) from cached prefixes.
        gate, motion_hidden, long_stride, kernel, diff_scale, use_long, heads, metanet_reduction: block options.
    """

    prompts: str = "coop"
    n_ctx: int = 4
    temporal_layers: int = 1
    motion: bool = True
    dynamic: str = "context"
    communication: bool = True
    finetune_top: bool = False
    gate: str = "scalar"
    motion_hidden: int = 128
    long_stride: int = 0
    kernel: int = 3
    diff_scale: float = 4.0
    use_long: bool = True
    heads: int = 4
    metanet_reduction: int = 16

    def __post_init__(self) -> None:
        if self.prompts not in PROMPTS:
            raise ValueError(f"prompts: expected one of {PROMPTS}, got {self.prompts!r}")
        if self.dynamic not in DYNAMIC:
            raise ValueError(f"dynamic: expected one of {DYNAMIC}, got {self.dynamic!r}")
        if self.dynamic != "none" and not self.motion:
            raise ValueError("dynamic prompts need the motion stream (motion=True): the motion cue drives them")
        if self.dynamic == "context" and self.prompts != "coop":
            raise ValueError("dynamic='context' shifts learned context tokens: it needs prompts='coop'")
        if self.temporal_layers < 0:
            raise ValueError(f"temporal_layers: expected >= 0, got {self.temporal_layers}")
        if self.finetune_top and (self.motion or self.temporal_layers or self.communication or self.prompts != "hand"):
            raise ValueError("finetune_top is the ViFi-CLIP-like arm: hand prompts, mean pooling, nothing else")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FINETUNE_STAGE = N_IMAGE_STAGES - 1  # the last image stage (its input is the cached prefix)


class VideoModel(nn.Module):
    """Frozen dual encoder + the arm's trainable parts (see module docstring).

    Args:
        encoder: The aligned dual encoder (kept frozen, not registered as a submodule).
        spec: Which parts exist.
        frames: Maximum clip length T (temporal position table).
    """

    def __init__(self, encoder: DualEncoder, spec: ArmSpec, frames: int) -> None:
        super().__init__()
        self._encoder = [encoder]  # a list hides it from nn.Module's parameter registry
        self.spec = spec
        self.frames = frames
        dim = encoder.dim
        self.ctx: nn.Module | None = None
        if spec.prompts == "coop":
            from tailorkit.prompts.methods.deep_prompts import CoOp

            self.ctx = CoOp(encoder, [[0]], n_ctx=spec.n_ctx)
        self.block: MotionBlock | None = None
        if spec.motion or spec.temporal_layers:
            self.block = MotionBlock(
                dim,
                frames,
                temporal_layers=spec.temporal_layers,
                motion=spec.motion,
                gate=spec.gate,
                motion_hidden=spec.motion_hidden,
                long_stride=spec.long_stride,
                kernel=spec.kernel,
                diff_scale=spec.diff_scale,
                use_long=spec.use_long,
                heads=spec.heads,
            )
        self.dynamic = (
            DynamicPrompts(dim, encoder.text_width, spec.dynamic, spec.metanet_reduction)
            if spec.dynamic != "none"
            else None
        )
        self.comm = CommunicationBlock(dim, spec.heads) if spec.communication else None
        self.finetune: nn.Module | None = None
        if spec.finetune_top:
            from tailorkit.prompts.methods.baselines import full_ft

            self.finetune = full_ft(encoder, [[0]], text_top=0, image_stages=1)
        self._text_cache: dict[tuple[str, ...], tuple[dict[str, torch.Tensor], torch.Tensor]] = {}

    @property
    def encoder(self) -> DualEncoder:
        return self._encoder[0]

    def gates(self) -> list[nn.Parameter]:
        """The motion stream's zero-initialised gate (the fast-learning-rate group of the training loop)."""
        if self.block is not None and self.block.gamma is not None:
            return [self.block.gamma]
        return []

    def trainable_count(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    # ---------------------------------------------------------------------------------------------- text
    def _tokens(self, names: Sequence[str]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Tokens and the frozen (template) 384-d text features of a class list, computed once."""
        key = tuple(names)
        if key not in self._text_cache:
            if not names:
                raise ValueError("class names: expected at least one class, got an empty list")
            tokens = self.encoder.tokenize(list(names))
            with torch.no_grad():
                feats = self.encoder.text_features(tokens)
            self._text_cache[key] = (tokens, feats)
        return self._text_cache[key]

    def _project_text(self, feats: torch.Tensor) -> torch.Tensor:
        if self.finetune is not None:
            over = self.finetune.overrides(0, "text")  # type: ignore[operator]
            proj = {k.removeprefix("text_proj."): v for k, v in over.items() if k.startswith("text_proj.")}
            z = torch.func.functional_call(self.encoder.text_proj, proj, (feats,))
            return F.normalize(z, dim=-1)
        return self.encoder.project_text(feats)

    def text_embeddings(self, names: Sequence[str], cue: torch.Tensor | None = None) -> torch.Tensor:
        """Class embeddings: (K, D), or (B, K, D) when dynamic prompts get the motion cue (B, D)."""
        tokens, frozen = self._tokens(names)
        if self.ctx is None:
            text = self._project_text(frozen)
        else:
            ctx = self.ctx.text_deltas(0)[0]  # type: ignore[operator]
            if self.dynamic is not None and self.dynamic.mode == "context" and cue is not None:
                b, k = cue.shape[0], len(names)
                shift = self.dynamic(cue)  # (B, 384), added to every context token
                delta = (ctx.unsqueeze(0) + shift[:, None, :]).repeat_interleave(k, dim=0)
                rep = {n: t.repeat(b, 1) for n, t in tokens.items()}
                return self.encoder.encode_tokens(rep, [delta]).reshape(b, k, -1)
            text = self.encoder.encode_tokens(tokens, [ctx.unsqueeze(0)])
        if self.dynamic is not None and self.dynamic.mode == "after" and cue is not None:
            return F.normalize(text.unsqueeze(0) * (1 + self.dynamic(cue)[:, None, :]), dim=-1)
        return text

    # ---------------------------------------------------------------------------------------------- video
    def frame_embeddings(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """(B, T, D) unit-norm frame embeddings: cached, or recomputed from the prefix with fine-tuned top."""
        if self.finetune is None:
            return batch["emb"]
        if "prefix" not in batch:
            raise ValueError("finetune_top needs the cached image-tower prefix (features with prefix_stage=6)")
        prefix = batch["prefix"]
        b, t = prefix.shape[:2]
        over = self.finetune.overrides(0, "image")  # type: ignore[operator]
        emb = torch.func.functional_call(
            self.encoder, over, ("encode_image_prefix", prefix.flatten(0, 1), FINETUNE_STAGE), strict=False
        )
        return emb.reshape(b, t, -1)

    def video_embedding(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, T, D) -> (video embedding (B, D) unnormalised, motion cue or None)."""
        if self.block is None:
            return f.mean(1), None
        return self.block(f)

    def forward(self, batch: Mapping[str, torch.Tensor], names: Sequence[str]) -> torch.Tensor:
        """Logits (B, K) of the clips in ``batch`` against the class ``names``."""
        f = self.frame_embeddings(batch)
        if f.ndim != 3 or f.shape[-1] != self.encoder.dim:
            raise ValueError(f"frame embeddings: expected (B, T, {self.encoder.dim}); got {tuple(f.shape)}")
        v, cue = self.video_embedding(f)
        text = self.text_embeddings(names, cue)
        if self.comm is not None:
            text = self.comm(text, f, v)
        text = F.normalize(text, dim=-1)
        v = F.normalize(v, dim=-1)
        scale = self.encoder.logit_scale.exp().clamp(max=100.0).detach()
        if text.ndim == 2:
            return scale * v @ text.T
        return scale * torch.einsum("bd,bkd->bk", v, text)
