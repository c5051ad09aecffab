"""Train and evaluate any prompt learner on T tasks with the frozen dual encoder, caching what is frozen.

Per step every task contributes a batch and the loss is the mean over tasks of the task's cross-entropy over its
own classes (MmAP's sum of task losses, scaled by 1/T so the learning rate does not depend on T). Logits are
CLIP's ``exp(logit_scale) * cos(image, text(class))`` with the aligned temperature, unless the learner has its own
``head`` (linear probe). Training runs through the project's one loop, :func:`tailorkit.core.train.train` (exact
resume from a checkpoint, torchrun DDP, core's warm-up + cosine schedule).

Caching (exact, never an approximation): the image tower's stages before the learner's first prompted stage run
once per image; when the learner has no text prompts or text-parameter changes, the class-name embeddings of the
fixed prompt are computed once; when it changes nothing on the image side, the image embeddings are computed once.
Tasks sharing a label set and the same text banks share one text forward per step.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from tailorkit.core.train import TrainConfig as CoreTrainConfig
from tailorkit.core.train import train as core_train
from tailorkit.nets.dual_encoder import DualEncoder, to_model_input
from tailorkit.prompts.data import TaskData
from tailorkit.prompts.methods.base import PromptLearner

__all__ = ["Engine", "MultiTaskIndex", "TrainConfig", "TrainResult"]


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation of a learner (the same for every method in a bench run).

    Attributes:
        steps: Optimiser steps; every step sees ``batch`` images of every task.
        batch: Images per task per step.
        lr: AdamW learning rate (peak; linear warm-up over ``warmup`` steps, then cosine to 0: core's
            :func:`~tailorkit.core.train.learning_rate`).
        weight_decay: AdamW weight decay.
        warmup: Warm-up steps (at most ``steps``; more are capped).
    """

    steps: int = 60
    batch: int = 16
    lr: float = 0.01
    weight_decay: float = 0.0
    warmup: int = 5

    def __post_init__(self) -> None:
        if self.steps < 0 or self.batch < 1 or not self.lr > 0 or self.warmup < 0:
            raise ValueError(f"TrainConfig: expected steps >= 0, batch >= 1, lr > 0, warmup >= 0; got {self}")


@dataclass
class TrainResult:
    losses: list[float]
    seconds: float


@dataclass
class _Task:
    name: str
    label_set: str
    class_names: tuple[str, ...]
    x: dict[str, torch.Tensor]
    y: dict[str, torch.Tensor]


class MultiTaskIndex(Dataset[dict[int, int]]):
    """One training sample of every task per item: item i is ``{task: i mod n_task}``.

    Its length is the largest task's training set, so one epoch sees every image of every task (the smaller tasks'
    images about equally often); a batch of items is a batch of every task, as MmAP's joint objective needs.
    """

    def __init__(self, sizes: Sequence[int]) -> None:
        if not sizes or min(sizes) < 1:
            raise ValueError(f"tasks: expected at least one task with at least one training image each, got {sizes}")
        self.sizes = tuple(int(n) for n in sizes)

    def __len__(self) -> int:
        return max(self.sizes)

    def __getitem__(self, i: int) -> dict[int, int]:
        return {t: i % n for t, n in enumerate(self.sizes)}


class _Objective(nn.Module):
    """The learner (a submodule) with the engine beside it: ``forward(batch)`` is the mean task loss.

    core.train calls the module it is given, so under DDP the loss runs through DDP's forward and gradients are
    averaged across ranks; the engine (not a module) and its frozen encoder are not part of the state.
    """

    def __init__(self, engine: Engine, learner: PromptLearner) -> None:
        super().__init__()
        self.engine = engine
        self.learner = learner

    def forward(self, batch: dict[int, torch.Tensor]) -> torch.Tensor:
        per_task = self.engine.task_losses(self.learner, batch)
        return torch.stack(list(per_task.values())).mean()


def _objective_loss(model: nn.Module, batch: dict[int, torch.Tensor]) -> torch.Tensor:
    loss: torch.Tensor = model(batch)
    return loss


