"""One training loop for every subsystem: single process or DDP under torchrun, resumable, deterministic.

`train(model, loss_fn, dataset, config)` runs `config.steps` optimizer steps and returns a `TrainResult`. The same
call runs unchanged under `torchrun --nproc_per_node=N`: it reads the environment torchrun sets (WORLD_SIZE, RANK,
LOCAL_RANK), joins the process group (creating it for the rest of the process if the caller has not), wraps the
model in DistributedDataParallel and gives each rank its shard of every epoch through a DistributedSampler.
Backend: gloo for a model on CPU, nccl (beside gloo) on CUDA.

Determinism, and why a resumed run equals an uninterrupted one:

- The data order is a pure function of (seed, epoch, rank): DistributedSampler's permutation, also used with one
  process, so a step number alone says which batch comes next.
- Randomness inside the model (dropout, noise) draws from the global torch RNG, which is forked for the duration of
  `train` (the caller's RNG state is restored afterwards) and reseeded before every step from (seed, rank, step).
  Nothing random has to be saved, and no global seed is left behind for the caller.
- The learning rate is a pure function of the step (`learning_rate`), so no scheduler state exists either.
- A checkpoint holds the trainable parameters, buffers, optimizer state, step and loss history; resuming restores
  them and continues the same sequence.

Only parameters with `requires_grad=True` are optimized and checkpointed: adapters and prompts train ~1% of a model
whose frozen backbone is rebuilt by the caller. DDP runs with `find_unused_parameters=False`; frozen parameters are
fine, but every trainable parameter must receive a gradient at every step.
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset, IterableDataset
from torch.utils.data.distributed import DistributedSampler
from tqdm.auto import tqdm

from tailorkit.core.errors import InputError
from tailorkit.core.progress import progress_enabled
from tailorkit.core.results import atomic_open
from tailorkit.core.seeding import derive_seed

__all__ = [
    "TrainConfig",
    "TrainResult",
    "is_distributed",
    "is_main_process",
    "learning_rate",
    "local_rank",
    "rank",
    "train",
    "world_size",
]

logger = logging.getLogger(__name__)

LossFn = Callable[[nn.Module, Any], torch.Tensor]
StepCallback = Callable[[int, float], None]

_CHECKPOINT_FORMAT = "tailorkit.train/1"
# Fields that shape the optimization trajectory: resuming under different values would silently produce a run that
# matches neither the old nor the new configuration. `steps` may grow (extend a finished run); logging may change.
SCHEDULES = ("constant", "linear", "cosine", "step")
DECAY_SPANS = ("after_warmup", "all_steps")

_TRAJECTORY_FIELDS = (
    "lr",
    "weight_decay",
    "batch_size",
    "grad_clip",
    "seed",
    "optimizer",
    "momentum",
    "schedule",
    "warmup_steps",
    "shuffle",
    "step_at",
    "step_factor",
    "decay_span",
)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one training run.

    Attributes:
        steps: Optimizer steps to run in total (a resumed run continues up to this number).
        lr: Peak learning rate.
        weight_decay: Decoupled (AdamW) or L2 (SGD) weight decay on every trainable parameter.
        batch_size: Samples per step on each rank; the global batch is `batch_size * world_size`.
        grad_clip: Clip the global gradient norm to this value, or None for no clipping.
        log_every: Log the mean loss (and refresh the progress bar text) every this many steps; 0 = never.
        checkpoint_every: Save a checkpoint every this many steps when `train` is given a path; 0 = only at the end.
        seed: Seeds the data order and the model's randomness (dropout); the same seed gives the same run.
        optimizer: "adamw" or "sgd".
        momentum: SGD momentum (ignored by AdamW).
        schedule: Learning-rate decay after warmup: "constant", "linear" (to 0), "cosine" (to 0) or "step" (the
            rate times `step_factor` from step `round(step_at * steps)` on: DETR/QPIC's single drop).
        warmup_steps: Linear warmup from lr/warmup_steps to lr over this many steps.
        decay_span: "after_warmup": the warm-up ramp comes first and the decay runs over the remaining steps.
            "all_steps": the decay runs over all `steps` from step 0 and the ramp `min(1, (s + 1) / warmup_steps)`
            multiplies it (MTLoRA's recipe, which adapters used before it moved here); `warmup_steps` may then
            exceed `steps` (the ramp never completes).
        step_at: Fraction of `steps` at which the "step" schedule drops the rate (ignored by the other schedules).
        step_factor: What the "step" schedule multiplies the rate by after `step_at` (ignored by the others).
        shuffle: Reshuffle the dataset every epoch (per seed and epoch); False keeps index order.
    """

    steps: int = 100
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 32
    grad_clip: float | None = None
    log_every: int = 10
    checkpoint_every: int = 0
    seed: int = 0
    optimizer: Literal["adamw", "sgd"] = "adamw"
    momentum: float = 0.0
    schedule: Literal["constant", "linear", "cosine", "step"] = "constant"
    warmup_steps: int = 0
    shuffle: bool = True
    step_at: float = 0.8
    step_factor: float = 0.1
    decay_span: Literal["after_warmup", "all_steps"] = "after_warmup"

    def __post_init__(self) -> None:
        if not _is_int(self.steps) or self.steps < 1:
            raise ValueError(f"steps: expected an int >= 1, got {self.steps!r}")
        if not _is_number(self.lr) or self.lr <= 0:
            raise ValueError(f"lr: expected a finite number > 0, got {self.lr!r}")
        if not _is_number(self.weight_decay) or self.weight_decay < 0:
            raise ValueError(f"weight_decay: expected a finite number >= 0, got {self.weight_decay!r}")
        if not _is_int(self.batch_size) or self.batch_size < 1:
            raise ValueError(f"batch_size: expected an int >= 1, got {self.batch_size!r}")
        if self.grad_clip is not None and (not _is_number(self.grad_clip) or self.grad_clip <= 0):
            raise ValueError(f"grad_clip: expected None or a finite number > 0, got {self.grad_clip!r}")
        if not _is_int(self.log_every) or self.log_every < 0:
            raise ValueError(f"log_every: expected an int >= 0, got {self.log_every!r}")
        if not _is_int(self.checkpoint_every) or self.checkpoint_every < 0:
            raise ValueError(f"checkpoint_every: expected an int >= 0, got {self.checkpoint_every!r}")
        if not _is_int(self.seed) or not 0 <= self.seed < 2**63:
            raise ValueError(f"seed: expected an int in [0, 2**63), got {self.seed!r}")
        if self.optimizer not in ("adamw", "sgd"):
            raise ValueError(f"optimizer: expected 'adamw' or 'sgd', got {self.optimizer!r}")
        if not _is_number(self.momentum) or not 0 <= self.momentum < 1:
            raise ValueError(f"momentum: expected a number in [0, 1), got {self.momentum!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule: expected one of {', '.join(map(repr, SCHEDULES))}, got {self.schedule!r}")
        if not _is_number(self.step_at) or not 0 < self.step_at <= 1:
            raise ValueError(f"step_at: expected a number in (0, 1], got {self.step_at!r}")
        if not _is_number(self.step_factor) or not 0 < self.step_factor <= 1:
            raise ValueError(f"step_factor: expected a number in (0, 1], got {self.step_factor!r}")
        if self.decay_span not in DECAY_SPANS:
            raise ValueError(
                f"decay_span: expected one of {', '.join(map(repr, DECAY_SPANS))}, got {self.decay_span!r}"
            )
        ramp_only = self.decay_span == "all_steps"  # the ramp multiplies the decay: it may outlast the run
        if not _is_int(self.warmup_steps) or not 0 <= self.warmup_steps <= (2**62 if ramp_only else self.steps):
            limit = "an int >= 0" if ramp_only else f"an int in [0, steps={self.steps}]"
            raise ValueError(f"warmup_steps: expected {limit}, got {self.warmup_steps!r}")
        if not isinstance(self.shuffle, bool):
            raise ValueError(f"shuffle: expected a bool, got {self.shuffle!r}")


