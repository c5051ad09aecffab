"""Self-supervised SAM / SAMv2 training: crop pairs with physical coordinates, InfoNCE, prototypes.

What is official and what inferred: docs/anatomy.md#the-method-as-implemented.

Every step draws `pairs_per_step` pairs of views of one training volume (`sample_pair`): each view has its own scale
s ~ U(scale_range) (spacing = working spacing x s), a small random rotation, and a centre chosen so that, with
probability `overlap_prob`, both views contain a common random foreground point. Views are resampled directly from
the volume at their world coordinates, so the mm meshgrid of every voxel (and of every fine / coarse map voxel,
through the network strides) is exact: correspondence is purely geometric. Per view: a random monotone piecewise-
linear intensity remap (optionally of the inverted image; UAE-M0's RandHistogramShift), Gaussian blur and noise,
then SAM's [0, 255] - 50 scale. Loss = fine InfoNCE (both directions) + coarse InfoNCE (both directions).

SAMv2 (`method="samv2"`, which sets `net.semantic`): with probability `semantic_prob` (an option of SAMv2,
`SAMv2Options`) a step instead draws two labelled views of different
"volumes" and applies the prototype loss to the semantic head. Offline there is one labelled brain, so the two
volumes are two random smooth deformations of it, each rendered as the T1 or, with probability `contrast_prob`, as
a random tissue contrast (w_csf CSF + w_gm GM + w_wm WM with random weights) [inferred: the official data are
different TotalSegmentator CTs]. The test pairs of the bench use other random streams; the cross-modality test
contrast (T2-like weights) is never used in training as such.

Training runs through `tailorkit.core.train.train` (checkpoint + resume, deterministic per step, progress bar);
each dataset item is one whole step, so `TrainConfig.batch_size` is 1. `save_model` / `load_model` write and read
the final network with its configuration (safetensors-free torch file read with weights_only=True).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch.utils.data import Dataset

from tailorkit.anatomy.config import EmbedConfig, NetConfig, SAMTrainConfig, SAMv2Options
from tailorkit.anatomy.data import asset_volume, bench_atlas, resample_isotropic, rescale_intensity
from tailorkit.anatomy.deform import rotation_matrix
from tailorkit.anatomy.embed import COARSE_OFFSET, FINE_OFFSET
from tailorkit.anatomy.geometry import grid_world, map_affine, sample_world, tensor_affine, to_tensor_order
from tailorkit.anatomy.losses import nearest_positive, prototype_loss, sam_coarse_loss, sam_fine_loss
from tailorkit.anatomy.network import COARSE_STRIDE, FINE_STRIDE, SAMNet, output_shape
from tailorkit.core.config import from_dict, to_dict
from tailorkit.core.results import atomic_open
from tailorkit.core.seeding import numpy_generator
from tailorkit.data.volumes import Volume

__all__ = [
    "TrainSource",
    "TrainedModel",
    "augment_view",
    "first_item",
    "load_model",
    "make_sources",
    "render_view",
    "sample_pair",
    "save_model",
    "source_from_volume",
    "train_sam",
    "view_affine",
]

MODEL_FORMAT = "tailorkit.anatomy/1"


@dataclass
class TrainSource:
    """One training volume in tensor order, intensities in [0, 1].

    Shapes:
        image: (D, H, W) float32; affine: (4, 4) (d, h, w) -> world; labels: (D, H, W) int or None;
        gm, wm, brain: (D, H, W) float32 tissue maps or None; foreground: (F, 3) world points.
    """

    image: np.ndarray
    affine: np.ndarray
    labels: np.ndarray | None = None
    gm: np.ndarray | None = None
    wm: np.ndarray | None = None
    brain: np.ndarray | None = None
    foreground: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.foreground is None:
            idx = np.argwhere(self.image > 0.1)
            if len(idx) == 0:
                idx = np.argwhere(np.ones_like(self.image, dtype=bool))
            self.foreground = idx @ self.affine[:3, :3].T + self.affine[:3, 3]


def _unit(array: np.ndarray, embed: EmbedConfig) -> np.ndarray:
    return (rescale_intensity(array, embed.intensity, embed.percentiles) + 50.0) / 255.0


def make_sources(config: SAMTrainConfig) -> list[TrainSource]:
    """The training volumes: the user's scans (config.volumes, labels) or, by default, the MNI152 atlas."""
    spacing = config.embed.spacing_mm
    if not config.volumes:
        atlas = bench_atlas(spacing)
        kind = config.options_as(SAMv2Options).semantic_labels if config.method == "samv2" else "aal"
        atlas_labels = atlas.labels if kind == "aal" else atlas.tissue_labels()
        return [
            TrainSource(
                to_tensor_order(_unit(atlas.t1, config.embed)),
                tensor_affine(atlas.affine),
                to_tensor_order(atlas_labels.astype(np.int64)),
                to_tensor_order(atlas.gm),
                to_tensor_order(atlas.wm),
                to_tensor_order(atlas.brain),
            )
        ]
    from tailorkit.data.volumes import load_volume

    sources = []
    for i, path in enumerate(config.volumes):
        labels: np.ndarray | None = None
        if str(path).startswith("asset:"):  # an offline scan: asset:mni_t1, asset:pydeface_head, asset:itk_t1, ...
            vol = resample_isotropic(asset_volume(str(path)[6:]), spacing)
            if str(path) == "asset:lits_ct" and not config.labels:  # LiTS ships liver (1) / tumour (2) labels
                from tailorkit.assets.medical import lits_case117

                lab = Volume(lits_case117()[1].astype(np.float32), np.eye(4))
                labels = to_tensor_order(np.rint(resample_isotropic(lab, spacing, order=0).array).astype(np.int64))
        else:
            vol = resample_isotropic(load_volume(path), spacing)
        if config.labels:
            lab = load_volume(config.labels[i])
            lab = resample_isotropic(lab, spacing, order=0)
            if lab.shape != vol.shape:
                raise ValueError(f"labels {config.labels[i]}: grid {lab.shape} differs from its scan's {vol.shape}")
            labels = to_tensor_order(np.rint(lab.array).astype(np.int64))
        sources.append(TrainSource(to_tensor_order(_unit(vol.array, config.embed)), tensor_affine(vol.affine), labels))
    return sources


