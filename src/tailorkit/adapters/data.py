"""Data for the multi-task benchmark: the `MultiTaskData` container, SynthContext train/test sets (`make_data`),
and the reader for the PASCAL-Context multi-task folder layout (ASTMT / ATRC / MTLoRA's ``PASCAL_MT``), for users
with the data (not installed offline; tested on a tiny fixture). The SynthContext generator itself is synth.py.

PASCAL-Context layout read (per image id listed in ``ImageSets/Context/{train,val}.txt``)::

    JPEGImages/<id>.jpg                 RGB photo
    semseg/pascal-context/<id>.png      class index per pixel, 0..20 (255 ignored)
    human_parts/<id>.png                part index per pixel, 0..6 (255 ignored); images without a person are
                                        all 255. [deviation: the ASTMT archive stores parts as MATLAB ``.mat``
                                        annotation structs; convert them to this PNG form once]
    sal_distill/<id>.png                saliency, 0 or 255 (thresholded at 128)
    normals_distill/<id>.png            normals encoded as (n + 1) / 2 * 255 per channel; (0, 0, 0) = no label

Everything is resized to ``size`` x ``size`` (bicubic for photos, nearest for labels); normals are renormalised.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tailorkit.adapters.config import TrainConfig
from tailorkit.adapters.synth import PART_CLASSES, SEMSEG_CLASSES, load_photo_textures, render_scenes

__all__ = [
    "N_CLASSES",
    "PASCAL_CLASSES",
    "SCENE_STREAMS",
    "MultiTaskData",
    "make_data",
    "make_split",
    "normalise",
    "read_pascal_context",
    "scene_seed",
]

#: SynthContext scene streams of one run seed: scenes of split k are rendered from seed ``1000 * seed + k``. ``val``
#: scenes choose among options (the bench's ``split="val"``), ``tune`` scenes choose the tuned reference's learning
#: rate and early-stopping step; neither is ever a test scene, for any pair of run seeds (the streams differ mod 1000).
SCENE_STREAMS = {"train": 0, "test": 1, "val": 2, "tune": 3}

N_CLASSES = {"semseg": len(SEMSEG_CLASSES), "parts": len(PART_CLASSES)}


@dataclass
class MultiTaskData:
    """Normalised images (N, 3, H, W) float32 and one target tensor per task (shapes as in tasks.task_loss)."""

    images: torch.Tensor
    targets: dict[str, torch.Tensor]
    n_classes: dict[str, int]

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def batch(self, index: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self.images[index].to(device), {k: v[index].to(device) for k, v in self.targets.items()}


def normalise(images_uint8: torch.Tensor) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float32 in EfficientNet-Lite's TF-style range [-1, 1]."""
    return (images_uint8.permute(0, 3, 1, 2).float() / 255.0 - 0.5) / 0.5


def make_data(config: TrainConfig, textures: Any = None) -> tuple[MultiTaskData, MultiTaskData]:
    """Train and test sets for ``config.data`` (SynthContext scenes, or a PASCAL-Context folder)."""
    data = config.data
    if data.source == "pascal_context":
        return (
            read_pascal_context(data.root, "train", data.tasks, data.image_size, limit=data.n_train),
            read_pascal_context(data.root, "val", data.tasks, data.image_size, limit=data.n_test),
        )
    if textures is None:
        textures = load_photo_textures(data.textures, seed=config.seed)
    return make_split(config, "train", textures), make_split(config, "test", textures)


def scene_seed(seed: int, split: str) -> int:
    """The render seed of split ``split`` (a key of :data:`SCENE_STREAMS`) for run seed ``seed``."""
    if split not in SCENE_STREAMS:
        raise ValueError(f"split: expected one of {', '.join(SCENE_STREAMS)}, got {split!r}")
    return seed * 1000 + SCENE_STREAMS[split]


def make_split(config: TrainConfig, split: str, textures: Any = None, n: int | None = None) -> MultiTaskData:
    """SynthContext scenes of one split (train: ``n_train`` scenes, the others ``n_test`` unless ``n`` is given).

    Raises:
        ValueError: An unknown split, or a PASCAL-Context source (its folder has train and val lists only).
    """
    data = config.data
    if data.source != "synthcontext":
        raise ValueError(f"make_split: expected source synthcontext, got {data.source!r}")
    seed = scene_seed(config.seed, split)
    if textures is None:
        textures = load_photo_textures(data.textures, seed=config.seed)
    count = n if n is not None else data.n_train if split == "train" else data.n_test
    scenes = render_scenes(count, data.image_size, seed, textures, max_objects=data.max_objects)
    targets = {task: torch.from_numpy(getattr(scenes, task).copy()) for task in data.tasks}
    return MultiTaskData(normalise(torch.from_numpy(scenes.images)), targets, dict(N_CLASSES))


PASCAL_CLASSES = {"semseg": 21, "parts": 7}
_FOLDERS = {
    "semseg": "semseg/pascal-context",
    "parts": "human_parts",
    "saliency": "sal_distill",
    "normals": "normals_distill",
}


def read_pascal_context(
    root: str | Path, split: str, tasks: Sequence[str], size: int, *, limit: int | None = None
) -> MultiTaskData:
    """Read up to ``limit`` images of ``split`` ("train" or "val") as a :class:`~tailorkit.adapters.MultiTaskData`.

    Raises:
        ValueError: Bad split or task, a missing list file or label file (the message names the expected path).
    """
    from PIL import Image

    base = Path(root)
    if split not in ("train", "val"):
        raise ValueError(f"read_pascal_context: split: expected 'train' or 'val', got {split!r}")
    bad = [t for t in tasks if t not in _FOLDERS]
    if bad:
        raise ValueError(f"read_pascal_context: tasks: expected names from {', '.join(_FOLDERS)}, got {bad[0]!r}")
    listing = base / "ImageSets" / "Context" / f"{split}.txt"
    if not listing.is_file():
        raise ValueError(f"read_pascal_context: expected the id list {listing} (PASCAL_MT layout)")
    ids = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
    if limit is not None:
        ids = ids[:limit]
    if not ids:
        raise ValueError(f"read_pascal_context: {listing} lists no images")

    def need(path: Path) -> Path:
        if not path.is_file():
            raise ValueError(f"read_pascal_context: expected {path} (PASCAL_MT layout, see the module docstring)")
        return path

    images = []
    targets: dict[str, list[np.ndarray]] = {t: [] for t in tasks}
    for image_id in ids:
        with Image.open(need(base / "JPEGImages" / f"{image_id}.jpg")) as im:
            images.append(np.asarray(im.convert("RGB").resize((size, size), Image.Resampling.BICUBIC)))
        for task in tasks:
            with Image.open(need(base / _FOLDERS[task] / f"{image_id}.png")) as im:
                if task == "normals":
                    arr = np.asarray(im.convert("RGB").resize((size, size), Image.Resampling.NEAREST))
                    n = arr.astype(np.float32) / 255.0 * 2 - 1
                    norm = np.linalg.norm(n, axis=-1, keepdims=True)
                    valid = arr.any(-1, keepdims=True)
                    targets[task].append(np.where(valid, n / np.maximum(norm, 1e-6), 0).astype(np.float32))
                    continue
                arr = np.asarray(im.convert("L").resize((size, size), Image.Resampling.NEAREST))
            if task == "saliency":
                targets[task].append((arr >= 128).astype(np.float32))
            else:
                targets[task].append(arr.astype(np.int64))
    x = normalise(torch.from_numpy(np.stack(images)))
    return MultiTaskData(x, {t: torch.from_numpy(np.stack(v)) for t, v in targets.items()}, dict(PASCAL_CLASSES))
