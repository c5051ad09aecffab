"""Reading and writing 3D scans (NIfTI, DICOM series, MetaImage/NRRD) in one convention: RAS+ voxel axes.

Every volume comes back as a `Volume`: a float32 array indexed (i, j, k) and a 4x4 affine mapping voxel indices to
world millimetres in RAS+, NIfTI's scanner space (+x = Right, +y = Anterior, +z = Superior). The array is
reoriented to the closest canonical orientation (nibabel's `as_closest_canonical`), so that index axis 0 runs
towards +x, 1 towards +y and 2 towards +z; oblique rotations stay in the affine, never resampled.

Readers used: nibabel for NIfTI-1/2 (.nii, .nii.gz) and MGH (.mgz); SimpleITK for DICOM series (a directory),
MetaImage (.mha/.mhd) and NRRD. ITK works in LPS+; the conversion to RAS+ flips the sign of the first two world
axes (diag(-1, -1, 1, 1) @ affine_LPS), and ITK's (z, y, x) array order is transposed to (x, y, z).

Bad input raises `VolumeError` naming the file and what was expected: missing or unreadable files, non-3D data
(a trailing singleton 4th axis is squeezed; real 4D series are refused), empty volumes, non-finite voxels or a
singular affine. `save_volume` writes NIfTI atomically (temporary file, then rename).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tailorkit.core.results import atomic_open

NIFTI_SUFFIXES = (".nii", ".nii.gz", ".mgz")
ITK_SUFFIXES = (".mha", ".mhd", ".nrrd", ".nhdr")
EXPECTED = (
    "a 3D NIfTI (.nii/.nii.gz), MGH (.mgz), MetaImage (.mha/.mhd) or NRRD file, or a directory of one DICOM series"
)
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


class VolumeError(ValueError):
    """A scan that cannot be read or written as a 3D volume; the message names the file and the expected form."""


@dataclass(frozen=True)
class Volume:
    """A 3D scan in RAS+ convention.

    Shapes:
        array: (X, Y, Z) float32, axis 0 towards +x (Right), 1 towards +y (Anterior), 2 towards +z (Superior).
        affine: (4, 4) float64, voxel index (i, j, k, 1) -> world RAS+ millimetres.
    """

    array: np.ndarray
    affine: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.array.shape)  # type: ignore[return-value]

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along each array axis (column norms of the affine's linear part)."""
        return tuple(float(v) for v in np.linalg.norm(self.affine[:3, :3], axis=0))  # type: ignore[return-value]

    def voxel_to_world(self, ijk: np.ndarray) -> np.ndarray:
        """(N, 3) voxel coordinates (may be fractional) -> (N, 3) world RAS+ mm."""
        ijk = np.asarray(ijk, dtype=np.float64)
        return ijk @ self.affine[:3, :3].T + self.affine[:3, 3]

    def world_to_voxel(self, xyz: np.ndarray) -> np.ndarray:
        """(N, 3) world RAS+ mm -> (N, 3) fractional voxel coordinates."""
        xyz = np.asarray(xyz, dtype=np.float64)
        return (xyz - self.affine[:3, 3]) @ np.linalg.inv(self.affine[:3, :3]).T


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def _canonical(array: np.ndarray, affine: np.ndarray, source: Path) -> Volume:
    """Validate, squeeze a singleton 4th axis, and reorient to the closest canonical (RAS+) orientation."""
    import nibabel as nib

    if array.ndim == 4 and array.shape[3] == 1:
        array = array[..., 0]
    if array.ndim != 3:
        raise VolumeError(f"{source}: expected a 3D volume, got an array of shape {array.shape}")
    if array.size == 0:
        raise VolumeError(f"{source}: the volume is empty (shape {array.shape})")
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise VolumeError(f"{source}: the voxel-to-world affine is singular or not finite:\n{affine}")
    array = np.asarray(array, dtype=np.float32)
    if not np.all(np.isfinite(array)):
        raise VolumeError(f"{source}: the volume holds NaN or infinite voxels; expected finite intensities")
    image = nib.as_closest_canonical(nib.Nifti1Image(array, affine))
    return Volume(np.ascontiguousarray(np.asarray(image.dataobj, dtype=np.float32)), image.affine.astype(np.float64))


