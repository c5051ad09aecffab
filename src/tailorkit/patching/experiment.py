"""The forgetting experiment of `tailorkit bench patching` (docs/patching.md#the-benchmark-tailorkit-bench-patching).

MiniLM-L6 (all-MiniLM-L6-v2, real pretrained weights) stands for the MLLM. Its original abilities are the zero-shot
similarity benchmarks it was trained for: Lee document similarity (Pearson over 1,225 pairs, 256 tokens), WordSim-353
and SimLex-999 (Spearman; each word embedded alone). The new task is Pang & Lee polarity (gensim's 200 sentences,
seeded stratified 100/100 splits), scored as prototype classification in the model's own output space: cosine to
the pretrained embeddings of "a negative movie review" / "a positive movie review" (fixed: no new parameters, as an
MLLM answers in its own output space). Fine-tuning: cross-entropy on cos / tau, the last 3 of 6 layers (every
parameter of those layers; embeddings and layers 0-2 frozen), AdamW, constant learning rate, via core.train.

Speed-up that changes no number: layers below the first fine-tuned layer are identical in every model of the
experiment (checked before use), so their outputs on the evaluation texts are computed once with the pretrained
model and only the upper layers run per method (`SuffixEvaluator`).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tailorkit.core.seeding import numpy_generator
from tailorkit.nets.text import SentenceEncoder, mean_pool

__all__ = ["FinetuneSettings", "SuffixEvaluator", "finetune_last_layers", "polarity_split", "prototype_accuracy"]

PROTOTYPES = ("a negative movie review", "a positive movie review")


def polarity_split(
    labels: np.ndarray, seed: int, split: int, n_train_per_class: int = 50
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified split: (train indices, test indices), n_train_per_class of each label in train."""
    rng = numpy_generator(seed, "patching", "split", split)
    train, test = [], []
    for label in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == label))
        train.extend(idx[:n_train_per_class].tolist())
        test.extend(idx[n_train_per_class:].tolist())
    return np.array(sorted(train)), np.array(sorted(test))


@dataclass(frozen=True)
class FinetuneSettings:
    layers: int = 3
    epochs: int = 8
    lr: float = 1e-4
    batch_size: int = 16
    temperature: float = 0.05
    max_length: int = 64


def _encode_with_grad(
    encoder: SentenceEncoder, model: nn.Module, texts: Sequence[str], max_length: int
) -> torch.Tensor:
    batch = encoder.tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    out = model(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], token_type_ids=batch.get("token_type_ids")
    )
    hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
    return F.normalize(mean_pool(hidden, batch["attention_mask"]), dim=-1)


def finetune_last_layers(
    encoder: SentenceEncoder,
    texts: Sequence[str],
    labels: np.ndarray,
    prototypes: torch.Tensor,
    settings: FinetuneSettings,
    seed: int,
) -> nn.Module:
    """A fine-tuned copy of encoder.model: cross-entropy of cos(emb, prototypes) / T, last `layers` layers trained."""
    from tailorkit.core.train import TrainConfig, train

    model = copy.deepcopy(encoder.model)
    n_layers = len(_layers(model))
    trainable = {f"encoder.layer.{i}." for i in range(n_layers - settings.layers, n_layers)}
    for name, p in model.named_parameters():
        p.requires_grad_(any(name.startswith(t) for t in trainable))
    model.train()
    data = list(zip(texts, labels.tolist(), strict=True))
    steps = settings.epochs * (len(data) // settings.batch_size)
    protos = prototypes.detach()

    def loss_fn(m: nn.Module, batch: list[tuple[str, int]]) -> torch.Tensor:
        emb = _encode_with_grad(encoder, m, [t for t, _ in batch], settings.max_length)
        logits = emb @ protos.t() / settings.temperature
        return F.cross_entropy(logits, torch.tensor([y for _, y in batch]))

    config = TrainConfig(steps=steps, lr=settings.lr, batch_size=settings.batch_size, seed=seed, log_every=0)
    train(model, loss_fn, data, config, collate_fn=lambda items: items, progress=False)  # type: ignore[arg-type]
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def prototype_accuracy(emb: torch.Tensor, prototypes: torch.Tensor, labels: np.ndarray) -> float:
    pred = (emb @ prototypes.t()).argmax(1).cpu().numpy()
    return float((pred == labels).mean())


class SuffixEvaluator:
    """Sentence embeddings of fixed text sets, running only layers >= `first` per model (lower layers cached)."""

    def __init__(
        self, encoder: SentenceEncoder, sets: dict[str, tuple[list[str], int]], first: int, batch_size: int = 64
    ) -> None:
        self.pre_model = encoder.model
        self.first = first
        self.cache: dict[str, list[tuple[torch.Tensor, tuple, dict[str, Any], torch.Tensor, list[int]]]] = {}
        layer = _layers(encoder.model)[first]
        captured: dict[str, Any] = {}

        def grab(_m: nn.Module, args: tuple, kwargs: dict) -> None:
            captured["h"] = args[0] if args else kwargs["hidden_states"]
            captured["args"] = tuple(args[1:])
            captured["kw"] = {k: v for k, v in kwargs.items() if k != "hidden_states"}
            raise _Stop

        for key, (texts, max_length) in sets.items():
            order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
            chunks = []
            handle = layer.register_forward_pre_hook(grab, with_kwargs=True)
            try:
                with torch.no_grad():
                    for s in range(0, len(order), batch_size):
                        ids = order[s : s + batch_size]
                        batch = encoder.tokenizer(
                            [texts[i] for i in ids],
                            padding=True,
                            truncation=True,
                            max_length=max_length,
                            return_tensors="pt",
                        )
                        with contextlib.suppress(_Stop):
                            encoder.model(**batch)
                        chunks.append(
                            (
                                captured["h"].clone(),
                                captured["args"],
                                dict(captured["kw"]),
                                batch["attention_mask"],
                                ids,
                            )
                        )
            finally:
                handle.remove()
            self.cache[key] = chunks
        self._prefix = {k: v.detach().clone() for k, v in self._prefix_params(encoder.model).items()}

    def _prefix_params(self, model: nn.Module) -> dict[str, torch.Tensor]:
        keep = ("embeddings.", *(f"encoder.layer.{i}." for i in range(self.first)))
        return {k: v for k, v in model.state_dict().items() if k.startswith(keep)}

    def embed(self, model: nn.Module, key: str) -> torch.Tensor:
        """Unit-norm mean-pooled embeddings of set `key`, in input order."""
        for name, value in self._prefix_params(model).items():
            if not torch.equal(value, self._prefix[name]):
                raise ValueError(f"SuffixEvaluator: {name} differs from the pretrained model; the cache does not apply")
        outs: dict[int, torch.Tensor] = {}
        layers = list(_layers(model))[self.first :]
        with torch.no_grad():
            for h, args, kw, mask, ids in self.cache[key]:
                x = h
                for layer in layers:
                    y = layer(x, *args, **kw)
                    x = y[0] if isinstance(y, tuple) else y
                emb = F.normalize(mean_pool(x, mask), dim=-1)
                for j, i in enumerate(ids):
                    outs[i] = emb[j]
        return torch.stack([outs[i] for i in range(len(outs))])


class _Stop(Exception):
    pass


def _layers(model: nn.Module) -> nn.ModuleList:
    """The transformer blocks of a BERT-style model (`model.encoder.layer`)."""
    layers = model.get_submodule("encoder.layer")
    if not isinstance(layers, nn.ModuleList):
        raise TypeError(f"expected a BERT-style model with encoder.layer, got {type(model).__name__}")
    return layers
