"""`cascade`: the CDN-like baseline, a pair decoder followed by an interaction decoder.

CDN: Zhang et al., "Mining the Benefits of Two-stage and One-stage HOI Detection", NeurIPS 2021 (`YueLiao/CDN`).
The human-object pair decoder (HOPD) predicts both boxes and the object class; its last layer's output becomes the
positional query of the interaction decoder (tgt = 0), which predicts the verbs. Auxiliary outputs pair the layers
of the two decoders from the end (CDN pairs layer i with layer i; with unequal depths we align the last layers).
Deviation: CPU scale (2 + 2 layers, d = 64); CDN's dynamic re-weighting and decoupled fine-tuning are left out.

`cascade_deep` is HODN's depth-matched control (issue 22): the pair decoder gets human_layers + object_layers layers
and the interaction decoder inter_layers, so it has HODN's decoder layers (6 at the defaults) and, since every
decoder layer and head is the same size, HODN's parameters up to one final LayerNorm (2 d parameters). The split
gives the instance stage HODN's four layers and keeps its interaction decoder as it is [our choice; CDN-S itself
splits 3 + 3].
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from tailorkit.hoi.config import CascadeOptions, DepthMatchedOptions, ModelConfig, defaults_of
from tailorkit.hoi.methods.base import METHODS, HOIModel, layer_outputs
from tailorkit.hoi.transformer import Decoder


class CascadeDecoder(HOIModel):
    def __init__(self, cfg: ModelConfig, num_obj_classes: int, num_verbs: int) -> None:
        super().__init__(cfg, num_obj_classes, num_verbs)
        self.options = opts = cfg.options_as(CascadeOptions)
        self.pair_decoder = Decoder(cfg.d_model, cfg.heads, cfg.ffn, opts.pair_layers, cfg.dropout)
        self.inter_decoder = Decoder(cfg.d_model, cfg.heads, cfg.ffn, opts.inter_layers, cfg.dropout)

    def decode(self, memory: torch.Tensor, pos: torch.Tensor) -> dict[str, Any]:
        q = self.queries(memory.shape[0])
        pair = self.pair_decoder(torch.zeros_like(q), memory, pos, q)
        inter = self.inter_decoder(torch.zeros_like(q), memory, pos, pair[-1])
        n = min(len(pair), len(inter))
        pair, inter = pair[-n:], inter[-n:]
        sub, obj = self.predict_boxes(pair)
        return layer_outputs(self.heads.obj_class(pair), self.heads.verb(inter), sub, obj)


@METHODS.register("cascade")
def build_cascade(cfg: ModelConfig, num_obj_classes: int, num_verbs: int) -> HOIModel:
    return CascadeDecoder(cfg, num_obj_classes, num_verbs)


@METHODS.register("cascade_deep")
def build_cascade_deep(cfg: ModelConfig, num_obj_classes: int, num_verbs: int) -> HOIModel:
    """The cascade with HODN's decoder depth: pair layers = human_layers + object_layers, then inter_layers."""
    opts = cfg.options_as(DepthMatchedOptions)
    layers = {"pair_layers": opts.human_layers + opts.object_layers, "inter_layers": opts.inter_layers}
    deep = dataclasses.replace(cfg, variant="cascade", **{**defaults_of(DepthMatchedOptions), **layers})
    return CascadeDecoder(deep, num_obj_classes, num_verbs)
