"""SynthContext: a procedural multi-task scene generator with exact labels for six dense tasks.

SynthContext (docs/adapters.md#data) is a stand-in for the
PASCAL-Context multi-task benchmark where no such real data installs offline. Each scene is ray-cast in numpy: a
pinhole camera pitched down at a textured floor and back wall, and 1 to ``max_objects`` primitives (spheres,
vertical cylinders, boxes turned about the vertical axis) standing on the floor. Every surface is textured with a
crop of a real photograph (OpenCV's sample photos, the ``opencv-photos`` asset) so ImageNet features matter, and
Lambert-shaded under a random light. Labels are exact, computed from the same ray hits:

- ``semseg``: 0 wall, 1 floor, 2 sphere, 3 box, 4 cylinder (5 classes);
- ``parts``: parts of the "person-like" class (cylinder): 1 top cap, 2 upper half of the side, 3 lower half, 0 other
  pixels; images without a cylinder are all 255 (ignored), as PASCAL's human parts are on person-free images;
- ``saliency``: the object nearest to the camera (1) versus everything else (0);
- ``normals``: unit surface normals in camera coordinates (x right, y up, z forward, so visible normals have z < 0);
- ``depth``: camera-space z of the hit;
- ``edges``: pixels whose 4-neighbourhood holds another surface (instance-boundary map).

Shapes:
    images (N, H, W, 3) uint8; semseg, parts (N, H, W) int64; saliency, depth, edges (N, H, W) float32;
    normals (N, H, W, 3) float32.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from tailorkit.core.seeding import numpy_generator

__all__ = ["PART_CLASSES", "PHOTOS", "SEMSEG_CLASSES", "SceneSet", "load_photo_textures", "render_scenes"]

SEMSEG_CLASSES = ("wall", "floor", "sphere", "box", "cylinder")
PART_CLASSES = ("other", "top cap", "upper side", "lower side")
#: OpenCV sample photos used as textures (all in the verified ``opencv-photos`` asset).
PHOTOS = (
    "baboon.jpg",
    "fruits.jpg",
    "apple.jpg",
    "orange.jpg",
    "butterfly.jpg",
    "squirrel_cls.jpg",
    "starry_night.jpg",
    "home.jpg",
    "building.jpg",
    "messi5.jpg",
)
_TEX = 128  # texture side in pixels
_FLOOR_Y = -1.0
_WALL_Z = 8.0
_SPHERE, _BOX, _CYL = 2, 3, 4


@dataclass
class SceneSet:
    """Images and the six exact label maps (see the module docstring for conventions)."""

    images: np.ndarray
    semseg: np.ndarray
    parts: np.ndarray
    saliency: np.ndarray
    normals: np.ndarray
    depth: np.ndarray
    edges: np.ndarray

    def __len__(self) -> int:
        return int(self.images.shape[0])


def load_photo_textures(source: Literal["photos", "procedural"] = "photos", seed: int = 0) -> np.ndarray:
    """Texture pool (P, 128, 128, 3) float32 in [0, 1]: the real photos resized, or seeded procedural patterns.

    Raises:
        tailorkit.assets.AssetMissing: ``source="photos"`` and the OpenCV photos are not installed.
    """
    if source == "photos":
        from PIL import Image

        from tailorkit.assets.images import opencv_photo

        out = []
        for name in PHOTOS:
            image = Image.fromarray(opencv_photo(name)).resize((_TEX, _TEX), Image.Resampling.BICUBIC)
            out.append(np.asarray(image, dtype=np.float32) / 255.0)
        return np.stack(out)
    if source == "procedural":
        rng = numpy_generator(seed, "procedural-textures")
        yy, xx = np.mgrid[0:_TEX, 0:_TEX] / _TEX
        out = []
        for _ in range(10):
            f = rng.uniform(2, 10, size=2)
            base = rng.uniform(0.2, 0.9, size=3)
            wave = 0.5 + 0.5 * np.sin(2 * np.pi * (f[0] * xx + f[1] * yy))[..., None]
            out.append(np.clip(base * (0.6 + 0.4 * wave) + rng.normal(0, 0.05, (_TEX, _TEX, 3)), 0, 1))
        return np.stack(out).astype(np.float32)
    raise ValueError(f"textures: expected 'photos' or 'procedural', got {source!r}")


def render_scenes(
    n: int,
    size: int,
    seed: int,
    textures: np.ndarray,
    *,
    max_objects: int = 4,
    pitch_deg: float = 20.0,
    fov_deg: float = 55.0,
) -> SceneSet:
    """Render ``n`` seeded scenes of ``size`` x ``size`` pixels (module docstring) with exact labels.

    Args:
        n: Number of scenes.
        size: Image side in pixels.
        seed: Scene ``i`` depends only on (seed, i), so sets of different ``n`` share their first scenes.
        textures: (P, S, S, 3) float texture pool from :func:`load_photo_textures`.
        max_objects: At most this many primitives per scene (at least one).
    """
    if n < 0 or size < 8 or max_objects < 1:
        raise ValueError(f"render_scenes: expected n >= 0, size >= 8, max_objects >= 1; got {n}, {size}, {max_objects}")
    if textures.ndim != 4 or textures.shape[-1] != 3:
        raise ValueError(f"render_scenes: expected textures (P, S, S, 3), got shape {textures.shape}")
    pitch = np.deg2rad(pitch_deg)
    # camera-to-world rotation: pitch down about x
    rot = np.array([[1, 0, 0], [0, np.cos(pitch), -np.sin(pitch)], [0, np.sin(pitch), np.cos(pitch)]])
    f = 1.0 / np.tan(np.deg2rad(fov_deg) / 2)
    coords = (np.arange(size) + 0.5) / size * 2 - 1
    u, v = np.meshgrid(coords, -coords)
    d_cam = np.stack([u, v, np.full_like(u, f)], -1)
    d_cam /= np.linalg.norm(d_cam, axis=-1, keepdims=True)
    d = d_cam.reshape(-1, 3) @ rot.T  # world ray directions, camera at origin
    out: dict[str, np.ndarray] = {
        "images": np.zeros((n, size, size, 3), np.uint8),
        "semseg": np.zeros((n, size, size), np.int64),
        "parts": np.zeros((n, size, size), np.int64),
        "saliency": np.zeros((n, size, size), np.float32),
        "normals": np.zeros((n, size, size, 3), np.float32),
        "depth": np.zeros((n, size, size), np.float32),
        "edges": np.zeros((n, size, size), np.float32),
    }
    for i in range(n):
        rng = numpy_generator(seed, "scene", i)
        scene = _render_one(rng, d, rot, textures, max_objects)
        for key, value in scene.items():
            out[key][i] = value.reshape(out[key].shape[1:])
    return SceneSet(**out)


def _tex_lookup(tex: np.ndarray, s: np.ndarray, t: np.ndarray, offset: np.ndarray, scale: float) -> np.ndarray:
    side = tex.shape[0]
    x = (np.floor(s * scale * side) + offset[0]).astype(np.int64) % side
    y = (np.floor(t * scale * side) + offset[1]).astype(np.int64) % side
    return tex[y, x]


def _render_one(
    rng: np.random.Generator, d: np.ndarray, rot: np.ndarray, textures: np.ndarray, max_objects: int
) -> dict[str, np.ndarray]:
    m = d.shape[0]
    inf = np.full(m, np.inf)
    best_t = inf.copy()
    normal = np.zeros((m, 3))
    color = np.zeros((m, 3))
    label = np.zeros(m, np.int64)
    inst = np.zeros(m, np.int64)
    part = np.zeros(m, np.int64)
    n_tex = textures.shape[0]

    def offer(t: np.ndarray, nrm: np.ndarray, col: np.ndarray, cls: int, ident: int, prt: np.ndarray | int) -> None:
        hit = t < best_t
        best_t[hit] = t[hit]
        normal[hit] = nrm[hit]
        color[hit] = col[hit]
        label[hit] = cls
        inst[hit] = ident
        part[hit] = prt[hit] if isinstance(prt, np.ndarray) else prt

    # back wall z = _WALL_Z (normal towards camera) and floor y = _FLOOR_Y
    with np.errstate(divide="ignore", invalid="ignore"):
        t_wall = np.where(d[:, 2] > 1e-6, _WALL_Z / d[:, 2], np.inf)
        t_floor = np.where(d[:, 1] < -1e-6, _FLOOR_Y / d[:, 1], np.inf)
    p = _points(t_wall, d)
    tex = textures[rng.integers(n_tex)]
    col = _tex_lookup(tex, p[:, 0] / 8, -p[:, 1] / 8, rng.integers(0, 128, 2), 1.0)
    offer(t_wall, np.tile([0.0, 0.0, -1.0], (m, 1)), col, 0, 0, 0)
    p = _points(t_floor, d)
    tex = textures[rng.integers(n_tex)]
    col = _tex_lookup(tex, p[:, 0] / 6, p[:, 2] / 6, rng.integers(0, 128, 2), 1.0)
    offer(t_floor, np.tile([0.0, 1.0, 0.0], (m, 1)), col, 1, 1, 0)

    k = int(rng.integers(1, max_objects + 1))
    placed: list[tuple[float, float, float]] = []
    centre_dist = []
    for j in range(k):
        for _ in range(50):  # rejection sampling of non-overlapping footprints
            cx, cz, rad = rng.uniform(-1.5, 1.5), rng.uniform(2.8, 6.0), rng.uniform(0.45, 0.9)
            if all((cx - x) ** 2 + (cz - z) ** 2 > (rad + r + 0.1) ** 2 for x, z, r in placed):
                break
        else:
            continue
        placed.append((cx, cz, rad))
        kind = int(rng.integers(_SPHERE, _CYL + 1))
        tex = textures[rng.integers(n_tex)]
        off = rng.integers(0, 128, 2)
        ident = 2 + j
        if kind == _SPHERE:
            c = np.array([cx, _FLOOR_Y + rad, cz])
            t = _ray_sphere(d, c, rad)
            p = _points(t, d)
            nrm = (p - c) / rad
            s = np.arctan2(nrm[:, 0], nrm[:, 2]) / (2 * np.pi) + 0.5
            col = _tex_lookup(tex, s, np.arccos(np.clip(nrm[:, 1], -1, 1)) / np.pi, off, 1.0)
            offer(t, nrm, col, _SPHERE, ident, 0)
            centre = c
        elif kind == _CYL:
            height = rng.uniform(0.4, 1.4)
            t, nrm, is_cap, y = _ray_cylinder(d, cx, cz, rad, _FLOOR_Y, _FLOOR_Y + height)
            s = np.arctan2(nrm[:, 0], nrm[:, 2]) / (2 * np.pi) + 0.5
            col = _tex_lookup(tex, np.where(is_cap, 0.3 * nrm[:, 0], s), (y - _FLOOR_Y) / 3, off, 1.0)
            upper = y >= _FLOOR_Y + height / 2
            prt = np.where(is_cap, 1, np.where(upper, 2, 3))
            offer(t, nrm, col, _CYL, ident, prt)
            centre = np.array([cx, _FLOOR_Y + height / 2, cz])
        else:
            half = np.array([rad * rng.uniform(0.6, 0.8), rng.uniform(0.4, 1.1), rad * rng.uniform(0.6, 0.8)])
            centre = np.array([cx, _FLOOR_Y + half[1], cz])
            t, nrm, (s, tt) = _ray_box(d, centre, half, rng.uniform(0, np.pi / 2))
            col = _tex_lookup(tex, s, tt, off, 0.5)
            offer(t, nrm, col, _BOX, ident, 0)
        centre_dist.append((float(np.linalg.norm(centre)), ident))

    light = np.array([rng.uniform(-0.6, 0.6), rng.uniform(0.5, 1.0), rng.uniform(-0.8, -0.2)])
    light /= np.linalg.norm(light)
    shade = 0.35 + 0.65 * np.clip(normal @ light, 0, None)
    gain = rng.uniform(0.8, 1.15, 3)  # colour jitter
    image = np.clip(color * shade[:, None] * gain, 0, 1)
    nearest = min(centre_dist)[1] if centre_dist else -1
    size = round(np.sqrt(m))
    inst2 = inst.reshape(size, size)
    edge = np.zeros((size, size), bool)
    edge[:, 1:] |= inst2[:, 1:] != inst2[:, :-1]
    edge[:, :-1] |= inst2[:, 1:] != inst2[:, :-1]
    edge[1:, :] |= inst2[1:, :] != inst2[:-1, :]
    edge[:-1, :] |= inst2[1:, :] != inst2[:-1, :]
    parts = np.where(label == _CYL, part, 0) if (label == _CYL).any() else np.full(m, 255)
    finite = np.isfinite(best_t)
    depth_z = np.where(finite, best_t * (d @ rot[:, 2]), 0.0)  # camera-space z = t * (d . camera forward)
    return {
        "images": (image * 255 + 0.5).astype(np.uint8),
        "semseg": label,
        "parts": parts,
        "saliency": (inst == nearest).astype(np.float32),
        "normals": (normal @ rot).astype(np.float32),  # world -> camera coordinates
        "depth": depth_z.astype(np.float32),
        "edges": edge.astype(np.float32),
    }


def _points(t: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Hit points t * d, with misses (t = inf) at the origin instead of nan."""
    return np.where(np.isfinite(t), t, 0.0)[:, None] * d


