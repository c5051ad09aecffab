"""Displacement fields on disk: NIfTI, ITK-compatible (what ANTs, elastix's transformix and SimpleITK read).

The file holds the fixed -> moving displacement (the ITK `DisplacementFieldTransform` convention: a fixed physical
point p maps to p + d(p) in the moving image) on the fixed image's grid, shape (X, Y, Z, 1, 3), intent "vector"
(1007), with vector components in ITK's LPS+ physical frame (ANTs' and ITK's convention for NIfTI warp fields), and
the fixed image's affine. Internally maps are (3, z, y, x) tensors with RAS+ components; the conversions are here.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import torch

from tailorkit.core.results import atomic_open

__all__ = ["load_displacement", "save_displacement"]

_RAS_TO_LPS = np.array([-1.0, -1.0, 1.0], dtype=np.float32)


def save_displacement(path: str | os.PathLike[str], disp: torch.Tensor, fixed_affine: np.ndarray) -> Path:
    """Write a (3, z, y, x) RAS+ world-mm displacement on the fixed grid (array affine `fixed_affine`) as an
    ITK-compatible NIfTI vector image, atomically."""
    import nibabel as nib

    dest = Path(path)
    if not dest.name.endswith((".nii", ".nii.gz")):
        raise ValueError(f"{dest}: expected a path ending in .nii or .nii.gz for the displacement field")
    if disp.ndim != 4 or disp.shape[0] != 3:
        raise ValueError(f"displacement: expected a (3, z, y, x) tensor, got {tuple(disp.shape)}")
    arr = disp.detach().cpu().numpy().transpose(3, 2, 1, 0) * _RAS_TO_LPS  # (X, Y, Z, 3), LPS components
    data = np.ascontiguousarray(arr[:, :, :, None, :], dtype=np.float32)
    image = nib.Nifti1Image(data, np.asarray(fixed_affine, dtype=np.float64))
    image.header.set_intent("vector")
    image.set_qform(image.affine, code=1)
    image.set_sform(image.affine, code=1)
    raw = image.to_bytes()
    if dest.name.endswith(".gz"):
        raw = gzip.compress(raw, compresslevel=6, mtime=0)
    with atomic_open(dest) as handle:
        handle.write(raw)
    return dest


def load_displacement(path: str | os.PathLike[str]) -> tuple[torch.Tensor, np.ndarray]:
    """Read a field written by `save_displacement` (or ANTs / ITK in the same layout): the (3, z, y, x) RAS+
    displacement and the grid's array affine (X, Y, Z index -> world)."""
    import nibabel as nib

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"displacement field {p}: not found")
    image = nib.load(p)
    data = np.asarray(image.get_fdata(), dtype=np.float32)  # type: ignore[attr-defined]
    if data.ndim != 5 or data.shape[3] != 1 or data.shape[4] != 3:
        raise ValueError(f"{p}: expected an (X, Y, Z, 1, 3) vector image, got shape {data.shape}")
    arr = data[:, :, :, 0, :] * _RAS_TO_LPS
    return torch.as_tensor(np.ascontiguousarray(arr.transpose(3, 2, 1, 0))), np.asarray(image.affine)  # type: ignore[attr-defined]
