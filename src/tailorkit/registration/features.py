"""Feature maps for the matching steps: SAM embeddings (trained) or MIND-like intensity features (fallback).

A `FeatureMap` is a (C, *shape) tensor of unit vectors on a grid with an index -> world mm affine, so that a dot
product is a similarity in [-1, 1]. Both kinds live on a grid of half the working resolution (SAM's fine grid).

- `sam_features` (SAME++, docs/registration.md#the-method-as-implemented): the fine and the coarse SAM head (coarse
  sampled at the fine voxels, re-normalised), concatenated and divided by sqrt(2), so a dot product is (cos_fine +
  cos_coarse) / 2, the official `match` score / 2 (`anatomy.Embedding.descriptors`).
- `mind_features` [inferred]: a MIND-like self-similarity descriptor (Heinrich et al., MedIA 2012): for each
  axis-aligned neighbour offset r (+/- d voxels along each axis, for every dilation d), the box-filtered squared
  difference D(x, r) of the image and its shift, MIND(x, r) = exp(-D(x, r) / V(x)) with V the mean of D over r; the
  channels are centred and L2-normalised so that cosines discriminate. Modality-independent by design, used when
  no trained embedding is available (the pipeline reports which features it used).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from tailorkit.registration.config import FeatureConfig

__all__ = ["FeatureMap", "mind_features", "normalise_intensity", "pool_affine", "sam_features"]


@dataclass
class FeatureMap:
    """Unit feature vectors on a grid.

    Shapes:
        data: (C, *shape); affine: (n+1, n+1) tensor index -> world mm.
    """

    data: torch.Tensor
    affine: np.ndarray
    kind: str

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.data.shape[1:])


def normalise_intensity(image: torch.Tensor, percentiles: tuple[float, float] = (0.5, 99.5)) -> torch.Tensor:
    """Clip to the given percentiles and map to [0, 1] (a constant image maps to 0)."""
    flat = image.reshape(-1).float()
    lo, hi = (float(torch.quantile(flat[:: max(1, flat.numel() // 200000)], p / 100)) for p in percentiles)
    if hi <= lo:
        return torch.zeros_like(image, dtype=torch.float32)
    return ((image.float() - lo) / (hi - lo)).clamp(0, 1)


def pool_affine(affine: np.ndarray, stride: int) -> np.ndarray:
    """Affine of a grid average-pooled by `stride` (index n covers input indices stride*n .. stride*n + stride-1)."""
    n = affine.shape[0] - 1
    scale = np.eye(n + 1)
    scale[:n, :n] *= stride
    scale[:n, n] = (stride - 1) / 2
    return np.asarray(affine, dtype=np.float64) @ scale


def _box(x: torch.Tensor, radius: int) -> torch.Tensor:
    if radius == 0:
        return x
    n = x.ndim - 2
    pool = F.avg_pool2d if n == 2 else F.avg_pool3d
    return pool(x, 2 * radius + 1, stride=1, padding=radius, count_include_pad=False)


def mind_features(image: torch.Tensor, affine: np.ndarray, config: FeatureConfig | None = None) -> FeatureMap:
    """MIND-like features of a 2D or 3D image, pooled to the feature grid (see the module docstring).

    Shapes:
        image: (*shape) -> FeatureMap (2 * n * len(dilations), *ceil(shape / stride))
    """
    config = config or FeatureConfig()
    n = image.ndim
    if n not in (2, 3):
        raise ValueError(f"mind_features: expected a 2D or 3D image, got shape {tuple(image.shape)}")
    x = normalise_intensity(image)[None, None]
    dists = []
    for d in config.mind_dilations:
        for axis in range(n):
            for sign in (-1, 1):
                shifted = torch.roll(x, shifts=sign * d, dims=2 + axis)
                # replicate the border instead of wrapping around
                idx = [slice(None)] * (n + 2)
                if sign > 0:
                    idx[2 + axis] = slice(0, d)
                    shifted[tuple(idx)] = x[tuple(idx)]
                else:
                    idx[2 + axis] = slice(-d, None)
                    shifted[tuple(idx)] = x[tuple(idx)]
                dists.append(_box((x - shifted) ** 2, config.mind_radius))
    dist = torch.cat(dists, dim=1)
    var = dist.mean(dim=1, keepdim=True).clamp(min=1e-6)
    var = var.clamp(min=0.001 * float(var.mean()), max=1000 * float(var.mean()))
    mind = torch.exp(-dist / var)
    mind = mind / mind.amax(dim=1, keepdim=True).clamp(min=1e-6)
    s = config.mind_stride
    if s > 1:
        pool = F.avg_pool2d if n == 2 else F.avg_pool3d
        mind = pool(mind, s, stride=s, ceil_mode=True)
    mind = mind - mind.mean(dim=1, keepdim=True)
    data = F.normalize(mind[0], dim=0)
    return FeatureMap(data, pool_affine(affine, s), "mind")


def sam_features(volume: object, model: object) -> FeatureMap:
    """SAM descriptors (fine + coarse heads) of a 3D `Volume` with a trained `anatomy.TrainedModel`."""
    from tailorkit.anatomy.embed import embed

    emb = embed(volume, model.net, model.embed)  # type: ignore[arg-type, attr-defined]
    desc = emb.descriptors(("fine", "coarse"))
    data = desc.T.reshape(desc.shape[1], *emb.fine_shape).contiguous()
    return FeatureMap(data, emb.fine_affine, "sam")