def source_from_volume(volume: Volume, embed: EmbedConfig, labels: np.ndarray | None = None) -> TrainSource:
    """A `TrainSource` from a scan: resampled to the working spacing, intensities mapped to [0, 1]."""
    vol = resample_isotropic(volume, embed.spacing_mm)
    return TrainSource(to_tensor_order(_unit(vol.array, embed)), tensor_affine(vol.affine), labels)


def _remap(x: np.ndarray, rng: np.random.Generator, config: SAMTrainConfig) -> np.ndarray:
    fg = x > 0.02
    if rng.random() < config.invert_prob:
        x = np.where(fg, 1.0 - x, 0.0)
    n = int(rng.integers(5, 16))
    ys = np.sort(rng.uniform(0, 1, n))
    ys[0], ys[-1] = 0.0, 1.0
    return np.where(fg, np.interp(x, np.linspace(0, 1, n), ys), 0.0)


def augment_view(x: np.ndarray, spacing: float, rng: np.random.Generator, config: SAMTrainConfig) -> np.ndarray:
    """Intensity augmentation of one rendered view (remap, blur, noise), then the network's input scaling."""
    if rng.random() < config.remap_prob:
        x = _remap(x, rng, config)
    if rng.random() < config.blur_prob and config.blur_sigma_mm > 0:
        x = ndimage.gaussian_filter(x, rng.uniform(0, config.blur_sigma_mm) / spacing)
    if config.noise_std > 0:
        x = x + rng.normal(0, rng.uniform(0, config.noise_std), x.shape)
    return (x * 255.0 - 50.0).astype(np.float32)


def view_affine(
    source: TrainSource, centre: np.ndarray, size: tuple[int, int, int], spacing: float, rotation: np.ndarray
) -> np.ndarray:
    """The (4, 4) affine (crop voxel (d, h, w) -> world mm) of a rotated crop of ``size`` centred at ``centre``."""
    direction = source.affine[:3, :3] / np.linalg.norm(source.affine[:3, :3], axis=0)
    lin = rotation @ direction * spacing
    aff = np.eye(4)
    aff[:3, :3] = lin
    aff[:3, 3] = centre - lin @ ((np.asarray(size) - 1) / 2)
    return aff


