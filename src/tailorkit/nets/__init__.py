"""Shared networks with real pretrained weights: EfficientNet-Lite0 (ImageNet) and MiniLM sentence encoders."""

from __future__ import annotations

from tailorkit.nets.efficientnet_lite import EfficientNetLite0, load_efficientnet_lite0, preprocess
from tailorkit.nets.text import SentenceEncoder, convert_minilm_l3_onnx, load_minilm_l3, load_minilm_l6

__all__ = [
    "EfficientNetLite0",
    "SentenceEncoder",
    "convert_minilm_l3_onnx",
    "load_efficientnet_lite0",
    "load_minilm_l3",
    "load_minilm_l6",
    "preprocess",
]
