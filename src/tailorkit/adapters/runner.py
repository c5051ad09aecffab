"""Training through the project's one loop, evaluation, and trainable-only checkpoints with a manifest.

Every method trains the same way, through :func:`tailorkit.core.train.train` (exact resume from a checkpoint,
progress, torchrun DDP): all tasks every step (one forward yields every task's prediction), loss sum_t w_t L_t with
the benchmark's weights, AdamW with a linear warm-up ramp multiplying a cosine over all steps (core's
``decay_span="all_steps"``), gradient clipping (per task for single-task full fine-tuning, whose task copies must
not interact). docs/adapters.md#training-coretrain says what changed against the loop this module had before.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from tailorkit.adapters.backbones import backbone_fingerprint, build_backbone
from tailorkit.adapters.config import TrainConfig
from tailorkit.adapters.data import N_CLASSES, PASCAL_CLASSES, MultiTaskData, make_data
from tailorkit.adapters.methods.base import make_encoder
from tailorkit.adapters.methods.baselines import SingleTaskFullFT
from tailorkit.adapters.model import MultiTaskModel
from tailorkit.adapters.tasks import TaskMeter, task_loss, task_spec
from tailorkit.core.config import from_dict, to_dict
from tailorkit.core.results import write_bytes_atomic, write_json_atomic
from tailorkit.core.seeding import derive_seed
from tailorkit.core.train import TrainConfig as CoreTrainConfig
from tailorkit.core.train import train as core_train

# MultiTaskData and make_data live in data.py; they stay importable from here (adapters/cli.py imports them so).
__all__ = [
    "MultiTaskData",
    "SceneIndex",
    "build_model",
    "clip_groups",
    "core_config",
    "evaluate",
    "load_run",
    "make_data",
    "param_groups",
    "save_run",
    "train_model",
    "train_step_loss",
]


def build_model(
    config: TrainConfig, backbone: nn.Module | None = None, tasks: tuple[str, ...] | None = None
) -> MultiTaskModel:
    """Backbone (built from config unless given; the model takes it over) + method encoder + decoders."""
    if backbone is None:
        b = config.backbone
        backbone = build_backbone(
            b.name,
            pretrained=b.pretrained,
            image_size=config.data.image_size,
            seed=config.seed,
            vit_dim=b.vit_dim,
            vit_depth=b.vit_depth,
            vit_patch=b.vit_patch,
            weights=b.weights,
        )
    init_state = torch.random.get_rng_state()
    torch.manual_seed(config.seed)  # adapter and decoder init: scoped, the caller's global stream is restored
    try:
        encoder = make_encoder(backbone, tasks or config.data.tasks, config.method)
        n_classes = dict(PASCAL_CLASSES) if config.data.source == "pascal_context" else dict(N_CLASSES)
        return MultiTaskModel(encoder, n_classes, config.decoder_width)
    finally:
        torch.random.set_rng_state(init_state)


def param_groups(model: MultiTaskModel, config: TrainConfig) -> list[dict[str, Any]]:
    """core.train's optimiser groups: everything at ``optim.lr``; fine-tuned backbone weights (full fine-tuning
    methods) at ``optim.full_ft_lr``, as an ``lr_scale`` on the one schedule."""
    backbone_ids = set()
    enc = model.encoder
    if enc.fine_tunes_backbone:
        for p in enc.backbone.parameters():
            backbone_ids.add(id(p))
        if isinstance(enc, SingleTaskFullFT):
            for p in enc.copies.parameters():
                backbone_ids.add(id(p))
    trainable = [p for p in model.parameters() if p.requires_grad]
    full = [p for p in trainable if id(p) in backbone_ids]
    rest = [p for p in trainable if id(p) not in backbone_ids]
    groups: list[dict[str, Any]] = [{"params": rest, "lr_scale": 1.0}]
    if full:
        groups.append({"params": full, "lr_scale": config.optim.full_ft_lr / config.optim.lr})
    return groups


def clip_groups(model: MultiTaskModel) -> list[list[nn.Parameter]] | None:
    """Gradient-clipping sets: one per task for single-task full fine-tuning (its task copies must not interact
    through one global norm); None (one norm over every trainable parameter) for every other method."""
    enc = model.encoder
    if isinstance(enc, SingleTaskFullFT):
        return [
            [*enc.backbone_for(t).parameters(), *model.decoders[task].parameters()] for t, task in enumerate(enc.tasks)
        ]
    return None


def train_step_loss(
    model: nn.Module, x: torch.Tensor, targets: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, dict[str, float]]:
    """The training objective sum_t w_t L_t of one batch, and each task's loss."""
    preds = model(x)
    total = x.new_zeros(())
    parts = {}
    for task, pred in preds.items():
        loss = task_loss(task, pred, targets[task])
        parts[task] = float(loss.detach())
        total = total + task_spec(task).weight * loss
    return total, parts


