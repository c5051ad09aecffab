"""Frozen-tower frame features, computed once and cached on disk (keyed by model, frames and preprocessing).

Training any arm of the benchmark touches only small modules on top of per-frame features, so the frozen image
tower runs once per frame. :func:`encode_frames` returns, per frame, the shared-space embedding (unit norm, the
input of every arm) and, optionally, the cached *prefix* of the image tower (the input of its last stages), which
the top-layer fine-tuning arm needs (running only the last stage per step is exact: the earlier stages are frozen).

:class:`FeatureCache` stores them as safetensors under ``tailorkit_home()/video-features/`` (or any folder); the
file name is a digest of a key that names

- the model: its towers, alignment settings and the towers' weight digest (the dual encoder's manifest);
- the frames: a caller-supplied description (generator settings + seed + split, or file path + size + mtime +
  sampling);
- the preprocessing: input size, resize filter, normalisation, prefix stage and the cache format version.

Changing any of them gives another file (the test "the cache invalidates when preprocessing changes"); the key is
also stored inside the file and checked on load, so a renamed or colliding file is recomputed, never trusted.

Shapes:
    encode_frames: frames (N, T, H, W, 3) uint8 -> {"emb": (N, T, D), "prefix": (N, T, C, h, w)}
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from tailorkit.core.results import atomic_open
from tailorkit.nets.dual_encoder import N_IMAGE_STAGES, DualEncoder, to_model_input

__all__ = ["FEATURE_VERSION", "FeatureCache", "encode_frames", "model_key", "preprocessing_key"]

FEATURE_VERSION = "1"


def model_key(encoder: DualEncoder, manifest: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What identifies the frozen model in a cache key (towers, shared-space size, alignment, weights digest)."""
    info = dict(manifest or {})
    return {
        "image_tower": encoder.manifest.get("image_tower"),
        "text_tower": encoder.manifest.get("text_tower"),
        "dim": encoder.dim,
        "align_config": info.get("align_config"),
        "towers_digest": info.get("towers_digest"),
        "image_scale": round(float(encoder.image_scale.detach().double().sum()), 6),
    }


def preprocessing_key(size: int, prefix_stage: int | None) -> dict[str, Any]:
    """What identifies the preprocessing (see :func:`tailorkit.nets.dual_encoder.to_model_input`)."""
    return {
        "size": int(size),
        "resize": "bicubic-antialias",
        "normalize": "(x/255-0.5)/0.5",
        "prefix_stage": prefix_stage,
        "version": FEATURE_VERSION,
    }


@torch.no_grad()
def encode_frames(
    encoder: DualEncoder,
    frames: np.ndarray | torch.Tensor,
    size: int,
    *,
    prefix_stage: int | None = None,
    batch: int = 64,
    progress: Callable[[int], None] | None = None,
) -> dict[str, torch.Tensor]:
    """Per-frame shared-space embeddings (and the image-tower prefix at ``prefix_stage`` when asked).

    Args:
        encoder: The frozen dual encoder.
        frames: uint8 clips (N, T, H, W, 3) (or (N, T, H, W) grey).
        size: Square input size of the image tower.
        prefix_stage: Also return the input of this image stage (0..6), for arms that fine-tune later stages.
        batch: Frames per forward pass.
        progress: Called with the number of frames done after each batch.

    Shapes:
        returns {"emb": (N, T, D) float32 unit norm, "prefix": (N, T, C, h, w) float32 when asked}
    """
    arr = torch.as_tensor(np.asarray(frames)) if isinstance(frames, np.ndarray) else frames
    if arr.dtype != torch.uint8 or arr.ndim not in (4, 5):
        raise ValueError(f"frames: expected uint8 clips (N, T, H, W[, 3]); got {arr.dtype} {tuple(arr.shape)}")
    if prefix_stage is not None and not 0 <= prefix_stage < N_IMAGE_STAGES:
        raise ValueError(f"prefix_stage: expected 0..{N_IMAGE_STAGES - 1} or None, got {prefix_stage}")
    n, t = arr.shape[:2]
    flat = arr.reshape(n * t, *arr.shape[2:])
    stage = prefix_stage if prefix_stage is not None else N_IMAGE_STAGES
    embs, prefixes = [], []
    device = encoder.device
    for i in range(0, len(flat), batch):
        x = to_model_input(flat[i : i + batch], size).to(device)
        pre = encoder.image_prefix(x, stage)
        embs.append(encoder.encode_image_prefix(pre, stage).float().cpu())
        if prefix_stage is not None:
            prefixes.append(pre.float().cpu())
        if progress is not None:
            progress(min(i + batch, len(flat)))
    out = {"emb": torch.cat(embs).reshape(n, t, -1)}
    if prefix_stage is not None:
        p = torch.cat(prefixes)
        out["prefix"] = p.reshape(n, t, *p.shape[1:])
    return out


class FeatureCache:
    """Safetensors files of frame features, one per key (see module docstring).

    Args:
        folder: Cache folder; default ``tailorkit_home() / "video-features"``.
    """

    def __init__(self, folder: str | os.PathLike[str] | None = None) -> None:
        if folder is None:
            from tailorkit.assets import tailorkit_home

            folder = tailorkit_home() / "video-features"
        self.folder = Path(folder)
        self.hits = 0
        self.misses = 0

    @staticmethod
    def digest(key: Mapping[str, Any]) -> str:
        text = json.dumps(key, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:20]

    def path(self, key: Mapping[str, Any]) -> Path:
        return self.folder / f"{self.digest(key)}.safetensors"

    def get(self, key: Mapping[str, Any]) -> dict[str, torch.Tensor] | None:
        """The cached tensors for ``key``, or None (absent, unreadable, or stored under another key)."""
        path = self.path(key)
        if not path.is_file():
            return None
        want = json.dumps(key, sort_keys=True, default=str)
        try:
            with safe_open(str(path), framework="pt") as f:
                if (f.metadata() or {}).get("key") != want:
                    return None
                return {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
        except (SafetensorError, OSError, ValueError):
            return None

    def put(self, key: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> Path:
        """Write tensors under ``key`` atomically."""
        path = self.path(key)
        meta = {"key": json.dumps(key, sort_keys=True, default=str)}
        data = save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, metadata=meta)
        with atomic_open(path) as handle:
            handle.write(data)
        return path

    def get_or_compute(
        self, key: Mapping[str, Any], compute: Callable[[], Mapping[str, torch.Tensor]]
    ) -> dict[str, torch.Tensor]:
        """Cached tensors, computing and storing them on a miss."""
        found = self.get(key)
        if found is not None:
            self.hits += 1
            return found
        self.misses += 1
        tensors = dict(compute())
        self.put(key, tensors)
        return tensors
