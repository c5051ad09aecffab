"""MmAP: Multi-modal Alignment Prompt (Xin, Du, Wang, Yan, Ding, AAAI 2024, arXiv:2312.08636).

Verified from the abstract and figure captions: one *source prompt* generates both the text and the visual prompt
through a Kronecker product, so the two modalities' prompts stay aligned; tasks are grouped by gradient similarity,
each group shares an MmAP and each task keeps its own; about 0.09 % of CLIP's parameters are trained.

Reconstructed [inferred, docs/prompts.md#the-method-as-implemented], each an option:

- per prompted layer l (text layer l paired with image stage 7 - J + l): source ``S_l`` (n_src, d_s), text factor
  ``A_l^txt`` (a, ceil(384 / d_s)), visual factor ``A_l^vis`` (a, ceil(C_l / d_s));
  ``P_l^txt = S_l (x) A_l^txt`` -> (n_src * a, 384) and ``P_l^vis = S_l (x) A_l^vis`` -> (n_src * a, C_l), each
  product cropped to the modality's width when d_s does not divide it (``d_s`` may then be any width);
- ``d_s = 0`` (default): ``gcd(384, C_l)`` per layer (the gcd of the two widths, so the factors tile both exactly;
  8, 16, 16, 192 on the last four stages); ``d_s > 0``: that width on every layer; ``budget > 0``: the width (the
  same on every layer, 20..384: at least sqrt(384), so that the source is at least as wide as the text factor
  and carries the prompt, not the factors) whose total trainable count over all banks is closest to ``budget``
  times the dual encoder's parameters (the paper's share is 0.09 %, ``budget=0.0009``); ``n_src = 2``, ``a = 2``
  (4 tokens: the 4 context slots and 4 image tokens);
- ``source_init="zeros"`` (default; the model starts exactly unchanged, but at step 0 the factors get no gradient,
  since dP/dA = S = 0, so Adam leaves them where they are for the first step) or ``"normal"``: N(0, ``source_std``)
  (0.02, CoOp's context initialisation), so every factor gets a gradient at step 0 at the price of a small random
  start; the factors start at N(0, factor_init^2 / k) (k = factor width);
- ``image_slot``: ``additive`` (default) or ``film`` (methods/base.py), how the visual prompt acts on a stage;
- every bank (group-shared or task-specific MmAP) owns its source and factors; group and task MmAPs are summed
  (methods/base.py explains why).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from tailorkit.nets.dual_encoder import DualEncoder
from tailorkit.prompts.methods.base import PromptLearner, register_method, sum_terms

__all__ = ["SOURCE_INITS", "MmAP", "mmap_count"]


SOURCE_INITS = ("zeros", "normal")


def mmap_count(n_banks: int, widths: Sequence[tuple[int, int, int]], n_src: int, a: int) -> int:
    """Trainable parameters of ``n_banks`` MmAPs: per layer (text width, image width, d_s) a source and 2 factors."""
    per_bank = sum(n_src * ds + a * -(-wt // ds) + a * -(-wv // ds) for wt, wv, ds in widths)
    return n_banks * per_bank


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
        budget: float = 0.0,
        source_init: str = "zeros",
        source_std: float = 0.02,
        factor_init: float = 1.0,
        image_slot: str = "additive",
        seed: int = 0,
    ) -> None:
        n = n_src * a
        super().__init__(
            encoder,
            assignment,
            text_layers=depth,
            n_ctx=n,
            image_stages=depth,
            n_img=n,
            image_slot=image_slot,
        )
        if source_init not in SOURCE_INITS:
            raise ValueError(f"source_init: expected one of {', '.join(SOURCE_INITS)}; got {source_init!r}")
        if not source_std >= 0 or not factor_init > 0:
            raise ValueError(f"source_std >= 0 and factor_init > 0 expected; got {source_std}, {factor_init}")
        if not isinstance(d_s, int) or d_s < 0:
            raise ValueError(f"d_s: expected an int >= 0 (0 = gcd of the widths per layer), got {d_s!r}")
        if not 0 <= budget < 1:
            raise ValueError(f"budget: expected a fraction of the encoder's parameters in [0, 1), got {budget}")
        if budget and d_s:
            raise ValueError("d_s and budget both set: the budget chooses d_s")
        channels = list(self.stage_channels.values())
        if budget:
            target = budget * encoder.parameter_count()
            # from sqrt(384) on the source is at least as wide as the text factor; ties go to the wider source
            widths = range(math.isqrt(self.text_width - 1) + 1, self.text_width + 1)

            def miss(d: int) -> tuple[float, int]:
                count = mmap_count(self.n_banks, [(self.text_width, c, d) for c in channels], n_src, a)
                return abs(count - target), -d

            d_s = min(widths, key=miss)
        gen = torch.Generator().manual_seed(seed)
        self.d_s: list[int] = []
        self.widths: list[tuple[int, int]] = []
        self.source = nn.ModuleList()
        self.a_txt = nn.ModuleList()
        self.a_vis = nn.ModuleList()
        for c in channels:
            ds = d_s or math.gcd(self.text_width, c)
            self.d_s.append(ds)
            self.widths.append((self.text_width, c))
            kt, kv = -(-self.text_width // ds), -(-c // ds)
            sources = nn.ParameterList()
            for _ in range(self.n_banks):
                s = (
                    torch.zeros(n_src, ds)
                    if source_init == "zeros"
                    else torch.randn(n_src, ds, generator=gen) * source_std
                )
                sources.append(nn.Parameter(s))
            self.source.append(sources)
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
        width = self.widths[layer][0 if which == "text" else 1]
        return sum_terms(
            torch.kron(self.source[layer][b], factors[b])[:, :width]  # type: ignore[index]
            for b in self.assignment[task]
        )

    def text_deltas(self, task: int) -> list[torch.Tensor | None]:
        return [self._prompt(layer, task, "text") for layer in range(len(self.stage_channels))]

    def image_tokens(self, task: int) -> dict[int, torch.Tensor]:
        return {s: self._prompt(layer, task, "image") for layer, s in enumerate(self.stage_channels)}
