"""Baselines of the video benchmark, all on the same frozen dual encoder and training loop.

- ``zero_shot``: hand prompt "a photo of a {class}." and mean pooling of frame embeddings (CLIP's zero-shot rule
  applied to video; ViFi-CLIP's "vanilla CLIP" row). No parameters.
- ``coop_mean``: CoOp (Zhou et al., IJCV 2022, arXiv:2109.01134) context + mean pooling.
- ``coop_temporal``: CoOp + a temporal transformer over frame embeddings (ActionCLIP's "Transf" head, Wang et al.,
  arXiv:2109.08472; here on frozen towers), identity at initialisation.
- ``finetune_top``: hand prompts, mean pooling, fine-tuning of the top of the image tower (last EfficientNet stage,
  conv head + BatchNorm affine, image scale) and the text projection (ViFi-CLIP-like, Rasheed et al., CVPR 2023,
  arXiv:2212.03640, which fine-tunes all of CLIP; **[inferred scope]**: the whole towers are out of a CPU budget),
  as zero-initialised deltas applied with ``torch.func.functional_call`` (reusing tailorkit.prompts' ``full_ft``).
"""

from __future__ import annotations

from tailorkit.video.methods.base import register_method
from tailorkit.video.model import ArmSpec


@register_method("zero_shot")
def zero_shot() -> ArmSpec:
    return ArmSpec(prompts="hand", temporal_layers=0, motion=False, dynamic="none", communication=False)


@register_method("coop_mean")
def coop_mean() -> ArmSpec:
    return ArmSpec(prompts="coop", temporal_layers=0, motion=False, dynamic="none", communication=False)


@register_method("coop_temporal")
def coop_temporal() -> ArmSpec:
    return ArmSpec(prompts="coop", temporal_layers=1, motion=False, dynamic="none", communication=False)


@register_method("finetune_top")
def finetune_top() -> ArmSpec:
    return ArmSpec(
        prompts="hand", temporal_layers=0, motion=False, dynamic="none", communication=False, finetune_top=True
    )
