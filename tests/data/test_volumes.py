"""NIfTI / ITK / DICOM reading in one RAS+ convention, orientation round trips and clear errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from tailorkit.data.volumes import Volume, VolumeError, load_volume, save_volume


def _ras_volume(rng: np.random.Generator) -> Volume:
    array = rng.normal(size=(5, 6, 7)).astype(np.float32)
    affine = np.diag([2.0, 1.5, 3.0, 1.0])
    affine[:3, 3] = [-10.0, 4.0, 7.5]
    return Volume(array, affine)


def test_nifti_round_trip_keeps_world_coordinates(tmp_path: Path) -> None:
    volume = _ras_volume(np.random.default_rng(0))
    for name in ("a.nii", "a.nii.gz"):
        loaded = load_volume(save_volume(tmp_path / name, volume))
        np.testing.assert_array_equal(loaded.array, volume.array)
        np.testing.assert_allclose(loaded.affine, volume.affine)
        assert loaded.spacing == pytest.approx((2.0, 1.5, 3.0))
    assert gzip.decompress((tmp_path / "a.nii.gz").read_bytes())[:4] == (348).to_bytes(4, "little")


def test_flipped_storage_is_reoriented_to_ras(tmp_path: Path) -> None:
    """A LPI-stored file (x, y, z axes reversed) reads back as the same RAS+ image: same world position per value."""
    volume = _ras_volume(np.random.default_rng(1))
    flip = np.diag([-1.0, -1.0, -1.0, 1.0])
    flip[:3, 3] = np.array(volume.shape) - 1
    stored_affine = volume.affine @ flip  # voxel (i, j, k) of the stored array = voxel (n-1-i, ...) of the RAS one
    nib.save(nib.Nifti1Image(volume.array[::-1, ::-1, ::-1].copy(), stored_affine), tmp_path / "lpi.nii.gz")
    loaded = load_volume(tmp_path / "lpi.nii.gz")
    np.testing.assert_array_equal(loaded.array, volume.array)
    np.testing.assert_allclose(loaded.affine, volume.affine)
    assert np.all(np.diag(loaded.affine)[:3] > 0)


def test_metaimage_matches_nifti_world_space(tmp_path: Path) -> None:
    """ITK (LPS+, z-y-x arrays) and NIfTI (RAS+) readers agree on every voxel's world position and value."""
    volume = _ras_volume(np.random.default_rng(2))
    image = sitk.GetImageFromArray(volume.array.transpose(2, 1, 0))
    image.SetSpacing((2.0, 1.5, 3.0))
    image.SetOrigin((10.0, -4.0, 7.5))  # LPS origin of the RAS origin (-10, 4, 7.5)
    image.SetDirection((-1.0, 0, 0, 0, -1.0, 0, 0, 0, 1.0))  # RAS index axes expressed in LPS
    sitk.WriteImage(image, str(tmp_path / "a.mha"))
    loaded = load_volume(tmp_path / "a.mha")
    np.testing.assert_array_equal(loaded.array, volume.array)
    np.testing.assert_allclose(loaded.affine, volume.affine)
    point = np.array([[1.0, 2.0, 3.0]])
    np.testing.assert_allclose(loaded.world_to_voxel(loaded.voxel_to_world(point)), point)


def test_dicom_series_directory(tmp_path: Path) -> None:
    array = (np.arange(4 * 5 * 3).reshape(3, 5, 4) * 10).astype(np.int16)  # ITK order (z, y, x)
    series = tmp_path / "series"
    series.mkdir()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for z in range(array.shape[0]):
        slice_ = sitk.GetImageFromArray(array[z : z + 1])
        slice_.SetSpacing((0.5, 0.75, 2.0))
        slice_.SetOrigin((0.0, 0.0, 2.0 * z))
        for tag, value in {
            "0020|000e": "1.2.826.0.1.3680043.2.1125.1",
            "0020|000d": "1.2.826.0.1.3680043.2.1125.2",
            "0008|0060": "CT",
            "0020|0032": f"0\\0\\{2.0 * z}",
            "0020|0037": "1\\0\\0\\0\\1\\0",
            "0020|0013": str(z),
        }.items():
            slice_.SetMetaData(tag, value)
        writer.SetFileName(str(series / f"{z}.dcm"))
        writer.Execute(slice_)
    loaded = load_volume(series)
    assert loaded.shape == (4, 5, 3)
    assert loaded.spacing == pytest.approx((0.5, 0.75, 2.0))
    # LPS x/y axes become RAS -x/-y: canonical reorientation reverses array axes 0 and 1.
    np.testing.assert_array_equal(loaded.array, array.transpose(2, 1, 0)[::-1, ::-1, :])


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((4, 5), np.float32), "expected a 3D volume"),
        (np.zeros((4, 5, 6, 2), np.float32), "expected a 3D volume"),
        (np.full((3, 3, 3), np.nan, np.float32), "NaN or infinite"),
    ],
)
def test_bad_arrays_are_refused(tmp_path: Path, array: np.ndarray, message: str) -> None:
    nib.save(nib.Nifti1Image(array, np.eye(4)), tmp_path / "bad.nii")
    with pytest.raises(VolumeError, match=message):
        load_volume(tmp_path / "bad.nii")


def test_singleton_fourth_axis_is_squeezed(tmp_path: Path) -> None:
    nib.save(nib.Nifti1Image(np.ones((3, 4, 5, 1), np.float32), np.eye(4)), tmp_path / "a.nii")
    assert load_volume(tmp_path / "a.nii").shape == (3, 4, 5)


def test_unreadable_inputs_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(VolumeError, match="no such file"):
        load_volume(tmp_path / "missing.nii.gz")
    (tmp_path / "junk.nii.gz").write_bytes(b"not a nifti file")
    with pytest.raises(VolumeError, match="cannot be read"):
        load_volume(tmp_path / "junk.nii.gz")
    (tmp_path / "scan.png").write_bytes(b"")
    with pytest.raises(VolumeError, match="unrecognised suffix"):
        load_volume(tmp_path / "scan.png")
    (tmp_path / "empty").mkdir()
    with pytest.raises(VolumeError, match="no DICOM series"):
        load_volume(tmp_path / "empty")
    with pytest.raises(VolumeError, match="writes NIfTI"):
        save_volume(tmp_path / "out.mha", np.zeros((2, 2, 2)), np.eye(4))
    with pytest.raises(VolumeError, match="affine"):
        save_volume(tmp_path / "out.nii", np.zeros((2, 2, 2)))


def test_save_keeps_label_dtype_and_leaves_no_temporary(tmp_path: Path) -> None:
    labels = np.arange(27, dtype=np.int16).reshape(3, 3, 3)
    save_volume(tmp_path / "labels.nii.gz", labels, np.eye(4))
    assert nib.load(tmp_path / "labels.nii.gz").get_data_dtype() == np.int16
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.nii.gz"]
