"""HOI data: the procedural SynthHOI generator (exact boxes and geometric verb labels) and readers for the
HICO-DET and V-COCO annotation files as QPIC / CDN consume them, with a loader for your own images
(`load_qpic_split`: every image resized to one square side, boxes alike [CPU deviation from DETR's aspect-kept,
multi-scale inputs; the metrics are unchanged because box IoU is invariant under per-axis scaling]).

One image's annotation is an `HOIAnnotation`: boxes (N, 4) xyxy pixels, labels (N,) indices into the dataset's
object names (index 0 is "person"; people can be objects too), and hois (K, 3) rows (subject index, object index or
-1 for "no object", verb index). `to_targets` merges the rows into QPIC's per-pair training targets.

SynthHOI [our benchmark design, not from the paper]: stick figures (head with an eye dot showing the facing side,
torso, two arms, two legs) and objects of four classes (ball, box, stick, kite) filled with crops of real photos
(OpenCV's sample photos). Intents drive the pose (an arm stretched to an object, a raised leg at a ball, a seated
figure on a box), but labels are read from the final geometry: `hold` iff a hand end lies in the object box dilated
by 1 px; `kick` iff a foot end lies in a ball's box; `sit_on` iff the hip lies on a box's top edge within the box's
width; `look` for the nearest object whose centre is on the facing side within `look_distance` of the head. With
`SynthConfig.held_look` a held object is drawn tilted, shaded and under the holder's fist (a synthetic stand-in for
interaction changing an object's look), with the same boxes and labels.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, UnidentifiedImageError

from tailorkit.core.progress import bar
from tailorkit.core.seeding import numpy_generator
from tailorkit.hoi.boxes import xyxy_to_cxcywh
from tailorkit.hoi.config import FilesConfig, SynthConfig, TrainConfig

__all__ = [
    "COCO_NAMES",
    "HICO_OBJECT_IDS",
    "SYNTH_OBJECTS",
    "SYNTH_VALID",
    "SYNTH_VERBS",
    "HOIAnnotation",
    "HOIDataset",
    "load_datasets",
    "load_qpic_split",
    "make_synth",
    "read_hico_det",
    "read_qpic_annotations",
    "read_vcoco",
    "render_scene",
    "to_targets",
]

SYNTH_OBJECTS = ("person", "ball", "box", "stick", "kite")
SYNTH_VERBS = ("hold", "look", "kick", "sit_on")
MIN_OBJECT_PX = 2.0  # objects clipped by the frame to less than this (px) are dropped from the scene
#: Which (verb, object class) triplets can occur, like HICO-DET's verb-object correlation.
SYNTH_VALID = {
    "hold": ("ball", "box", "stick", "kite"),
    "look": ("person", "ball", "box", "stick", "kite"),
    "kick": ("ball",),
    "sit_on": ("box",),
}
# The 80 COCO category ids QPIC's HICO-DET and V-COCO readers map to contiguous object indices (person = 1 first).
HICO_OBJECT_IDS = (
    *range(1, 12), *range(13, 26), 27, 28, *range(31, 45), *range(46, 66), 67, 70, *range(72, 83), *range(84, 91),
)  # fmt: skip
# The names of those 80 categories, in the same order.
COCO_NAMES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow", "elephant",
    "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard",
    "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange", "broccoli",
    "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant", "bed", "dining table", "toilet",
    "tv", "laptop", "mouse", "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
    "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip
PHOTOS = ("fruits.jpg", "baboon.jpg", "building.jpg", "orange.jpg", "starry_night.jpg", "board.jpg", "home.jpg")


@dataclass
class HOIAnnotation:
    """One image's instances and interactions.

    Shapes:
        boxes (N, 4) float xyxy pixels, labels (N,) int object indices, hois (K, 3) int (subject, object or -1, verb)
    """

    boxes: np.ndarray
    labels: np.ndarray
    hois: np.ndarray
    width: int
    height: int
    file_name: str = ""


@dataclass
class HOIDataset:
    """Images (uint8, (N, S, S, 3); None for files read from disk) and their annotations."""

    images: np.ndarray | None
    annotations: list[HOIAnnotation]
    object_names: tuple[str, ...]
    verb_names: tuple[str, ...]

    def triplet_counts(self) -> dict[tuple[int, int], int]:
        """Instances per (verb, object class) triplet category (for the rare / non-rare split)."""
        counts: dict[tuple[int, int], int] = {}
        for ann in self.annotations:
            for _, o, v in ann.hois:
                key = (int(v), int(ann.labels[o]) if o >= 0 else -1)
                counts[key] = counts.get(key, 0) + 1
        return counts


def to_targets(ann: HOIAnnotation, num_verbs: int) -> dict[str, torch.Tensor]:
    """QPIC's training target: one entry per distinct (subject, object) pair with multi-hot verbs; boxes as
    image-normalised cxcywh; a pair without object gets an all-zero object box and the "no pair" label (-> C)."""
    pairs: dict[tuple[int, int], np.ndarray] = {}
    for s, o, v in ann.hois:
        pairs.setdefault((int(s), int(o)), np.zeros(num_verbs, dtype=np.float32))[int(v)] = 1.0
    scale = torch.tensor([ann.width, ann.height, ann.width, ann.height], dtype=torch.float32)
    boxes = torch.as_tensor(ann.boxes, dtype=torch.float32).reshape(-1, 4)
    subs, objs, labels, verbs = [], [], [], []
    for (s, o), verb in pairs.items():
        subs.append(xyxy_to_cxcywh(boxes[s] / scale))
        objs.append(xyxy_to_cxcywh(boxes[o] / scale) if o >= 0 else torch.zeros(4))
        labels.append(int(ann.labels[o]) if o >= 0 else -1)
        verbs.append(torch.from_numpy(verb))
    k = len(pairs)
    return {
        "sub_boxes": torch.stack(subs) if k else torch.zeros(0, 4),
        "obj_boxes": torch.stack(objs) if k else torch.zeros(0, 4),
        "obj_labels": torch.tensor(labels, dtype=torch.long).clamp(min=-1) if k else torch.zeros(0, dtype=torch.long),
        "verb_labels": torch.stack(verbs) if k else torch.zeros(0, num_verbs),
    }


# ---------------------------------------------------------------- SynthHOI


@functools.lru_cache(maxsize=1)
def _photos() -> tuple[np.ndarray, ...]:
    from tailorkit.assets.images import opencv_photo

    out = []
    for name in PHOTOS:
        img = Image.fromarray(opencv_photo(name))
        out.append(np.asarray(img.resize((img.width // 2, img.height // 2), Image.Resampling.BILINEAR)))
    return tuple(out)


def _texture(rng: np.random.Generator, w: int, h: int, kind: str) -> Image.Image:
    if kind == "flat":
        colour = tuple(int(c) for c in rng.integers(40, 230, 3))
        return Image.new("RGB", (w, h), colour)
    photos = _photos()
    photo = photos[int(rng.integers(len(photos)))]
    ph, pw = photo.shape[:2]
    cw, ch = int(rng.integers(24, 64)), int(rng.integers(24, 64))
    y0, x0 = int(rng.integers(0, ph - ch)), int(rng.integers(0, pw - cw))
    crop = Image.fromarray(photo[y0 : y0 + ch, x0 : x0 + cw])
    return crop.resize((max(w, 1), max(h, 1)), Image.Resampling.BILINEAR)


def _object_shape(cls: str, cx: float, cy: float, u: float, rng: np.random.Generator) -> np.ndarray:
    """The object box (xyxy) of class `cls` centred at (cx, cy), sized relative to the figure unit u."""
    if cls == "ball":
        r = u * rng.uniform(0.7, 1.0)
        w, h = 2 * r, 2 * r
    elif cls == "box":
        w, h = u * rng.uniform(1.8, 2.6), u * rng.uniform(1.4, 2.0)
    elif cls == "stick":
        w, h = u * rng.uniform(0.35, 0.5), u * rng.uniform(2.6, 3.4)
    else:  # kite
        w, h = u * rng.uniform(1.6, 2.0), u * rng.uniform(2.2, 2.8)
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


HELD_TILT = 0.3  # held_look: the tilted outline's corners sit this fraction of the side along each box edge
HELD_SHADE = 0.6  # held_look: a held object's texture is darkened to this share
HELD_FIST = 0.45  # held_look: radius of the holder's fist, in figure units


def _draw_object(
    img: Image.Image, cls: str, box: np.ndarray, rng: np.random.Generator, texture: str, held: int = 0
) -> None:
    """Paste the object's textured shape into `box`. `held` = +1 / -1 (the holder's facing) draws it as held
    (`SynthConfig.held_look`): tilted inside the same box, leaning that way, and shaded. Draws from `rng` exactly as
    an object not held does, so the rest of the scene is the same either way."""
    x1, y1, x2, y2 = (float(v) for v in box)
    ix1, iy1 = int(np.floor(x1)), int(np.floor(y1))
    w, h = int(np.ceil(x2)) - ix1, int(np.ceil(y2)) - iy1
    mask = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(mask)
    lx1, ly1, lx2, ly2 = x1 - ix1, y1 - iy1, x2 - ix1 - 1, y2 - iy1 - 1
    if cls == "ball":
        d.ellipse([lx1, ly1, lx2, ly2], fill=255)
    elif held:  # a tilted outline touching all four sides of the box (its box is unchanged)
        a, b = HELD_TILT * (lx2 - lx1), HELD_TILT * (ly2 - ly1)
        if held > 0:
            quad = [(lx1 + a, ly1), (lx2, ly1 + b), (lx2 - a, ly2), (lx1, ly2 - b)]
        else:
            quad = [(lx2 - a, ly1), (lx2, ly2 - b), (lx1 + a, ly2), (lx1, ly1 + b)]
        d.polygon(quad, fill=255)
    elif cls == "kite":
        mx, my = (lx1 + lx2) / 2, (ly1 + ly2) / 2
        d.polygon([(mx, ly1), (lx2, my), (mx, ly2), (lx1, my)], fill=255)
    else:
        d.rectangle([lx1, ly1, lx2, ly2], fill=255)
    tex = _texture(rng, w, h, texture)
    if held:
        tex = Image.fromarray((np.asarray(tex, dtype=np.float32) * HELD_SHADE).astype(np.uint8))
    img.paste(tex, (ix1, iy1), mask)


@dataclass
class _Figure:
    facing: int
    joints: dict[str, tuple[float, float]]
    head_r: float
    width: float

    def box(self) -> np.ndarray:
        pts = np.array(list(self.joints.values()))
        hx, hy = self.joints["head"]
        half = self.width / 2
        x1 = min(pts[:, 0].min() - half, hx - self.head_r)
        y1 = min(pts[:, 1].min() - half, hy - self.head_r)
        x2 = max(pts[:, 0].max() + half, hx + self.head_r)
        y2 = max(pts[:, 1].max() + half, hy + self.head_r)
        return np.array([x1, y1, x2, y2])


def _figure(x: float, ground: float, u: float, facing: int, intent: str, rng: np.random.Generator) -> _Figure:
    f = facing
    if intent == "sit":
        hip = (x, ground - 1.6 * u)
        knee = (x + f * 1.3 * u, hip[1])
        feet = [(knee[0], ground), (knee[0] + f * 0.3 * u, ground)]
    else:
        hip = (x, ground - 3.0 * u)
        feet = [(x - 0.6 * u, ground), (x + 0.6 * u, ground)]
        if intent == "kick":
            a = rng.uniform(0.2, 0.7)
            feet[1] = (x + f * 2.9 * u * np.cos(a), hip[1] + 2.9 * u * np.sin(a))
    shoulder = (x, hip[1] - 1.9 * u)
    head = (x, shoulder[1] - 0.9 * u)
    hands = [(x - f * 0.5 * u, shoulder[1] + 2.0 * u), (x + f * 0.5 * u, shoulder[1] + 2.0 * u)]
    if intent == "sit":  # hands on the thighs, above the seat, so a seated figure does not "hold" its box
        hands = [(x + f * 0.4 * u, shoulder[1] + 1.2 * u), (x + f * 0.9 * u, shoulder[1] + 1.2 * u)]
    if intent == "hold":
        t = rng.uniform(-0.9, 0.9)
        hands[1] = (x + f * 2.2 * u * np.cos(t), shoulder[1] + 2.2 * u * np.sin(t))
    joints = {"head": head, "shoulder": shoulder, "hip": hip, "hand0": hands[0], "hand1": hands[1]}
    joints |= {"foot0": feet[0], "foot1": feet[1]}
    if intent == "sit":
        joints["knee"] = knee
    return _Figure(f, joints, 0.6 * u, max(2.0, 0.35 * u))


def _draw_figure(img: Image.Image, fig: _Figure, colour: tuple[int, int, int], fists: tuple[str, ...] = ()) -> None:
    """Draw the stick figure; `fists` names hands (hand0 / hand1) drawn as a fist over what they hold."""
    d = ImageDraw.Draw(img)
    j, w = fig.joints, round(fig.width)
    d.line([j["shoulder"], j["hip"]], fill=colour, width=w)
    for hand in ("hand0", "hand1"):
        d.line([j["shoulder"], j[hand]], fill=colour, width=w)
    for foot in ("foot0", "foot1"):
        d.line(
            [j["hip"], j.get("knee", j["hip"]), j[foot]] if "knee" in j else [j["hip"], j[foot]], fill=colour, width=w
        )
    hx, hy = j["head"]
    r = fig.head_r
    d.ellipse([hx - r, hy - r, hx + r, hy + r], fill=colour)
    e = max(1.0, r * 0.3)
    ex = hx + fig.facing * r * 0.55
    d.ellipse([ex - e, hy - 0.2 * r - e, ex + e, hy - 0.2 * r + e], fill=(255, 255, 255))
    f = HELD_FIST * r / 0.6  # head radius is 0.6 figure units
    for hand in fists:
        px, py = j[hand]
        d.ellipse([px - f, py - f, px + f, py + f], fill=colour)


def _inside(point: tuple[float, float], box: np.ndarray, margin: float = 1.0) -> bool:
    return bool(box[0] - margin <= point[0] <= box[2] + margin and box[1] - margin <= point[1] <= box[3] + margin)


def _labels(
    figs: list[_Figure], obj_boxes: list[np.ndarray], obj_classes: list[str], look: float
) -> list[tuple[int, int, str]]:
    """Verb labels from the final geometry: (figure index, object index, verb)."""
    out = []
    for h, fig in enumerate(figs):
        j = fig.joints
        for o, (box, cls) in enumerate(zip(obj_boxes, obj_classes, strict=True)):
            if any(_inside(j[k], box) for k in ("hand0", "hand1")):
                out.append((h, o, "hold"))
            if cls == "ball" and any(_inside(j[k], box) for k in ("foot0", "foot1")):
                out.append((h, o, "kick"))
            if cls == "box" and box[0] <= j["hip"][0] <= box[2] and abs(j["hip"][1] - box[1]) <= 2.0:
                out.append((h, o, "sit_on"))
        hx, hy = j["head"]
        best, best_d = -1, look
        for o, box in enumerate(obj_boxes):
            cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
            dist = float(np.hypot(cx - hx, cy - hy))
            if fig.facing * (cx - hx) > 0 and dist <= best_d:
                best, best_d = o, dist
        if best >= 0:
            out.append((h, best, "look"))
    return out


def render_scene(rng: np.random.Generator, cfg: SynthConfig) -> tuple[np.ndarray, HOIAnnotation]:
    """One SynthHOI scene: uint8 (S, S, 3) image and its exact annotation."""
    s = cfg.image_size
    top, bottom = rng.integers(60, 200, 3), rng.integers(60, 200, 3)
    ramp = np.linspace(0, 1, s)[:, None, None]
    bg = (top[None, None, :] * (1 - ramp) + bottom[None, None, :] * ramp).repeat(s, axis=1)
    bg = np.clip(bg + rng.normal(0, 6, (s, s, 3)), 0, 255).astype(np.uint8)
    img = Image.fromarray(bg)
    n_h = int(rng.integers(1, cfg.max_humans + 1))
    figs: list[_Figure] = []
    obj_boxes: list[np.ndarray] = []
    obj_classes: list[str] = []
    slots = np.linspace(0.3, 0.7, n_h) if n_h > 1 else np.array([rng.uniform(0.35, 0.65)])
    for k in range(n_h):
        u = s * rng.uniform(0.085, 0.11)
        x = s * float(slots[k]) + rng.uniform(-0.04, 0.04) * s
        ground = s * rng.uniform(0.86, 0.95)
        facing = int(rng.choice([-1, 1])) if n_h == 1 else (1 if k == 0 else -1) * int(rng.choice([1, 1, -1]))
        intent = str(rng.choice(["hold", "kick", "sit", "none"], p=[0.4, 0.2, 0.2, 0.2]))
        if intent == "kick" and len(obj_boxes) >= cfg.max_objects:
            intent = "none"
        if intent in ("hold", "sit") and len(obj_boxes) >= cfg.max_objects:
            intent = "none"
        fig = _figure(x, ground, u, facing, intent, rng)
        if intent == "hold":
            cls = str(rng.choice(["ball", "box", "stick", "kite"]))
            hx, hy = fig.joints["hand1"]
            box = _object_shape(cls, hx + facing * rng.uniform(0, 0.3) * u, hy + rng.uniform(-0.3, 0.3) * u, u, rng)
            obj_boxes.append(box)
            obj_classes.append(cls)
        elif intent == "kick":
            fx, fy = fig.joints["foot1"]
            box = _object_shape("ball", fx, fy, u, rng)
            shift = facing * (box[2] - box[0]) * rng.uniform(0.2, 0.45)
            obj_boxes.append(box + np.array([shift, 0, shift, 0]))
            obj_classes.append("ball")
        elif intent == "sit":
            hx, hy = fig.joints["hip"]
            box = _object_shape("box", hx, 0, u, rng)
            w = box[2] - box[0]
            box = np.array([hx - w * rng.uniform(0.3, 0.7), hy, 0, ground])
            box[2] = box[0] + w
            obj_boxes.append(box)
            obj_classes.append("box")
        figs.append(fig)
    human_boxes = [f.box() for f in figs]
    tries = 0
    n_extra = int(rng.integers(0 if obj_boxes else 1, cfg.max_objects - len(obj_boxes) + 1))
    while n_extra > 0 and tries < 30:
        tries += 1
        cls = str(rng.choice(["ball", "box", "stick", "kite"]))
        u = s * 0.095
        box = _object_shape(cls, rng.uniform(0.1, 0.9) * s, rng.uniform(0.15, 0.9) * s, u, rng)
        clear = all(_iou_np(box, b) == 0 for b in [*human_boxes, *obj_boxes])
        if clear and box[0] >= 0 and box[1] >= 0 and box[2] <= s and box[3] <= s:
            obj_boxes.append(box)
            obj_classes.append(cls)
            n_extra -= 1
    # A held or kicked object can lie (almost) wholly outside the frame; after clipping, drop the ones with less than
    # min_object_px of extent left, so no annotation has a degenerate box (the labels below use the kept ones).
    kept = [(np.clip(b, 0, s), c) for b, c in zip(obj_boxes, obj_classes, strict=True)]
    kept = [(b, c) for b, c in kept if min(b[2] - b[0], b[3] - b[1]) >= MIN_OBJECT_PX]
    obj_boxes, obj_classes = [b for b, _ in kept], [c for _, c in kept]
    labels = _labels(figs, obj_boxes, obj_classes, cfg.look_distance * s)
    # held_look: the labels (read from the geometry alone) decide which objects are drawn as held, and by whom.
    held: dict[int, int] = {}
    fists: list[set[str]] = [set() for _ in figs]
    if cfg.held_look:
        for h, o, verb in labels:
            if verb == "hold":
                held.setdefault(o, figs[h].facing)
                fists[h] |= {k for k in ("hand0", "hand1") if _inside(figs[h].joints[k], obj_boxes[o])}
    for o, (box, cls) in enumerate(zip(obj_boxes, obj_classes, strict=True)):
        _draw_object(img, cls, box, rng, cfg.texture, held.get(o, 0))
    for fig, fist in zip(figs, fists, strict=True):
        _draw_figure(img, fig, tuple(int(c) for c in rng.integers(0, 70, 3)), tuple(sorted(fist)))  # type: ignore[arg-type]
    boxes = np.array([np.clip(b, 0, s) for b in human_boxes] + obj_boxes, dtype=np.float32).reshape(-1, 4)
    cls_idx = [0] * n_h + [SYNTH_OBJECTS.index(c) for c in obj_classes]
    hois = np.array([(h, n_h + o, SYNTH_VERBS.index(v)) for h, o, v in labels], dtype=np.int64).reshape(-1, 3)
    return np.asarray(img), HOIAnnotation(boxes, np.array(cls_idx, dtype=np.int64), hois, s, s)


def _iou_np(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def make_synth(cfg: SynthConfig, seed: int, split: str, n: int | None = None) -> HOIDataset:
    """`n` (default cfg.n_train / cfg.n_test) SynthHOI scenes of `split` ("train" or "test"); seeded and exact."""
    if split not in ("train", "test"):
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    count = n if n is not None else (cfg.n_train if split == "train" else cfg.n_test)
    rng = numpy_generator(seed, "synthhoi", split)
    images, anns = [], []
    for _ in range(count):
        img, ann = render_scene(rng, cfg)
        images.append(img)
        anns.append(ann)
    return HOIDataset(np.stack(images), anns, SYNTH_OBJECTS, SYNTH_VERBS)


# ---------------------------------------------------------------- QPIC-format readers


def _fail(path: Path, where: str, expected: str, got: Any) -> ValueError:
    return ValueError(f"{path}: {where}: expected {expected}, got {got!r}"[:400])


def read_qpic_annotations(
    path: str | Path,
    *,
    object_ids: tuple[int, ...],
    verb_ids: tuple[int, ...],
    allow_no_object: bool,
) -> list[HOIAnnotation]:
    """Read a QPIC/CDN-style annotation JSON: a list of images, each
    `{"file_name": str, "annotations": [{"bbox": [x1, y1, x2, y2], "category_id": int}, ...],
    "hoi_annotation": [{"subject_id": int, "object_id": int, "category_id": int}, ...]}` (optional "width",
    "height"). Object category ids map to indices in `object_ids` order, verb ids to indices in `verb_ids` order.

    Raises:
        ValueError: malformed JSON or any entry not of the form above (the message names the entry and the form).
    """
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{p}: expected a readable QPIC-style JSON annotation file ({err})") from err
    if not isinstance(data, list):
        raise _fail(p, "top level", "a list of image entries", type(data).__name__)
    obj_index = {c: i for i, c in enumerate(object_ids)}
    verb_index = {c: i for i, c in enumerate(verb_ids)}
    out = []
    for i, entry in enumerate(data):
        where = f"image {i}"
        if not isinstance(entry, dict) or not isinstance(entry.get("file_name"), str):
            raise _fail(p, where, 'an object with a "file_name" string', entry)
        insts = entry.get("annotations")
        hois = entry.get("hoi_annotation")
        if not isinstance(insts, list) or not isinstance(hois, list):
            raise _fail(p, where, '"annotations" and "hoi_annotation" lists', sorted(entry))
        boxes, labels = [], []
        for j, inst in enumerate(insts):
            bbox = inst.get("bbox") if isinstance(inst, dict) else None
            ok = isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, int | float) for v in bbox)
            if not ok or bbox is None or bbox[2] < bbox[0] or bbox[3] < bbox[1]:
                raise _fail(p, f"{where} annotations[{j}].bbox", "[x1, y1, x2, y2] with x2 >= x1, y2 >= y1", bbox)
            cat = inst.get("category_id")
            if cat not in obj_index:
                raise _fail(p, f"{where} annotations[{j}].category_id", "one of the dataset's object ids", cat)
            boxes.append(bbox)
            labels.append(obj_index[cat])
        rows = []
        for j, hoi in enumerate(hois):
            if not isinstance(hoi, dict) or not all(
                isinstance(hoi.get(k), int) for k in ("subject_id", "object_id", "category_id")
            ):
                raise _fail(p, f"{where} hoi_annotation[{j}]", "integer subject_id, object_id, category_id", hoi)
            s, o, v = hoi["subject_id"], hoi["object_id"], hoi["category_id"]
            if not 0 <= s < len(boxes) or labels[s] != 0:
                raise _fail(
                    p, f"{where} hoi_annotation[{j}].subject_id", f"the index of a person box in 0..{len(boxes) - 1}", s
                )
            if not (0 <= o < len(boxes) or (allow_no_object and o == -1)):
                allowed = f"0..{len(boxes) - 1}" + (" or -1 (no object)" if allow_no_object else "")
                raise _fail(p, f"{where} hoi_annotation[{j}].object_id", f"an instance index {allowed}", o)
            if v not in verb_index:
                raise _fail(p, f"{where} hoi_annotation[{j}].category_id", "one of the dataset's verb ids", v)
            rows.append((s, o, verb_index[v]))
        arr = np.array(boxes, dtype=np.float32).reshape(-1, 4)
        width = int(entry.get("width", int(np.ceil(arr[:, 2].max())) if len(arr) else 1))
        height = int(entry.get("height", int(np.ceil(arr[:, 3].max())) if len(arr) else 1))
        out.append(
            HOIAnnotation(
                arr,
                np.array(labels, dtype=np.int64),
                np.array(rows, dtype=np.int64).reshape(-1, 3),
                width,
                height,
                entry["file_name"],
            )
        )
    return out


def read_hico_det(path: str | Path) -> list[HOIAnnotation]:
    """HICO-DET in QPIC's `trainval_hico.json` / `test_hico.json` form: COCO object ids, verb ids 1..117."""
    return read_qpic_annotations(path, object_ids=HICO_OBJECT_IDS, verb_ids=tuple(range(1, 118)), allow_no_object=False)