def render_view(
    source: TrainSource, aff: np.ndarray, size: tuple[int, int, int], displacement: np.ndarray | None = None
) -> tuple[np.ndarray, torch.Tensor]:
    """The crop of ``source`` on the grid ``aff`` (optionally displaced, mm) and its voxels' world coordinates."""
    world = grid_world(size, aff)
    if displacement is not None:
        world = world + torch.as_tensor(displacement, dtype=world.dtype)
    img = sample_world(torch.as_tensor(source.image)[None], source.affine, world, padding="zeros")
    return img[:, 0].reshape(size).numpy(), world


def sample_pair(source: TrainSource, config: SAMTrainConfig, rng: np.random.Generator) -> dict[str, Any]:
    """Two augmented views of one volume with their view affines ((d, h, w) -> world of each crop)."""
    size = tuple(config.patch_size)
    assert source.foreground is not None
    fg = source.foreground
    spacing = config.embed.spacing_mm
    seed_point = fg[rng.integers(len(fg))]
    overlap = rng.random() < config.overlap_prob
    images, affines = [], []
    for _ in range(2):
        s = spacing * rng.uniform(*config.scale_range)
        rot = rotation_matrix(rng.uniform(-config.rotate_deg, config.rotate_deg, 3))
        half = (np.asarray(size)[::-1] - 1) / 2 * s  # (x, y, z) half extents in mm
        centre = seed_point + rng.uniform(-0.8, 0.8, 3) * half if overlap else fg[rng.integers(len(fg))]
        aff = view_affine(source, centre, size, s, rot)  # type: ignore[arg-type]
        img, _ = render_view(source, aff, size)  # type: ignore[arg-type]
        images.append(augment_view(img, s, rng, config))
        affines.append(aff)
    return {"kind": "intra", "images": np.stack(images), "affines": np.stack(affines)}


def _random_field(size: tuple[int, int, int], max_mm: float, rng: np.random.Generator) -> np.ndarray:
    ctrl = rng.standard_normal((3, 4, 4, 4))
    field = np.stack([ndimage.zoom(c, [n / 4 for n in size], order=3)[: size[0], : size[1], : size[2]] for c in ctrl])
    peak = float(np.linalg.norm(field, axis=0).max())
    field = field * (max_mm / peak if peak > 0 else 0.0)
    return field.reshape(3, -1).T


def sample_inter(source: TrainSource, config: SAMTrainConfig, rng: np.random.Generator) -> dict[str, Any]:
    """Two labelled, differently deformed (and possibly re-contrasted) views for the prototype loss."""
    if source.labels is None:
        raise ValueError("SAMv2 prototype loss: the training volume has no label map (set labels or semantic_prob=0)")
    options = config.options_as(SAMv2Options)
    size = tuple(min(c, n) for c, n in zip(options.inter_crop, source.image.shape, strict=True))
    fg = source.foreground
    assert fg is not None
    spacing = config.embed.spacing_mm
    images, affines, labels = [], [], []
    centre0 = fg[rng.integers(len(fg))]
    for _ in range(2):
        s = spacing * rng.uniform(*config.scale_range)
        rot = rotation_matrix(rng.uniform(-options.inter_rotate_deg, options.inter_rotate_deg, 3))
        centre = centre0 + rng.uniform(-10, 10, 3)
        aff = view_affine(source, centre, size, s, rot)
        disp = _random_field(size, options.inter_max_disp_mm, rng)
        img, world = render_view(source, aff, size, disp)
        tissue = source.gm is not None and source.wm is not None and source.brain is not None
        if tissue and rng.random() < options.contrast_prob:
            maps = np.stack([source.gm, source.wm, source.brain]).astype(np.float32)  # type: ignore[list-item]
            gm, wm, brain = sample_world(torch.as_tensor(maps), source.affine, world, padding="zeros").T.numpy()
            csf = np.clip(1 - gm - wm, 0, 1) * (brain > 0.5)
            w = rng.uniform(0, 1, 3)
            img = (w[0] * csf + w[1] * gm + w[2] * wm).reshape(size).astype(np.float32)
        # Labels on the fine grid of this view (nearest), at the deformed positions.
        fine_aff = map_affine(aff, FINE_STRIDE, FINE_OFFSET)
        fshape = output_shape(size, FINE_STRIDE)
        fworld = grid_world(fshape, fine_aff)
        fdisp = sample_world(torch.as_tensor(disp.T.reshape(3, *size), dtype=torch.float32), aff, fworld)
        lab = sample_world(
            torch.as_tensor(source.labels[None], dtype=torch.float32),
            source.affine,
            fworld + fdisp,
            mode="nearest",
            padding="zeros",
        )[:, 0]
        images.append(augment_view(img, s, rng, config))
        affines.append(aff)
        labels.append(lab.round().long().numpy())
    return {"kind": "inter", "images": np.stack(images), "affines": np.stack(affines), "labels": np.stack(labels)}