def load_volume(path: str | os.PathLike[str]) -> Volume:
    """Read a 3D scan (NIfTI, MGH, MetaImage, NRRD, or a DICOM series directory) as a RAS+ `Volume`."""
    source = Path(path)
    if not source.exists():
        raise VolumeError(f"{source}: no such file or directory; expected {EXPECTED}")
    if source.is_dir():
        return _load_dicom_series(source)
    suffix = _suffix(source)
    if suffix in NIFTI_SUFFIXES:
        import nibabel as nib

        try:
            image: Any = nib.load(str(source))  # a SpatialImage (FileBasedImage in nibabel's stubs)
            data = np.asanyarray(image.dataobj)
        except Exception as error:  # nibabel raises several types for corrupt files
            raise VolumeError(f"{source}: cannot be read as {suffix} ({error}); expected {EXPECTED}") from error
        return _canonical(data, image.affine, source)
    if suffix in ITK_SUFFIXES:
        return _load_itk(source)
    raise VolumeError(f"{source}: unrecognised suffix {suffix!r}; expected {EXPECTED}")


def _itk_to_volume(image: object, source: Path) -> Volume:
    import SimpleITK as sitk

    assert isinstance(image, sitk.Image)
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise VolumeError(
            f"{source}: expected a scalar 3D image, got {image.GetDimension()}D with "
            f"{image.GetNumberOfComponentsPerPixel()} components per voxel"
        )
    array = sitk.GetArrayFromImage(image).transpose(2, 1, 0)  # ITK's (z, y, x) -> (x, y, z)
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    affine_lps = np.eye(4)
    affine_lps[:3, :3] = direction * np.asarray(image.GetSpacing(), dtype=np.float64)
    affine_lps[:3, 3] = image.GetOrigin()
    return _canonical(array, LPS_TO_RAS @ affine_lps, source)


def _load_itk(source: Path) -> Volume:
    import SimpleITK as sitk

    try:
        image = sitk.ReadImage(str(source))
    except RuntimeError as error:
        reason = str(error).strip().splitlines()[-1]
        raise VolumeError(f"{source}: cannot be read ({reason}); expected {EXPECTED}") from error
    return _itk_to_volume(image, source)


def _load_dicom_series(directory: Path) -> Volume:
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    series = reader.GetGDCMSeriesIDs(str(directory))
    if not series:
        raise VolumeError(f"{directory}: no DICOM series found in this directory; expected {EXPECTED}")
    if len(series) > 1:
        raise VolumeError(f"{directory}: holds {len(series)} DICOM series ({', '.join(series)}); expected exactly one")
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(directory), series[0]))
    try:
        image = reader.Execute()
    except RuntimeError as error:
        reason = str(error).strip().splitlines()[-1]
        raise VolumeError(f"{directory}: the DICOM series cannot be read ({reason})") from error
    return _itk_to_volume(image, directory)


def save_volume(path: str | os.PathLike[str], volume: Volume | np.ndarray, affine: np.ndarray | None = None) -> Path:
    """Write a `Volume` (or an array plus a 4x4 RAS+ affine) as NIfTI (.nii or .nii.gz), atomically.

    Integer arrays (label maps) keep their dtype; everything else is written as float32.
    """
    import nibabel as nib

    dest = Path(path)
    if _suffix(dest) not in (".nii", ".nii.gz"):
        raise VolumeError(f"{dest}: save_volume writes NIfTI; expected a path ending in .nii or .nii.gz")
    if isinstance(volume, Volume):
        array, affine = volume.array, volume.affine
    elif affine is None:
        raise VolumeError(f"{dest}: an array needs its 4x4 voxel-to-world affine")
    else:
        array = np.asarray(volume)
    if array.ndim != 3 or array.size == 0:
        raise VolumeError(f"{dest}: expected a non-empty 3D array, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.integer):
        array = array.astype(np.float32)
    image = nib.Nifti1Image(array, np.asarray(affine, dtype=np.float64))
    image.set_qform(image.affine, code=1)
    image.set_sform(image.affine, code=1)
    data = image.to_bytes()
    if _suffix(dest) == ".nii.gz":
        import gzip

        data = gzip.compress(data, compresslevel=6, mtime=0)
    with atomic_open(dest) as handle:
        handle.write(data)
    return dest
