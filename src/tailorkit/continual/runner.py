"""The phase runner: self-supervised class-incremental training with per-phase evaluation, checkpoints and resume.

For each phase t = 0..T-1 the runner (1) asks the strategy which classes' unlabelled images to train on, (2) lets it
build its extras (`begin_phase`), (3) trains student + SSL head + extras with the project's loop (`core.train`:
single process or DDP under torchrun, exact checkpoint/resume), (4) collects the carried state (`end_phase`) and
(5) evaluates the encoder on all classes seen so far with a linear probe and kNN. After each phase it writes
`phase<t>.pt` into the run folder; a rerun with the same folder and settings skips finished phases and resumes a
phase that was interrupted from `core.train`'s checkpoint, so a resumed run reproduces the uninterrupted metrics.

SSL training never sees labels: the training dataset holds images only (`Benchmark.unlabelled`). Labels are used
only by the evaluation probe, on the labelled training images of seen classes (the offline-probe protocol).
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from tailorkit.continual.config import RunConfig
from tailorkit.continual.data import Benchmark, make_benchmark
from tailorkit.continual.evaluation import (
    average_incremental_accuracy,
    extract_features,
    final_accuracy,
    forgetting,
    knn_predict,
    linear_probe,
)
from tailorkit.continual.losses import SSLLoss, make_ssl_loss
from tailorkit.continual.methods.base import Extras, PhaseContext, StepOutputs, Strategy, make_strategy
from tailorkit.continual.nets import Student, augment, frozen_copy
from tailorkit.core.config import to_dict
from tailorkit.core.progress import status
from tailorkit.core.results import atomic_open
from tailorkit.core.seeding import derive_seed
from tailorkit.core.train import TrainConfig, is_main_process, train

__all__ = ["PhaseModel", "RunResult", "evaluate_phase", "load_phase_checkpoint", "run_continual"]

_FORMAT = "tailorkit.continual/1"


class _Images(Dataset[torch.Tensor]):
    """Images only: what SSL training is allowed to see."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.images[index]


class PhaseModel(nn.Module):
    """Student + SSL head + strategy extras behind one `forward(images) -> loss`, so DDP syncs every gradient.

    Frozen teachers (modules flagged by `nets.frozen_copy`) stay in eval mode whatever mode the wrapper is put in.
    """

    def __init__(self, student: Student, ssl: SSLLoss, extras: nn.Module, strategy: Strategy) -> None:
        super().__init__()
        self.student, self.ssl, self.extras = student, ssl, extras
        self.strategy = strategy

    def train(self, mode: bool = True) -> PhaseModel:
        super().train(mode)
        for module in self.modules():
            if getattr(module, "is_frozen_teacher", False):
                module.eval()
        return self

    def step_outputs(self, images: torch.Tensor) -> StepOutputs:
        views = (augment(images), augment(images))
        h, z = self.student(torch.cat(views))
        b = images.shape[0]
        return StepOutputs(views, (h[:b], h[b:]), (z[:b], z[b:]), self.ssl)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out = self.step_outputs(images)
        loss = self.ssl(self.student, out.views, out.z)
        for term in self.strategy.terms(self.extras, out).values():
            loss = loss + term
        return loss


@dataclass
class RunResult:
    """Accuracy matrices (row t: after phase t, column j: phase j's classes) and per-phase seen-class accuracy."""

    strategy: str
    linear: list[list[float]] = field(default_factory=list)
    knn: list[list[float]] = field(default_factory=list)
    seen_linear: list[float] = field(default_factory=list)
    seen_knn: list[float] = field(default_factory=list)
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    student: Student | None = field(default=None, repr=False)

    def metrics(self) -> dict[str, float]:
        """Named metrics: final accuracy, AIA and forgetting for the linear probe and kNN, and training time."""
        out = {}
        for name, matrix, seen in (("linear", self.linear, self.seen_linear), ("knn", self.knn, self.seen_knn)):
            out[f"final_acc_{name}"] = final_accuracy(seen)
            out[f"aia_{name}"] = average_incremental_accuracy(seen)
            out[f"forgetting_{name}"] = forgetting(matrix)
        out["train_seconds"] = self.train_seconds
        return out


