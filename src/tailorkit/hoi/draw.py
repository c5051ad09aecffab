"""Draw detected triplets on an image (PIL): human box, object box, a line between their centres and a label."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from tailorkit.hoi.evaluation import Detections

__all__ = ["draw_triplets"]

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
        draw.text((float(sub[0]) + 2, float(sub[1]) + 2 + 11 * rank), text, fill=colour)
    return img