class Engine:
    """Holds the encoder, the tasks as model inputs, and the frozen caches.

    Args:
        encoder: The aligned dual encoder (frozen; never modified).
        tasks: Task data (uint8 images), e.g. from :func:`tailorkit.prompts.data.make_tasks`.
        image_size: Side of the tower's input.
    """

    def __init__(self, encoder: DualEncoder, tasks: Sequence[TaskData], image_size: int = 64) -> None:
        self.encoder = encoder.eval()
        dev = encoder.device
        self.tasks = [
            _Task(
                t.name,
                t.label_set,
                t.class_names,
                {s: to_model_input(getattr(t, f"{s}_x"), image_size).to(dev) for s in ("train", "test")},
                {s: torch.as_tensor(getattr(t, f"{s}_y")).to(dev) for s in ("train", "test")},
            )
            for t in tasks
        ]
        self._prefix: dict[tuple[int, str, int], torch.Tensor] = {}
        self._tokens: dict[str, dict[str, torch.Tensor]] = {}
        self._fixed_text: dict[str, torch.Tensor] = {}

    @property
    def n_tasks(self) -> int:
        return len(self.tasks)

    # ---------------------------------------------------------------------------------------------- caches
    @torch.no_grad()
    def prefix(self, task: int, split: str, start: int) -> torch.Tensor:
        key = (task, split, start)
        if key not in self._prefix:
            x = self.tasks[task].x[split]
            self._prefix[key] = torch.cat(
                [self.encoder.image_prefix(x[i : i + 128], start) for i in range(0, len(x), 128)]
            )
        return self._prefix[key]

    def tokens(self, task: int) -> dict[str, torch.Tensor]:
        t = self.tasks[task]
        if t.label_set not in self._tokens:
            self._tokens[t.label_set] = self.encoder.tokenize(list(t.class_names))
        return self._tokens[t.label_set]

    # ---------------------------------------------------------------------------------------------- encoding
    def text_embeddings(self, learner: PromptLearner, tasks: Sequence[int]) -> dict[int, torch.Tensor]:
        """Class-name embeddings per task (K, D), one text forward per distinct (label set, text banks)."""
        out: dict[int, torch.Tensor] = {}
        done: dict[tuple[str, tuple[int, ...]], torch.Tensor] = {}
        for t in tasks:
            label_set = self.tasks[t].label_set
            if not learner.uses_text:
                if label_set not in self._fixed_text:
                    with torch.no_grad():
                        self._fixed_text[label_set] = self.encoder.encode_tokens(self.tokens(t))
                emb = self._fixed_text[label_set]
            else:
                key = (label_set, learner.text_key(t))
                if key not in done:
                    deltas = learner.text_deltas(t)
                    ov = learner.overrides(t, "text")
                    if ov:
                        done[key] = torch.func.functional_call(
                            self.encoder, ov, ("encode_tokens", self.tokens(t), deltas), strict=False
                        )
                    else:
                        done[key] = self.encoder.encode_tokens(self.tokens(t), deltas)
                emb = done[key]
            out[t] = learner.adapt_text(emb, t)
        return out

    def image_embeddings(self, learner: PromptLearner, task: int, split: str, idx: torch.Tensor | None) -> torch.Tensor:
        start = learner.image_start
        prefix = self.prefix(task, split, start)
        if idx is not None:
            prefix = prefix[idx]
        tokens = learner.image_tokens(task)
        maps = {s: learner.image_prompt(tok, *self._stage_hw(task, split, s)) for s, tok in tokens.items()}
        ov = learner.overrides(task, "image")
        if ov:
            z = torch.func.functional_call(self.encoder, ov, ("encode_image_prefix", prefix, start, maps), strict=False)
        else:
            z = self.encoder.encode_image_prefix(prefix, start, maps)
        return learner.adapt_image(z, task)

    def _stage_hw(self, task: int, split: str, stage: int) -> tuple[int, int]:
        shape = self.prefix(task, split, stage).shape
        return int(shape[-2]), int(shape[-1])

    def logits(self, learner: PromptLearner, z: torch.Tensor, text: torch.Tensor, task: int) -> torch.Tensor:
        head = getattr(learner, "head", None)
        if head is not None:
            out: torch.Tensor = head(z, task)
            return out
        return self.encoder.logits(z, text)

    def task_losses(self, learner: PromptLearner, batch: dict[int, torch.Tensor]) -> dict[int, torch.Tensor]:
        """Cross-entropy of every task in ``batch`` (task -> training indices)."""
        text = self.text_embeddings(learner, list(batch))
        out = {}
        for t, idx in batch.items():
            z = self.image_embeddings(learner, t, "train", idx)
            out[t] = F.cross_entropy(self.logits(learner, z, text[t], t), self.tasks[t].y["train"][idx])
        return out

    def sample(self, gen: torch.Generator, batch: int, tasks: Sequence[int] | None = None) -> dict[int, torch.Tensor]:
        out = {}
        for t in tasks if tasks is not None else range(self.n_tasks):
            n = len(self.tasks[t].y["train"])
            out[t] = torch.randperm(n, generator=gen)[: min(batch, n)].to(self.encoder.device)
        return out

    # ---------------------------------------------------------------------------------------------- loops
    def train(
        self,
        learner: PromptLearner,
        config: TrainConfig,
        *,
        seed: int = 0,
        checkpoint: str | os.PathLike[str] | None = None,
        checkpoint_every: int = 0,
        progress: bool | None = None,
        on_step: Callable[[int, float], None] | None = None,
    ) -> TrainResult:
        """Train the learner's parameters (the encoder stays frozen) on all tasks jointly, through core.train.

        Every step takes ``config.batch`` training images of every task (:class:`MultiTaskIndex`: epochs of a
        permutation seeded by ``seed``, the last incomplete batch dropped) and steps AdamW on the mean task loss
        with core's warm-up + cosine schedule. A ``checkpoint`` file is resumed from when it exists and written at
        the end (every ``checkpoint_every`` steps in between), so an interrupted run continues exactly; the same call
        runs under torchrun (DDP). ``on_step(step, loss)`` is called after every step.
        """
        began = time.perf_counter()
        params = [p for p in learner.parameters() if p.requires_grad]
        if not params or config.steps == 0:
            return TrainResult([], 0.0)
        dataset = MultiTaskIndex([len(t.y["train"]) for t in self.tasks])
        core = CoreTrainConfig(
            steps=config.steps,
            lr=config.lr,
            weight_decay=config.weight_decay,
            batch_size=min(config.batch, len(dataset)),  # fewer images than a batch: the whole set each step
            schedule="cosine",
            warmup_steps=min(config.warmup, config.steps),
            checkpoint_every=checkpoint_every,
            log_every=0,
            seed=seed,
        )
        objective = _Objective(self, learner).train()
        try:
            out = core_train(
                objective,
                _objective_loss,
                dataset,
                core,
                device=self.encoder.device,
                checkpoint=checkpoint,
                progress=progress is not False,  # None or True: core.progress's policy
                on_step=on_step,
            )
        finally:
            learner.eval()
        return TrainResult(list(out.losses), time.perf_counter() - began)

    @torch.no_grad()
    def evaluate(self, learner: PromptLearner, split: str = "test", batch: int = 256) -> dict[str, float]:
        """Top-1 accuracy per task name, plus "mean"."""
        learner.eval()
        text = self.text_embeddings(learner, range(self.n_tasks))
        acc = {}
        for t, task in enumerate(self.tasks):
            n = len(task.y[split])
            preds = []
            for i in range(0, n, batch):
                idx = torch.arange(i, min(n, i + batch), device=self.encoder.device)
                z = self.image_embeddings(learner, t, split, idx)
                preds.append(self.logits(learner, z, text[t], t).argmax(1))
            acc[task.name] = float((torch.cat(preds) == task.y[split]).float().mean())
        acc["mean"] = sum(acc.values()) / len(self.tasks)
        return acc
