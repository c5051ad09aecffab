"""Training the SAM-Deform network on one scan (`tailorkit register train CONFIG.yaml`).

Pairs: the scan (fixed) and copies moved by random affine + SVF deformations (`anatomy.random_deformation`; seeded,
alternating the configured and half-sized geometry [inferred]), each pre-aligned by SAM-Affine + SAM-Coarse
with the given SAM embedding (or MIND-like features), then `deform_net.train_deform` (the project's one training
loop). Unsupervised like the official training (LNCC + diffusion); the known deformations are not used as labels.
The run keeps `train_state_<key>.pt` beside the output (a resume point every `checkpoint_every` steps; the key
hashes the settings, so a changed configuration never resumes another's state), so the same command continues an
interrupted run exactly; the state file is removed once the network is saved.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tailorkit.registration.config import DeformTrainConfig

__all__ = ["train_deform_network"]


def train_deform_network(
    config: DeformTrainConfig, out: str | os.PathLike[str], *, progress: bool = True
) -> tuple[Path, list[float]]:
    """Train and save the network (see the module docstring); returns its path and the losses."""
    from tailorkit.anatomy.data import resample_isotropic
    from tailorkit.anatomy.deform import random_deformation
    from tailorkit.anatomy.geometry import tensor_affine, to_tensor_order
    from tailorkit.core.seeding import numpy_generator
    from tailorkit.core.train import is_main_process
    from tailorkit.data.volumes import load_volume
    from tailorkit.registration.deform_net import TRAINING_VERSION, train_deform
    from tailorkit.registration.models import config_key, save_deform_net
    from tailorkit.registration.pipeline import deform_pair, prepare
    from tailorkit.registration.same import sam_affine, sam_coarse

    reg = config.registration
    model: Any = None
    if config.model is not None:
        from tailorkit.anatomy.train import load_model

        model = load_model(config.model)
    if config.atlas is not None:
        volume = resample_isotropic(load_volume(config.atlas), reg.spacing_mm)
    else:
        from tailorkit.anatomy.data import bench_atlas

        volume = bench_atlas(reg.spacing_mm).volume
    aff = tensor_affine(volume.affine)
    fixed = torch.as_tensor(to_tensor_order(volume.array))
    threads = torch.get_num_threads()
    if reg.threads:
        torch.set_num_threads(reg.threads)
    try:
        pairs = []
        for i in range(reg.deform.train_pairs):
            f = 1.0 if i % 2 else 0.5
            d = random_deformation(
                volume.shape,
                volume.affine,
                numpy_generator(reg.deform.seed, "register-train-pair", i),
                rotate_deg=config.rotate_deg * f,
                translate_mm=config.translate_mm * f,
                max_disp_mm=config.max_disp_mm * f,
            )
            moving = torch.as_tensor(to_tensor_order(d.warp(np.asarray(volume.array), volume.affine)))
            prep = prepare(fixed, aff, moving, aff, reg, model)
            if prep.fixed_features.kind == "mind" and reg.affine.search_radius_mm == 0:
                acfg = dataclasses.replace(reg.affine, search_radius_mm=reg.affine.mind_search_radius_mm)
            else:
                acfg = reg.affine
            ar = sam_affine(prep.fixed_features, prep.moving_features, acfg, prep.mask)
            pairs.append(deform_pair(prep, sam_coarse(ar, tuple(fixed.shape), aff, reg.coarse)))
        key = config_key(dataclasses.replace(config, checkpoint_every=0), TRAINING_VERSION)
        state = Path(out).parent / f"train_state_{key}.pt"
        state.parent.mkdir(parents=True, exist_ok=True)
        net, losses = train_deform(
            pairs, reg.deform, progress=progress, checkpoint=state, checkpoint_every=config.checkpoint_every
        )
    finally:
        torch.set_num_threads(threads)
    extra = {"features": pairs[0].fixed.kind, "model": str(config.model or ""), "losses_tail": losses[-10:]}
    if not is_main_process():  # under torchrun every rank trained the same network; rank 0 writes it
        return Path(out), losses
    path = save_deform_net(net, out, extra)
    state.unlink(missing_ok=True)
    return path, losses
