"""UAE-M's cross-modality iteration, reduced (SAMv2 / UAE, arXiv 2311.15111; docs/anatomy.md#inferred-or-changed).

The official scheme: (M0) train on CT and MRI volumes separately (intra-volume SAM loss with strong intensity
augmentation); register every CT-MRI training pair with M0 (stable nearest-neighbour matches -> rigid fit -> DEEDS
affine + deformable); (M) retrain with inter-modality positives: crops of the two volumes at the same physical
region, positives = voxels within 2 mm after the registration.

Here (inferred reductions, each named):
1. `register_affine`: cycle-consistent matches (`match_cycle`) of a stride grid of moving-image fine voxels, and a
   Huber-IRLS affine (`robust_affine`) moving world -> fixed world; no DEEDS deformable step (not available).
2. `sample_cross_pair`: view 1 from the fixed volume, view 2 from the moving one around the corresponding point;
   view 2's affine is composed with the registration, so both views' voxel coordinates live in the fixed world and
   the SAM loss (`train.make_loss`) finds inter-modality positives purely geometrically, as for intra pairs.
3. `train_cross_modality`: continue training a model for `steps` steps on a mix of cross pairs (probability
   `cross_prob`) and the usual intra pairs of either volume; can be repeated (match, register, retrain).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from tailorkit.anatomy.config import MatchConfig, SAMTrainConfig
from tailorkit.anatomy.deform import rotation_matrix
from tailorkit.anatomy.embed import Embedding, embed_tensor
from tailorkit.anatomy.matching import match_cycle, robust_affine
from tailorkit.anatomy.train import (
    TrainedModel,
    TrainSource,
    augment_view,
    first_item,
    make_loss,
    render_view,
    sample_pair,
    save_model,
    view_affine,
)
from tailorkit.core.seeding import numpy_generator

__all__ = ["register_affine", "sample_cross_pair", "train_cross_modality"]


def _embed_source(model: TrainedModel, source: TrainSource) -> Embedding:
    device = next(model.net.parameters()).device
    image = torch.as_tensor(source.image * 255.0 - 50.0, dtype=torch.float32, device=device)
    return embed_tensor(model.net, image, source.affine)


def register_affine(
    model: TrainedModel, fixed: TrainSource, moving: TrainSource, stride: int = 2, heads: tuple[str, ...] | None = None
) -> np.ndarray:
    """Affine (4, 4) mapping moving world -> fixed world from cycle-consistent embedding matches (Huber IRLS).

    Queries: every `stride`-th fine voxel of the moving image inside its foreground (intensity > 0.1).
    """
    heads = heads or (("fine", "coarse", "semantic") if model.net.config.semantic else ("fine", "coarse"))
    fixed_emb, moving_emb = _embed_source(model, fixed), _embed_source(model, moving)
    world = moving_emb.fine_world()
    shape = moving_emb.fine_shape
    idx = torch.stack(torch.meshgrid(*[torch.arange(n) for n in shape], indexing="ij"), -1).reshape(-1, 3)
    on_grid = (idx % stride == 0).all(dim=1)
    from tailorkit.anatomy.geometry import sample_world

    inten = sample_world(torch.as_tensor(moving.image)[None], moving.affine, world)[:, 0]
    pts = world[on_grid & (inten > 0.1)]
    if len(pts) < 4:
        raise ValueError("register_affine: fewer than 4 foreground query points in the moving volume")
    res = match_cycle(moving_emb, fixed_emb, pts, MatchConfig(heads=heads, subvoxel="none"))
    keep = res.consistent if res.consistent is not None and int(res.consistent.sum()) >= 12 else None
    weights = None if keep is None else keep.to(pts.dtype)
    return robust_affine(pts.double(), res.points.double(), None if weights is None else weights.double()).numpy()


def sample_cross_pair(
    fixed: TrainSource, moving: TrainSource, affine: np.ndarray, config: SAMTrainConfig, rng: np.random.Generator
) -> dict[str, Any]:
    """A fixed-volume view and a moving-volume view of the same physical region, both with fixed-world affines.

    `affine` maps moving world -> fixed world (from `register_affine`).
    """
    size = tuple(config.patch_size)
    assert fixed.foreground is not None
    centre = fixed.foreground[rng.integers(len(fixed.foreground))]
    inv = np.linalg.inv(affine)
    images, affines = [], []
    for source, to_fixed in ((fixed, np.eye(4)), (moving, affine)):
        s = config.embed.spacing_mm * rng.uniform(*config.scale_range)
        rot = rotation_matrix(rng.uniform(-config.rotate_deg, config.rotate_deg, 3))
        half = (np.asarray(size)[::-1] - 1) / 2 * s
        c_fixed = centre + rng.uniform(-0.5, 0.5, 3) * half
        c_own = (inv @ np.append(c_fixed, 1.0))[:3] if source is moving else c_fixed
        aff = view_affine(source, c_own, size, s, rot)  # type: ignore[arg-type]
        img, _ = render_view(source, aff, size)  # type: ignore[arg-type]
        images.append(augment_view(img, s, rng, config))
        affines.append(to_fixed @ aff)
    return {"kind": "intra", "images": np.stack(images), "affines": np.stack(affines)}


class _CrossDataset(Dataset[dict[str, Any]]):
    def __init__(
        self, fixed: TrainSource, moving: TrainSource, affine: np.ndarray, config: SAMTrainConfig, cross_prob: float
    ) -> None:
        self.fixed, self.moving, self.affine, self.config, self.cross_prob = fixed, moving, affine, config, cross_prob

    def __len__(self) -> int:
        return self.config.steps

    def __getitem__(self, i: int) -> dict[str, Any]:
        rng = numpy_generator(self.config.seed, "anatomy-cross-step", i)
        if rng.random() < self.cross_prob:
            batch = sample_cross_pair(self.fixed, self.moving, self.affine, self.config, rng)
        else:
            batch = sample_pair(self.fixed if rng.random() < 0.5 else self.moving, self.config, rng)
        batch["seed"] = int(rng.integers(2**31))
        return batch


def train_cross_modality(
    model: TrainedModel,
    fixed: TrainSource,
    moving: TrainSource,
    config: SAMTrainConfig,
    *,
    steps: int = 100,
    cross_prob: float = 1.0,
    out_dir: str | os.PathLike[str] | None = None,
    device: torch.device | None = None,
    progress: bool = True,
) -> tuple[TrainedModel, np.ndarray]:
    """One round of match -> register -> retrain with inter-modality positives; returns the model and the affine.

    The model is trained in place (SAM fine + coarse losses only: the semantic head, if any, is left as it is).
    With `out_dir`, `out_dir/cross_state.pt` is the resume point and `out_dir/model.pt` the result.
    """
    from tailorkit.core.train import TrainConfig, train

    if not 0 <= cross_prob <= 1:
        raise ValueError(f"cross_prob: expected a probability in [0, 1], got {cross_prob!r}")
    affine = register_affine(model, fixed, moving)
    cfg = dataclasses.replace(config, steps=steps, warmup_steps=min(config.warmup_steps, steps))
    core = TrainConfig(
        steps=steps,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        batch_size=1,
        optimizer=cfg.optimizer,
        momentum=0.9 if cfg.optimizer == "sgd" else 0.0,
        schedule=cfg.schedule,
        warmup_steps=cfg.warmup_steps,
        checkpoint_every=cfg.checkpoint_every,
        seed=cfg.seed,
        shuffle=False,
    )
    # Only the SAM heads get gradients in this phase; freeze the semantic head so every trainable parameter is used.
    frozen = [p for n, p in model.net.named_parameters() if n.startswith("semantic_head")]
    for p in frozen:
        p.requires_grad_(False)
    model.net.train()
    ckpt = None if out_dir is None else Path(out_dir) / "cross_state.pt"
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    try:
        result = train(
            model.net,
            make_loss(cfg),
            _CrossDataset(fixed, moving, affine, cfg, cross_prob),
            core,
            device=device,
            checkpoint=ckpt,
            progress=progress,
            collate_fn=first_item,
        )
    finally:
        for p in frozen:
            p.requires_grad_(True)
        model.net.eval()
    out = TrainedModel(model.net, model.embed, model.losses + result.losses, model.seconds + result.seconds)
    if out_dir is not None:
        save_model(out, Path(out_dir) / "model.pt")
    return out, affine
