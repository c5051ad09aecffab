"""SiF, "Seeing in Flowing: Adapting CLIP for Action Recognition with Motion Prompts Learning" (Wang, Du, Yan,
Ding, ACM MM 2023, arXiv:2308.04828), reconstructed, and its ablations.

Verified from the abstract: a two-stream motion modelling block (motion from frame-representation differences,
short- and long-term, plus spatial features), motion cues driving a dynamic prompts learner (motion-aware
prompts), and a multimodal communication block, on a frozen CLIP with few trainable parameters. Everything else is
**[inferred]** (docs/video.md#the-method-as-implemented), implemented in tailorkit.video.blocks with each
choice an ArmSpec option: temporal transformer of 1 layer; differences at strides 1 and T / 2 through Conv1d ->
GELU -> Linear; scalar zero-initialised gate; MetaNet D -> D/16 -> 384 (context shift, CoCoOp-style) or D -> D/16
-> D (``dynamic="after"``); cross-attention text -> [frames, video] with a zero-initialised gate.

Arms:
- ``sif``: motion block + dynamic prompts + communication block (the method).
- ``motion_dynamic``: without the communication block (ablation).
- ``motion_static``: motion block with static CoOp prompts, no communication (ablation).
"""

from __future__ import annotations

from tailorkit.video.methods.base import register_method
from tailorkit.video.model import ArmSpec


@register_method("sif")
def sif() -> ArmSpec:
    return ArmSpec(prompts="coop", temporal_layers=1, motion=True, dynamic="context", communication=True)


@register_method("motion_dynamic")
def motion_dynamic() -> ArmSpec:
    return ArmSpec(prompts="coop", temporal_layers=1, motion=True, dynamic="context", communication=False)


@register_method("motion_static")
def motion_static() -> ArmSpec:
    return ArmSpec(prompts="coop", temporal_layers=1, motion=True, dynamic="none", communication=False)
