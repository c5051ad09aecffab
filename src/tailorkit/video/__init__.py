"""tailorkit.video: motion prompts for a frozen CLIP-like dual encoder (SiF, arXiv:2308.04828) and its baselines.

Public API:

- data: :func:`read_video`, :func:`sample_indices`, :class:`VideoFolder`, :func:`write_video`, :class:`MotionShapes`;
- features: :func:`encode_frames`, :class:`FeatureCache`;
- methods: :func:`make_model` (registered arms: sif, motion_dynamic, motion_static, coop_mean, coop_temporal,
  finetune_top, zero_shot), :class:`VideoModel`, :class:`ArmSpec`;
- training: :func:`fit`, :func:`evaluate`, :func:`predict`, :class:`OptimSettings`;
- :func:`predict_clip`: one call from a video file and class names to top-k scores;
- :func:`save_model` / :func:`load_model`: trained arms as safetensors with a manifest.
"""

from __future__ import annotations

from tailorkit.video.api import load_model, predict_clip, save_model
from tailorkit.video.features import FeatureCache, encode_frames
from tailorkit.video.io import VideoError, VideoFolder, read_video, sample_indices, write_video
from tailorkit.video.methods import METHODS, make_model
from tailorkit.video.model import ArmSpec, VideoModel
from tailorkit.video.shapes import MotionShapes
from tailorkit.video.train import OptimSettings, evaluate, fit, predict

__all__ = [
    "METHODS",
    "ArmSpec",
    "FeatureCache",
    "MotionShapes",
    "OptimSettings",
    "VideoError",
    "VideoFolder",
    "VideoModel",
    "encode_frames",
    "evaluate",
    "fit",
    "load_model",
    "make_model",
    "predict",
    "predict_clip",
    "read_video",
    "sample_indices",
    "save_model",
    "write_video",
]
