"""SLPT prompt tuning: feature-aware prompt updaters and K diversified prompt sets on a frozen U-Net.

Paper: F. Bai, K. Yan, X. Bai, X. Mao, X. Yin, J. Zhou, Y. Shi, L. Lu, M. Q.-H. Meng, "SLPT: Selective Labeling Meets
Prompt Tuning on Label-Limited Lesion Segmentation", MICCAI 2023 (arXiv:2308.04911). Only the abstract is public and
there is no official code, so everything below except "frozen task-agnostic backbone + tunable prompts + a
feature-aware prompt updater + several diversified prompt sets giving discrepant predictions" is [inferred]
(docs/active.md#the-method-as-implemented):

- Prompt placement [inferred]: one prompt P_l^k of shape (prompt_channels, h, h) per hooked stage l and set k.
- Feature-aware prompt updater, FPU [inferred, own design]: P~ = Up(P) to the stage's size;
  H = ReLU(Conv1x1([F; P~])) with `updater_width` channels; a = sigmoid(Linear(GAP(H))) (channel gate);
  F <- F + Conv1x1_out(DWConv3x3(H) * a). Conv1x1_out is zero-initialised, so at step 0 the prompted network equals
  the frozen one exactly. Deviation from our first specification, whose DWConv maps H straight to F's channels: a
  bottleneck width with a zero-initialised 1x1 output keeps the tunable share near the paper's 6 %. The optional
  "prompt refresh" P <- P + Pool(H) is not implemented.
- Each set has its own FPUs, prompts and a fresh 1x1 head (initialised from the upstream head; `head_init`).
- Diversity [inferred]: different random prompt/FPU inits and a different augmented view per set and step; an
  optional discrepancy term (TuneConfig.discrepancy) rewards disagreement (see tuning.py).
- The backbone is frozen, normalisation statistics included (kept in eval mode).

Also here: the "prompt" baseline, VPT-style additive prompts F <- F + Up(P) with P zero-initialised, no updater.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tailorkit.active.config import TuneConfig
from tailorkit.active.methods.base import TUNERS, SegModel, init_head
from tailorkit.nets.unet import UNet

__all__ = ["FeatureAwarePromptUpdater", "PlainPrompt", "PromptedUNet"]


def _up(prompt: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    mode = "bilinear" if like.dim() == 4 else "trilinear"
    up = F.interpolate(prompt.unsqueeze(0), size=like.shape[2:], mode=mode, align_corners=False)
    return up.expand(like.shape[0], *up.shape[1:])


class FeatureAwarePromptUpdater(nn.Module):
    """One stage's prompt and its feature-aware updater; zero-initialised output, so it starts as the identity.

    Shapes:
        features: (B, channels, *S) -> (B, channels, *S).
    """

    def __init__(
        self, channels: int, prompt_channels: int, width: int, size: int, spatial_dims: int, generator: torch.Generator
    ) -> None:
        super().__init__()
        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        self.prompt = nn.Parameter(torch.randn((prompt_channels,) + (size,) * spatial_dims, generator=generator))
        self.mix = conv(channels + prompt_channels, width, 1)
        self.gate = nn.Linear(width, width)
        self.spatial = conv(width, width, 3, padding=1, groups=width)
        self.out = conv(width, channels, 1)
        for module in (self.mix, self.gate, self.spatial):
            w = module.weight
            bound = 1 / max(w[0].numel(), 1) ** 0.5
            with torch.no_grad():
                w.copy_(torch.empty_like(w).uniform_(-bound, bound, generator=generator))
                module.bias.zero_()  # type: ignore[union-attr]
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)  # type: ignore[arg-type]

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.mix(torch.cat([features, _up(self.prompt, features)], dim=1)))
        a = torch.sigmoid(self.gate(h.flatten(2).mean(dim=2)))
        a = a.reshape(*a.shape, *([1] * (h.dim() - 2)))
        return features + self.out(self.spatial(h) * a)


class PlainPrompt(nn.Module):
    """VPT-style additive prompt F <- F + Up(P), P zero-initialised (identity at step 0)."""

    def __init__(self, channels: int, size: int, spatial_dims: int) -> None:
        super().__init__()
        self.prompt = nn.Parameter(torch.zeros((channels,) + (size,) * spatial_dims))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features + _up(self.prompt, features)


def select_stages(backbone: UNet, stages: str) -> list[tuple[str, int]]:
    """The (stage, channels) pairs named by "all" or a comma list; unknown names raise listing valid ones."""
    available = backbone.stage_channels()
    if stages.strip() == "all":
        return available
    names = [s.strip() for s in stages.split(",") if s.strip()]
    valid = dict(available)
    unknown = [s for s in names if s not in valid]
    if unknown:
        raise ValueError(f"stages: unknown stage {unknown[0]!r}; expected 'all' or names from {list(valid)}")
    return [(s, valid[s]) for s in names]


class PromptedUNet(SegModel):
    """A frozen U-Net with K prompt sets (FPU or plain) and K fresh heads."""

    prompt_based = True

    def __init__(self, backbone: UNet, config: TuneConfig, generator: torch.Generator, updater: bool) -> None:
        super().__init__()
        self.backbone = backbone
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        self.n_sets = config.prompt_sets
        dims = backbone.spatial_dims
        stages = select_stages(backbone, config.stages)
        self.adapters = nn.ModuleList()
        for _ in range(self.n_sets):
            modules: dict[str, nn.Module] = {}
            for name, channels in stages:
                modules[name] = (
                    FeatureAwarePromptUpdater(
                        channels, config.prompt_channels, config.updater_width, config.prompt_size, dims, generator
                    )
                    if updater
                    else PlainPrompt(channels, config.prompt_size, dims)
                )
            self.adapters.append(nn.ModuleDict(modules))
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        heads = [conv(backbone.channels[0], 1, 1) for _ in range(self.n_sets)]
        for head in heads:
            init_head(head, backbone, config.head_init, generator)
        self.heads = nn.ModuleList(heads)

    def frozen_modules(self) -> list[nn.Module]:
        return [self.backbone]

    def forward_views(self, views: torch.Tensor) -> torch.Tensor:
        k, b = views.shape[:2]
        if k != self.n_sets:
            raise ValueError(f"forward_views: expected {self.n_sets} views (one per prompt set), got {k}")

        adapters: list[nn.ModuleDict] = list(self.adapters)  # type: ignore[arg-type]

        def hook(name: str, h: torch.Tensor) -> torch.Tensor:
            if name not in adapters[0]:
                return h
            chunks = h.split(b)
            return torch.cat([adapters[i][name](c) for i, c in enumerate(chunks)])

        feats = self.backbone.decode_features(views.reshape(k * b, *views.shape[2:]), hook).split(b)
        return torch.stack([self.heads[i](f)[:, 0] for i, f in enumerate(feats)])


@TUNERS.register("slpt")
def slpt(backbone: UNet, config: TuneConfig, generator: torch.Generator) -> SegModel:
    """Feature-aware prompt updaters with K diversified prompt sets (the SLPT tuner)."""
    return PromptedUNet(backbone, config, generator, updater=True)


@TUNERS.register("prompt")
def plain_prompt(backbone: UNet, config: TuneConfig, generator: torch.Generator) -> SegModel:
    """Plain additive prompts (no updater), same sets and heads: the ablation of the FPU."""
    return PromptedUNet(backbone, config, generator, updater=False)
