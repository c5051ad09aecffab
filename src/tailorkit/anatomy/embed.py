"""`embed(volume) -> Embedding`: per-voxel anatomical embeddings of a scan, with the world affine of every map.

Pipeline (docs/anatomy.md#from-the-official-code): resample to the isotropic working spacing (orientation kept), rescale
intensities
(percentiles for MRI, HU window for CT), run the SAM network, and attach to each map the affine from its tensor
indices to world RAS+ millimetres. The map geometry follows the network's strides: fine index n sits at input index
(2n + 0.5, 2n, 2n) along (z, y, x) (a 2x1x1 max-pool in z, stride-2 convolutions in-plane), coarse index n at
(4n + 0.5, 16n, 16n).

`Embedding.descriptors(heads)` gives the matching descriptor of every fine voxel: the chosen heads' unit vectors
(coarse and semantic sampled at the fine voxel's world position, trilinearly, re-normalised), concatenated and
divided by sqrt(#heads), so that a dot product is the mean of the heads' cosine similarities (the official
`(cos_fine + cos_coarse [+ cos_semantic]) / n`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from tailorkit.anatomy.config import EmbedConfig
from tailorkit.anatomy.data import resample_isotropic, rescale_intensity
from tailorkit.anatomy.geometry import grid_world, map_affine, sample_world, tensor_affine, to_tensor_order
from tailorkit.anatomy.network import COARSE_STRIDE, FINE_STRIDE, SAMNet
from tailorkit.data.volumes import Volume, VolumeError

__all__ = ["COARSE_OFFSET", "FINE_OFFSET", "Embedding", "embed", "embed_tensor", "prepare_volume"]

FINE_OFFSET = (0.5, 0.0, 0.0)
COARSE_OFFSET = (0.5, 0.0, 0.0)


@dataclass
class Embedding:
    """Embedding maps of one scan (tensor order (C, D, H, W) = (C, z, y, x)).

    Shapes:
        fine: (C, Df, Hf, Wf); coarse: (C, Dc, Hc, Wc); semantic: like fine or None.
        *_affine: (4, 4) tensor index (d, h, w, 1) -> world RAS+ mm.
        image: (D, H, W) the preprocessed network input; image_affine its affine.
    """

    fine: torch.Tensor
    fine_affine: np.ndarray
    coarse: torch.Tensor
    coarse_affine: np.ndarray
    semantic: torch.Tensor | None
    image: torch.Tensor
    image_affine: np.ndarray
    _cache: dict[tuple[str, ...], torch.Tensor] = field(default_factory=dict, repr=False)

    @property
    def fine_shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.fine.shape[1:])  # type: ignore[return-value]

    def fine_world(self) -> torch.Tensor:
        """World coordinates of the fine voxels, C order. Shapes: (N, 3)."""
        return grid_world(self.fine_shape, self.fine_affine, device=self.fine.device)

    def sample(self, world: torch.Tensor, heads: tuple[str, ...]) -> torch.Tensor:
        """Descriptors at arbitrary world points (trilinear per head, re-normalised). Shapes: (N, 3) -> (N, C*h)."""
        parts = []
        for head in heads:
            emb, aff = self._head(head)
            parts.append(F.normalize(sample_world(emb, aff, world), dim=1))
        return torch.cat(parts, dim=1) / len(heads) ** 0.5

    def descriptors(self, heads: tuple[str, ...] = ("fine", "coarse")) -> torch.Tensor:
        """Descriptor of every fine voxel (C order), cached per head tuple. Shapes: (N, C * len(heads))."""
        key = tuple(heads)
        if key not in self._cache:
            parts = []
            for head in heads:
                emb, aff = self._head(head)
                if head == "fine" or head == "semantic":
                    parts.append(emb.reshape(emb.shape[0], -1).T)
                else:
                    parts.append(F.normalize(sample_world(emb, aff, self.fine_world()), dim=1))
            self._cache[key] = torch.cat(parts, dim=1) / len(heads) ** 0.5
        return self._cache[key]

    def _head(self, head: str) -> tuple[torch.Tensor, np.ndarray]:
        if head == "fine":
            return self.fine, self.fine_affine
        if head == "coarse":
            return self.coarse, self.coarse_affine
        if head == "semantic":
            if self.semantic is None:
                raise ValueError("head 'semantic': this embedding has no semantic head (train with net.semantic=true)")
            return self.semantic, self.fine_affine
        raise ValueError(f"head: expected 'fine', 'coarse' or 'semantic', got {head!r}")


def prepare_volume(volume: Volume, config: EmbedConfig) -> tuple[np.ndarray, np.ndarray]:
    """Resample and rescale a scan for the network: the (D, H, W) input array and its tensor-index affine."""
    if not isinstance(volume, Volume):
        raise VolumeError(
            f"embed: expected a tailorkit.data.volumes.Volume (see load_volume), got {type(volume).__name__}"
        )
    if volume.array.ndim != 3 or min(volume.array.shape) < 1:
        raise VolumeError(f"embed: expected a 3D volume, got an array of shape {volume.array.shape}")
    res = resample_isotropic(volume, config.spacing_mm)
    image = rescale_intensity(res.array, config.intensity, config.percentiles)
    return to_tensor_order(image), tensor_affine(res.affine)


@torch.no_grad()
def embed_tensor(net: SAMNet, image: torch.Tensor, affine: np.ndarray) -> Embedding:
    """Embed a preprocessed (D, H, W) tensor with (d, h, w) -> world `affine` (eval mode, no gradients)."""
    was_training = net.training
    net.eval()
    try:
        out = net(image[None, None])
    finally:
        net.train(was_training)
    return Embedding(
        fine=out.fine[0],
        fine_affine=map_affine(affine, FINE_STRIDE, FINE_OFFSET),
        coarse=out.coarse[0],
        coarse_affine=map_affine(affine, COARSE_STRIDE, COARSE_OFFSET),
        semantic=None if out.semantic is None else out.semantic[0],
        image=image,
        image_affine=affine,
    )


def embed(volume: Volume, net: SAMNet, config: EmbedConfig | None = None) -> Embedding:
    """Embed a scan: resample to the working spacing, rescale intensities, run `net`, attach world affines.

    Args:
        volume: a RAS+ `Volume` (e.g. from `tailorkit.data.volumes.load_volume`).
        net: a trained `SAMNet` (see `load_checkpoint`); it is run in eval mode on its own device.
        config: preprocessing; it must match the one the network was trained with (the checkpoint stores it).

    Shapes:
        volume.array: (X, Y, Z) -> Embedding maps (C, z, y, x) at half (fine) / (4, 16, 16) (coarse) resolution.
    """
    config = config or EmbedConfig()
    image, affine = prepare_volume(volume, config)
    device = next(net.parameters()).device
    return embed_tensor(net, torch.as_tensor(image, device=device), affine)