class SceneIndex(Dataset[int]):
    """core.train's dataset view of a :class:`MultiTaskData`: item i is the index i; :meth:`collate` makes the
    batch (images and every task's targets on ``device``) from a list of them."""

    def __init__(self, data: MultiTaskData, device: torch.device) -> None:
        self.data, self.device = data, device

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> int:
        return i

    def collate(self, index: list[int]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self.data.batch(torch.tensor(index, dtype=torch.long), self.device)


def core_config(config: TrainConfig, n_scenes: int, checkpoint_every: int = 0) -> CoreTrainConfig:
    """The core.train settings of a run: ``config.optim`` in effect unchanged (AdamW, decoupled weight decay on
    every group, linear warm-up multiplying a cosine over all steps, clipping at ``grad_clip``, 0 = off), the batch
    order seeded from ``derive_seed(config.seed, "adapters-train")``, a batch of at most ``n_scenes``."""
    o = config.optim
    return CoreTrainConfig(
        steps=o.steps,
        lr=o.lr,
        weight_decay=o.weight_decay,
        batch_size=min(o.batch_size, n_scenes),  # a training set smaller than a batch is one batch, as before
        grad_clip=o.grad_clip if o.grad_clip > 0 else None,
        log_every=0,
        checkpoint_every=checkpoint_every,
        seed=derive_seed(config.seed, "adapters-train"),
        optimizer="adamw",
        schedule="cosine",
        warmup_steps=o.warmup_steps,
        decay_span="all_steps",
    )


def train_model(
    model: MultiTaskModel,
    data: MultiTaskData,
    config: TrainConfig,
    *,
    device: torch.device | None = None,
    progress: bool | None = None,
    label: str = "train",
    on_step: Callable[[int, MultiTaskModel], None] | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    checkpoint_every: int = 0,
) -> dict[str, Any]:
    """Train ``model`` on ``data`` for ``config.optim.steps`` steps through :func:`tailorkit.core.train.train`;
    returns ``{"loss": per-step losses, "seconds": this call's training time, "start_step": 0 or the resumed step}``.

    ``on_step(steps_done, model)``, if given, runs after every optimiser step (early stopping evaluates there; it
    must leave the model in train mode). A ``checkpoint`` file is resumed from when it exists and written at the
    end (and every ``checkpoint_every`` steps), so an interrupted run continues exactly; torchrun runs it as DDP.
    """
    dev = device or torch.device("cpu")
    model.to(dev).train()
    scenes = SceneIndex(data, dev)
    callback = None
    if on_step is not None:
        user = on_step

        def callback(done: int, loss: float) -> None:
            user(done, model)

    try:
        out = core_train(
            model,
            lambda net, batch: train_step_loss(net, *batch)[0],
            scenes,
            core_config(config, len(data), checkpoint_every),
            device=dev,
            checkpoint=checkpoint,
            progress=progress is not False,  # None or True: core.progress's policy
            on_step=callback,
            collate_fn=scenes.collate,
            param_groups=param_groups(model, config),
            clip_groups=clip_groups(model),
            desc=label,
        )
    finally:
        model.eval()
    return {"loss": list(out.losses), "seconds": out.seconds, "start_step": out.start_step}


@torch.no_grad()
def evaluate(
    model: MultiTaskModel, data: MultiTaskData, *, batch_size: int = 32, device: torch.device | None = None
) -> dict[str, float]:
    """Every task's metrics on ``data`` (see tailorkit.adapters.tasks)."""
    dev = device or torch.device("cpu")
    model.to(dev).eval()
    meters = {task: TaskMeter(task, data.n_classes.get(task_spec(task).name, 0)) for task in model.tasks}
    for start in range(0, len(data), batch_size):
        index = torch.arange(start, min(start + batch_size, len(data)))
        x, targets = data.batch(index, dev)
        preds = model(x)
        for task, pred in preds.items():
            meters[task].update(pred, targets[task])
    out: dict[str, float] = {}
    for meter in meters.values():
        out.update(meter.compute())
    return out


def save_run(
    model: MultiTaskModel, config: TrainConfig, out_dir: str | Path, extra: dict[str, Any] | None = None
) -> Path:
    """Write RUN_DIR/trainable.safetensors (trainable parameters only) and RUN_DIR/manifest.json."""
    from safetensors.torch import save

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = model.trainable_state()
    write_bytes_atomic(out / "trainable.safetensors", save(state))
    manifest = {
        "format": "tailorkit.adapters/1",
        "backbone": {"name": config.backbone.name, "fingerprint": backbone_fingerprint(model.encoder.backbone)},
        "method": config.method.name,
        "tasks": list(model.tasks),
        "config": to_dict(config),
        "tensors": sorted(state),
        "trainable_parameters": model.encoder.trainable_parameters(),
        **(extra or {}),
    }
    return write_json_atomic(out / "manifest.json", manifest)


def load_run(run_dir: str | Path, backbone: nn.Module | None = None) -> tuple[MultiTaskModel, TrainConfig]:
    """Rebuild a saved run: the backbone from its config (or ``backbone``), then the saved trainable tensors.

    Raises:
        ValueError: No manifest, an unknown format, a backbone whose name or fingerprint differs from the one the
            manifest names, or tensors that do not fit the model.
    """
    from safetensors.torch import load_file

    run = Path(run_dir)
    path = run / "manifest.json"
    if not path.is_file():
        raise ValueError(f"{run}: expected a run folder with manifest.json and trainable.safetensors")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != "tailorkit.adapters/1":
        raise ValueError(f"{path}: expected format 'tailorkit.adapters/1', got {manifest.get('format')!r}")
    config = from_dict(TrainConfig, manifest["config"])
    model = build_model(config, backbone)
    fingerprint = backbone_fingerprint(model.encoder.backbone)
    want = manifest["backbone"]
    if config.backbone.name != want["name"] or fingerprint != want["fingerprint"]:
        raise ValueError(
            f"{path}: backbone mismatch: the manifest names {want['name']} with fingerprint "
            f"{want['fingerprint'][:12]}, "
            f"the backbone here is {config.backbone.name} with fingerprint {fingerprint[:12]}"
        )
    state = load_file(str(run / "trainable.safetensors"))
    own = model.state_dict()
    bad = [k for k, v in state.items() if k not in own or own[k].shape != v.shape]
    if bad:
        raise ValueError(f"{run}: saved tensor {bad[0]!r} does not fit the {config.method.name} model")
    model.load_state_dict(state, strict=False)
    return model.eval(), config
