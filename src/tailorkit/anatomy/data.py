"""Scans for the embedding: preprocessing of users' volumes, the MNI152 + AAL landmark atlas, tissue contrasts.

- `resample_isotropic`: any `Volume` -> the same orientation at an isotropic working spacing (trilinear; labels by
  nearest neighbour), the field of view kept.
- `rescale_intensity`: SAM's map to [0, 255] - 50 (CT window or MRI percentiles).
- `bench_atlas(spacing)`: the MNI152 ICBM 2009a T1 with GM/WM/CSF maps and AAL labels on an axis-aligned RAS grid
  at `spacing`, cropped to the head + 8 voxels, and the 116 AAL centroids (world mm, from the 1 mm atlas) as
  landmarks (docs/anatomy.md#the-benchmark). Cached as .npz under tailorkit's cache directory.
- `tissue_contrast`: images of the same anatomy in another contrast from the tissue maps: the benchmark's "T2-like"
  contrast (0.9 CSF + 0.45 GM + 0.2 WM) or random tissue intensities (training augmentation).
Other offline scans (pydeface head, ITK T1, LiTS CT) load through `asset_volume`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from tailorkit.data.volumes import Volume, VolumeError

__all__ = [
    "T2_LIKE",
    "Atlas",
    "asset_volume",
    "bench_atlas",
    "resample_isotropic",
    "rescale_intensity",
    "tissue_contrast",
]

T2_LIKE = (0.9, 0.45, 0.2)  # CSF, GM, WM weights (CSF bright, WM dark)


def resample_isotropic(volume: Volume, spacing: float, order: int = 1) -> Volume:
    """Resample `volume` to `spacing` mm along each array axis, keeping its orientation and field of view.

    Shapes:
        volume.array: (X, Y, Z) -> (ceil(X * sx / spacing), ...)
    """
    if spacing <= 0:
        raise ValueError(f"spacing: expected > 0 mm, got {spacing!r}")
    old = np.asarray(volume.spacing)
    shape = np.maximum(1, np.ceil(np.asarray(volume.shape) * old / spacing).astype(int))
    factor = spacing / old
    if np.allclose(factor, 1.0):
        return volume
    affine = volume.affine.copy()
    affine[:3, :3] = volume.affine[:3, :3] * factor  # scales each column: directions kept
    coords = np.meshgrid(*[np.arange(n) * f for n, f in zip(shape, factor, strict=True)], indexing="ij")
    data = ndimage.map_coordinates(volume.array, coords, order=order, mode="nearest")
    return Volume(data.astype(volume.array.dtype if order == 0 else np.float32), affine)


def rescale_intensity(
    array: np.ndarray, mode: str = "percentile", percentiles: tuple[float, float] = (0.2, 99.8)
) -> np.ndarray:
    """SAM's intensity map: clip (CT: [-1024, 3071] HU; MRI: the given percentiles), map to [0, 255], minus 50."""
    a = np.asarray(array, dtype=np.float32)
    if mode == "ct":
        lo, hi = -1024.0, 3071.0
    elif mode == "percentile":
        lo, hi = (float(v) for v in np.percentile(a, percentiles))
    else:
        raise ValueError(f"intensity mode: expected 'percentile' or 'ct', got {mode!r}")
    if hi <= lo:
        hi = lo + 1.0
    return (np.clip(a, lo, hi) - lo) / (hi - lo) * 255.0 - 50.0


def tissue_contrast(
    gm: np.ndarray, wm: np.ndarray, brain: np.ndarray, weights: tuple[float, float, float] = T2_LIKE
) -> np.ndarray:
    """An image of the same anatomy from tissue maps: w_csf * CSF + w_gm * GM + w_wm * WM, CSF = 1 - GM - WM in the
    brain mask (0 outside). Values in [0, 1] for weights in [0, 1]."""
    csf = np.clip(1.0 - gm - wm, 0.0, 1.0) * (brain > 0)
    return (weights[0] * csf + weights[1] * gm + weights[2] * wm).astype(np.float32)


@dataclass(frozen=True)
class Atlas:
    """The landmark atlas on a working grid.

    Shapes:
        t1, gm, wm, brain: (X, Y, Z) float32 in [0, 1] (brain is a 0/1 mask); labels: (X, Y, Z) int16 AAL ids.
        affine: (4, 4) voxel -> world RAS+ mm. landmarks: (L, 3) world mm; landmark_ids: (L,) AAL ids.
    """

    t1: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    brain: np.ndarray
    labels: np.ndarray
    affine: np.ndarray
    landmarks: np.ndarray
    landmark_ids: np.ndarray
    names: tuple[str, ...]

    @property
    def volume(self) -> Volume:
        return Volume(self.t1, self.affine)

    def tissue_labels(self) -> np.ndarray:
        """0 background, 1 CSF, 2 GM, 3 WM (arg-max of the tissue maps inside the brain mask)."""
        csf = np.clip(1.0 - self.gm - self.wm, 0.0, 1.0)
        lab = np.argmax(np.stack([csf, self.gm, self.wm]), axis=0) + 1
        return (lab * (self.brain > 0)).astype(np.int16)