class _StepDataset(Dataset[dict[str, Any]]):
    """Item i = the whole batch of step i (deterministic in (seed, i))."""

    def __init__(self, sources: list[TrainSource], config: SAMTrainConfig) -> None:
        self.sources, self.config = sources, config

    def __len__(self) -> int:
        return self.config.steps

    def __getitem__(self, i: int) -> dict[str, Any]:
        rng = numpy_generator(self.config.seed, "anatomy-step", i)
        c = self.config
        src = self.sources[int(rng.integers(len(self.sources)))]
        if c.method == "samv2" and src.labels is not None and rng.random() < c.options_as(SAMv2Options).semantic_prob:
            return sample_inter(src, c, rng)
        pairs = [
            sample_pair(self.sources[int(rng.integers(len(self.sources)))], c, rng) for _ in range(c.pairs_per_step)
        ]
        return {
            "kind": "intra",
            "images": np.concatenate([p["images"] for p in pairs]),
            "affines": np.concatenate([p["affines"] for p in pairs]),
            "seed": int(rng.integers(2**31)),
        }


def first_item(batch: list[Any]) -> Any:
    """DataLoader collate function for batch_size=1 loaders whose items are already whole batches."""
    return batch[0]


def make_loss(config: SAMTrainConfig) -> Any:
    """loss_fn(model, batch) for `tailorkit.core.train.train`."""

    def loss_fn(model: torch.nn.Module, batch: dict[str, Any]) -> torch.Tensor:
        device = next(model.parameters()).device
        images = torch.as_tensor(batch["images"], device=device)[:, None]
        affines = batch["affines"]
        size = tuple(images.shape[2:])
        fshape = output_shape(size, FINE_STRIDE)  # type: ignore[arg-type]
        cshape = output_shape(size, COARSE_STRIDE)  # type: ignore[arg-type]
        if batch["kind"] == "inter":
            feats = []
            for v in range(2):  # each volume passes the network separately (official batch 1)
                out = model(images[v : v + 1])
                feats.append(out.semantic[0].reshape(out.semantic.shape[1], -1).T)
            labels = torch.as_tensor(batch["labels"], device=device).reshape(-1)
            return prototype_loss(torch.cat(feats), labels, config.options_as(SAMv2Options).proto_temperature)
        gen = torch.Generator().manual_seed(int(batch["seed"]))
        out = model(images)
        total = images.new_zeros(())
        n_pairs = len(images) // 2
        for p in range(n_pairs):
            fine, coarse, worlds, cworlds, ranks = [], [], [], [], []
            for v in (2 * p, 2 * p + 1):
                faff = map_affine(affines[v], FINE_STRIDE, FINE_OFFSET)
                caff = map_affine(affines[v], COARSE_STRIDE, COARSE_OFFSET)
                f = out.fine[v].reshape(out.fine.shape[1], -1).T
                c = out.coarse[v].reshape(out.coarse.shape[1], -1).T
                w = grid_world(fshape, faff, device=device)
                cw = grid_world(cshape, caff, device=device)
                with torch.no_grad():
                    c_up = F.normalize(sample_world(out.coarse[v].detach(), caff, w), dim=1)
                fine.append(f)
                coarse.append(c)
                worlds.append(w)
                cworlds.append(cw)
                ranks.append(torch.cat([f.detach(), c_up], dim=1))
            for a, b in ((0, 1), (1, 0)):
                bv = 2 * p + b
                faff_b = map_affine(affines[bv], FINE_STRIDE, FINE_OFFSET)
                caff_b = map_affine(affines[bv], COARSE_STRIDE, COARSE_OFFSET)
                if config.positive_mode == "nearest":
                    pos = nearest_positive(worlds[a], faff_b, fshape, config.positive_distance_mm)
                    key_f, key_w, key_r = fine[b], worlds[b], ranks[b]
                else:  # interpolate the key view's fine map at the query's world position
                    pos = nearest_positive(worlds[a], faff_b, fshape, float("inf"))
                    key_f = F.normalize(sample_world(out.fine[bv], faff_b, worlds[a]), dim=1)
                    key_w, key_r = worlds[a], ranks[a]
                    pos = torch.where(pos >= 0, torch.arange(len(pos), device=device), pos)
                total = total + sam_fine_loss(
                    fine[a], worlds[a], ranks[a], key_f, key_w, key_r, pos,
                    n_queries=config.after_select_pos, ignore_mm=config.ignore_distance_mm,
                    pre_select=config.pre_select_neg, after_select=config.after_select_neg,
                    temperature=config.temperature, generator=gen,
                )  # fmt: skip
                cpos = nearest_positive(
                    cworlds[a], caff_b, cshape, config.coarse_positive_distance_mm, config.coarse_z_distance_mm
                )
                total = total + sam_coarse_loss(
                    coarse[a], cworlds[a], coarse[b], cworlds[b], cpos,
                    ignore_mm=config.coarse_ignore_distance_mm, pre_select=config.coarse_pre_select_neg,
                    after_select=config.coarse_after_select_neg, temperature=config.temperature, generator=gen,
                )  # fmt: skip
        return total / (2 * n_pairs)

    return loss_fn


