"""The shared training loop, evaluation, and trainable-only checkpoints with a manifest.

Every method trains in the same loop: all tasks every step (one forward yields every task's prediction), loss
sum_t w_t L_t with the benchmark's weights, AdamW with linear warm-up and cosine decay, gradient clipping (per
task for single-task full fine-tuning, whose task copies must not interact).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tailorkit.adapters.backbones import backbone_fingerprint, build_backbone
from tailorkit.adapters.config import TrainConfig
from tailorkit.adapters.data import N_CLASSES, PASCAL_CLASSES, MultiTaskData, make_data
from tailorkit.adapters.methods.base import make_encoder
from tailorkit.adapters.methods.baselines import SingleTaskFullFT
from tailorkit.adapters.model import MultiTaskModel
from tailorkit.adapters.tasks import TaskMeter, task_loss, task_spec
from tailorkit.core.config import from_dict, to_dict
from tailorkit.core.progress import bar
from tailorkit.core.results import write_bytes_atomic, write_json_atomic
from tailorkit.core.seeding import torch_generator

# MultiTaskData and make_data live in data.py; they stay importable from here (adapters/cli.py imports them so).
__all__ = [
    "MultiTaskData",
    "build_model",
    "evaluate",
    "load_run",
    "make_data",
    "save_run",
    "train_model",
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


def _param_groups(model: MultiTaskModel, config: TrainConfig) -> list[dict[str, Any]]:
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
    groups = [{"params": rest, "lr": config.optim.lr}]
    if full:
        groups.append({"params": full, "lr": config.optim.full_ft_lr})
    return groups


def _clip_groups(model: MultiTaskModel) -> list[list[nn.Parameter]]:
    enc = model.encoder
    if isinstance(enc, SingleTaskFullFT):
        return [
            [*enc.backbone_for(t).parameters(), *model.decoders[task].parameters()] for t, task in enumerate(enc.tasks)
        ]
    return [[p for p in model.parameters() if p.requires_grad]]


def train_step_loss(
    model: MultiTaskModel, x: torch.Tensor, targets: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, dict[str, float]]:
    preds = model(x)
    total = x.new_zeros(())
    parts = {}
    for task, pred in preds.items():
        loss = task_loss(task, pred, targets[task])
        parts[task] = float(loss.detach())
        total = total + task_spec(task).weight * loss
    return total, parts


def train_model(
    model: MultiTaskModel,
    data: MultiTaskData,
    config: TrainConfig,
    *,
    device: torch.device | None = None,
    progress: bool | None = None,
    label: str = "train",
    on_step: Callable[[int, MultiTaskModel], None] | None = None,
) -> dict[str, Any]:
    """Train ``model`` on ``data`` for ``config.optim.steps`` steps; returns the loss history and timings.

    ``on_step(steps_done, model)``, if given, runs after every optimiser step (early stopping evaluates there; it
    must leave the model in train mode and not draw from torch's global random stream).
    """
    opt_cfg = config.optim
    dev = device or torch.device("cpu")
    model.to(dev).train()
    optimizer = torch.optim.AdamW(_param_groups(model, config), weight_decay=opt_cfg.weight_decay)
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    clip_groups = _clip_groups(model)
    gen = torch_generator(config.seed, "batches")
    history: list[float] = []
    step_seconds: list[float] = []
    # Random ops in the forward pass (dropout, drop-connect) draw from torch's global stream: seed it for this fit,
    # so that a fit does not depend on what ran before it in the process (the caller's stream is restored).
    with torch.random.fork_rng(devices=[]), bar(label, total=opt_cfg.steps, enabled=progress) as pbar:
        torch.manual_seed(config.seed)
        for step in range(opt_cfg.steps):
            warm = min(1.0, (step + 1) / max(1, opt_cfg.warmup_steps)) if opt_cfg.warmup_steps else 1.0
            cosine = 0.5 * (1 + math.cos(math.pi * step / max(1, opt_cfg.steps)))
            for g, lr in zip(optimizer.param_groups, base_lrs, strict=True):
                g["lr"] = lr * warm * cosine
            index = torch.randint(0, len(data), (min(opt_cfg.batch_size, len(data)),), generator=gen)
            x, targets = data.batch(index, dev)
            start = time.perf_counter()
            loss, _ = train_step_loss(model, x, targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if opt_cfg.grad_clip > 0:
                for params in clip_groups:
                    torch.nn.utils.clip_grad_norm_(params, opt_cfg.grad_clip)
            optimizer.step()
            step_seconds.append(time.perf_counter() - start)
            history.append(float(loss.detach()))
            if on_step is not None:
                on_step(step + 1, model)
            pbar.update(1)
            pbar.set_postfix(loss=f"{history[-1]:.3f}")
    model.eval()
    return {"loss": history, "step_seconds": step_seconds}


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
