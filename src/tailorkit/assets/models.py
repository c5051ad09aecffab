"""Locators for pretrained weights: EfficientNet-Lite0, MiniLM-L6, MiniLM-L3 (ONNX).

These return paths; the networks that load them live in tailorkit.nets (efficientnet_lite.py, text.py).
"""

from __future__ import annotations

from pathlib import Path

from tailorkit.assets.base import get_asset


def efficientnet_lite0_weights() -> Path:
    """Path of the EfficientNet-Lite0 ImageNet state dict (.pth, 296 tensors, lukemelas naming)."""
    return get_asset("efficientnet-lite0").path("efficientnet-lite0-57934424.pth")


def minilm_l6_dir() -> Path:
    """Folder with all-MiniLM-L6-v2's model.safetensors, config.json and BERT-uncased tokenizer files."""
    asset = get_asset("minilm-l6")
    for spec in asset.files:
        asset.path(spec.path)  # AssetMissing names the file and the fix if any is gone
    return asset.path("model.safetensors").parent


def minilm_l3_onnx() -> Path:
    """Path of paraphrase-MiniLM-L3-v2.onnx (converted exactly to a torch BertModel by tailorkit.nets.text)."""
    return get_asset("minilm-l3").path("paraphrase-MiniLM-L3-v2.onnx")
