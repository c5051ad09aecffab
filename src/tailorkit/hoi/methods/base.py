"""The method contract: the shared detector frame `HOIModel`, the variant registry `METHODS`, the verb heads `HEADS`.

A variant (a method: `single`, `cascade`, `hodn`) is a builder `(ModelConfig, num_obj_classes, num_verbs) ->
HOIModel` registered in `METHODS` (also reachable as `MODELS`, its earlier name); `build_model` looks up
`ModelConfig.variant`. `HOIModel` is the frame: backbone -> 1x1 projection -> encoder, then the variant's decoders
(its `decode`) and the heads.

Every variant returns the QPIC output dictionary: `pred_obj_logits` (B, Q, C+1), `pred_verb_logits` (B, Q, V),
`pred_sub_boxes` and `pred_obj_boxes` (B, Q, 4; normalised cxcywh, sigmoid), plus `aux_outputs` (the same keys for
every earlier decoder layer). `forward` takes images or, for a frozen backbone, precomputed backbone features.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from tailorkit.core.registry import Registry
from tailorkit.hoi.config import ModelConfig
from tailorkit.hoi.transformer import MLP, Encoder, FeatureBackbone, sine_positions

__all__ = ["HEADS", "METHODS", "MODELS", "HOIHeads", "HOIModel", "build_model"]

ModelBuilder = Callable[[ModelConfig, int, int], "HOIModel"]
METHODS: Registry[ModelBuilder] = Registry("HOI detector variant")
MODELS = METHODS  # the registry's earlier name
HEADS: Registry[Callable[[int, int], nn.Module]] = Registry("verb head")

HEADS.add("linear", lambda d, v: nn.Linear(d, v))
HEADS.add("mlp", lambda d, v: MLP(d, d, v, 2))


class HOIHeads(nn.Module):
    """Object class (C + 1, the last one "no pair"), verbs (multi-label), human and object boxes."""

    def __init__(self, d: int, num_obj_classes: int, num_verbs: int, verb_head: str = "linear") -> None:
        super().__init__()
        self.obj_class = nn.Linear(d, num_obj_classes + 1)
        self.verb = HEADS.get(verb_head)(d, num_verbs)
        self.sub_box = MLP(d, d, 4, 3)
        self.obj_box = MLP(d, d, 4, 3)


def layer_outputs(
    obj_class: torch.Tensor, verb: torch.Tensor, sub_box: torch.Tensor, obj_box: torch.Tensor
) -> dict[str, Any]:
    """Per-layer tensors (L, B, Q, .) -> the final output dict with `aux_outputs` for the earlier layers."""
    layers = [
        {"pred_obj_logits": c, "pred_verb_logits": v, "pred_sub_boxes": s, "pred_obj_boxes": o}
        for c, v, s, o in zip(obj_class, verb, sub_box, obj_box, strict=True)
    ]
    out: dict[str, Any] = dict(layers[-1])
    out["aux_outputs"] = layers[:-1]
    return out


class HOIModel(nn.Module, abc.ABC):
    """Backbone, projection, encoder and heads; subclasses implement `decode(memory, pos)`.

    Shapes:
        images (B, 3, H, W) in [0, 1] or features (B, C_backbone, h, w) -> the output dict (module docstring)
    """

    def __init__(self, cfg: ModelConfig, num_obj_classes: int, num_verbs: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.num_obj_classes = num_obj_classes
        self.num_verbs = num_verbs
        d = cfg.d_model
        self.backbone = FeatureBackbone(
            cfg.backbone, frozen=cfg.freeze_backbone, stage=cfg.backbone_stage, width=cfg.tiny_width
        )
        self.input_proj = nn.Conv2d(self.backbone.out_channels, d, 1)
        self.encoder = Encoder(d, cfg.heads, cfg.ffn, cfg.enc_layers, cfg.dropout)
        self.query_embed = nn.Embedding(cfg.num_queries, d)
        self.heads = HOIHeads(d, num_obj_classes, num_verbs, cfg.verb_head)

    def encode(
        self, images: torch.Tensor | None = None, features: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Memory and positions (B, N, d) from images or cached backbone features."""
        if (images is None) == (features is None):
            raise ValueError("HOIModel: expected exactly one of images=(B, 3, H, W) or features=(B, C, h, w)")
        if features is None:
            assert images is not None
            features = self.backbone(images)
        if features.ndim != 4 or features.shape[1] != self.backbone.out_channels:
            raise ValueError(
                f"HOIModel: expected features of shape (B, {self.backbone.out_channels}, h, w), "
                f"got {tuple(features.shape)}"
            )
        src = self.input_proj(features)
        b, d, h, w = src.shape
        src = src.flatten(2).transpose(1, 2)
        pos = sine_positions(h, w, d, src.device, src.dtype)[None].expand(b, -1, -1)
        return self.encoder(src, pos), pos

    def queries(self, batch: int) -> torch.Tensor:
        return self.query_embed.weight[None].expand(batch, -1, -1)

    @abc.abstractmethod
    def decode(self, memory: torch.Tensor, pos: torch.Tensor) -> dict[str, Any]:
        """QPIC's output dict (logits, verb logits, boxes, aux_outputs) from the encoder memory."""

    def forward(self, images: torch.Tensor | None = None, features: torch.Tensor | None = None) -> dict[str, Any]:
        memory, pos = self.encode(images, features)
        out = self.decode(memory, pos)
        if not self.training:
            out["aux_outputs"] = []  # only the losses read them
        return out

    def predict_boxes(self, hs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.heads.sub_box(hs).sigmoid(), self.heads.obj_box(hs).sigmoid()


def build_model(cfg: ModelConfig, num_obj_classes: int, num_verbs: int) -> HOIModel:
    """The registered variant `cfg.variant` (an unknown name lists the valid ones)."""
    return METHODS.get(cfg.variant)(cfg, num_obj_classes, num_verbs)
