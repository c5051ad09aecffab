"""Square (2D) and simple-cubic (3D) lattices as neighbour tables, in film or bulk geometry.

Sites are numbered s = x + Lx*(y + Ly*z) (y absent in 2D), so the layer is z = s // (Lx*Ly) and the column is
s % (Lx*Ly). Directions come in opposite pairs (d, d ^ 1): +x, -x, (+y, -y,) +z, -z. Sentinels in the neighbour
table: FREE (-1) = nothing there (the free surface above a film, a bare substrate); SUBSTRATE (-2) = a substrate
particle (smooth or pinned) below z = 0. [inferred: docs/films.md#film-geometry-and-substrate; the paper's exact
surface and substrate are unverified]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tailorkit.films.config import LatticeConfig

FREE = -1
SUBSTRATE = -2


@dataclass(frozen=True)
class Lattice:
    """Neighbour table and geometry of one lattice.

    Shapes: nbr int32[S, nd]; dvec int32[nd, dim] (unit step of direction d); layer int32[S]; coords int32[S, dim].
    """

    nbr: np.ndarray
    dvec: np.ndarray
    layer: np.ndarray
    coords: np.ndarray
    n_layers: int
    area: int  # sites per layer (Lx*Ly), also the number of substrate columns
    film: bool

    @property
    def n_sites(self) -> int:
        return int(self.nbr.shape[0])

    @property
    def nd(self) -> int:
        return int(self.nbr.shape[1])

    @property
    def dim(self) -> int:
        return int(self.dvec.shape[1])


def build_lattice(cfg: LatticeConfig) -> Lattice:
    Lx, Ly, h = cfg.Lx, (cfg.Ly if cfg.dim == 3 else 1), cfg.h
    dims = (Lx, Ly, h) if cfg.dim == 3 else (Lx, h)
    n_sites = Lx * Ly * h
    idx = np.arange(n_sites)
    x = idx % Lx
    y = (idx // Lx) % Ly
    z = idx // (Lx * Ly)
    coords = np.stack([x, y, z] if cfg.dim == 3 else [x, z], axis=1).astype(np.int32)
    nd = 2 * cfg.dim
    nbr = np.empty((n_sites, nd), dtype=np.int32)
    dvec = np.zeros((nd, cfg.dim), dtype=np.int32)
    film = cfg.geometry == "film"
    for axis in range(cfg.dim):
        for sign_i, sign in enumerate((1, -1)):
            d = 2 * axis + sign_i
            dvec[d, axis] = sign
            c = coords.astype(np.int64).copy()
            c[:, axis] += sign
            is_z = axis == cfg.dim - 1
            if is_z and film:
                above = c[:, axis] >= h
                below = c[:, axis] < 0
            else:
                above = below = np.zeros(n_sites, dtype=bool)
            c[:, axis] %= dims[axis]
            s = c[:, 0] + Lx * (c[:, 1] + Ly * c[:, 2]) if cfg.dim == 3 else c[:, 0] + Lx * c[:, 1]
            s = np.where(above, FREE, s)
            s = np.where(below, SUBSTRATE if cfg.substrate != "bare" else FREE, s)
            nbr[:, d] = s
    return Lattice(nbr, dvec, z.astype(np.int32), coords, h, Lx * Ly, film)