@dataclass(frozen=True)
class TrainResult:
    """What `train` returns.

    Attributes:
        losses: Loss of every step from 0 to `steps` (a resumed run includes the steps before the resume), each the
            mean over all ranks of the per-rank loss.
        seconds: Wall time of this call's training loop (excludes the steps done before a resume).
        steps: Steps done in total; equals `config.steps`.
        start_step: The step this call started from (0 unless resumed from a checkpoint).
        model: The trained model, unwrapped from DDP; the same object that was passed in (trained in place).
    """

    losses: tuple[float, ...]
    seconds: float
    steps: int
    start_step: int
    model: nn.Module = field(repr=False)


# --- distributed environment --------------------------------------------------------------------------------------


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as err:
        raise ValueError(f"environment variable {name}: expected an int, got {value!r}") from err


def world_size() -> int:
    """Number of processes in the run: the process group's size if one exists, else WORLD_SIZE, else 1."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return _env_int("WORLD_SIZE", 1)


def rank() -> int:
    """This process's global rank: from the process group if one exists, else RANK, else 0."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return _env_int("RANK", 0)


def local_rank() -> int:
    """This process's rank on its machine (LOCAL_RANK, else 0): the index of the accelerator it should use.

    A torchrun script on GPUs picks its device as `torch.device("cuda", local_rank())`.
    """
    return _env_int("LOCAL_RANK", 0)


