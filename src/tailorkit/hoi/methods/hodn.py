"""`hodn`: Human and Object Disentangling Network (Fang et al., arXiv:2308.10158, ICCV 2023).

The abstract: humans and objects are detected by two disentangling decoders; an interaction decoder uses the human
features as its positional embeddings ("Human-Guide Linking"); a stop-gradient keeps the interaction loss from
updating object detection while it still updates human detection. No official code exists; the specification below
is [inferred] beyond those three sentences (docs/hoi.md#the-detector-as-implemented):

- H = Dec_h(tgt=0, memory, pos, query_pos=q) -> human boxes; O = Dec_o(tgt=0, memory, pos, query_pos=q) -> object
  boxes and classes; the same learned queries q for both, so slot i pairs human i with object i. [inferred]
- I = Dec_i(tgt=sg(O_last) or 0, memory, pos, query_pos=link) -> verbs, with link = H_last ("human"), O_last
  ("object"), H_last + O_last ("pair") or q ("none"); `layerwise_link` feeds layer i of H to layer i of I. [inferred]
- `sg_obj` detaches every object feature entering Dec_i; `sg_hum` (negative control) detaches the human features.
- Triplet i = (H_i, O_i, I_i) with QPIC/CDN matching and losses; auxiliary outputs align the decoders' last layers.
"""

from __future__ import annotations

from typing import Any

import torch

from tailorkit.hoi.config import HODNOptions, ModelConfig
from tailorkit.hoi.methods.base import METHODS, HOIModel, layer_outputs
from tailorkit.hoi.transformer import Decoder


class HODN(HOIModel):
    def __init__(self, cfg: ModelConfig, num_obj_classes: int, num_verbs: int) -> None:
        super().__init__(cfg, num_obj_classes, num_verbs)
        self.options = opts = cfg.options_as(HODNOptions)
        d, h, f, p = cfg.d_model, cfg.heads, cfg.ffn, cfg.dropout
        self.human_decoder = Decoder(d, h, f, opts.human_layers, p)
        self.object_decoder = Decoder(d, h, f, opts.object_layers, p)
        self.inter_decoder = Decoder(d, h, f, opts.inter_layers, p)

    def link_inputs(
        self, human: torch.Tensor, obj: torch.Tensor, q: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | list[torch.Tensor]]:
        """The interaction decoder's content input and positional query(ies) from the instance decoders.

        Shapes:
            human (L_h, B, Q, d), obj (L_o, B, Q, d), q (B, Q, d) -> tgt (B, Q, d), query_pos (B, Q, d) or a list
        """
        opts = self.options
        if opts.sg_hum:
            human = human.detach()
        if opts.sg_obj:
            obj = obj.detach()
        tgt = obj[-1] if opts.obj_as_tgt else torch.zeros_like(q)
        if opts.link == "human":
            return tgt, list(human) if opts.layerwise_link else human[-1]
        if opts.link == "object":
            return tgt, obj[-1]
        if opts.link == "pair":
            return tgt, human[-1] + obj[-1]
        return tgt, q

    def decode(self, memory: torch.Tensor, pos: torch.Tensor) -> dict[str, Any]:
        q = self.queries(memory.shape[0])
        zeros = torch.zeros_like(q)
        human = self.human_decoder(zeros, memory, pos, q)
        obj = self.object_decoder(zeros, memory, pos, q)
        tgt, query_pos = self.link_inputs(human, obj, q)
        inter = self.inter_decoder(tgt, memory, pos, query_pos)
        n = min(len(human), len(obj), len(inter))
        human, obj, inter = human[-n:], obj[-n:], inter[-n:]
        return layer_outputs(
            self.heads.obj_class(obj),
            self.heads.verb(inter),
            self.heads.sub_box(human).sigmoid(),
            self.heads.obj_box(obj).sigmoid(),
        )


@METHODS.register("hodn")
def build_hodn(cfg: ModelConfig, num_obj_classes: int, num_verbs: int) -> HOIModel:
    return HODN(cfg, num_obj_classes, num_verbs)