def _ray_sphere(d: np.ndarray, c: np.ndarray, r: float) -> np.ndarray:
    b = d @ c
    disc = b * b - (c @ c - r * r)
    with np.errstate(invalid="ignore"):
        t = b - np.sqrt(disc)
    return np.where((disc > 0) & (t > 1e-6), t, np.inf)


def _ray_cylinder(
    d: np.ndarray, cx: float, cz: float, r: float, y0: float, y1: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Vertical capped cylinder: nearest hit t, normal, is-top-cap flag and the hit's height y."""
    a = d[:, 0] ** 2 + d[:, 2] ** 2
    b = d[:, 0] * cx + d[:, 2] * cz
    disc = b * b - a * (cx * cx + cz * cz - r * r)
    with np.errstate(invalid="ignore", divide="ignore"):
        t_side = (b - np.sqrt(disc)) / a
        y_side = t_side * d[:, 1]
        side_ok = (disc > 0) & (t_side > 1e-6) & (y_side >= y0) & (y_side <= y1)
        t_cap = np.where(np.abs(d[:, 1]) > 1e-9, y1 / d[:, 1], np.inf)
        px, pz = t_cap * d[:, 0] - cx, t_cap * d[:, 2] - cz
        cap_ok = (t_cap > 1e-6) & (px * px + pz * pz <= r * r)
    t_side = np.where(side_ok, t_side, np.inf)
    t_cap = np.where(cap_ok, t_cap, np.inf)
    is_cap = t_cap < t_side
    t = np.minimum(t_side, t_cap)
    p = _points(t, d)
    side_n = np.stack([(p[:, 0] - cx) / r, np.zeros_like(t), (p[:, 2] - cz) / r], -1)
    nrm = np.where(is_cap[:, None], np.array([0.0, 1.0, 0.0]), side_n)
    return t, nrm, is_cap, p[:, 1]


def _ray_box(
    d: np.ndarray, c: np.ndarray, half: np.ndarray, yaw: float
) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Box turned by ``yaw`` about the vertical axis (slab method in its own frame): t, normal, texture coords."""
    cos, sin = np.cos(yaw), np.sin(yaw)
    to_local = np.array([[cos, 0, -sin], [0, 1, 0], [sin, 0, cos]])
    o = to_local @ (-c)
    dl = d @ to_local.T
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / dl
        t1, t2 = (-half - o) * inv, (half - o) * inv
    tmin, tmax = np.minimum(t1, t2), np.maximum(t1, t2)
    tmin = np.nan_to_num(tmin, nan=-np.inf)
    tmax = np.nan_to_num(tmax, nan=np.inf)
    t_near, axis = tmin.max(1), tmin.argmax(1)
    t_far = tmax.min(1)
    ok = (t_near <= t_far) & (t_near > 1e-6)
    t = np.where(ok, t_near, np.inf)
    p = o + np.where(ok[:, None], t[:, None] * dl, 0)
    n_local = np.zeros_like(p)
    n_local[np.arange(len(p)), axis] = np.sign(p[np.arange(len(p)), axis])
    nrm = n_local @ to_local  # local -> world (to_local is orthonormal)
    s = np.where(axis == 0, p[:, 2], p[:, 0])
    tt = np.where(axis == 1, p[:, 2], p[:, 1])
    return t, nrm, (s, tt)