def is_distributed() -> bool:
    """True when this process is one of several (a process group exists or torchrun's WORLD_SIZE > 1)."""
    return world_size() > 1


def is_main_process() -> bool:
    """True on rank 0 (and in every single-process run): the process that writes files and shows progress."""
    return rank() == 0


def _backend_for(device: torch.device) -> str:
    if device.type == "cpu":
        return "gloo"
    if device.type == "cuda":
        # nccl for the CUDA tensors training moves; gloo alongside so CPU-side collectives work on the same group.
        return "cpu:gloo,cuda:nccl"
    return dist.get_default_backend_for_device(device)


_created_group: object | None = None  # the default group train() created, destroyed at interpreter exit


def _destroy_created_group() -> None:
    if dist.is_available() and dist.is_initialized() and dist.group.WORLD is _created_group:
        dist.destroy_process_group()


def _join_process_group(device: torch.device) -> None:
    """Create the process group torchrun's environment describes, if there is one and none exists yet.

    The group lives until the interpreter exits (an atexit hook destroys it) rather than until `train` returns:
    destroying the default group and creating it again in the same process races on torchrun's shared store and
    hangs now and then (pytorch/pytorch#55967, #114585), and a continual-learning script calls `train` once per
    task. A group the caller created is used as is and never destroyed here.
    """
    global _created_group
    if _env_int("WORLD_SIZE", 1) <= 1 or (dist.is_available() and dist.is_initialized()):
        return
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed support")
    missing = [name for name in ("RANK", "MASTER_ADDR", "MASTER_PORT") if name not in os.environ]
    if missing:
        raise RuntimeError(f"WORLD_SIZE > 1 but {', '.join(missing)} unset: launch with torchrun")
    backend = _backend_for(device)
    # nccl must know this rank's GPU before the first collective, or every rank talks through GPU 0.
    dist.init_process_group(backend=backend, device_id=device if device.type == "cuda" else None)
    _created_group = dist.group.WORLD
    atexit.register(_destroy_created_group)


def _all_sum(value: torch.Tensor) -> torch.Tensor:
    # SUM rather than AVG: gloo implements no AVG reduction.
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value


