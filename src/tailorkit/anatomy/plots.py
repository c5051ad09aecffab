"""Pictures: three orthogonal slices through a world point (used by `anatomy locate` and the demo)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from tailorkit.data.volumes import Volume

__all__ = ["orthogonal_slices", "save_point_views"]


def orthogonal_slices(volume: Volume, world: np.ndarray) -> tuple[list[np.ndarray], tuple[int, int, int]]:
    """Sagittal, coronal and axial slices (display orientation: anterior / superior up) through a world point."""
    ijk = np.rint(volume.world_to_voxel(np.asarray(world, dtype=np.float64)[None])[0]).astype(int)
    ijk = np.clip(ijk, 0, np.asarray(volume.shape) - 1)
    a = volume.array
    views = [a[ijk[0], :, :].T, a[:, ijk[1], :].T, a[:, :, ijk[2]].T]
    return views, (int(ijk[0]), int(ijk[1]), int(ijk[2]))


def save_point_views(
    volume: Volume, world: np.ndarray, path: str | os.PathLike[str], title: str = "", extra: Any = None
) -> Path:
    """Write a PNG with the three orthogonal slices through `world`, the point marked by a cross (atomically)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tailorkit.core.results import write_bytes_atomic

    views, ijk = orthogonal_slices(volume, world)
    marks = [(ijk[1], ijk[2]), (ijk[0], ijk[2]), (ijk[0], ijk[1])]
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.2))
    for ax, view, (u, v), label in zip(axes, views, marks, ("sagittal", "coronal", "axial"), strict=True):
        ax.imshow(view, cmap="gray", origin="lower", aspect="equal")
        ax.plot([u], [v], marker="+", color="red", markersize=14, mew=2)
        ax.set_title(label, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(f"{title}: ({world[0]:.1f}, {world[1]:.1f}, {world[2]:.1f}) mm RAS", fontsize=10)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    return write_bytes_atomic(path, buffer.getvalue())
