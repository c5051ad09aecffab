"""Pools and test sets for selective labelling: the real LiTS CT, the procedural SynthLiver, and users' NIfTI folders.

LiTS (case 117 from liver-ct-segmentation-package, via tailorkit.assets.medical.lits_case117): one subject, 128^3,
HU. Axial slices are windowed to [0, 1], resized to 2 * patch and cut into four quadrant patches. Slices
[0, pool_slices) form the pool, [test_from, 128) the test set; the gap keeps adjacent, nearly identical slices out of
both. The upstream (organ) task uses the pool's liver labels (label >= 1); the lesion task the tumour (label 2).
One subject only: every LiTS number here is intra-subject, never a cross-patient result.

SynthLiver [inferred design, docs/active.md#data-and-its-limits]: 2D abdominal slices with a body ellipse (fat -100 HU,
muscle rim 40 HU), a deformed liver (60 +- 10 HU), bright tubular vessels (150-200 HU) and lesions of three subtypes
with skewed frequencies: large hypodense (70 %), small hypodense (< 3 px radius, 20 %) and near-isodense with an
enhancing rim (10 %); count ~ Poisson(1.5); correlated noise and a Gaussian PSF. Labels are exact (the lesion footprint
inside the liver). The upstream task is liver segmentation on a separate draw that never shows lesion labels. SynthLiver
rare [our design, issue 22]: the rim-enhancing type only in a few pool scans (`rare_pool`, 3 %) and in more test scans
(`rare_test`, 30 %): random labelling of 5 % of the pool usually misses it, so selection can matter.

Folder: every `*.nii`/`*.nii.gz` in root is a volume (read by tailorkit.data.volumes.load_volume, RAS+), masks
under root/labels/ with the same file name (lesion = voxel value > 0; optional for the pool); items are axial
slices resized to patch x patch, with ids "<file stem>:z<k>".

Shapes:
    SegSet.images: (N, 1, S, S) float32 in [0, 1]; SegSet.masks: (N, S, S) uint8 {0, 1}.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from tailorkit.active.config import DataConfig

__all__ = ["SUBTYPES", "SegSet", "Split", "lits_split", "load_folder", "load_split", "synthliver", "window"]

SUBTYPES = ("large", "small", "rim")
SUBTYPE_PROBS = (0.7, 0.2, 0.1)


@dataclass
class SegSet:
    """2D images with binary masks and stable string ids; `tags` are per-item notes (e.g. lesion subtypes)."""

    images: np.ndarray
    masks: np.ndarray
    ids: list[str]
    tags: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.shape[1] != 1:
            raise ValueError(f"SegSet.images: expected (N, 1, S, S), got {self.images.shape}")
        if self.masks.shape != (self.images.shape[0], *self.images.shape[2:]):
            raise ValueError(
                f"SegSet.masks: expected {(self.images.shape[0], *self.images.shape[2:])}, got {self.masks.shape}"
            )
        if len(self.ids) != len(self.images) or len(set(self.ids)) != len(self.ids):
            raise ValueError(f"SegSet.ids: expected {len(self.images)} unique ids, got {len(self.ids)}")

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, index: list[int] | np.ndarray) -> SegSet:
        idx = np.asarray(index, dtype=np.int64)
        tags = [self.tags[i] for i in idx] if self.tags else []
        return SegSet(self.images[idx], self.masks[idx], [self.ids[i] for i in idx], tags)


@dataclass
class Split:
    """pool (lesion labels revealed only when selected), test (lesion labels), upstream (organ labels)."""

    pool: SegSet
    test: SegSet
    upstream: SegSet
    name: str
    source: str


def window(hu: np.ndarray, low: float, high: float) -> np.ndarray:
    """Clip HU to [low, high] and scale to [0, 1] (float32)."""
    return ((np.clip(hu, low, high) - low) / (high - low)).astype(np.float32)


def _resize(x: np.ndarray, size: int, binary: bool) -> np.ndarray:
    """(N, H, W) -> (N, size, size): area averaging; binary maps are thresholded at 0.5 afterwards."""
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[:, None]
    out = F.interpolate(t, size=(size, size), mode="area")[:, 0].numpy()
    return (out > 0.5).astype(np.uint8) if binary else out.astype(np.float32)


def _quadrants(x: np.ndarray, patch: int) -> np.ndarray:
    """(N, 2p, 2p) -> (4N, p, p), ordered slice-major then quadrant (top-left, top-right, bottom-left, ...)."""
    n = x.shape[0]
    q = x.reshape(n, 2, patch, 2, patch).transpose(0, 1, 3, 2, 4)
    return q.reshape(n * 4, patch, patch)


def lits_split(config: DataConfig) -> Split:
    from tailorkit.assets.medical import lits_case117

    ct, labels = lits_case117()
    size = 2 * config.patch
    image = _resize(window(ct, *config.window), size, binary=False)
    tumour = _resize(labels == 2, size, binary=True)
    liver = _resize(labels >= 1, size, binary=True)

    def part(z: range) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
        zs = np.asarray(list(z))
        ids = [f"lits117:z{k:03d}:q{q}" for k in zs for q in range(4)]
        return (
            _quadrants(image[zs], config.patch)[:, None],
            _quadrants(tumour[zs], config.patch),
            _quadrants(liver[zs], config.patch),
            ids,
        )

    pi, pt, pl, pids = part(range(config.pool_slices))
    ti, tt, _, tids = part(range(config.test_from, 128))
    return Split(
        pool=SegSet(pi, pt, pids),
        test=SegSet(ti, tt, tids),
        upstream=SegSet(pi, pl, pids),
        name=f"LiTS case 117 (axial {config.patch}px patches, pool z<{config.pool_slices}, test z>={config.test_from})",
        source="liver-ct-segmentation-package 1.6.0 data/img_117.mrc, lab_117.mrc (tailorkit asset lits-117)",
    )


def _blob(size: int, cy: float, cx: float, radius: float, rng: np.random.Generator) -> np.ndarray:
    """A smooth star-shaped blob r(theta) = radius * (1 + sum_k a_k cos(k theta + phi_k)) as a boolean mask."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    theta = np.arctan2(yy - cy, xx - cx)
    r = np.full_like(theta, radius)
    for k in (2, 3):
        r *= 1 + rng.uniform(0.0, 0.15) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    return np.hypot(yy - cy, xx - cx) <= r