@dataclass
class TrainedModel:
    """A trained network with the settings it needs at inference."""

    net: SAMNet
    embed: EmbedConfig
    losses: tuple[float, ...] = ()
    seconds: float = 0.0


def train_sam(
    config: SAMTrainConfig,
    *,
    out_dir: str | os.PathLike[str] | None = None,
    sources: list[TrainSource] | None = None,
    device: torch.device | None = None,
    progress: bool = True,
) -> TrainedModel:
    """Train SAM (or SAMv2 with `config.method="samv2"`) from scratch; resumable when `out_dir` is given.

    With `out_dir`, the run keeps `out_dir/train_state.pt` (resume point, every `checkpoint_every` steps) and writes
    `out_dir/model.pt` (see `load_model`) at the end; rerunning the same call resumes where it stopped.
    """
    from tailorkit.core.train import TrainConfig, train

    sources = sources if sources is not None else make_sources(config)
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(config.seed)  # weight init only; the caller's global RNG state is restored below
    net = SAMNet(config.net)
    torch.random.set_rng_state(gen_state)
    core = TrainConfig(
        steps=config.steps,
        lr=config.lr,
        weight_decay=config.weight_decay,
        batch_size=1,
        optimizer=config.optimizer,
        momentum=0.9 if config.optimizer == "sgd" else 0.0,
        schedule=config.schedule,
        warmup_steps=config.warmup_steps,
        checkpoint_every=config.checkpoint_every,
        seed=config.seed,
        shuffle=False,
    )
    ckpt = None
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        ckpt = Path(out_dir) / "train_state.pt"
    threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        result = train(
            net,
            make_loss(config),
            _StepDataset(sources, config),
            core,
            device=device,
            checkpoint=ckpt,
            progress=progress,
            collate_fn=first_item,
        )
    finally:
        torch.set_num_threads(threads)
    model = TrainedModel(net.eval(), config.embed, result.losses, result.seconds)
    if out_dir is not None:
        save_model(model, Path(out_dir) / "model.pt")
    return model


def save_model(model: TrainedModel, path: str | os.PathLike[str]) -> Path:
    """Write the network weights with its NetConfig and EmbedConfig (atomically)."""
    payload = {
        "format": MODEL_FORMAT,
        "net": to_dict(model.net.config),
        "embed": to_dict(model.embed),
        "state": {k: v.detach().cpu() for k, v in model.net.state_dict().items()},
        "losses": list(model.losses),
    }
    with atomic_open(path) as handle:
        torch.save(payload, handle)
    return Path(path)


def load_model(path: str | os.PathLike[str], device: torch.device | str = "cpu") -> TrainedModel:
    """Read a `save_model` file (weights_only=True) into a TrainedModel in eval mode on `device`."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"model {p}: not found (expected a model.pt written by `tailorkit anatomy train`)")
    payload = torch.load(p, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise ValueError(f"model {p}: not a {MODEL_FORMAT} file")
    net_cfg = from_dict(NetConfig, payload["net"])
    embed_cfg = from_dict(EmbedConfig, payload["embed"])
    net = SAMNet(net_cfg)
    net.load_state_dict(payload["state"])
    return TrainedModel(net.to(device).eval(), embed_cfg, tuple(payload.get("losses", ())))
