"""Train and evaluate any prompt learner on T tasks with the frozen dual encoder, caching what is frozen.

Per step every task contributes a batch and the loss is the mean over tasks of the task's cross-entropy over its
own classes (MmAP's sum of task losses, scaled by 1/T so the learning rate does not depend on T). Logits are
CLIP's ``exp(logit_scale) * cos(image, text(class))`` with the aligned temperature, unless the learner has its own
``head`` (linear probe).

Caching (exact, never an approximation): the image tower's stages before the learner's first prompted stage run
once per image; when the learner has no text prompts or text-parameter changes, the class-name embeddings of the
fixed prompt are computed once; when it changes nothing on the image side, the image embeddings are computed once.
Tasks sharing a label set and the same text banks share one text forward per step.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from tailorkit.core.progress import bar
from tailorkit.nets.dual_encoder import DualEncoder, to_model_input
from tailorkit.prompts.data import TaskData
from tailorkit.prompts.methods.base import PromptLearner

__all__ = ["Engine", "TrainConfig", "TrainResult"]


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation of a learner (the same for every method in a bench run).

    Attributes:
        steps: Optimiser steps; every step sees ``batch`` images of every task.
        batch: Images per task per step.
        lr: AdamW learning rate (peak; linear warm-up over ``warmup`` steps, then cosine to 0).
        weight_decay: AdamW weight decay.
        warmup: Warm-up steps.
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
    def train(self, learner: PromptLearner, config: TrainConfig, *, seed: int = 0, label: str = "train") -> TrainResult:
        """Train the learner's parameters (the encoder stays frozen) on all tasks jointly."""
        began = time.perf_counter()
        params = [p for p in learner.parameters() if p.requires_grad]
        losses: list[float] = []
        if not params or config.steps == 0:
            return TrainResult(losses, 0.0)
        learner.to(self.encoder.device).train()
        opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
        gen = torch.Generator().manual_seed(seed)

        def lr_at(step: int) -> float:
            if step < config.warmup:
                return (step + 1) / (config.warmup + 1)
            progress = (step - config.warmup) / max(1, config.steps - config.warmup)
            return 0.5 * (1 + math.cos(math.pi * progress))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
        with bar(label, total=config.steps) as progress:
            for _ in range(config.steps):
                per_task = self.task_losses(learner, self.sample(gen, config.batch))
                loss = torch.stack(list(per_task.values())).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                losses.append(float(loss.detach()))
                progress.update(1)
                progress.set_postfix(loss=f"{losses[-1]:.3f}")
        learner.eval()
        return TrainResult(losses, time.perf_counter() - began)

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