def synthliver(
    n: int,
    size: int,
    seed: int,
    lesions: bool = True,
    window_hu: tuple[float, float] = (-200.0, 250.0),
    rare_share: float | None = None,
) -> SegSet:
    """`n` SynthLiver slices of side `size` with exact lesion masks (all zero when lesions=False; then `masks`
    hold the liver, the upstream task). Tags list the lesion subtypes of each image ("-" for none).

    `rare_share` (the rare-mode pool): exactly round(rare_share * n) images, at seeded positions, hold one
    rim-enhancing lesion (beside their usual ones); every lesion of the other images is large or small (in the
    proportion 70 : 20)."""
    if n < 1 or size < 16:
        raise ValueError(f"synthliver: expected n >= 1 and size >= 16, got n={n}, size={size}")
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 1, size, size), np.float32)
    masks = np.zeros((n, size, size), np.uint8)
    tags: list[str] = []
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    s = float(size)
    rare: set[int] = set()
    if rare_share is not None:  # which images hold the rare type: from their own stream
        picks = np.random.default_rng([seed, 7]).permutation(n)[: round(rare_share * n)]
        rare = {int(i) for i in picks}
    plain_probs = np.array(SUBTYPE_PROBS[:2]) / sum(SUBTYPE_PROBS[:2])
    for i in range(n):
        hu = np.full((size, size), -1000.0, np.float32)
        by, bx = s / 2 + rng.normal(0, 0.02 * s, 2)
        ry, rx = s * rng.uniform(0.40, 0.46), s * rng.uniform(0.44, 0.49)
        body = ((yy - by) / ry) ** 2 + ((xx - bx) / rx) ** 2
        hu[body <= 1] = 40.0  # muscle rim
        hu[body <= 0.8] = -100.0  # fat
        liver_hu = 60.0 + rng.normal(0, 10)
        ly, lx = by + rng.uniform(-0.08, 0.05) * s, bx - rng.uniform(0.05, 0.15) * s
        liver = _blob(size, ly, lx, s * rng.uniform(0.22, 0.3), rng) & (body <= 0.75)
        hu[liver] = liver_hu
        for _ in range(rng.integers(1, 4)):  # vessels: bright tubes through the liver
            angle = rng.uniform(0, np.pi)
            offset = rng.uniform(-0.15, 0.15) * s
            dist = np.abs((yy - ly) * np.cos(angle) - (xx - lx) * np.sin(angle) - offset)
            hu[(dist <= rng.uniform(0.6, 1.4)) & liver] = rng.uniform(150, 200)
        lesion = np.zeros((size, size), bool)
        kinds = []
        count = rng.poisson(1.5) if lesions else 0
        inside = np.argwhere(ndimage.binary_erosion(liver, iterations=2))
        planned: list[str | None] = [None] * count  # None: drawn below from the subtype frequencies
        if rare_share is not None and lesions:
            planned = [None] * count + (["rim"] if i in rare else [])
        for plan in planned if len(inside) else []:
            if rare_share is None:
                kind = SUBTYPES[rng.choice(3, p=SUBTYPE_PROBS)]
            else:
                kind = plan or SUBTYPES[rng.choice(2, p=plain_probs)]
            cy, cx = inside[rng.integers(len(inside))]
            if kind == "large":
                blob = _blob(size, cy, cx, s * np.exp(rng.normal(np.log(0.08), 0.25)), rng)
                hu[blob & liver] = liver_hu - rng.uniform(40, 60)
            elif kind == "small":
                blob = _blob(size, cy, cx, rng.uniform(1.2, 2.5), rng)
                hu[blob & liver] = liver_hu - rng.uniform(35, 55)
            else:  # near-isodense core, enhancing rim
                radius = s * rng.uniform(0.06, 0.1)
                blob = _blob(size, cy, cx, radius, rng)
                core = ndimage.binary_erosion(blob, iterations=2)
                hu[blob & liver] = liver_hu + rng.uniform(40, 60)
                hu[core & liver] = liver_hu - rng.uniform(5, 12)
            lesion |= blob & liver
            kinds.append(kind)
        noise = ndimage.gaussian_filter(rng.normal(0, 1, (size, size)), 0.8)
        hu = ndimage.gaussian_filter(hu, 0.6) + noise / (noise.std() + 1e-8) * rng.uniform(10, 20)
        images[i, 0] = window(hu, *window_hu)
        masks[i] = lesion if lesions else liver
        tags.append(",".join(sorted(kinds)) if kinds else "-")
    prefix = "synth" if lesions else "synth-up"
    return SegSet(images, masks, [f"{prefix}{seed}:{i:04d}" for i in range(n)], tags)


