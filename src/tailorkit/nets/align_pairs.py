"""Image-caption pairs for the dual encoder's second alignment stage (``AlignConfig(pairs=...)``, issue 20 item 3).

The first alignment stage (nets/dual_encoder.py) sees no image at all: it maps ImageNet class names onto the image
tower's classifier rows. Images that look like nothing in ImageNet (digits, small grey garments) then land nowhere
near their names. This module builds the image-caption pairs a second stage trains on, from data that installs
offline and that **no bench task draws from**:

- ``glyphs``: the digits 0-9 rendered from the fonts matplotlib ships (DejaVu Sans/Serif/Mono in several weights,
  Computer Modern, STIX), at a random size, rotation, shift and stroke width, white on black or black on white.
  Synthetic text-in-image pairs, the kind of pair that gave CLIP its digit reading; no handwritten digit is used
  (the bench's digit tasks are MNIST-5k and OpenCV's digits.png, the validation task scikit-learn's digits).
- ``fashion-train``: Fashion-MNIST's *training* split (60,000 images, a seeded ``per_class`` subset per class), as
  the dataset stores them (white garment on black). The bench renders its fashion tasks from Fashion-MNIST's *test*
  split only (prompts/data.py), so no bench image is ever a training pair; the label set is shared, which makes
  the bench's fashion zero-shot a transfer across rendering styles (sketch, pencil, photo fill, clipart), not to
  unseen classes. [inferred: the issue allows "the real photos the assets carry"; this is the one real garment
  set.]

Captions: every class has several names (``CAPTIONS``); the bench's own class name is one of them, and no caption
equals or contains a held-out ImageNet class name (checked at alignment time, tested).

Shapes:
    PairSet.images: (N, S, S) uint8 grey; labels: (N,) int64 in [0, K); captions: K lists of names
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from tailorkit.nets.dual_encoder import AlignConfig, DualEncoder

__all__ = [
    "CAPTIONS",
    "PAIR_IMAGE_SIZE",
    "PAIR_SOURCES",
    "PairSet",
    "align_to_pairs",
    "check_captions_avoid",
    "glyph_digits",
    "glyph_fonts",
    "pair_set",
]

PAIR_IMAGE_SIZE = 64  # the side the pairs are fed to the image tower at: the prompts bench's image_size

_DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
CAPTIONS: dict[str, tuple[tuple[str, ...], ...]] = {
    "glyphs": tuple((f"number {w}", f"digit {w}", w, f"the number {d}") for d, w in enumerate(_DIGIT_WORDS)),
    "fashion-train": (
        ("t-shirt", "top", "tee shirt"),
        ("trousers", "pants"),
        ("pullover", "sweater"),
        ("dress",),
        ("coat", "jacket"),
        ("sandal",),
        ("shirt", "blouse"),
        ("sneaker", "trainer"),
        ("bag", "handbag"),
        ("ankle boot", "boot"),
    ),
}
PAIR_SOURCES = tuple(CAPTIONS)


@dataclass(frozen=True)
class PairSet:
    """One source of image-caption pairs; its classes are each other's negatives."""

    name: str
    images: np.ndarray
    labels: np.ndarray
    captions: tuple[tuple[str, ...], ...]


def glyph_fonts() -> list[Path]:
    """The TrueType fonts matplotlib ships that draw the ten digits (symbol-only fonts excluded)."""
    import matplotlib

    folder = Path(matplotlib.__file__).parent / "mpl-data" / "fonts" / "ttf"
    keep = ("DejaVu", "STIXGeneral", "cmr10", "cmss10", "cmtt10", "cmb10")
    return sorted(p for p in folder.glob("*.ttf") if p.name.startswith(keep) and "Display" not in p.name)


