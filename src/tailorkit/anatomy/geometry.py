"""World-coordinate helpers shared by embedding, training, matching and the deformation generator.

Conventions (one for the whole subsystem):
- A `Volume` (tailorkit.data.volumes) holds an (X, Y, Z) RAS+ array and a voxel (i, j, k) -> world mm affine.
- Tensors follow the official SAM (z, y, x) order: (C, D, H, W) with D = array axis 2, H = axis 1, W = axis 0.
  Their affines map tensor indices (d, h, w, 1) -> world RAS+ mm; `tensor_affine` converts.
- Trilinear sampling treats index n as the centre of voxel n (grid_sample with align_corners=True on indices).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "DHW_FROM_IJK",
    "grid_world",
    "map_affine",
    "sample_world",
    "tensor_affine",
    "to_tensor_order",
    "world_to_index",
]

# (d, h, w) = (k, j, i): the permutation between array and tensor index orders (its own inverse).
DHW_FROM_IJK = np.array([[0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=np.float64)


def tensor_affine(array_affine: np.ndarray) -> np.ndarray:
    """(i, j, k) -> world affine of an (X, Y, Z) array -> the (d, h, w) -> world affine of its (Z, Y, X) tensor."""
    return np.asarray(array_affine, dtype=np.float64) @ DHW_FROM_IJK


def to_tensor_order(array: np.ndarray) -> np.ndarray:
    """(X, Y, Z) array -> contiguous (Z, Y, X) array."""
    return np.ascontiguousarray(np.transpose(array, (2, 1, 0)))


def map_affine(
    input_affine: np.ndarray, stride: tuple[int, int, int], offset: tuple[float, float, float]
) -> np.ndarray:
    """Affine of a feature map whose index n sits at input index stride * n + offset (per tensor axis)."""
    scale = np.eye(4)
    scale[:3, :3] = np.diag(np.asarray(stride, dtype=np.float64))
    scale[:3, 3] = offset
    return np.asarray(input_affine, dtype=np.float64) @ scale


def grid_world(
    shape: tuple[int, ...], affine: np.ndarray | torch.Tensor, device: torch.device | None = None
) -> torch.Tensor:
    """World coordinates of every voxel of a (D, H, W) grid, flattened in C order.

    Shapes:
        return: (D*H*W, 3) float32
    """
    aff = torch.as_tensor(np.asarray(affine, dtype=np.float64), dtype=torch.float64, device=device)
    axes = [torch.arange(n, dtype=torch.float64, device=device) for n in shape[:3]]
    idx = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, 3)
    return (idx @ aff[:3, :3].T + aff[:3, 3]).float()


def world_to_index(world: torch.Tensor, affine: np.ndarray) -> torch.Tensor:
    """(N, 3) world mm -> (N, 3) fractional tensor indices under `affine`."""
    inv = torch.as_tensor(np.linalg.inv(np.asarray(affine, dtype=np.float64)), dtype=world.dtype, device=world.device)
    return world @ inv[:3, :3].T + inv[:3, 3]


def sample_world(
    volume: torch.Tensor, affine: np.ndarray, world: torch.Tensor, mode: str = "bilinear", padding: str = "border"
) -> torch.Tensor:
    """Sample a (C, D, H, W) tensor at world points (trilinear by default; "nearest" for labels).

    Shapes:
        volume: (C, D, H, W); world: (N, 3) -> return (N, C)
    """
    if volume.ndim != 4:
        raise ValueError(f"sample_world: expected a (C, D, H, W) tensor, got {tuple(volume.shape)}")
    idx = world_to_index(world.to(volume.dtype), affine)
    size = torch.tensor(volume.shape[1:], dtype=idx.dtype, device=idx.device)
    norm = 2 * idx / (size - 1).clamp(min=1) - 1
    grid = norm.flip(-1).reshape(1, -1, 1, 1, 3)  # grid_sample wants (w, h, d)
    out = F.grid_sample(volume[None], grid, mode=mode, padding_mode=padding, align_corners=True)
    return out.reshape(volume.shape[0], -1).T
