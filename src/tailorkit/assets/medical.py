"""Locators for 3D medical volumes: MNI152, AAL atlases, LiTS CT case 117, pydeface head, ITK example T1.

NIfTI images are returned as nibabel images (array via `.get_fdata()`, voxel-to-world via `.affine`), as users of
those formats expect; the LiTS volume comes as arrays read by our MRC reader.

Shapes:
    mni152: T1, GM, WM, brain mask on (197, 233, 189), 1 mm
    aal_atlas: (181, 217, 181) uint8 labels, 1 mm
    lits_case117: CT (128, 128, 128) float32 HU, labels (128, 128, 128) uint8 (0 background, 1 liver, 2 tumour)
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from tailorkit.assets.base import AssetCorrupt, get_asset
from tailorkit.data.mrc import read_mrc


class Mni152(NamedTuple):
    t1: Any  # nibabel Nifti1Image
    gm: Any
    wm: Any
    brain_mask: Any


def mni152(brain_threshold: float = 0.2) -> Mni152:
    """The MNI152 ICBM 2009a symmetric template (T1 scaled to [0, 1]), GM/WM probability maps and a brain mask.

    The brain mask is the T1 thresholded at `brain_threshold`, as nilearn's `load_mni152_brain_mask` does.
    """
    import nibabel as nib

    asset = get_asset("mni152")
    images: list[Any] = [
        nib.load(asset.path(f"mni_icbm152_{k}_tal_nlin_sym_09a_converted.nii.gz")) for k in ("t1", "gm", "wm")
    ]
    scaled = []
    for image in images:
        data = np.asarray(image.get_fdata(), dtype=np.float32)
        if data.shape != (197, 233, 189):
            raise AssetCorrupt(f"asset 'mni152': volume of shape {data.shape}, expected (197, 233, 189)")
        top = float(data.max())
        scaled.append(nib.Nifti1Image(data / top if top > 0 else data, image.affine))
    mask = (np.asarray(scaled[0].dataobj) > brain_threshold).astype(np.uint8)
    return Mni152(scaled[0], scaled[1], scaled[2], nib.Nifti1Image(mask, images[0].affine))


def aal_atlas(version: str = "AAL") -> tuple[Any, dict[int, str]]:
    """The AAL (116 regions) or AAL3 (170 regions) atlas image and its label -> region name table."""
    import nibabel as nib

    counts = {"AAL": 116, "AAL3": 170}
    if version not in counts:
        raise ValueError(f"aal_atlas version: expected 'AAL' or 'AAL3', got {version!r}")
    asset = get_asset("aal")
    names = {}
    for line in asset.path(f"{version}.txt").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].isdigit():
            names[int(parts[0])] = parts[1]
    if len(names) != counts[version]:
        raise AssetCorrupt(f"asset 'aal': {version}.txt names {len(names)} regions, expected {counts[version]}")
    return nib.load(asset.path(f"{version}.nii")), names


def lits_case117() -> tuple[np.ndarray, np.ndarray]:
    """LiTS CT case 117 (HU, float32) and its labels (uint8: 0 background, 1 liver, 2 tumour), shape (128,)*3."""
    asset = get_asset("lits-117")
    ct = read_mrc(asset.path("img_117.mrc")).astype(np.float32)
    labels = read_mrc(asset.path("lab_117.mrc"))
    if ct.shape != (128, 128, 128) or labels.shape != ct.shape or int(labels.max()) > 2:
        raise AssetCorrupt(f"asset 'lits-117': CT {ct.shape}, labels {labels.shape} (max {labels.max()})")
    return ct, labels.astype(np.uint8)


def pydeface_head() -> tuple[Any, Any]:
    """pydeface's mean T1 head (176, 256, 256) and its binary face mask, as nibabel images."""
    import nibabel as nib

    asset = get_asset("pydeface-head")
    return nib.load(asset.path("mean_reg2mean.nii.gz")), nib.load(asset.path("facemask.nii.gz"))


def itk_t1() -> dict[str, Any]:
    """ITK's example 3D T1 (128, 128, 62), 2x2x3 mm: 't1', 'skull_stripped', 'kmeans' (k-means, not manual labels)."""
    import nibabel as nib

    asset = get_asset("itk-t1")
    files = {
        "t1": "KmeansTest_T1UCharRaw.nii.gz",
        "skull_stripped": "KmeansTest_T1RawSkullStrip.nii.gz",
        "kmeans": "KmeansTest_T1KmeansPrelimSegmentation.nii.gz",
    }
    return {key: nib.load(asset.path(name)) for key, name in files.items()}


def itk_slice(name: str = "BrainProtonDensitySlice.png") -> np.ndarray:
    """A 2D brain MR slice from ITK's examples (e.g. the shifted/rotated/B-splined registration variants)."""
    from PIL import Image

    with Image.open(get_asset("itk-t1").path(name)) as image:
        return np.asarray(image.convert("L"))
