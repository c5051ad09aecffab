"""`single`: the QPIC-like baseline, one decoder whose every query predicts a whole triplet.

QPIC: Tamura, Ohashi, Yoshinaga, "QPIC: Query-Based Pairwise Human-Object Interaction Detection with Image-Wide
Contextual Information", CVPR 2021 (`hitachi-rd-cv/qpic`). Each decoder layer's output feeds all four heads (human
box, object box, object class, verbs); earlier layers give the auxiliary outputs. Deviation: CPU scale (small
backbone, d = 64, 3 layers by default) rather than ResNet-50 + 6 layers.

`single_deep` is HODN's depth-matched control (issue 22): one decoder of human_layers + object_layers + inter_layers
layers (6 at the defaults), HODN's decoder parameters up to two final LayerNorms.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from tailorkit.hoi.config import DepthMatchedOptions, ModelConfig, SingleOptions, defaults_of
from tailorkit.hoi.methods.base import METHODS, HOIModel, layer_outputs
from tailorkit.hoi.transformer import Decoder


class SingleDecoder(HOIModel):
    def __init__(self, cfg: ModelConfig, num_obj_classes: int, num_verbs: int) -> None:
        super().__init__(cfg, num_obj_classes, num_verbs)
        self.options = cfg.options_as(SingleOptions)
        self.decoder = Decoder(cfg.d_model, cfg.heads, cfg.ffn, self.options.dec_layers, cfg.dropout)

    def decode(self, memory: torch.Tensor, pos: torch.Tensor) -> dict[str, Any]:
        q = self.queries(memory.shape[0])
        hs = self.decoder(torch.zeros_like(q), memory, pos, q)
        sub, obj = self.predict_boxes(hs)
        return layer_outputs(self.heads.obj_class(hs), self.heads.verb(hs), sub, obj)


@METHODS.register("single")
def build_single(cfg: ModelConfig, num_obj_classes: int, num_verbs: int) -> HOIModel:
    return SingleDecoder(cfg, num_obj_classes, num_verbs)


@METHODS.register("single_deep")
def build_single_deep(cfg: ModelConfig, num_obj_classes: int, num_verbs: int) -> HOIModel:
    """The single decoder with HODN's decoder depth: human_layers + object_layers + inter_layers layers."""
    opts = cfg.options_as(DepthMatchedOptions)
    depth = opts.human_layers + opts.object_layers + opts.inter_layers
    deep = dataclasses.replace(cfg, variant="single", dec_layers=depth, **defaults_of(DepthMatchedOptions))
    return SingleDecoder(deep, num_obj_classes, num_verbs)