def synth_split(config: DataConfig) -> Split:
    """SynthLiver pool / test of draw `config.draw` (draw 0: seeds synth_seed, synth_seed + 1) and the upstream
    draw (synth_seed + 2, the same for every draw); `synthliver_rare` gives pool and test their rare-mode shares."""
    from tailorkit.core.seeding import derive_seed

    s = config.synth_seed
    pool_seed, test_seed = (s, s + 1) if config.draw == 0 else (derive_seed(s, "pool", config.draw),
                                                                 derive_seed(s, "test", config.draw))  # fmt: skip
    rare = config.dataset == "synthliver_rare"
    kinds = (
        f"rim-enhancing lesions in {config.rare_pool:.0%} of pool and {config.rare_test:.0%} of test scans"
        if rare
        else "lesion subtypes large 70 %, small 20 %, rim-enhancing 10 %"
    )
    return Split(
        pool=synthliver(config.synth_pool, config.patch, pool_seed, window_hu=config.window,
                        rare_share=config.rare_pool if rare else None),
        test=synthliver(config.synth_test, config.patch, test_seed, window_hu=config.window,
                        rare_share=config.rare_test if rare else None),
        upstream=synthliver(config.synth_upstream, config.patch, s + 2, lesions=False, window_hu=config.window),
        name=f"SynthLiver{' rare' if rare else ''} ({config.patch}px; {kinds}; draw {config.draw})",
        source=f"procedural, tailorkit.active.data.synthliver (seed {s}, draw {config.draw})",
    )  # fmt: skip


def load_folder(root: str | Path, patch: int, window_hu: tuple[float, float], need_masks: bool = False) -> SegSet:
    """Axial slices of every NIfTI volume in `root` (masks from root/labels/<same name>, zeros where absent)."""
    from tailorkit.data.volumes import VolumeError, load_volume

    folder = Path(root)
    if not folder.is_dir():
        raise VolumeError(f"{folder}: expected a folder of NIfTI volumes (*.nii or *.nii.gz), masks in labels/")
    files = sorted(p for p in folder.iterdir() if p.name.endswith((".nii", ".nii.gz")) and p.is_file())
    if not files:
        raise VolumeError(f"{folder}: no *.nii or *.nii.gz volumes found (expected one file per scan)")
    images, masks, ids = [], [], []
    for path in files:
        volume = load_volume(path)
        array = np.moveaxis(volume.array, 2, 0)  # RAS+ axis 2 is superior: axial slices first
        label_path = folder / "labels" / path.name
        if label_path.exists():
            label = load_volume(label_path)
            if label.shape != volume.shape:
                raise VolumeError(f"{label_path}: mask shape {label.shape} differs from the scan's {volume.shape}")
            mask = np.moveaxis(label.array, 2, 0) > 0
        elif need_masks:
            raise VolumeError(f"{label_path}: expected a lesion mask for {path.name} (same file name under labels/)")
        else:
            mask = np.zeros(array.shape, bool)
        images.append(_resize(window(array, *window_hu), patch, binary=False))
        masks.append(_resize(mask, patch, binary=True))
        stem = path.name.removesuffix(".gz").removesuffix(".nii")
        ids += [f"{stem}:z{k:03d}" for k in range(array.shape[0])]
    return SegSet(np.concatenate(images)[:, None], np.concatenate(masks), ids)


def load_split(config: DataConfig) -> Split:
    """The pool / test / upstream split named by `config.dataset` ("folder": test = pool, upstream = pool)."""
    if config.dataset == "lits":
        return lits_split(config)
    if config.dataset in ("synthliver", "synthliver_rare"):
        return synth_split(config)
    pool = load_folder(config.root, config.patch, config.window, need_masks=False)
    return Split(pool, pool, pool, f"NIfTI folder {config.root}", str(config.root))
