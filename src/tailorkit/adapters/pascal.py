"""Reader for the PASCAL-Context multi-task folder layout (ASTMT / ATRC / MTLoRA's ``PASCAL_MT``), for users with
the data (not installed offline; tested on a tiny fixture).

Layout read (per image id listed in ``ImageSets/Context/{train,val}.txt``)::

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
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from tailorkit.adapters.runner import MultiTaskData

__all__ = ["PASCAL_CLASSES", "read_pascal_context"]

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

    from tailorkit.adapters.runner import MultiTaskData, normalise

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
