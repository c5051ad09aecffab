"""Non-prompt baselines of MmAP's comparison: zero-shot, linear probe, CLIP-Adapter, BitFit, partial fine-tuning.

- zero-shot: the aligned dual encoder with the fixed prompt "a photo of a {name}." (CLIP's zero-shot rule).
- linear probe: a per-bank linear classifier on the frozen shared-space image embedding (CLIP's linear-probe
  protocol; here trained with Adam and weight decay instead of L-BFGS, initialised at zero).
- CLIP-Adapter (Gao et al., IJCV 2023, arXiv:2110.04544): a residual bottleneck MLP (reduction 4) on the image
  embedding, mixed with ratio alpha = 0.2 [unverified: the values commonly quoted, not checked in the paper].
- BitFit (Ben Zaken et al., ACL 2022, arXiv:2106.10199): every bias of the text tower, the BatchNorm shifts of the
  prompted image stages and the head, and the text projection's bias.
- full fine-tuning of the projections and top layers: the last BERT layer, the text projection, the last image
  stage, the image head (1x1 conv + BN) and the image scale. [Inferred scope: fine-tuning all of both towers is
  out of a CPU budget; the issue asks for "the projections and top layers".]

BitFit and fine-tuning learn additive deltas on the frozen values (zero at the start), per bank, and apply them
with ``torch.func.functional_call``, so the single-task form keeps one delta set per task.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from tailorkit.nets.dual_encoder import N_IMAGE_STAGES, DualEncoder
from tailorkit.prompts.methods.base import PromptLearner, register_method, sum_banks

__all__ = ["CLIPAdapter", "DeltaFineTune", "LinearProbe", "ZeroShot"]


@register_method("zero_shot")
class ZeroShot(PromptLearner):
    """No parameters: the aligned encoder as is."""

    def __init__(self, encoder: DualEncoder, assignment: Sequence[Sequence[int]], *, seed: int = 0) -> None:
        super().__init__(encoder, assignment)


@register_method("linear_probe")
class LinearProbe(PromptLearner):
    """Per-bank linear head on the frozen image embedding (10 classes)."""

    def __init__(
        self, encoder: DualEncoder, assignment: Sequence[Sequence[int]], *, n_classes: int = 10, seed: int = 0
    ) -> None:
        super().__init__(encoder, assignment)
        self.weight = nn.ParameterList([nn.Parameter(torch.zeros(n_classes, self.dim)) for _ in range(self.n_banks)])
        self.bias = nn.ParameterList([nn.Parameter(torch.zeros(n_classes)) for _ in range(self.n_banks)])

    def head(self, z: torch.Tensor, task: int) -> torch.Tensor:
        banks = self.assignment[task]
        w: torch.Tensor = sum_banks(self.weight, banks)
        b: torch.Tensor = sum_banks(self.bias, banks)
        return z @ w.T * 10.0 + b  # the 10x lets Adam reach confident logits quickly


@register_method("clip_adapter")
class CLIPAdapter(PromptLearner):
    """Residual bottleneck MLP on the image embedding: z' = alpha * MLP(z) + (1 - alpha) * z (then normalised)."""

    def __init__(
        self,
        encoder: DualEncoder,
        assignment: Sequence[Sequence[int]],
        *,
        reduction: int = 4,
        alpha: float = 0.2,
        seed: int = 0,
    ) -> None:
        super().__init__(encoder, assignment)
        gen = torch.Generator().manual_seed(seed)
        self.alpha = alpha
        self.adapters = nn.ModuleList()
        for _ in range(self.n_banks):
            mlp = nn.Sequential(
                nn.Linear(self.dim, self.dim // reduction, bias=False),
                nn.ReLU(),
                nn.Linear(self.dim // reduction, self.dim, bias=False),
                nn.ReLU(),
            )
            with torch.no_grad():
                for m in mlp:
                    if isinstance(m, nn.Linear):
                        m.weight.copy_(torch.randn(m.weight.shape, generator=gen) / m.in_features**0.5)
            self.adapters.append(mlp)

    def adapt_image(self, z: torch.Tensor, task: int) -> torch.Tensor:
        out = sum(self.adapters[b](z) for b in self.assignment[task])
        return F.normalize(self.alpha * out + (1 - self.alpha) * z, dim=-1)


class DeltaFineTune(PromptLearner):
    """Additive per-bank deltas on named encoder parameters, applied by functional_call (zero at the start)."""

    def __init__(
        self,
        encoder: DualEncoder,
        assignment: Sequence[Sequence[int]],
        names: dict[str, list[str]],
        image_stages: int,
    ) -> None:
        super().__init__(encoder, assignment, image_stages=image_stages)
        params = dict(encoder.named_parameters())
        self.base = {k: params[k] for group in names.values() for k in group}
        self.which = {k: w for w, group in names.items() for k in group}
        self.keys = sorted(self.base)
        self.deltas = nn.ModuleList(
            [
                nn.ParameterList([nn.Parameter(torch.zeros_like(self.base[k])) for k in self.keys])
                for _ in range(self.n_banks)
            ]
        )
        self.uses_text = bool(names.get("text"))
        self.uses_image = bool(names.get("image"))

    def text_key(self, task: int) -> tuple[int, ...]:
        return self.assignment[task] if self.uses_text else ()

    def overrides(self, task: int, which: str) -> dict[str, torch.Tensor]:
        out = {}
        for i, k in enumerate(self.keys):
            if self.which[k] != which:
                continue
            value = self.base[k].detach()
            for b in self.assignment[task]:
                value = value + self.deltas[b][i]  # type: ignore[index]
            out[k] = value
        return out


def _stage_blocks(stages: int) -> list[int]:
    from tailorkit.nets.dual_encoder import STAGE_STARTS

    first = STAGE_STARTS[N_IMAGE_STAGES - stages]
    return list(range(first, 16))


@register_method("bitfit")
def bitfit(
    encoder: DualEncoder, assignment: Sequence[Sequence[int]], *, image_stages: int = 4, seed: int = 0
) -> DeltaFineTune:
    blocks = _stage_blocks(image_stages)
    image = [
        k
        for k, _ in encoder.named_parameters()
        if k.startswith("image_tower.")
        and k.endswith(".bias")
        and (k.startswith("image_tower._bn1.") or any(k.startswith(f"image_tower._blocks.{b}.") for b in blocks))
    ]
    text = [k for k, _ in encoder.named_parameters() if k.startswith("text_tower.") and k.endswith(".bias")]
    text += [k for k, _ in encoder.named_parameters() if k.startswith("text_proj.") and k.endswith(".bias")]
    return DeltaFineTune(encoder, assignment, {"text": text, "image": image}, image_stages)


@register_method("full_ft")
def full_ft(
    encoder: DualEncoder,
    assignment: Sequence[Sequence[int]],
    *,
    text_top: int = 1,
    image_stages: int = 1,
    seed: int = 0,
) -> DeltaFineTune:
    n_layers = len(encoder.text_tower.encoder.layer)
    blocks = _stage_blocks(image_stages)
    text = [
        k
        for k, _ in encoder.named_parameters()
        if k.startswith("text_proj.")
        or any(k.startswith(f"text_tower.encoder.layer.{i}.") for i in range(n_layers - text_top, n_layers))
    ]
    image = [
        k
        for k, _ in encoder.named_parameters()
        if k in ("image_scale", "image_adapter.weight")  # the pairs encoder's image head is part of the projection
        or k.startswith(("image_tower._conv_head.", "image_tower._bn1."))
        or any(k.startswith(f"image_tower._blocks.{b}.") for b in blocks)
    ]
    return DeltaFineTune(encoder, assignment, {"text": text, "image": image}, image_stages)
