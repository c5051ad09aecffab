"""`tailorkit.adapters`: VMT-Adapter / VMT-Adapter-Lite (arXiv:2312.08733) for multi-task dense prediction on a
frozen pretrained backbone, beside the PETL and fine-tuning baselines.

Public API:
    build_backbone(name) -> slot backbone            efficientnet_lite0 (real ImageNet weights), vit, swin (shapes)
    load_backbone_weights(backbone, file)             a user's safetensors weights, loaded strictly
    make_encoder(backbone, tasks, method_config)      any registered method (METHODS), with its own options
    build_model(config) / train_model / evaluate      training through tailorkit.core.train (resume, torchrun)
    save_run / load_run                               trainable-only safetensors + manifest (backbone checked)
    render_scenes, load_photo_textures                SynthContext scenes with exact labels for six tasks
    make_split(config, split)                         train / test / val / tune scenes (disjoint seed streams)
    read_pascal_context                               the ASTMT PASCAL-Context multi-task folder layout
    delta_m, task_loss, TaskMeter                     losses, metrics and the multi-task relative improvement
    encoder_flops, step_seconds, cost_curve           cost versus number of tasks
"""

from __future__ import annotations

from tailorkit.adapters.backbones import (
    EfficientNetSlots,
    backbone_fingerprint,
    build_backbone,
    count_parameters,
    load_backbone_weights,
)
from tailorkit.adapters.config import BackboneConfig, DataConfig, MethodConfig, OptimConfig, TrainConfig
from tailorkit.adapters.cost import cost_curve, encoder_flops, step_seconds
from tailorkit.adapters.data import MultiTaskData, make_data, make_split, read_pascal_context
from tailorkit.adapters.methods import METHODS, MultiTaskEncoder, make_encoder
from tailorkit.adapters.methods.vmt import VMTEncoder, VMTSlot
from tailorkit.adapters.model import DenseDecoder, MultiTaskModel
from tailorkit.adapters.runner import build_model, evaluate, load_run, save_run, train_model
from tailorkit.adapters.synth import SceneSet, load_photo_textures, render_scenes
from tailorkit.adapters.tasks import TASKS, TaskMeter, delta_m, task_loss

__all__ = [
    "METHODS",
    "TASKS",
    "BackboneConfig",
    "DataConfig",
    "DenseDecoder",
    "EfficientNetSlots",
    "MethodConfig",
    "MultiTaskData",
    "MultiTaskEncoder",
    "MultiTaskModel",
    "OptimConfig",
    "SceneSet",
    "TaskMeter",
    "TrainConfig",
    "VMTEncoder",
    "VMTSlot",
    "backbone_fingerprint",
    "build_backbone",
    "build_model",
    "cost_curve",
    "count_parameters",
    "delta_m",
    "encoder_flops",
    "evaluate",
    "load_backbone_weights",
    "load_photo_textures",
    "load_run",
    "make_data",
    "make_encoder",
    "make_split",
    "read_pascal_context",
    "render_scenes",
    "save_run",
    "step_seconds",
    "task_loss",
    "train_model",
]
