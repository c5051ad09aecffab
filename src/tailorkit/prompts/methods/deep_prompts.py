"""Single-modality and uncoupled/coupled deep prompts: CoOp, VPT-style, IVLP and MaPLe-style.

- CoOp (Zhou et al., "Learning to Prompt for Vision-Language Models", IJCV 2022, arXiv:2109.01134): learnable
  text context vectors at the input, initialised to the embeddings of "a photo of a" (the 4-token variant).
- VPT-style (Jia et al., "Visual Prompt Tuning", ECCV 2022, arXiv:2203.12119; the CLIP variant of Khattak et al.'s
  code): deep visual prompts only. On the CNN tower a stage's prompt is n tokens of its input width times fixed
  spatial bases, added to the stage's input (documented generalisation, nets/dual_encoder.py).
- IVLP (independent vision-language prompting, the baseline of Khattak et al., "MaPLe", CVPR 2023,
  arXiv:2210.03117): deep text and deep visual prompts, learned independently.
- MaPLe-style: deep text prompts, and visual prompts generated from them by a per-layer linear coupling
  Linear(384 -> C_stage) (MaPLe's Linear(512 -> 768)), so only text prompts and the couplings are learned.

Deviations and inferred details (each an option): prompts are additive deltas at fixed slots, so zero-initialised
prompts leave the model unchanged (CoOp/MaPLe replace tokens; same at layer 0, a reparametrisation deeper);
``depth`` J pairs text layer l (0 = input) with image stage 7 - J + l; n_ctx <= 4 context slots;
``image_slot`` (VPT, IVLP, MaPLe; MmAP too) chooses how image tokens act on a stage's input: ``additive`` (default,
tokens times fixed spatial bases) or ``film`` (token 0 a per-channel scale ``1 + s``, the rest the additive map;
FiLM, Perez et al., AAAI 2018, arXiv:1709.07871, used as a visual prompt on a CNN [inferred]).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from tailorkit.nets.dual_encoder import DualEncoder
from tailorkit.prompts.methods.base import PromptLearner, bank_params, register_method, sum_banks, sum_terms

__all__ = ["IVLP", "VPT", "CoOp", "MaPLe"]


class _TextPrompts(PromptLearner):
    """Per-bank, per-layer text deltas (n_ctx, 384), zero-initialised."""

    def _init_text(self) -> None:
        self.text = nn.ModuleList(
            [bank_params(self.n_banks, (self.n_ctx, self.text_width)) for _ in range(self.text_layers)]
        )

    def text_deltas(self, task: int) -> list[torch.Tensor | None]:
        banks = self.assignment[task]
        return [sum_banks(layer, banks) for layer in self.text]  # type: ignore[arg-type]


class _ImagePrompts(PromptLearner):
    """Per-bank, per-stage visual prompt tokens (n_img, C_stage), zero-initialised."""

    def _init_image(self, n_img: int) -> None:
        self.image = nn.ModuleDict(
            {str(s): bank_params(self.n_banks, (n_img, c)) for s, c in self.stage_channels.items()}
        )

    def image_tokens(self, task: int) -> dict[int, torch.Tensor]:
        banks = self.assignment[task]
        return {int(s): sum_banks(p, banks) for s, p in self.image.items()}  # type: ignore[arg-type]


@register_method("coop")
class CoOp(_TextPrompts):
    """CoOp: learnable input context (text only)."""

    uses_text = True

    def __init__(
        self, encoder: DualEncoder, assignment: Sequence[Sequence[int]], *, n_ctx: int = 4, seed: int = 0
    ) -> None:
        super().__init__(encoder, assignment, text_layers=1, n_ctx=n_ctx)
        self._init_text()


@register_method("vpt")
class VPT(_ImagePrompts):
    """VPT-style deep visual prompts (image only), zero-initialised tokens per bank and stage."""

    uses_image = True

    def __init__(
        self,
        encoder: DualEncoder,
        assignment: Sequence[Sequence[int]],
        *,
        depth: int = 4,
        n_img: int = 4,
        image_slot: str = "additive",
        seed: int = 0,
    ) -> None:
        super().__init__(encoder, assignment, image_stages=depth, n_img=n_img, image_slot=image_slot)
        self._init_image(n_img)


@register_method("ivlp")
class IVLP(_TextPrompts, _ImagePrompts):
    """Independent deep text and visual prompts."""

    uses_text = True
    uses_image = True

    def __init__(
        self,
        encoder: DualEncoder,
        assignment: Sequence[Sequence[int]],
        *,
        depth: int = 4,
        n_ctx: int = 4,
        n_img: int = 4,
        image_slot: str = "additive",
        seed: int = 0,
    ) -> None:
        super().__init__(
            encoder,
            assignment,
            text_layers=depth,
            n_ctx=n_ctx,
            image_stages=depth,
            n_img=n_img,
            image_slot=image_slot,
        )
        self._init_text()
        self._init_image(n_img)


@register_method("maple")
class MaPLe(_TextPrompts):
    """MaPLe-style coupling: image tokens of stage l = Linear_l(text prompt of layer l)[:n_img], per bank.

    The coupling's bias starts at zero, so with zero text prompts the model starts unchanged.
    """

    uses_text = True
    uses_image = True

    def __init__(
        self,
        encoder: DualEncoder,
        assignment: Sequence[Sequence[int]],
        *,
        depth: int = 4,
        n_ctx: int = 4,
        image_slot: str = "additive",
        seed: int = 0,
    ) -> None:
        super().__init__(
            encoder,
            assignment,
            text_layers=depth,
            n_ctx=n_ctx,
            image_stages=depth,
            n_img=n_ctx,
            image_slot=image_slot,
        )
        self._init_text()
        gen = torch.Generator().manual_seed(seed)
        self.couple = nn.ModuleList()
        for c in self.stage_channels.values():
            banks = nn.ModuleList()
            for _ in range(self.n_banks):
                lin = nn.Linear(self.text_width, c)
                with torch.no_grad():
                    lin.weight.copy_(torch.randn(lin.weight.shape, generator=gen) / self.text_width**0.5)
                    lin.bias.zero_()
                banks.append(lin)
            self.couple.append(banks)

    def image_tokens(self, task: int) -> dict[int, torch.Tensor]:
        banks = self.assignment[task]
        out: dict[int, torch.Tensor] = {}
        couples: list[Any] = list(self.couple)
        for (stage, _), layer, couple in zip(self.stage_channels.items(), self.text, couples, strict=True):
            text = sum_banks(layer, banks)  # type: ignore[arg-type]
            out[stage] = sum_terms(couple[b](text) for b in banks)  # each bank's coupling maps the combined prompt
        return out