def evaluate_phase(student: Student, bench: Benchmark, phase: int, config: RunConfig) -> dict[str, Any]:
    """Linear probe and kNN on all classes seen after `phase`: per-phase accuracies and the all-seen accuracy."""
    seen = bench.seen(phase)
    probe = bench.train.subset(seen, config.data.probe_per_class)
    test = bench.test.subset(seen)
    f_train = extract_features(student.encoder, probe.images)
    f_test = extract_features(student.encoder, test.images)
    preds = {
        "linear": linear_probe(f_train, probe.labels, f_test, config.eval.probe_l2, config.eval.probe_iters),
        "knn": knn_predict(f_train, probe.labels, f_test, config.eval.knn_k, config.eval.knn_temperature),
    }
    result: dict[str, Any] = {}
    for name, pred in preds.items():
        correct = (pred == test.labels).float()
        per_phase = []
        for classes in bench.phases[: phase + 1]:
            mask = torch.isin(test.labels, torch.tensor(classes))
            per_phase.append(float(correct[mask].mean()))
        result[name] = per_phase
        result[f"seen_{name}"] = float(correct.mean())
    return result


def _phase_path(out_dir: Path | None, name: str) -> Path | None:
    return None if out_dir is None else out_dir / name


def load_phase_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a `phase<t>.pt` file (weights_only: tensors, numbers, strings, lists, dicts)."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        raise ValueError(f"{path}: expected a {_FORMAT} phase checkpoint written by tailorkit continual run")
    return payload


