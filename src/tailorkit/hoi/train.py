"""Training, evaluation and prediction of an HOI detector (the verbs behind `tailorkit hoi train|eval|predict`).

With a frozen backbone the backbone's features are computed once per image (`backbone_features`) and training reads
them instead of the pixels: the detector's weights and gradients are the same, only the repeated backbone forward
is saved (the bench's quick mode depends on it).

Training runs through `tailorkit.core.train.train` (issue 23): exact resume from a checkpoint, one process or torchrun
DDP, core's one schedule function (`OptimConfig.schedule`, default "step": x 0.1 from 80 % of the steps, as before the
move, docs/hoi.md#training-coretrain).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from tailorkit.core.config import from_dict, to_dict
from tailorkit.core.progress import bar
from tailorkit.core.results import atomic_open
from tailorkit.core.seeding import derive_seed, torch_generator
from tailorkit.core.train import TrainConfig as CoreTrainConfig
from tailorkit.core.train import train as core_train
from tailorkit.hoi.config import EvalConfig, TrainConfig
from tailorkit.hoi.data import HOIDataset, to_targets
from tailorkit.hoi.evaluation import Detections, instance_aps, postprocess, role_ap_vcoco, triplet_map
from tailorkit.hoi.losses import SetCriterion
from tailorkit.hoi.matcher import HungarianMatcher
from tailorkit.hoi.methods import HOIModel, build_model

__all__ = [
    "TrainResult",
    "as_tensor_images",
    "backbone_features",
    "core_config",
    "detect",
    "evaluate",
    "load_checkpoint",
    "make_criterion",
    "predict",
    "rare_categories",
    "save_checkpoint",
    "train",
    "with_model",
]


@dataclass
class TrainResult:
    """The trained model (eval mode), the loss of every step (a resumed run's include those before the resume), this
    call's wall and CPU seconds, and the step it started from (0 unless resumed from a checkpoint)."""

    model: HOIModel
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    start_step: int = 0


def as_tensor_images(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) in [0, 1]."""
    if isinstance(images, np.ndarray) and not images.flags.writeable:
        images = images.copy()  # arrays from PIL are read-only; torch wants writable memory
    t = torch.as_tensor(images)
    if t.ndim != 4 or t.shape[-1] != 3 or t.dtype != torch.uint8:
        raise ValueError(f"expected uint8 images of shape (N, H, W, 3), got {t.dtype} {tuple(t.shape)}")
    return t.permute(0, 3, 1, 2).float() / 255.0


@torch.no_grad()
def backbone_features(
    model: HOIModel, images: np.ndarray, batch: int = 64, progress: bool | None = None
) -> torch.Tensor:
    """The frozen backbone's feature maps of every image (B, C, h, w), on the model's device."""
    if not model.backbone.frozen:
        raise ValueError("backbone_features: expected a frozen backbone (model.freeze_backbone=true)")
    device = next(model.parameters()).device
    model.backbone.eval()
    chunks = []
    with bar("backbone features", total=len(images), enabled=progress) as pbar:
        for i in range(0, len(images), batch):
            chunks.append(model.backbone(as_tensor_images(images[i : i + batch]).to(device)))
            pbar.update(len(chunks[-1]))
    return torch.cat(chunks)


def make_criterion(cfg: TrainConfig, num_obj_classes: int) -> SetCriterion:
    w = cfg.loss
    return SetCriterion(num_obj_classes, HungarianMatcher(w.obj_ce, w.verb, w.bbox, w.giou), w)


class _Scenes(Dataset[tuple[torch.Tensor, dict[str, torch.Tensor]]]):
    """Item i: (cached features or uint8 pixels of image i, its set-prediction targets)."""

    def __init__(self, inputs: torch.Tensor, targets: list[dict[str, torch.Tensor]]) -> None:
        self.inputs, self.targets = inputs, targets

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self.inputs[i], self.targets[i]


def _collate(samples: list[tuple[torch.Tensor, dict[str, torch.Tensor]]]) -> tuple[torch.Tensor, list[Any]]:
    """Stacked inputs (pixels become float (B, 3, H, W) in [0, 1]) and the per-image targets as a list: the number of
    pairs differs from image to image, so targets are not stacked."""
    inputs = torch.stack([s[0] for s in samples])
    if inputs.dtype == torch.uint8:
        inputs = as_tensor_images(inputs)
    return inputs, [s[1] for s in samples]


def core_config(cfg: TrainConfig, seed: int, checkpoint_every: int = 0) -> CoreTrainConfig:
    """The `core.train` settings of an HOI run: `cfg.optim` mapped one to one, the batch order and per-step
    randomness seeded from `derive_seed(seed, "hoi-train")` (the initialisation has its own stream, "hoi-init")."""
    o = cfg.optim
    return CoreTrainConfig(
        steps=o.steps,
        lr=o.lr,
        weight_decay=o.weight_decay,
        batch_size=o.batch_size,
        grad_clip=o.clip if o.clip > 0 else None,
        log_every=20,
        checkpoint_every=checkpoint_every,
        seed=derive_seed(seed, "hoi-train"),
        optimizer="adamw",
        schedule=o.schedule,
        warmup_steps=o.warmup_steps,
        step_at=o.step_at,
    )


def train(
    cfg: TrainConfig,
    data: HOIDataset,
    *,
    features: torch.Tensor | None = None,
    device: torch.device | None = None,
    progress: bool | None = None,
    seed: int | None = None,
    checkpoint: str | Path | None = None,
    checkpoint_every: int = 0,
) -> TrainResult:
    """Train `cfg.model` on `data` for `cfg.optim.steps` AdamW steps through `tailorkit.core.train.train` (batches
    without replacement, reshuffled every epoch; exact resume; one process or torchrun).

    Args:
        features: Cached backbone features of `data.images` (frozen backbone only); else images are used.
        seed: Initialisation and batch-order seed (default cfg.seed).
        checkpoint: core.train's resume file: resumed from when it exists, written every `checkpoint_every` steps
            (0: only at the end). The model is rebuilt from `seed` first, so a frozen backbone needs no saving.
    """
    if data.images is None and features is None:
        raise ValueError("train: expected a dataset with images in memory or cached features")
    seed = cfg.seed if seed is None else seed
    device = device or torch.device("cpu")
    # nn.Module initialisers read the global RNG: seed it inside a fork so the caller's state is left untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(torch_generator(seed, "hoi-init").initial_seed())
        model = build_model(cfg.model, len(data.object_names), len(data.verb_names)).to(device)
    criterion = make_criterion(cfg, len(data.object_names))
    targets = [to_targets(a, len(data.verb_names)) for a in data.annotations]
    if features is not None:
        inputs, kind = features, "features"
    else:
        assert data.images is not None
        inputs, kind = torch.as_tensor(np.ascontiguousarray(data.images)), "images"

    def loss_fn(net: torch.nn.Module, batch: tuple[torch.Tensor, list[Any]]) -> torch.Tensor:
        x, batch_targets = batch
        out = net(**{kind: x})
        if not cfg.loss.aux:
            out["aux_outputs"] = []
        loss, _ = criterion(out, batch_targets)
        return loss

    cpu = time.process_time()
    model.train()
    result = core_train(
        model,
        loss_fn,
        _Scenes(inputs, targets),
        core_config(cfg, seed, checkpoint_every),
        device=device,
        checkpoint=checkpoint,
        progress=progress is not False,
        collate_fn=_collate,
    )
    model.eval()
    return TrainResult(model, list(result.losses), result.seconds, time.process_time() - cpu, result.start_step)


@torch.no_grad()
def detect(
    model: HOIModel,
    data: HOIDataset,
    *,
    features: torch.Tensor | None = None,
    top_k: int = 30,
    batch: int = 64,
) -> list[Detections]:
    """Scored triplets for every image of `data`."""
    model.eval()
    device = next(model.parameters()).device
    out: list[Detections] = []
    for i in range(0, len(data.annotations), batch):
        if features is not None:
            outputs = model(features=features[i : i + batch].to(device))
        else:
            assert data.images is not None
            outputs = model(images=as_tensor_images(data.images[i : i + batch]).to(device))
        sizes = [(a.width, a.height) for a in data.annotations[i : i + batch]]
        out.extend(postprocess(outputs, sizes, top_k))
    return out


def rare_categories(train_data: HOIDataset, threshold: int) -> set[tuple[int, int]]:
    """(verb, object class) categories with fewer than `threshold` training instances (HICO-DET's rare split)."""
    return {k for k, c in train_data.triplet_counts().items() if c < threshold}


def evaluate(
    model: HOIModel,
    data: HOIDataset,
    cfg: EvalConfig,
    *,
    features: torch.Tensor | None = None,
    rare: set[tuple[int, int]] | None = None,
) -> dict[str, float]:
    """role_map (triplet mAP, full), role_map_rare / _non_rare, vcoco_role_ap (scenario 1), human_ap, object_map."""
    dets = detect(model, data, features=features, top_k=cfg.top_k)
    trip = triplet_map(dets, data.annotations, iou=cfg.iou, ap=cfg.ap, rare=rare)
    inst = instance_aps(dets, data.annotations, iou=cfg.iou, ap=cfg.ap)
    vcoco = role_ap_vcoco(dets, data.annotations, scenario=1, iou=cfg.iou, ap=cfg.ap)
    return {
        "role_map": float(trip["full"]),  # type: ignore[arg-type]
        "role_map_rare": float(trip["rare"]),  # type: ignore[arg-type]
        "role_map_non_rare": float(trip["non_rare"]),  # type: ignore[arg-type]
        "vcoco_role_ap_s1": float(vcoco["role_map"]),  # type: ignore[arg-type]
        "human_ap": float(inst["human_ap"]),  # type: ignore[arg-type]
        "object_map": float(inst["object_map"]),  # type: ignore[arg-type]
    }


@torch.no_grad()
def predict(model: HOIModel, image: np.ndarray, top_k: int = 10, size: int | None = None) -> Detections:
    """Scored triplets of one uint8 (H, W, 3) image, boxes in its pixels.

    Args:
        size: Resize the image to this square side first (the side the model was trained on,
            `TrainConfig.image_size`); the boxes are still returned in the original image's pixels.
    """
    model.eval()
    device = next(model.parameters()).device
    height, width = image.shape[:2]
    if size is not None and (height, width) != (size, size):
        image = np.asarray(Image.fromarray(np.asarray(image)).resize((size, size), Image.Resampling.BILINEAR))
    x = as_tensor_images(np.asarray(image)[None]).to(device)
    # the model predicts image-normalised boxes: scaling them by the original size undoes the resize
    return postprocess(model(images=x), [(width, height)], top_k)[0]


def save_checkpoint(
    path: str | Path, cfg: TrainConfig, model: HOIModel, names: tuple[Sequence[str], Sequence[str]]
) -> Path:
    """Model weights (a frozen EfficientNet backbone is not stored: it reloads from its asset), config and the
    object / verb names, written atomically; loads with weights_only=True."""
    state = model.state_dict()
    if cfg.model.freeze_backbone and cfg.model.backbone == "efficientnet_lite0":
        state = {k: v for k, v in state.items() if not k.startswith("backbone.")}
    payload = {"config": to_dict(cfg), "state": state, "objects": list(names[0]), "verbs": list(names[1])}
    with atomic_open(path) as handle:
        torch.save(payload, handle)
    return Path(path)


def load_checkpoint(
    path: str | Path, device: torch.device | None = None
) -> tuple[TrainConfig, HOIModel, list[str], list[str]]:
    """(config, model in eval mode, object names, verb names) from `save_checkpoint`'s file."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"checkpoint {str(p)!r} not found: expected a file written by `tailorkit hoi train`")
    payload: dict[str, Any] = torch.load(p, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or not {"config", "state", "objects", "verbs"} <= set(payload):
        raise ValueError(f"{p}: expected an HOI checkpoint with config, state, objects and verbs")
    cfg = from_dict(TrainConfig, payload["config"])
    model = build_model(cfg.model, len(payload["objects"]), len(payload["verbs"]))
    strict = not (cfg.model.freeze_backbone and cfg.model.backbone == "efficientnet_lite0")
    missing, unexpected = model.load_state_dict(payload["state"], strict=strict)
    if unexpected or any(not k.startswith("backbone.") for k in missing):
        raise ValueError(f"{p}: weights do not fit the model (missing {missing[:3]}, unexpected {unexpected[:3]})")
    model = model.to(device or torch.device("cpu")).eval()
    return cfg, model, list(payload["objects"]), list(payload["verbs"])


def with_model(cfg: TrainConfig, **changes: Any) -> TrainConfig:
    """`cfg` with model settings changed (a convenience for benches and tests)."""
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, **changes))
