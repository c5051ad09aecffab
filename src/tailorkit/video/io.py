"""Video input the ecosystem's way: PyAV decoding, uniform / segment frame sampling, Kinetics/UCF-style folders.

- :func:`read_video` decodes every frame (or a bounded number) of a file with PyAV (``import av``; OpenCV is not
  needed), optionally resized, as uint8 RGB.
- :func:`sample_indices`: ``uniform`` takes T evenly spaced frames over the clip (ActionCLIP / X-CLIP test-time
  sampling); ``segment`` splits the clip into T equal segments and takes one frame per segment (TSN's sampling;
  the segment's centre at evaluation, a random frame of it in training when a generator is given).
- :class:`VideoFolder` reads the Kinetics/UCF layout ``root/<class_name>/<clip>.mp4`` with an optional CSV of
  splits (columns ``path,label,split``; ``path`` relative to root), the layout mmaction2 and the X-CLIP repos use.
- :func:`write_video` encodes uint8 frames (mpeg4 by default: in every FFmpeg build) for fixtures and demos.

Shapes:
    read_video: -> (N, H, W, 3) uint8
    sample_indices: -> (T,) int64 frame indices into [0, n_frames)
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tailorkit.core.errors import InputError
from tailorkit.core.results import atomic_open

__all__ = [
    "VIDEO_SUFFIXES",
    "Clip",
    "VideoError",
    "VideoFolder",
    "read_video",
    "sample_indices",
    "write_video",
]

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v")
SAMPLINGS = ("uniform", "segment")


class VideoError(InputError):
    """A video that cannot be read or is too short for the requested sampling (an InputError, so a ValueError)."""


def _av() -> Any:
    try:
        import av
    except ImportError as err:  # pragma: no cover - PyAV is a declared dependency of the video subsystem
        raise ImportError("tailorkit.video needs PyAV to decode video (pip install av)") from err
    return av


def read_video(
    path: str | os.PathLike[str],
    *,
    size: int | tuple[int, int] | None = None,
    max_frames: int | None = None,
    stride: int = 1,
) -> np.ndarray:
    """Decode a video file into RGB frames.

    Args:
        path: Any container/codec FFmpeg (through PyAV) reads.
        size: Resize every frame to (size, size) or (height, width) with PyAV's scaler; None keeps the size.
        max_frames: Stop after this many kept frames.
        stride: Keep every stride-th decoded frame.

    Raises:
        VideoError: Missing, unreadable, or holding no video frame.

    Shapes:
        returns (N, H, W, 3) uint8
    """
    av = _av()
    p = Path(path)
    if not p.is_file():
        raise VideoError(f"{p}: no such video file (expected a readable file such as class_name/clip.mp4)")
    if stride < 1:
        raise ValueError(f"stride: expected >= 1, got {stride}")
    hw = (size, size) if isinstance(size, int) else size
    frames: list[np.ndarray] = []
    try:
        with av.open(str(p)) as container:
            if not container.streams.video:
                raise VideoError(f"{p}: the file has no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for i, frame in enumerate(container.decode(stream)):
                if i % stride:
                    continue
                if hw is not None:
                    frame = frame.reformat(width=hw[1], height=hw[0])
                frames.append(frame.to_ndarray(format="rgb24"))
                if max_frames is not None and len(frames) >= max_frames:
                    break
    except VideoError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as err:
        raise VideoError(f"{p}: not a readable video ({type(err).__name__}: {err})") from err
    if not frames:
        raise VideoError(f"{p}: decoded no video frames")
    return np.stack(frames)


def sample_indices(
    n_frames: int, n_samples: int, mode: str = "uniform", rng: np.random.Generator | None = None
) -> np.ndarray:
    """T frame indices of a clip of ``n_frames`` frames.

    Args:
        n_frames: Frames in the clip.
        n_samples: T, frames wanted (each index at most once: the clip needs at least T frames).
        mode: ``uniform`` (evenly spaced, first and last frame included) or ``segment`` (one per equal segment:
            the segment's centre, or a random frame of it when ``rng`` is given).
        rng: Random segment offsets (training-time augmentation); None = deterministic.

    Raises:
        VideoError: Fewer frames than samples.
    """
    if mode not in SAMPLINGS:
        raise ValueError(f"sampling: expected one of {', '.join(SAMPLINGS)}, got {mode!r}")
    if n_samples < 1:
        raise ValueError(f"frames: expected >= 1, got {n_samples}")
    if n_frames < n_samples:
        raise VideoError(f"too few frames: the clip has {n_frames}, sampling needs at least {n_samples}")
    if mode == "uniform":
        if n_samples == 1:
            return np.array([(n_frames - 1) // 2], dtype=np.int64)
        return np.round(np.linspace(0, n_frames - 1, n_samples)).astype(np.int64)
    edges = np.linspace(0, n_frames, n_samples + 1)
    lo = np.ceil(edges[:-1] - 1e-9).astype(np.int64)
    hi = np.maximum(lo + 1, np.ceil(edges[1:] - 1e-9).astype(np.int64))  # exclusive; every segment >= 1 frame
    if rng is None:
        return ((lo + hi - 1) // 2).astype(np.int64)
    return (lo + rng.integers(0, hi - lo)).astype(np.int64)


def write_video(
    path: str | os.PathLike[str], frames: np.ndarray, fps: int = 10, codec: str = "mpeg4", quality: int = 2
) -> Path:
    """Encode uint8 RGB frames to a video file (atomically).

    Args:
        frames: (N, H, W, 3) uint8 with even H and W (most codecs' chroma subsampling needs them).
        codec: An encoder in ``av.codecs_available`` (mpeg4 everywhere; libx264 where built in).
        quality: mpeg4's qscale (1 best .. 31); ignored by other codecs.
    """
    av = _av()
    arr = np.asarray(frames)
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3 or len(arr) == 0:
        raise ValueError(f"frames: expected uint8 (N >= 1, H, W, 3); got {arr.dtype} {arr.shape}")
    if arr.shape[1] % 2 or arr.shape[2] % 2:
        raise ValueError(f"frames: expected even height and width, got {arr.shape[1]}x{arr.shape[2]}")
    dest = Path(path)
    with atomic_open(dest) as handle:
        fmt = {".avi": "avi", ".mkv": "matroska", ".mov": "mov"}.get(dest.suffix.lower(), "mp4")
        with av.open(handle, mode="w", format=fmt) as container:
            stream = container.add_stream(codec, rate=fps)
            stream.width, stream.height = int(arr.shape[2]), int(arr.shape[1])
            stream.pix_fmt = "yuv420p"
            if codec == "mpeg4":  # constant quantiser: near-lossless for tiny fixtures
                stream.options = {"qmin": str(quality), "qmax": str(quality)}
            for image in arr:
                for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    return dest


@dataclass(frozen=True)
class Clip:
    """One labelled video file of a :class:`VideoFolder`."""

    path: Path
    label: int
    class_name: str
    split: str


class VideoFolder:
    """Clips in the Kinetics/UCF layout ``root/<class_name>/<clip>.<ext>``, with an optional CSV of splits.

    Class names are the folder names with ``_`` read as spaces ("playing_guitar" -> "playing guitar"), sorted,
    so they can go straight into text prompts. Without a CSV every clip is in split ``all``.

    Args:
        root: The folder of class folders.
        splits_csv: CSV with a header row and columns ``path,label,split`` (path relative to root; label a class
            folder name). Listed clips only, in file order.

    Raises:
        VideoError: No class folder with a video, or a CSV row naming a missing file or unknown class.
    """

    def __init__(self, root: str | os.PathLike[str], splits_csv: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise VideoError(f"{self.root}: not a folder (expected root/<class_name>/<clip>.mp4)")
        folders = sorted(
            d.name
            for d in self.root.iterdir()
            if d.is_dir() and any(f.suffix.lower() in VIDEO_SUFFIXES for f in d.iterdir())
        )
        if not folders:
            raise VideoError(
                f"{self.root}: no class folders with videos (expected root/<class_name>/<clip>.mp4, suffixes "
                f"{', '.join(VIDEO_SUFFIXES)})"
            )
        self.folders = folders
        self.classes = [f.replace("_", " ") for f in folders]
        index = {f: i for i, f in enumerate(folders)}
        # a CSV label may name the folder as it is ("playing guitar", "playing_guitar") or by its class name
        # ("playing guitar" for the folder "playing_guitar"): all of these find the folder
        by_label = {
            **{c: i for i, c in enumerate(self.classes)},
            **{f.replace(" ", "_"): i for i, f in enumerate(folders)},
            **index,
        }
        clips: list[Clip] = []
        if splits_csv is None:
            for f in folders:
                for file in sorted((self.root / f).iterdir()):
                    if file.suffix.lower() in VIDEO_SUFFIXES:
                        clips.append(Clip(file, index[f], self.classes[index[f]], "all"))
        else:
            with open(splits_csv, newline="", encoding="utf-8") as handle:
                reader = csv.DictReader(handle)
                missing = {"path", "label", "split"} - set(reader.fieldnames or [])
                if missing:
                    raise VideoError(f"{splits_csv}: expected columns path,label,split; missing {sorted(missing)}")
                for n, row in enumerate(reader, start=2):
                    label = (row["label"] or "").strip()
                    i = by_label.get(label, by_label.get(label.replace(" ", "_")))
                    if i is None:
                        raise VideoError(f"{splits_csv}:{n}: unknown class {row['label']!r}; expected one of {folders}")
                    file = self.root / (row["path"] or "").strip()
                    if not file.is_file():
                        raise VideoError(f"{splits_csv}:{n}: no such clip {file}")
                    clips.append(Clip(file, i, self.classes[i], (row["split"] or "").strip()))
        self.clips = clips

    def split(self, name: str) -> list[Clip]:
        """The clips of one split (``all`` without a CSV)."""
        out = [c for c in self.clips if c.split == name]
        if not out:
            names = sorted({c.split for c in self.clips})
            raise VideoError(f"split {name!r} is empty; expected one of {names}")
        return out

    def __len__(self) -> int:
        return len(self.clips)


def write_splits_csv(path: str | os.PathLike[str], rows: Sequence[tuple[str, str, str]]) -> Path:
    """Write a splits CSV (``path,label,split`` rows) atomically."""
    import io

    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["path", "label", "split"])
    writer.writerows(rows)
    with atomic_open(path) as handle:
        handle.write(buf.getvalue().encode())
    return Path(path)