def _forked(seed: int, fn: Callable[[], Any]) -> Any:
    """Run fn with the global CPU RNG forked and seeded (module initialisation draws from it)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return fn()


def run_continual(
    config: RunConfig,
    *,
    out_dir: str | os.PathLike[str] | None = None,
    device: torch.device | str = "cpu",
    benchmark: Benchmark | None = None,
    stop_after_phase: int | None = None,
    progress: bool = False,
    verbose: bool = True,
) -> RunResult:
    """Run every phase of `config` (or up to `stop_after_phase`) and return the evaluation after each phase.

    Args:
        config: The run's settings.
        out_dir: Run folder for per-phase checkpoints (`phase<t>.pt`) and mid-phase training checkpoints; an existing
            folder written under the same settings is resumed. None keeps everything in memory.
        device: Where to train and extract features.
        benchmark: A prebuilt benchmark (must equal `make_benchmark(config.data, config.seed, config.order)`); saves
            rendering it again when several strategies share it.
        stop_after_phase: Stop after this 0-based phase (to test resume, or to split a run).
        progress: Show `core.train`'s progress bars.
        verbose: Print one status line per phase (seen-class accuracies) on stderr.
    """
    dev = torch.device(device)
    bench = benchmark if benchmark is not None else make_benchmark(config.data, config.seed, config.order)
    strategy = make_strategy(config)
    folder = Path(out_dir) if out_dir is not None else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    settings = to_dict(config)
    base = derive_seed(config.seed, "order", config.order)

    def build() -> tuple[Student, SSLLoss]:
        student = Student(bench.channels, config.model)
        return student, make_ssl_loss(config.ssl, config.model, student)

    student, ssl = _forked(derive_seed(config.seed, "init"), build)  # same init for every strategy and order
    student.to(dev)
    ssl.to(dev)
    result = RunResult(strategy.name, student=student)
    carry: dict[str, torch.Tensor] = {}
    last = len(bench.phases) - 1 if stop_after_phase is None else min(stop_after_phase, len(bench.phases) - 1)
    for t in range(last + 1):
        ckpt = _phase_path(folder, f"phase{t}.pt")
        if ckpt is not None and ckpt.exists():
            payload = load_phase_checkpoint(ckpt)
            if payload["config"] != settings:
                raise ValueError(f"{ckpt} was written under different settings; use a new run folder")
            student.load_state_dict(payload["student"])
            ssl.load_state_dict(payload["ssl"])
            carry = dict(payload["carry"])
            _record(result, payload["metrics"])
            result.train_seconds, result.eval_seconds = payload["train_seconds"], payload["eval_seconds"]
            continue
        if strategy.trains:
            began = time.perf_counter()
            carry = _train_phase(config, strategy, bench, student, ssl, t, carry, base, folder, dev, progress)
            result.train_seconds += time.perf_counter() - began
        began = time.perf_counter()
        metrics = evaluate_phase(student, bench, t, config)
        result.eval_seconds += time.perf_counter() - began
        _record(result, metrics)
        if verbose and is_main_process():
            status(
                f"continual {strategy.name} order {config.order} phase {t + 1}/{len(bench.phases)}: "
                f"seen-class accuracy linear {metrics['seen_linear']:.3f}, kNN {metrics['seen_knn']:.3f}"
            )
        if ckpt is not None and is_main_process():
            payload = {
                "format": _FORMAT,
                "phase": t,
                "config": settings,
                "student": student.state_dict(),
                "ssl": ssl.state_dict(),
                "carry": carry,
                "metrics": metrics,
                "train_seconds": result.train_seconds,
                "eval_seconds": result.eval_seconds,
            }
            with atomic_open(ckpt) as handle:
                torch.save(payload, handle)
    return result


def _record(result: RunResult, metrics: dict[str, Any]) -> None:
    result.linear.append([float(x) for x in metrics["linear"]])
    result.knn.append([float(x) for x in metrics["knn"]])
    result.seen_linear.append(float(metrics["seen_linear"]))
    result.seen_knn.append(float(metrics["seen_knn"]))


def _train_config(config: RunConfig, steps: int, seed: int) -> TrainConfig:
    o = config.optim
    return TrainConfig(
        steps=steps,
        lr=o.lr,
        weight_decay=o.weight_decay,
        batch_size=o.batch_size,
        seed=seed,
        optimizer="adamw",
        schedule=o.schedule,
        warmup_steps=min(o.warmup_steps, steps),
        log_every=0,
        checkpoint_every=50,
    )


def _train_phase(
    config: RunConfig,
    strategy: Strategy,
    bench: Benchmark,
    student: Student,
    ssl: SSLLoss,
    t: int,
    carry: dict[str, torch.Tensor],
    base: int,
    folder: Path | None,
    device: torch.device,
    progress: bool,
) -> dict[str, torch.Tensor]:
    data = bench.unlabelled(strategy.train_classes(bench.phases, t))
    if data.shape[0] < config.optim.batch_size:
        raise ValueError(f"phase {t}: {data.shape[0]} training images, fewer than batch_size={config.optim.batch_size}")

    def pretrain(module: Student, steps: int, name: str) -> Student:
        clone = copy.deepcopy(module)
        head = _forked(
            derive_seed(base, "phase", t, name, "init"), lambda: make_ssl_loss(config.ssl, config.model, clone)
        )
        wrapper = PhaseModel(clone, head.to(device), Extras(), Strategy(config)).train()
        train(
            wrapper,
            _loss,
            _Images(data),
            _train_config(config, steps, derive_seed(base, "phase", t, name)),
            device=device,
            checkpoint=_phase_path(folder, f"phase{t}_{name}.train.pt"),
            progress=progress,
        )
        return clone

    previous = frozen_copy(student) if t > 0 else None
    ctx = PhaseContext(
        phase=t,
        phases=len(bench.phases),
        config=config,
        student=student,
        previous=previous,
        data=data,
        carry=carry,
        pretrain=pretrain,
        seed=derive_seed(base, "phase", t, "strategy"),
    )
    extras = _forked(derive_seed(base, "phase", t, "begin"), lambda: strategy.begin_phase(ctx))
    model = PhaseModel(student, ssl, extras.to(device), strategy).train()
    train(
        model,
        _loss,
        _Images(data),
        _train_config(config, config.optim.steps_per_phase, derive_seed(base, "phase", t)),
        device=device,
        checkpoint=_phase_path(folder, f"phase{t}.train.pt"),
        progress=progress,
    )
    return strategy.end_phase(extras, carry)


def _loss(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    return model(batch)
