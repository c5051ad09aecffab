"""One-call inference on a video file with free class names, and saving / loading trained arms.

:func:`save_model` writes the arm's trainable tensors as safetensors with a manifest (method, ArmSpec, frames,
the dual encoder's towers); :func:`load_model` rebuilds the arm on an encoder and refuses a file made for another
encoder or shape. Files are read with safetensors, never unpickled.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save

from tailorkit.core.results import atomic_open
from tailorkit.nets.dual_encoder import DualEncoder
from tailorkit.video.model import ArmSpec, VideoModel

__all__ = ["cached_encoder", "load_model", "parse_classes", "predict_clip", "save_model"]

_ENCODER: dict[str, tuple[DualEncoder, dict[str, Any]]] = {}


def cached_encoder() -> tuple[DualEncoder, dict[str, Any]]:
    """The aligned dual encoder (CPU), loaded once per process: it is frozen, so every caller can share it."""
    if "cpu" not in _ENCODER:
        from tailorkit.nets.dual_encoder import load_dual_encoder

        _ENCODER["cpu"] = load_dual_encoder()
    return _ENCODER["cpu"]


def parse_classes(text: str | Sequence[str]) -> list[str]:
    """``"walking, running"`` or a list -> clean class names; empty input raises naming the expected form."""
    items = text.split(",") if isinstance(text, str) else list(text)
    names = [n.strip() for n in items if n.strip()]
    if not names:
        raise ValueError(
            f'classes: expected a comma-separated list of class names such as "walking,running"; got {text!r}'
        )
    if len(set(names)) != len(names):
        raise ValueError(f"classes: expected distinct class names; got {names}")
    return names


def save_model(
    model: VideoModel, path: str | os.PathLike[str], method: str, extra: dict[str, Any] | None = None
) -> Path:
    """Write the arm's trainable state (atomic safetensors + manifest in its metadata)."""
    manifest = {
        "method": method,
        "spec": model.spec.to_dict(),
        "frames": model.frames,
        "image_tower": model.encoder.manifest["image_tower"],
        "text_tower": model.encoder.manifest["text_tower"],
        "dim": model.encoder.dim,
        **(extra or {}),
    }
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    dest = Path(path)
    with atomic_open(dest) as handle:
        handle.write(save(state, metadata={"manifest": json.dumps(manifest, sort_keys=True)}))
    return dest


def load_model(path: str | os.PathLike[str], encoder: DualEncoder) -> tuple[VideoModel, dict[str, Any]]:
    """Rebuild a saved arm on ``encoder``.

    Raises:
        ValueError: Not a tailorkit video model, or made for other towers / shared-space size.
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{p}: no such model file (expected a .safetensors written by `tailorkit video train`)")
    try:
        with safe_open(str(p), framework="pt") as f:
            manifest = json.loads((f.metadata() or {}).get("manifest", "{}"))
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    except Exception as err:
        raise ValueError(f"{p}: not a readable safetensors model ({err})") from err
    if "spec" not in manifest:
        raise ValueError(f"{p}: no tailorkit video manifest (expected a file written by `tailorkit video train`)")
    for key in ("image_tower", "text_tower", "dim"):
        have = encoder.dim if key == "dim" else encoder.manifest[key]
        if manifest.get(key) != have:
            raise ValueError(f"{p}: made for {key}={manifest.get(key)!r}, this encoder has {have!r}")
    model = VideoModel(encoder, ArmSpec(**manifest["spec"]), int(manifest["frames"]))
    model.load_state_dict({k: v.to(encoder.device) for k, v in tensors.items()})
    model.eval()
    return model, manifest


def predict_clip(
    path: str | os.PathLike[str],
    classes: str | Sequence[str],
    *,
    encoder: DualEncoder | None = None,
    manifest: dict[str, Any] | None = None,
    model: VideoModel | None = None,
    frames: int = 8,
    size: int = 64,
    sampling: str = "uniform",
    k: int = 5,
) -> list[tuple[str, float]]:
    """Top-k (class, probability) for one video file: zero-shot (mean pooling, hand prompts) or a trained arm.

    Raises:
        VideoError: Unreadable file or fewer frames than ``frames``; ValueError: empty class list.
    """
    from tailorkit.video.data import clip_features
    from tailorkit.video.methods import make_model
    from tailorkit.video.train import predict

    names = parse_classes(classes)
    if encoder is None:
        encoder, manifest = cached_encoder()
    if model is None:
        model = make_model("zero_shot", encoder, frames)
    frames = min(frames, model.frames)
    prefix = 6 if model.spec.finetune_top else None
    feats = clip_features(encoder, manifest, path, frames=frames, size=size, sampling=sampling, prefix_stage=prefix)
    with torch.no_grad():
        return predict(model, feats, names, k)[0]
