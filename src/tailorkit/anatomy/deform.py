"""Known smooth deformations: random affine + stationary velocity field (SVF), exactly invertible.

They make the benchmark's queries (docs/anatomy.md#the-benchmark).

phi(x) = A(exp(v)(x)) maps moving world -> fixed (atlas) world; the moving image is M = F o phi, labels by nearest
neighbour. The ground-truth fixed -> moving map is psi(y) = exp(-v)(A^-1 y): a landmark y of the atlas lies at
psi(y) in the moving image. exp is scaling and squaring (7 steps by default) of a velocity field made from 3 x 6^3
Gaussian control values, cubic-zoomed to the grid and scaled so that max |v| = max_disp_mm. exp(v) and exp(-v) are
inverse diffeomorphisms; the discrete round trip errs by a small fraction of a millimetre (tested).

A = R S (x - c) + c + t: rotations U(-rot, rot) degrees about each axis, scales U(1 - s, 1 + s) per axis, translation
U(-t, t) mm per axis, about the grid centre c.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from tailorkit.anatomy.geometry import grid_world, sample_world, tensor_affine

__all__ = ["Deformation", "exp_velocity", "random_deformation", "rotation_matrix"]


def rotation_matrix(angles_deg: np.ndarray) -> np.ndarray:
    """Rotation R = Rz Ry Rx for angles (rx, ry, rz) in degrees."""
    ax, ay, az = np.deg2rad(np.asarray(angles_deg, dtype=np.float64))
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def exp_velocity(velocity: torch.Tensor, affine: np.ndarray, steps: int = 7) -> torch.Tensor:
    """Displacement field u of exp(v) (x + u(x)) by scaling and squaring, in world mm on the velocity's grid.

    Shapes:
        velocity: (3, D, H, W) world-mm vectors on a grid with (d, h, w) -> world `affine`; return: same.
    """
    disp = velocity / (2**steps)
    world = grid_world(velocity.shape[1:], affine, device=velocity.device)
    for _ in range(steps):
        moved = world + disp.reshape(3, -1).T
        disp = disp + sample_world(disp, affine, moved).T.reshape(disp.shape)
    return disp


@dataclass
class Deformation:
    """phi = A o exp(v) with its exact inverse psi = exp(-v) o A^-1 (world mm, moving -> fixed and back).

    Shapes:
        matrix: (4, 4) world affine A; forward_disp / inverse_disp: (3, D, H, W) world-mm displacements of exp(v)
        and exp(-v) on the grid with (d, h, w) -> world `grid_affine`.
    """

    matrix: np.ndarray
    forward_disp: torch.Tensor
    inverse_disp: torch.Tensor
    grid_affine: np.ndarray

    def phi(self, world: torch.Tensor) -> torch.Tensor:
        """Moving world points -> fixed world points. Shapes: (N, 3) -> (N, 3)."""
        x = world + sample_world(self.forward_disp, self.grid_affine, world)
        a = torch.as_tensor(self.matrix, dtype=x.dtype, device=x.device)
        return x @ a[:3, :3].T + a[:3, 3]

    def psi(self, world: torch.Tensor) -> torch.Tensor:
        """Fixed world points -> moving world points (the inverse of `phi`). Shapes: (N, 3) -> (N, 3)."""
        inv = torch.as_tensor(np.linalg.inv(self.matrix), dtype=world.dtype, device=world.device)
        y = world @ inv[:3, :3].T + inv[:3, 3]
        return y + sample_world(self.inverse_disp, self.grid_affine, y)

    def warp(self, array: np.ndarray, affine: np.ndarray, order: int = 1) -> np.ndarray:
        """The moving image M = F o phi of an (X, Y, Z) fixed array on its own grid (order 0 for labels)."""
        t_aff = tensor_affine(affine)
        vol = torch.as_tensor(np.transpose(array, (2, 1, 0)).astype(np.float32))[None]
        shape = vol.shape[1:]
        fixed = self.phi(grid_world(shape, t_aff))
        out = sample_world(vol, t_aff, fixed, mode="nearest" if order == 0 else "bilinear", padding="zeros")
        return np.transpose(out[:, 0].reshape(shape).numpy(), (2, 1, 0)).astype(array.dtype)


def random_deformation(
    shape: tuple[int, int, int],
    affine: np.ndarray,
    rng: np.random.Generator,
    *,
    rotate_deg: float = 8.0,
    scale: float = 0.08,
    translate_mm: float = 6.0,
    max_disp_mm: float = 6.0,
    control: int = 6,
    steps: int = 7,
) -> Deformation:
    """A random `Deformation` on the grid of an (X, Y, Z) array with voxel -> world `affine`."""
    t_aff = tensor_affine(affine)
    dhw = (shape[2], shape[1], shape[0])
    centre = np.asarray(affine, dtype=np.float64)[:3, :3] @ ((np.asarray(shape) - 1) / 2) + affine[:3, 3]
    lin = rotation_matrix(rng.uniform(-rotate_deg, rotate_deg, 3)) @ np.diag(rng.uniform(1 - scale, 1 + scale, 3))
    matrix = np.eye(4)
    matrix[:3, :3] = lin
    matrix[:3, 3] = centre - lin @ centre + rng.uniform(-translate_mm, translate_mm, 3)
    ctrl = rng.standard_normal((3, control, control, control))
    vel = np.stack([ndimage.zoom(c, [n / control for n in dhw], order=3) for c in ctrl])[
        :, : dhw[0], : dhw[1], : dhw[2]
    ]
    peak = float(np.linalg.norm(vel, axis=0).max())
    vel = vel * (max_disp_mm / peak if peak > 0 else 0.0)
    v = torch.as_tensor(vel, dtype=torch.float32)
    return Deformation(matrix, exp_velocity(v, t_aff, steps), exp_velocity(-v, t_aff, steps), t_aff)