def read_vcoco(path: str | Path) -> list[HOIAnnotation]:
    """V-COCO in QPIC's `trainval_vcoco.json` form: COCO object ids, verb ids 0..28, object_id -1 when a role has
    no object. [inferred from QPIC's reader: verify the id ranges against your files]"""
    return read_qpic_annotations(path, object_ids=HICO_OBJECT_IDS, verb_ids=tuple(range(29)), allow_no_object=True)


def load_qpic_split(files: FilesConfig, split: str, progress: bool | None = None) -> HOIDataset:
    """One split (`"train"` or `"test"`) of `files`: the QPIC-format annotations and their images, each image resized
    to `files.image_size` square with its boxes scaled alike (the metrics are unchanged: IoU is invariant under
    per-axis scaling). Object names are COCO's; verbs are named by their file id (`hico_88`, `vcoco_3`).

    Raises:
        ValueError: malformed annotations (see `read_qpic_annotations`), or an image that is missing or unreadable.
    """
    if files.format not in ("hico", "vcoco") or split not in ("train", "test"):
        raise ValueError(f"load_qpic_split: expected format 'hico' or 'vcoco' and split 'train' or 'test', got "
                         f"{files.format!r}, {split!r}")  # fmt: skip
    path, folder = (getattr(files, f"{split}_{kind}") for kind in ("annotations", "images"))
    for name, value in ((f"{split}_annotations", path), (f"{split}_images", folder)):
        if not value:
            raise ValueError(f"files.{name}: expected a path (files.format={files.format!r})")
    anns = (read_hico_det if files.format == "hico" else read_vcoco)(path)
    if files.limit:
        anns = anns[: files.limit]
    side = files.image_size
    images = np.empty((len(anns), side, side, 3), dtype=np.uint8)
    resized = []
    with bar(f"read {split} images", total=len(anns), enabled=progress) as pbar:
        for i, ann in enumerate(anns):
            image_path = Path(folder) / ann.file_name
            try:
                with Image.open(image_path) as img:
                    width, height = img.size
                    images[i] = np.asarray(img.convert("RGB").resize((side, side), Image.Resampling.BILINEAR))
            except (OSError, UnidentifiedImageError) as err:
                raise ValueError(f"{image_path}: expected a readable image file, named in {path} ({err})") from None
            scale = np.array([side / width, side / height] * 2, dtype=np.float32)
            resized.append(dataclasses.replace(ann, boxes=ann.boxes * scale, width=side, height=side))
            pbar.update(1)
    ids = range(1, 118) if files.format == "hico" else range(29)
    return HOIDataset(images, resized, COCO_NAMES, tuple(f"{files.format}_{v}" for v in ids))


def load_datasets(cfg: TrainConfig, progress: bool | None = None) -> tuple[HOIDataset, HOIDataset]:
    """A run's train and test splits: your files (`cfg.files`, when its format is set) or SynthHOI (`cfg.data`)."""
    if cfg.files.format:
        return load_qpic_split(cfg.files, "train", progress), load_qpic_split(cfg.files, "test", progress)
    return make_synth(cfg.data, cfg.seed, "train"), make_synth(cfg.data, cfg.seed, "test")