def _ranks_agree(value: float, device: torch.device) -> tuple[float, float]:
    """All-reduce (max, min) of a per-rank number; returns them and lets the caller decide what disagreement means."""
    both = torch.tensor([value, -value], dtype=torch.float64, device=device)
    dist.all_reduce(both, op=dist.ReduceOp.MAX)
    return float(both[0]), float(-both[1])


# --- small pure pieces ----------------------------------------------------------------------------------------------


def learning_rate(config: TrainConfig, step: int) -> float:
    """Learning rate used by optimizer step `step` (0-based): linear warmup, then the configured decay.

    A pure function of the step, so resuming needs no scheduler state.
    """
    if config.decay_span == "all_steps":
        return config.lr * _ramp(config, step) * _decay(config, step)
    if config.warmup_steps and step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    if config.schedule == "constant":
        return config.lr
    if config.schedule == "step":
        return config.lr * (config.step_factor if step >= round(config.step_at * config.steps) else 1.0)
    span = max(1, config.steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    if config.schedule == "linear":
        return config.lr * (1.0 - progress)
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def _ramp(config: TrainConfig, step: int) -> float:
    """decay_span="all_steps": the warm-up factor min(1, (step + 1) / warmup_steps) (1 without warm-up)."""
    return min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps else 1.0


def _decay(config: TrainConfig, step: int) -> float:
    """decay_span="all_steps": the schedule's factor at `step` of the whole run (0 from `steps` on)."""
    if config.schedule == "constant":
        return 1.0
    if config.schedule == "step":
        return config.step_factor if step >= round(config.step_at * config.steps) else 1.0
    step = min(step, config.steps)  # a run extended past `steps` stays at the end of the decay
    if config.schedule == "linear":
        return 1.0 - step / max(1, config.steps)
    return 0.5 * (1 + math.cos(math.pi * step / max(1, config.steps)))


def _make_optimizer(
    params: list[nn.Parameter], config: TrainConfig, groups: Sequence[Mapping[str, Any]] | None = None
) -> torch.optim.Optimizer:
    specs = _param_groups(params, config, groups)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(specs, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(specs, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)


def _param_groups(
    params: list[nn.Parameter], config: TrainConfig, groups: Sequence[Mapping[str, Any]] | None
) -> list[dict[str, Any]]:
    """Optimizer groups with an `lr_scale` each: one group of every trainable parameter when `groups` is None.

    A group's learning rate at step s is `learning_rate(config, s) * lr_scale`, so one schedule serves every group
    (a backbone at a tenth of the rate, a gate at ten times it). Every trainable parameter must be in exactly one
    group: a forgotten one would silently stay untrained, a duplicate would be stepped twice.
    """
    if groups is None:
        return [{"params": params, "lr_scale": 1.0}]
    trainable = {id(p) for p in params}
    seen: set[int] = set()
    specs = []
    for i, group in enumerate(groups):
        unknown = set(group) - {"params", "lr_scale", "weight_decay"}
        if unknown:
            raise ValueError(
                f"param_groups[{i}]: unknown keys {sorted(unknown)}; expected params, lr_scale, weight_decay"
            )
        members = list(group["params"])
        scale = group.get("lr_scale", 1.0)
        if not _is_number(scale) or scale < 0:
            raise ValueError(f"param_groups[{i}].lr_scale: expected a finite number >= 0, got {scale!r}")
        for p in members:
            if id(p) not in trainable:
                raise ValueError(f"param_groups[{i}]: holds a parameter that is frozen or not in the model")
            if id(p) in seen:
                raise ValueError(f"param_groups[{i}]: holds a parameter already in an earlier group")
            seen.add(id(p))
        if members:
            spec: dict[str, Any] = {"params": members, "lr_scale": float(scale)}
            if "weight_decay" in group:
                spec["weight_decay"] = float(group["weight_decay"])
            specs.append(spec)
    if len(seen) != len(trainable):
        raise ValueError(f"param_groups: {len(trainable) - len(seen)} trainable parameter(s) are in no group")
    return specs


def _clip_sets(params: list[nn.Parameter], groups: Sequence[Sequence[nn.Parameter]] | None) -> list[list[nn.Parameter]]:
    """The parameter sets clipped one by one: all trainable parameters together when `groups` is None.

    Like `param_groups`, every trainable parameter must be in exactly one set: a forgotten one would go unclipped.
    """
    if groups is None:
        return [params]
    trainable = {id(p) for p in params}
    seen: set[int] = set()
    sets = []
    for i, group in enumerate(groups):
        members = list(group)
        for p in members:
            if id(p) not in trainable:
                raise ValueError(f"clip_groups[{i}]: holds a parameter that is frozen or not in the model")
            if id(p) in seen:
                raise ValueError(f"clip_groups[{i}]: holds a parameter already in an earlier set")
            seen.add(id(p))
        if members:
            sets.append(members)
    if len(seen) != len(trainable):
        raise ValueError(f"clip_groups: {len(trainable) - len(seen)} trainable parameter(s) are in no set")
    return sets


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, Mapping):
        return {key: _to_device(value, device) for key, value in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # namedtuple: rebuild with positional fields
        return type(batch)(*(_to_device(value, device) for value in batch))
    if isinstance(batch, list | tuple):
        return type(batch)(_to_device(value, device) for value in batch)
    return batch


def _seed_rngs(device: torch.device, seed: int) -> None:
    """Reseed the (forked) global RNGs that model code draws from: the CPU one and `device`'s."""
    torch.default_generator.manual_seed(seed)
    if device.type == "cpu":
        return
    module = torch.get_device_module(device.type)
    if device.index is None:
        module.manual_seed(seed)
    else:
        # Only this device's generator: torch.manual_seed would reseed every visible accelerator, and fork_rng
        # restores only the one we train on.
        state = torch.Generator(device=device).manual_seed(seed).get_state()
        module.set_rng_state(state, device)


def _model_device(model: nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    return torch.device("cpu")


# --- checkpoints ----------------------------------------------------------------------------------------------------


def _trainable_state_keys(model: nn.Module) -> list[str]:
    """state_dict keys worth saving: trainable parameters and buffers (BatchNorm statistics move during training)."""
    all_params = {name for name, _ in model.named_parameters(remove_duplicate=False)}
    trainable = {name for name, p in model.named_parameters(remove_duplicate=False) if p.requires_grad}
    return [key for key in model.state_dict() if key in trainable or key not in all_params]


def _save_checkpoint(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    config: TrainConfig,
    step: int,
    losses: Sequence[float],
    n_ranks: int,
) -> None:
    state = model.state_dict()
    payload = {
        "format": _CHECKPOINT_FORMAT,
        "step": step,
        "losses": list(losses),
        "world_size": n_ranks,
        "trajectory": {name: getattr(config, name) for name in _TRAJECTORY_FIELDS},
        "model": {key: state[key] for key in _trainable_state_keys(model)},
        "optimizer": optimizer.state_dict(),
    }
    with atomic_open(path) as handle:  # a crash leaves the old checkpoint or the new one, never half of one
        torch.save(payload, handle)


def _load_checkpoint(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    config: TrainConfig,
    n_ranks: int,
    device: torch.device,
) -> tuple[int, list[float]]:
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # a truncated or foreign file: the user's input, not a bug
        raise InputError(f"checkpoint {path}: cannot be read ({err}); expected a file written by train()") from err
    if not isinstance(payload, dict) or payload.get("format") != _CHECKPOINT_FORMAT:
        raise InputError(f"checkpoint {path}: expected a {_CHECKPOINT_FORMAT} checkpoint written by train()")
    saved = payload["trajectory"]
    current = {name: getattr(config, name) for name in _TRAJECTORY_FIELDS}
    # A field newer than the checkpoint is read as its default, so older checkpoints still resume.
    defaults = {f.name: f.default for f in fields(TrainConfig)}
    recorded = {name: saved.get(name, defaults[name]) for name in current}
    changed = {name: (recorded[name], value) for name, value in current.items() if recorded[name] != value}
    if changed:
        detail = ", ".join(f"{name}: checkpoint {old!r} vs config {new!r}" for name, (old, new) in changed.items())
        raise InputError(f"checkpoint {path} was written under a different configuration ({detail})")
    if payload["world_size"] != n_ranks:
        raise InputError(
            f"checkpoint {path}: expected a run on {n_ranks} process(es) to resume it, got one written by "
            f"{payload['world_size']} (the data shards would differ)"
        )
    step = int(payload["step"])
    if step > config.steps:
        raise InputError(f"checkpoint {path} is at step {step}, past config.steps={config.steps}")
    expected = set(_trainable_state_keys(model))
    if set(payload["model"]) != expected:
        missing, extra = sorted(expected - set(payload["model"])), sorted(set(payload["model"]) - expected)
        raise InputError(f"checkpoint {path} does not fit this model: missing {missing}, unexpected {extra}")
    try:
        model.load_state_dict(payload["model"], strict=False)
    except RuntimeError as err:  # same names, other shapes: the model's settings changed since the checkpoint
        raise InputError(f"checkpoint {path} does not fit this model: {' '.join(str(err).split())[:300]}") from err
    optimizer.load_state_dict(payload["optimizer"])
    return step, [float(loss) for loss in payload["losses"]]


# --- the loop -------------------------------------------------------------------------------------------------------


def train(
    model: nn.Module,
    loss_fn: LossFn,
    dataset: Dataset[Any],
    config: TrainConfig,
    *,
    device: torch.device | str | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    progress: bool = True,
    on_step: StepCallback | None = None,
    collate_fn: Callable[[list[Any]], Any] | None = None,
    param_groups: Sequence[Mapping[str, Any]] | None = None,
    clip_groups: Sequence[Sequence[nn.Parameter]] | None = None,
    desc: str = "train",
) -> TrainResult:
    """Train `model` in place for `config.steps` optimizer steps, on one process or under torchrun.

    Every step draws a batch of `config.batch_size` samples (per rank), calls `loss_fn(model, batch)`, averages
    gradients across ranks, clips, and steps the optimizer over the trainable parameters. Epochs are reshuffled per
    seed; the last incomplete batch of an epoch is dropped so every step sees a full batch on every rank.

    Args:
        model: Module to train. Only parameters with `requires_grad=True` are optimized; it is moved to `device`.
            Train/eval modes are left as the caller set them: a fresh module is in training mode; keep a frozen
            backbone in `eval()` when its BatchNorm statistics must not move.
        loss_fn: `loss_fn(model, batch) -> scalar loss tensor` (a mean over the batch, so rank averaging is exact).
            Under DDP `model` is the DistributedDataParallel wrapper: call it (`model(x)`), since only its forward
            synchronizes gradients; reach other attributes through `model.module`. A model with several entry
            points should route them through `forward`.
        dataset: A map-style dataset (`len` and integer indexing); samples are collated with `collate_fn`.
        config: Hyperparameters.
        device: Where to train. None keeps the model where its parameters are. Under torchrun on GPUs pass
            `torch.device("cuda", local_rank())`.
        checkpoint: File to resume from when it exists and to save to every `config.checkpoint_every` steps and at
            the end (rank 0 writes, atomically). It must be on a filesystem every rank sees.
        progress: A tqdm bar on stderr (rank 0 only), if the progress policy allows (core.progress: a terminal).
        on_step: Called after every step as `on_step(step, loss)`, with the 1-based number of steps done and the
            global mean loss of that step, on every rank. It runs under the training RNG fork.
        collate_fn: Turns a list of samples into a batch; default `torch.utils.data.default_collate`.
        param_groups: Optimizer groups, each `{"params": [...], "lr_scale": x, "weight_decay": w}` (the last two
            optional; default 1 and `config.weight_decay`): the group's rate is the schedule's times `lr_scale`.
            Every trainable parameter must be in exactly one group. None: one group of all of them.
        clip_groups: Parameter sets whose gradient norms are clipped to `config.grad_clip` each on its own
            (independent model copies trained side by side, which must not interact through one global norm).
            Every trainable parameter must be in exactly one set. None: one norm over all trainable parameters.
        desc: The progress bar's label.

    Returns:
        The per-step losses, wall time and the trained (unwrapped) model.

    Raises:
        ValueError: An empty or iterable dataset, a dataset smaller than one global batch, a model without trainable
            parameters, or a checkpoint written under another configuration or world size.
        FloatingPointError: The loss became NaN or infinite (raised on every rank at the same step).
        RuntimeError: Ranks disagree on the resume step (checkpoint not visible everywhere) or ended with different
            parameters (loss_fn bypassed the DDP wrapper).
    """
    if isinstance(dataset, IterableDataset) or not hasattr(dataset, "__len__"):
        raise ValueError(f"dataset: expected a map-style Dataset with __len__, got {type(dataset).__name__}")
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config: expected a TrainConfig, got {type(config).__name__}")
    device = torch.device(device) if device is not None else _model_device(model)
    _join_process_group(device)
    # Fork the RNG so the reseeding below neither depends on nor leaks into the caller's global RNG state.
    fork_devices = [] if device.type == "cpu" else [device]
    with torch.random.fork_rng(devices=fork_devices, device_type=device.type):
        return _train(
            model,
            loss_fn,
            dataset,
            config,
            device,
            checkpoint,
            progress,
            on_step,
            collate_fn,
            param_groups,
            clip_groups,
            desc,
        )


def _train(
    model: nn.Module,
    loss_fn: LossFn,
    dataset: Dataset[Any],
    config: TrainConfig,
    device: torch.device,
    checkpoint: str | os.PathLike[str] | None,
    progress: bool,
    on_step: StepCallback | None,
    collate_fn: Callable[[list[Any]], Any] | None,
    param_groups: Sequence[Mapping[str, Any]] | None = None,
    clip_groups: Sequence[Sequence[nn.Parameter]] | None = None,
    desc: str = "train",
) -> TrainResult:
    n_ranks, this_rank = world_size(), rank()
    main = this_rank == 0
    collate = collate_fn if collate_fn is not None else torch.utils.data.default_collate

    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model: expected at least one parameter with requires_grad=True, got none")
    optimizer = _make_optimizer(params, config, param_groups)
    clip_sets = _clip_sets(params, clip_groups)

    # DistributedSampler with one replica too: the same permutation code serves both cases, and it needs no group.
    sampler: DistributedSampler[int] = DistributedSampler(
        dataset, num_replicas=n_ranks, rank=this_rank, shuffle=config.shuffle, seed=config.seed, drop_last=True
    )
    batches_per_epoch = len(sampler) // config.batch_size
    if batches_per_epoch == 0:
        raise ValueError(
            f"dataset: expected at least batch_size * world_size = {config.batch_size * n_ranks} samples, "
            f"got {len(dataset)}"  # type: ignore[arg-type]
        )

    path = Path(checkpoint) if checkpoint is not None else None
    start, losses = 0, list[float]()
    if path is not None and path.exists():
        start, losses = _load_checkpoint(path, model, optimizer, config, n_ranks, device)
    if n_ranks > 1:
        highest, lowest = _ranks_agree(float(start), device)
        if highest != lowest:
            raise RuntimeError(
                f"ranks resume from different steps ({lowest:g}..{highest:g}): checkpoint {path} must be on a "
                "filesystem every rank sees"
            )
    if start > 0 and main:
        logger.info("resumed from %s at step %d of %d", path, start, config.steps)

    # Broadcasts rank 0's parameters and buffers, frozen ones included, so ranks start identical.
    net: nn.Module = (
        DistributedDataParallel(
            model, device_ids=None if device.type == "cpu" else [device], find_unused_parameters=False
        )
        if n_ranks > 1
        else model
    )
    bar = tqdm(
        total=config.steps,
        initial=start,
        desc=desc,
        file=sys.stderr,
        disable=not (main and progress_enabled(progress)),  # the one policy (core.progress): a terminal
        dynamic_ncols=True,
    )
    began = time.perf_counter()
    step = saved_at = start
    try:
        while step < config.steps:
            epoch, offset = divmod(step, batches_per_epoch)
            sampler.set_epoch(epoch)
            order = list(sampler)
            for first in range(offset * config.batch_size, batches_per_epoch * config.batch_size, config.batch_size):
                batch = collate([dataset[i] for i in order[first : first + config.batch_size]])
                _seed_rngs(device, derive_seed(config.seed, "train-step", this_rank, step))
                loss = _step(net, clip_sets, optimizer, loss_fn, _to_device(batch, device), config, step)
                if n_ranks > 1:
                    loss = _all_sum(loss) / n_ranks
                value = float(loss)
                if not math.isfinite(value):
                    raise FloatingPointError(f"loss is {value} at step {step}")
                losses.append(value)
                step += 1
                bar.update(1)
                if config.log_every and step % config.log_every == 0:
                    recent = sum(losses[-config.log_every :]) / config.log_every
                    bar.set_postfix(loss=f"{recent:.4g}")
                    if main:
                        logger.info("step %d/%d loss %.6g", step, config.steps, recent)
                if on_step is not None:
                    on_step(step, value)
                if path is not None and main and config.checkpoint_every and step % config.checkpoint_every == 0:
                    _save_checkpoint(path, model, optimizer, config, step, losses, n_ranks)
                    saved_at = step
                if step >= config.steps:
                    break
        seconds = time.perf_counter() - began
        if path is not None:
            if main and (saved_at != step or not path.exists()):
                _save_checkpoint(path, model, optimizer, config, step, losses, n_ranks)
            if n_ranks > 1:
                # When train() returns on any rank the final checkpoint is on disk, so a following call resumes.
                dist.barrier()
        if n_ranks > 1:
            _check_ranks_in_sync(params, device)
    finally:
        bar.close()
    return TrainResult(losses=tuple(losses), seconds=seconds, steps=step, start_step=start, model=model)


def _step(
    net: nn.Module,
    clip_sets: list[list[nn.Parameter]],
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    batch: Any,
    config: TrainConfig,
    step: int,
) -> torch.Tensor:
    rate = learning_rate(config, step)
    for group in optimizer.param_groups:
        group["lr"] = rate * group["lr_scale"]
    optimizer.zero_grad(set_to_none=True)
    loss = loss_fn(net, batch)
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise ValueError(f"loss_fn: expected a scalar tensor, got {shape}")
    loss.backward()
    if config.grad_clip is not None:
        for members in clip_sets:
            torch.nn.utils.clip_grad_norm_(members, config.grad_clip)
    optimizer.step()
    return loss.detach().reshape(())


def _check_ranks_in_sync(params: list[nn.Parameter], device: torch.device) -> None:
    # Calling model.module(...) inside loss_fn skips DDP's gradient averaging without any error; ranks then drift
    # apart silently. One checksum at the end turns that into a loud failure.
    with torch.no_grad():
        checksum = float(torch.stack([p.detach().double().sum() for p in params]).sum())
    highest, lowest = _ranks_agree(checksum, device)
    if abs(highest - lowest) > 1e-9 * max(1.0, abs(highest)):
        raise RuntimeError(
            "ranks ended with different parameters: loss_fn must call the model it is given (the DDP wrapper), "
            "not model.module, so that gradients are averaged across ranks"
        )