def glyph_digits(per_class: int, *, size: int = 28, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Digits rendered from matplotlib's fonts: random font, height (45-85 % of the side), rotation (+-15 deg),
    shift, stroke width (0-2 px at 4x) and polarity (half white on black). Deterministic in the seed.

    Shapes:
        returns images (10 * per_class, size, size) uint8, labels (10 * per_class,) int64
    """
    from PIL import Image, ImageDraw, ImageFont

    fonts = glyph_fonts()
    if not fonts:
        raise FileNotFoundError("no matplotlib fonts found for the glyph pairs (mpl-data/fonts/ttf)")
    rng = np.random.default_rng(seed)
    big = size * 4  # draw at 4x, then downsample with antialiasing (smooth strokes like scanned digits)
    images = np.zeros((10 * per_class, size, size), np.uint8)
    labels = np.repeat(np.arange(10), per_class)
    for i, digit in enumerate(labels):
        font = ImageFont.truetype(str(fonts[rng.integers(len(fonts))]), int(big * rng.uniform(0.45, 0.85)))
        canvas = Image.new("L", (big, big), 0)
        draw = ImageDraw.Draw(canvas)
        stroke = int(rng.integers(0, 3)) * 2
        left, top, right, bottom = draw.textbbox((0, 0), str(digit), font=font, stroke_width=stroke)
        x = (big - (right - left)) / 2 - left + rng.uniform(-0.1, 0.1) * big
        y = (big - (bottom - top)) / 2 - top + rng.uniform(-0.1, 0.1) * big
        draw.text((x, y), str(digit), fill=255, font=font, stroke_width=stroke, stroke_fill=255)
        angle = math.degrees(rng.uniform(-1, 1) * math.radians(15))
        canvas = canvas.rotate(angle, resample=Image.Resampling.BILINEAR)
        glyph = np.asarray(canvas.resize((size, size), Image.Resampling.LANCZOS))
        images[i] = 255 - glyph if rng.random() < 0.5 else glyph
    return images, labels.astype(np.int64)


def _fashion_train(per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from tailorkit.assets import fashion_mnist

    x, y = fashion_mnist("train")
    rng = np.random.default_rng(seed)
    idx = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:per_class] for c in range(10)])
    return x[idx], y[idx].astype(np.int64)


def pair_set(name: str, per_class: int, seed: int = 0) -> PairSet:
    """The pairs of one source (``glyphs`` or ``fashion-train``), ``per_class`` images per class."""
    if name == "glyphs":
        x, y = glyph_digits(per_class, seed=seed)
    elif name == "fashion-train":
        x, y = _fashion_train(per_class, seed)
    else:
        raise ValueError(f"pairs: expected names from {', '.join(PAIR_SOURCES)}; got {name!r}")
    return PairSet(name, x, y, CAPTIONS[name])


def check_captions_avoid(held_out_names: list[str]) -> None:
    """Refuse a caption that contains a held-out ImageNet name as whole words (any case; equality included): the
    held-out zero-shot must measure names the alignment never read."""
    held = [h.lower() for h in held_out_names]
    for source, classes in CAPTIONS.items():
        for caption in (c.lower() for names in classes for c in names):
            for name in held:
                if re.search(rf"\b{re.escape(name)}\b", caption):
                    raise ValueError(f"pairs {source}: caption {caption!r} overlaps held-out ImageNet name {name!r}")


class _PairData(torch.utils.data.Dataset[tuple[int, int]]):
    """(source, image) index pairs over every source's images, so core.train's batches mix the sources."""

    def __init__(self, sizes: list[int]) -> None:
        self.items = [(s, i) for s, n in enumerate(sizes) for i in range(n)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[int, int]:
        return self.items[index]


def align_to_pairs(model: DualEncoder, config: AlignConfig) -> dict[str, Any]:
    """The second alignment stage (in place): train the image adapter (and, with ``pair_train="all"``, the text
    projection, image scale and temperature) through tailorkit.core.train.

    Loss per step: for each pair image, cross-entropy of its cosine logits against its source's 10 class captions
    (one caption drawn per class and step among ``CAPTIONS``, in the template ``"a photo of a {name}."``), plus the
    first stage's ImageNet term (a batch of training-class names -> all training prototypes), which keeps the
    prototypes and names aligned while the image side moves. Held-out ImageNet classes are in neither term.
    The pooled image features are computed once (frozen tower, 64 px); the towers never train.

    Returns:
        A JSON-able report: sources, image counts, seconds, first and last loss.
    """
    from tailorkit.core.train import TrainConfig, train
    from tailorkit.nets.encoder_inputs import heldout_classes, imagenet_names, sentence_features, to_model_input

    began = time.perf_counter()
    synonyms = imagenet_names()
    held = heldout_classes(config)
    check_captions_avoid([n for c in held for n in synonyms[c]])
    sets = [pair_set(name, config.pair_per_class, seed=config.seed) for name in config.pairs]
    model.eval()
    with torch.no_grad():
        feats = [_pooled(model, to_model_input, s.images) for s in sets]
        captions = [[sentence_features(model, list(names)) for names in s.captions] for s in sets]
    labels = [torch.as_tensor(s.labels, device=model.device) for s in sets]
    train_cls = [c for c in range(1000) if c not in set(held)]
    sentences = [(n, c) for c in train_cls for n in synonyms[c][: config.max_synonyms]]
    sent_feats = sentence_features(model, [n for n, _ in sentences])
    remap = torch.full((1000,), -1, dtype=torch.long)
    remap[torch.tensor(train_cls)] = torch.arange(len(train_cls))
    sent_targets = remap[torch.tensor([c for _, c in sentences])].to(model.device)
    rows = model.image_tower._fc.weight.detach()[torch.tensor(train_cls, device=model.device)]

    def loss_fn(m: nn.Module, batch: list[torch.Tensor]) -> torch.Tensor:
        enc: DualEncoder = m  # type: ignore[assignment]
        source, index = batch
        scale = enc.logit_scale.exp().clamp(max=100.0)
        total = enc.logit_scale.new_zeros(())
        for s in range(len(sets)):
            pick = index[source == s].to(enc.device)
            if len(pick) == 0:
                continue
            which = [int(torch.randint(len(c), (1,))) for c in captions[s]]  # core.train seeds this per step
            text = enc.project_text(torch.stack([c[w] for c, w in zip(captions[s], which, strict=True)]))
            logits = scale * enc.project_image(feats[s][pick]) @ text.T
            total = total + F.cross_entropy(logits, labels[s][pick], reduction="sum")
        j = torch.randint(len(sentences), (config.pair_imagenet_batch,)).to(enc.device)
        names = scale * enc.project_text(sent_feats[j]) @ enc.project_image(rows).T
        return total / len(index) + F.cross_entropy(names, sent_targets[j])

    model.freeze_projections(frozen=config.pair_train == "adapter")
    assert model.image_adapter is not None, "the pair stage needs DualEncoder(image_adapter=True)"
    model.image_adapter.weight.requires_grad_(True)
    model.train()
    result = train(
        model,
        loss_fn,
        _PairData([len(s.labels) for s in sets]),
        TrainConfig(
            steps=config.pair_steps,
            lr=config.pair_lr,
            weight_decay=1e-4,
            batch_size=config.pair_batch,
            schedule="cosine",
            seed=config.seed,
            log_every=0,
        ),
        progress=False,
        collate_fn=lambda items: [torch.tensor([a for a, _ in items]), torch.tensor([b for _, b in items])],
    )
    model.eval()
    return {
        "sources": list(config.pairs),
        "images": [len(s.labels) for s in sets],
        "image_size": PAIR_IMAGE_SIZE,
        "trained": config.pair_train,
        "first_loss": result.losses[0],
        "final_loss": result.losses[-1],
        "seconds": time.perf_counter() - began,
    }


@torch.no_grad()
def _pooled(model: DualEncoder, to_input: Any, images: np.ndarray, batch: int = 256) -> torch.Tensor:
    out = []
    for i in range(0, len(images), batch):
        x = to_input(images[i : i + batch], PAIR_IMAGE_SIZE).to(model.device)
        out.append(model.image_features(model.image_prefix(x, 7), 7))
    return torch.cat(out)
