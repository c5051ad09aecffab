"""MmAP: Multi-modal Alignment Prompt (Xin, Du, Wang, Yan, Ding, AAAI 2024, arXiv:2312.08636).

Verified from the abstract and figure captions: one *source prompt* generates both the text and the visual prompt
through a Kronecker product, so the two modalities' prompts stay aligned; tasks are grouped by gradient similarity,
each group shares an MmAP and each task keeps its own; about 0.09 % of CLIP's parameters are trained.

Reconstructed [inferred, docs/prompts.md#the-method-as-implemented], each an option:

- per prompted layer l (text layer l paired with image stage 7 - J + l): source ``S_l`` (n_src, d_s), text factor
  ``A_l^txt`` (a, 384 / d_s), visual factor ``A_l^vis`` (a, C_l / d_s);
  ``P_l^txt = S_l (x) A_l^txt`` -> (n_src * a, 384) and ``P_l^vis = S_l (x) A_l^vis`` -> (n_src * a, C_l);
- ``d_s = gcd(384, C_l)`` by default (the gcd of the two widths, applied per layer because the CNN's widths differ by
  stage), ``n_src = 2``, ``a = 2`` (4 tokens: the 4 context slots and 4 spatial bases);
- the source starts at zero (the model starts unchanged) and the factors at N(0, 1/k) (k = factor width), so the
  source receives gradients from both modalities from the first step; every bank (group-shared or task-specific
  MmAP) owns its source and factors; group and task MmAPs are summed (methods/base.py explains why).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from tailorkit.nets.dual_encoder import DualEncoder
from tailorkit.prompts.methods.base import PromptLearner, register_method, sum_terms

__all__ = ["MmAP"]


@register_method("mmap")
class MmAP(PromptLearner):
    """MmAP banks: per bank and prompted layer a source prompt and two modality factors (Kronecker-coupled)."""

    uses_text = True
    uses_image = True

    def __init__(
        self,
        encoder: DualEncoder,
        assignment: Sequence[Sequence[int]],
        *,
        depth: int = 4,
        n_src: int = 2,
        a: int = 2,
        d_s: int = 0,
        factor_init: float = 1.0,
        seed: int = 0,
    ) -> None:
        n = n_src * a
        super().__init__(encoder, assignment, text_layers=depth, n_ctx=n, image_stages=depth, n_img=n)
        gen = torch.Generator().manual_seed(seed)
        self.d_s: list[int] = []
        self.source = nn.ModuleList()
        self.a_txt = nn.ModuleList()
        self.a_vis = nn.ModuleList()
        for c in self.stage_channels.values():
            ds = d_s or math.gcd(self.text_width, c)
            if self.text_width % ds or c % ds:
                raise ValueError(f"d_s={ds} must divide the text width {self.text_width} and stage width {c}")
            self.d_s.append(ds)
            kt, kv = self.text_width // ds, c // ds
            self.source.append(nn.ParameterList([nn.Parameter(torch.zeros(n_src, ds)) for _ in range(self.n_banks)]))
            self.a_txt.append(
                nn.ParameterList(
                    [
                        nn.Parameter(torch.randn(a, kt, generator=gen) * factor_init / math.sqrt(kt))
                        for _ in range(self.n_banks)
                    ]
                )
            )
            self.a_vis.append(
                nn.ParameterList(
                    [
                        nn.Parameter(torch.randn(a, kv, generator=gen) * factor_init / math.sqrt(kv))
                        for _ in range(self.n_banks)
                    ]
                )
            )

    def _prompt(self, layer: int, task: int, which: str) -> torch.Tensor:
        factors = self.a_txt[layer] if which == "text" else self.a_vis[layer]
        return sum_terms(torch.kron(self.source[layer][b], factors[b]) for b in self.assignment[task])  # type: ignore[index]

    def text_deltas(self, task: int) -> list[torch.Tensor | None]:
        return [self._prompt(layer, task, "text") for layer in range(len(self.stage_channels))]

    def image_tokens(self, task: int) -> dict[int, torch.Tensor]:
        return {s: self._prompt(layer, task, "image") for layer, s in enumerate(self.stage_channels)}
