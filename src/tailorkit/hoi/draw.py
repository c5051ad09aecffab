"""Draw detected triplets on an image (PIL): human box, object box, a line between their centres and a label."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from tailorkit.hoi.evaluation import Detections

__all__ = ["draw_triplets", "place_labels"]

COLOURS = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240)]


def draw_triplets(
    image: np.ndarray,
    det: Detections,
    object_names: Sequence[str],
    verb_names: Sequence[str],
    *,
    top: int = 3,
    min_score: float = 0.0,
    scale: int = 1,
) -> Image.Image:
    """The image (uint8 (H, W, 3)) upscaled by `scale` with the `top` highest-scoring triplets above `min_score`."""
    img = Image.fromarray(np.asarray(image)).convert("RGB")
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(img)
    order = np.argsort(-det.scores)[:top]
    labels: list[tuple[tuple[float, float], str, tuple[int, int, int]]] = []
    for rank, t in enumerate(order):
        if det.scores[t] < min_score:
            continue
        colour = COLOURS[rank % len(COLOURS)]
        sub = det.sub_boxes[t] * scale
        obj = det.obj_boxes[t] * scale
        draw.rectangle(sub.tolist(), outline=colour, width=2)
        has_obj = det.obj_labels[t] >= 0 and np.any(det.obj_boxes[t] != 0)
        if has_obj:
            draw.rectangle(obj.tolist(), outline=colour, width=1)
            draw.line(
                [((sub[0] + sub[2]) / 2, (sub[1] + sub[3]) / 2), ((obj[0] + obj[2]) / 2, (obj[1] + obj[3]) / 2)],
                fill=colour,
                width=1,
            )
        name = object_names[int(det.obj_labels[t])] if has_obj else "-"
        text = f"{verb_names[int(det.verbs[t])]} {name} {det.scores[t]:.2f}"
        labels.append(((float(sub[0]) + 2, float(sub[1]) + 2), text, colour))
    # labels are drawn last, each on a dark backing, moved down (then up) until it overlaps no earlier label
    sizes = [_text_size(draw, text) for _, text, _ in labels]
    boxes = place_labels([anchor for anchor, _, _ in labels], sizes, img.size)
    for box, (_, text, colour) in zip(boxes, labels, strict=True):
        draw.rectangle(box, fill=(0, 0, 0))
        draw.text((box[0] + 1, box[1]), text, fill=colour)
    return img


def _text_size(draw: ImageDraw.ImageDraw, text: str) -> tuple[int, int]:
    left, _, right, bottom = draw.textbbox((0, 0), text)
    return int(right - left) + 2, int(bottom) + 2


Box = tuple[float, float, float, float]


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def place_labels(
    anchors: Sequence[tuple[float, float]], sizes: Sequence[tuple[int, int]], image_size: tuple[int, int]
) -> list[Box]:
    """Boxes (x0, y0, x1, y1) for labels wanted at `anchors` (top-left), kept inside the image and not overlapping.

    Each label is shifted into the image, then down one line at a time past any earlier label it would cover (up
    when it reaches the bottom); if no free place exists (more labels than lines), the last position is kept.
    """
    width, height = image_size
    placed: list[Box] = []
    for (x, y), (w, h) in zip(anchors, sizes, strict=True):
        x = min(max(0.0, x), max(0.0, width - w))
        y = min(max(0.0, y), max(0.0, height - h))
        candidates = [y + k * h for k in range(int(height // max(h, 1)) + 1) if y + k * h + h <= height]
        candidates += [y - k * h for k in range(1, int(height // max(h, 1)) + 1) if y - k * h >= 0]
        box = (x, y, x + w, y + h)
        for top in candidates:
            trial = (x, top, x + w, top + h)
            if not any(_overlap(trial, other) for other in placed):
                box = trial
                break
        placed.append(box)
    return placed
