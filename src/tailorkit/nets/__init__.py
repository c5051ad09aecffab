"""Shared networks: EfficientNet-Lite0 (ImageNet weights), MiniLM sentence encoders, the CLIP-like dual encoder built
from them, and a 2D/3D U-Net. The small ViT and Swin live in nets/vit.py and nets/swin.py."""

from __future__ import annotations

from tailorkit.nets.dual_encoder import DualEncoder, load_dual_encoder
from tailorkit.nets.efficientnet_lite import EfficientNetLite0, load_efficientnet_lite0, preprocess
from tailorkit.nets.text import SentenceEncoder, convert_minilm_l3_onnx, load_minilm_l3, load_minilm_l6
from tailorkit.nets.unet import UNet

__all__ = [
    "DualEncoder",
    "EfficientNetLite0",
    "SentenceEncoder",
    "UNet",
    "convert_minilm_l3_onnx",
    "load_dual_encoder",
    "load_efficientnet_lite0",
    "load_minilm_l3",
    "load_minilm_l6",
    "preprocess",
]
