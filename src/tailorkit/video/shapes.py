"""MotionShapes: procedural clips whose classes are defined by motion, textured with real photo crops.

A clip shows one shape (filled with a crop of a real OpenCV sample photo, the texture moving with the shape) over a
static background crop of another photo, performing one of eight motions: moving left / right / up / down,
rotating clockwise / counterclockwise, growing, shrinking. Class names are text: ``"{shape} {motion}"``, e.g.
``"star moving left"``.

**Symmetric around the clip centre** (what makes frame pooling fail by construction): every motion is
parametrised by ``tau = t - (T - 1) / 2``, position ``c0 + v tau``, angle ``theta0 + w tau``, scale
``s0 exp(g tau)``. The time reversal of a "moving left" clip is therefore *exactly* a "moving right" clip with the
same draw of every other parameter (and likewise up/down, clockwise/counterclockwise, growing/shrinking): the two
opposite classes share the same distribution over *sets* of frames. Any order-invariant pooling of per-frame
features (mean pooling) maps a clip and its reversal to the same vector, so it cannot tell opposite motions apart
better than chance (50 % within each pair), whatever the image tower; frame order (motion) can. Shape identity
and the motion *axis* (horizontal, vertical, rotation, scale) remain visible in single frames, so mean pooling is
not at chance overall: its ceiling is half the motion classes right per shape.

Photos are split into disjoint texture pools for the training and the test clips (``split``), so test clips never
reuse a training photo.

Shapes:
    render_clip: -> (T, size, size, 3) uint8
    make_dataset: -> frames (N, T, size, size, 3) uint8, labels (N,), class names
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

__all__ = [
    "MOTIONS",
    "OPPOSITE",
    "SHAPES",
    "ClipParams",
    "MotionShapes",
    "class_names",
    "make_dataset",
    "render_clip",
    "texture_photos",
]

MOTIONS = (
    "moving left",
    "moving right",
    "moving up",
    "moving down",
    "rotating clockwise",
    "rotating counterclockwise",
    "growing",
    "shrinking",
)
OPPOSITE = {0: 1, 1: 0, 2: 3, 3: 2, 4: 5, 5: 4, 6: 7, 7: 6}
SHAPES = ("square", "triangle", "star", "cross", "hexagon", "arrow")

# Photo pools (OpenCV sample data): training textures and test textures never share a photo.
TRAIN_PHOTOS = ("baboon.jpg", "fruits.jpg", "butterfly.jpg", "building.jpg", "stuff.jpg")
TEST_PHOTOS = ("apple.jpg", "orange.jpg", "home.jpg", "squirrel_cls.jpg", "starry_night.jpg")


def class_names(shapes: Sequence[str]) -> list[str]:
    """``"{shape} {motion}"`` for every shape and motion, shape-major (label = shape_index * 8 + motion)."""
    for s in shapes:
        if s not in SHAPES:
            raise ValueError(f"shape: expected one of {', '.join(SHAPES)}, got {s!r}")
    return [f"{s} {m}" for s in shapes for m in MOTIONS]


def _polygon(shape: str) -> np.ndarray:
    """Outline in local coordinates, radius about 1 (closed polygon, (V, 2) as x, y)."""
    if shape == "square":
        return np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64) * 0.8
    if shape == "triangle":
        a = np.deg2rad([90, 210, 330])
        return np.stack([np.cos(a), np.sin(a)], 1)
    if shape == "star":
        a = np.deg2rad(90 + 36 * np.arange(10))
        r = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
        return np.stack([r * np.cos(a), r * np.sin(a)], 1)
    if shape == "cross":
        w = 0.33
        pts = [(w, 1), (w, w), (1, w), (1, -w), (w, -w), (w, -1), (-w, -1), (-w, -w), (-1, -w), (-1, w), (-w, w)]
        return np.array([*pts, (-w, 1)], dtype=np.float64)
    if shape == "hexagon":
        a = np.deg2rad(60 * np.arange(6))
        return np.stack([np.cos(a), np.sin(a)], 1) * 0.95
    if shape == "arrow":  # asymmetric, so rotation reads well
        pts = [(-0.9, 0.3), (0.2, 0.3), (0.2, 0.7), (1.0, 0.0), (0.2, -0.7), (0.2, -0.3), (-0.9, -0.3)]
        return np.array(pts, dtype=np.float64)
    raise ValueError(f"shape: expected one of {', '.join(SHAPES)}, got {shape!r}")


def _inside(poly: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Even-odd point-in-polygon test, vectorised over points."""
    inside = np.zeros(x.shape, dtype=bool)
    n = len(poly)
    for i in range(n):
        x0, y0 = poly[i]
        x1, y1 = poly[(i + 1) % n]
        crosses = (y0 > y) != (y1 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            xi = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
        inside ^= crosses & (x < xi)
    return inside


@lru_cache(maxsize=16)
def _photo(name: str) -> np.ndarray:
    from tailorkit.assets.images import opencv_photo

    return opencv_photo(name)


def texture_photos(split: str) -> tuple[str, ...]:
    if split not in ("train", "test"):
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    return TRAIN_PHOTOS if split == "train" else TEST_PHOTOS


def _crop(photo: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A random square crop of side min(H, W) * U(0.3, 0.6), resized (nearest) to size x size."""
    h, w = photo.shape[:2]
    side = int(min(h, w) * rng.uniform(0.3, 0.6))
    y0, x0 = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    idx = (np.arange(size) * side / size).astype(np.int64)
    return photo[y0 + idx[:, None], x0 + idx[None, :]]


@dataclass(frozen=True)
class ClipParams:
    """Every random choice of one clip (drawn by :meth:`MotionShapes.draw`); rendering is deterministic."""

    shape: str
    motion: int
    center: tuple[float, float]  # clip-centre position, fraction of the frame
    angle: float  # clip-centre angle (radians)
    scale: float  # clip-centre radius, fraction of the frame
    speed: float  # fraction of the frame per frame (translation)
    spin: float  # radians per frame (rotation)
    growth: float  # log-scale per frame (growing / shrinking)


def render_clip(params: ClipParams, texture: np.ndarray, background: np.ndarray, frames: int, size: int) -> np.ndarray:
    """Render one clip; the texture is attached to the shape (moves, turns and scales with it).

    Shapes:
        texture, background: (size, size, 3) uint8 -> (frames, size, size, 3) uint8
    """
    poly = _polygon(params.shape)
    grid = (np.arange(size) + 0.5) / size
    py, px = np.meshgrid(grid, grid, indexing="ij")
    out = np.empty((frames, size, size, 3), dtype=np.uint8)
    direction = {0: (-1.0, 0.0), 1: (1.0, 0.0), 2: (0.0, -1.0), 3: (0.0, 1.0)}
    for t in range(frames):
        tau = t - (frames - 1) / 2
        cx, cy = params.center
        angle, radius = params.angle, params.scale
        if params.motion in direction:
            dx, dy = direction[params.motion]
            cx, cy = cx + dx * params.speed * tau, cy + dy * params.speed * tau
        elif params.motion in (4, 5):  # clockwise on screen = decreasing angle with y pointing down
            angle = angle + (1.0 if params.motion == 4 else -1.0) * params.spin * tau
        else:
            radius = radius * math.exp((1.0 if params.motion == 6 else -1.0) * params.growth * tau)
        # pixel -> shape-local coordinates (inverse rotation, inverse scale); y axis points down on screen
        ux, uy = (px - cx) / radius, (py - cy) / radius
        c, s = math.cos(angle), math.sin(angle)
        lx, ly = c * ux + s * uy, -s * ux + c * uy
        mask = _inside(poly, lx, ly)
        tx = np.clip(((lx + 1) / 2 * size).astype(np.int64), 0, size - 1)
        ty = np.clip(((ly + 1) / 2 * size).astype(np.int64), 0, size - 1)
        frame = background.copy()
        frame[mask] = texture[ty[mask], tx[mask]]
        out[t] = frame
    return out


class MotionShapes:
    """Seeded MotionShapes generator (see module docstring).

    Args:
        frames: T, frames per clip.
        size: Frame side in pixels.
        speed: Translation per frame as a fraction of the frame (drawn in [0.75, 1.25] x this).
        spin: Rotation per frame in radians (same jitter).
        growth: Log-scale change per frame (same jitter).
        background_dim: Background brightness factor, so the shape (full-brightness texture) stands out.
    """

    def __init__(
        self,
        frames: int = 8,
        size: int = 64,
        speed: float = 0.045,
        spin: float = 0.2,
        growth: float = 0.08,
        background_dim: float = 0.5,
        background: str = "flat",
    ) -> None:
        if background not in ("flat", "photo"):
            raise ValueError(f"background: expected 'flat' or 'photo', got {background!r}")
        self.background = background
        if frames < 2:
            raise ValueError(f"frames: expected >= 2 (motion needs two frames), got {frames}")
        if not 16 <= size <= 512 or size % 2:
            raise ValueError(f"size: expected an even number in 16..512, got {size}")
        self.frames, self.size = frames, size
        self.speed, self.spin, self.growth = speed, spin, growth
        self.background_dim = background_dim

    def draw(self, shape: str, motion: int, rng: np.random.Generator) -> ClipParams:
        """Random clip parameters, kept inside the frame at both ends of the clip."""
        if not 0 <= motion < len(MOTIONS):
            raise ValueError(f"motion: expected 0..{len(MOTIONS) - 1}, got {motion}")
        half = (self.frames - 1) / 2
        speed = self.speed * rng.uniform(0.75, 1.25)
        growth = self.growth * rng.uniform(0.75, 1.25)
        scale = rng.uniform(0.2, 0.27)
        if motion >= 6:
            scale = scale * math.exp(-growth * half * 0.3)
        travel = speed * half if motion < 4 else 0.0
        margin = scale * (math.exp(growth * half) if motion >= 6 else 1.0) * 0.8
        lo, hi = margin, 1 - margin
        cx = rng.uniform(lo + (travel if motion < 2 else 0), hi - (travel if motion < 2 else 0))
        cy = rng.uniform(lo + (travel if motion in (2, 3) else 0), hi - (travel if motion in (2, 3) else 0))
        return ClipParams(
            shape=shape,
            motion=motion,
            center=(float(cx), float(cy)),
            angle=float(rng.uniform(0, 2 * math.pi)),
            scale=float(scale),
            speed=float(speed),
            spin=float(self.spin * rng.uniform(0.75, 1.25)),
            growth=float(growth),
        )

    def textures(self, split: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """A (texture, background) pair of crops from two different photos of the split's pool."""
        names = texture_photos(split)
        a, b = rng.choice(len(names), size=2, replace=False)
        texture = _crop(_photo(names[a]), self.size, rng)
        if self.background == "photo":
            background = (_crop(_photo(names[b]), self.size, rng) * self.background_dim).astype(np.uint8)
        else:  # one flat colour: the photo's mean colour, dimmed (texture only on the shape)
            colour = _photo(names[b]).reshape(-1, 3).mean(0) * self.background_dim
            background = np.broadcast_to(colour.astype(np.uint8), texture.shape).copy()
        return texture, background

    def clip(self, shape: str, motion: int, split: str, rng: np.random.Generator) -> np.ndarray:
        texture, background = self.textures(split, rng)
        return render_clip(self.draw(shape, motion, rng), texture, background, self.frames, self.size)


def make_dataset(
    generator: MotionShapes, shapes: Sequence[str], per_class: int, split: str, seed: int
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``per_class`` clips of every ``(shape, motion)`` class, class-balanced, in a seeded order.

    Returns:
        frames (N, T, size, size, 3) uint8, labels (N,) int64 indexing the class names, class names.
    """
    if per_class < 1:
        raise ValueError(f"per_class: expected >= 1, got {per_class}")
    names = class_names(shapes)
    rng = np.random.default_rng([seed, len(split), sum(map(ord, split))])
    clips, labels = [], []
    for _ in range(per_class):
        for si, shape in enumerate(shapes):
            for m in range(len(MOTIONS)):
                clips.append(generator.clip(shape, m, split, rng))
                labels.append(si * len(MOTIONS) + m)
    return np.stack(clips), np.asarray(labels, dtype=np.int64), names