def _cache_dir() -> Path:
    from tailorkit.assets.base import tailorkit_home

    return tailorkit_home() / "anatomy"


def bench_atlas(spacing: float = 3.0, margin: int = 8, cache: bool = True) -> Atlas:
    """The MNI152 + AAL atlas at `spacing` mm (the benchmark's landmarks); cached under tailorkit's cache directory."""
    from tailorkit.assets.medical import aal_atlas, mni152
    from tailorkit.core.results import atomic_open

    path = _cache_dir() / f"mni_aal_{spacing:g}mm_m{margin}.npz"
    if cache and path.exists():
        z = np.load(path)
        names = tuple(str(n) for n in z["names"])
        return Atlas(
            t1=z["t1"],
            gm=z["gm"],
            wm=z["wm"],
            brain=z["brain"],
            labels=z["labels"],
            affine=z["affine"],
            landmarks=z["landmarks"],
            landmark_ids=z["landmark_ids"],
            names=names,
        )
    mni = mni152()
    aal, table = aal_atlas("AAL")
    t1 = np.asarray(mni.t1.get_fdata(), dtype=np.float32)
    mni_aff = np.asarray(mni.t1.affine, dtype=np.float64)
    # Head bounding box in world mm, then an axis-aligned RAS grid at `spacing` around it.
    idx = np.argwhere(t1 > 0.02)
    lo_w = (np.min(idx, axis=0) @ mni_aff[:3, :3].T + mni_aff[:3, 3]) - margin * spacing
    hi_w = (np.max(idx, axis=0) @ mni_aff[:3, :3].T + mni_aff[:3, 3]) + margin * spacing
    lo, hi = np.minimum(lo_w, hi_w), np.maximum(lo_w, hi_w)
    shape = np.ceil((hi - lo) / spacing).astype(int) + 1
    affine = np.eye(4)
    affine[:3, :3] *= spacing
    affine[:3, 3] = lo
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1).reshape(-1, 3)
    world = grid @ affine[:3, :3].T + affine[:3, 3]

    def sample(image: object, order: int) -> np.ndarray:
        aff = np.asarray(image.affine, dtype=np.float64)  # type: ignore[attr-defined]
        data = np.asarray(image.get_fdata(), dtype=np.float32)  # type: ignore[attr-defined]
        vox = (world - aff[:3, 3]) @ np.linalg.inv(aff[:3, :3]).T
        out = ndimage.map_coordinates(data, vox.T, order=order, mode="constant", cval=0.0)
        return out.reshape(tuple(shape)).astype(np.float32)

    t1_w, gm_w, wm_w = sample(mni.t1, 1), sample(mni.gm, 1), sample(mni.wm, 1)
    brain = (sample(mni.brain_mask, 0) > 0).astype(np.float32)
    labels = sample(aal, 0).astype(np.int16)
    # Landmarks: AAL centroids in world mm from the 1 mm atlas (not the resampled one).
    aal_data = np.asarray(aal.get_fdata()).astype(np.int32)
    aal_aff = np.asarray(aal.affine, dtype=np.float64)
    ids = np.array(sorted(table), dtype=np.int64)
    counts = np.bincount(aal_data.ravel(), minlength=int(ids.max()) + 1).astype(np.float64)
    cents = []
    for axis in range(3):
        coord = np.indices(aal_data.shape)[axis].ravel().astype(np.float64)
        cents.append(np.bincount(aal_data.ravel(), weights=coord, minlength=len(counts)))
    vox_c = np.stack(cents, axis=1)[ids] / counts[ids, None]
    landmarks = vox_c @ aal_aff[:3, :3].T + aal_aff[:3, 3]
    names = tuple(table[int(i)] for i in ids)
    atlas = Atlas(t1_w, gm_w, wm_w, brain, labels, affine, landmarks, ids, names)
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path) as handle:
            np.savez_compressed(
                handle,
                t1=t1_w,
                gm=gm_w,
                wm=wm_w,
                brain=brain,
                labels=labels,
                affine=affine,
                landmarks=landmarks,
                landmark_ids=ids,
                names=np.array(names),
            )
    return atlas


def asset_volume(name: str) -> Volume:
    """An offline scan as a RAS+ `Volume`: "mni_t1", "pydeface_head", "itk_t1" or "lits_ct" (HU, 1 mm assumed)."""
    import nibabel as nib

    from tailorkit.assets import medical

    image: object
    if name == "mni_t1":
        image = medical.mni152().t1
    elif name == "pydeface_head":
        image = medical.pydeface_head()[0]
    elif name == "itk_t1":
        image = medical.itk_t1()["t1"]
    elif name == "lits_ct":
        ct, _ = medical.lits_case117()
        return Volume(ct.astype(np.float32), np.eye(4))  # voxel size is not stored in the MRC asset [inferred 1 mm]
    else:
        raise VolumeError(f"asset volume: expected one of mni_t1, pydeface_head, itk_t1, lits_ct, got {name!r}")
    canon = nib.as_closest_canonical(image)
    return Volume(np.asarray(canon.get_fdata(), dtype=np.float32), np.asarray(canon.affine, dtype=np.float64))
