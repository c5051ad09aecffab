"""The active-learning loop a user drives with their own labelling step: propose -> label -> update -> ...

    learner = ActiveLearner(pool, backbone, SelectConfig(strategy="tesla"), TuneConfig(), seed=0, state="st.json")
    ids = learner.propose(9)            # round 1: label-free (TESLA stage one)
    learner.update({i: mask_of(i) for i in ids})
    ids = learner.propose(9)            # round 2: tunes the K prompt sets on the labels, uncertainty + clusters
    ...
    model = learner.fit()               # final SLPT model on every label

State is saved after every propose and update (atomically): STATE.json holds the settings, the pool's ids, the
labelled and pending ids and a record of every selection (round, stage, ids, scores, seconds); the masks go to
STATE.labels.npz. `ActiveLearner.resume(state, pool, backbone)` continues from the files; warm rounds re-train the
selection model from the saved labels with a seed derived from (seed, round), so a resumed run proposes exactly
what an uninterrupted one would.

Randomness: the round-r stream is numpy_generator(seed, "round", r), shared by all strategies, so the random warm
starts of the baselines are identical (paired) across arms at a given seed.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from tailorkit.active.backbone import encoder_features
from tailorkit.active.config import SelectConfig, TuneConfig
from tailorkit.active.data import SegSet
from tailorkit.active.methods import SegModel, make_strategy, make_tuner
from tailorkit.active.methods.base import SelectionContext
from tailorkit.active.tuning import tune
from tailorkit.core.config import from_dict
from tailorkit.core.results import write_bytes_atomic, write_json_atomic
from tailorkit.core.seeding import derive_seed, numpy_generator
from tailorkit.nets.unet import UNet

__all__ = ["ActiveLearner", "LoopStateError"]

STATE_VERSION = 1


class LoopStateError(ValueError):
    """A state file that does not match the pool or the loop's protocol; the message says what was expected."""


class ActiveLearner:
    """Pool-based selective labelling with a registered strategy and a prompt-tuned selection model.

    Args:
        pool: The unlabelled pool (its masks are ignored: labels come only through `update`).
        backbone: The frozen, pretrained U-Net.
        select: Selection settings (strategy, budget split, uncertainty).
        tune: Settings of the selection model (and of `fit`): by default the SLPT tuner.
        seed: Seed of every random choice and of the selection model's training.
        state: Path of the JSON state file (None: in memory only).
        model_cache: Optional dict shared between learners: selection models keyed by (labelled ids, seed, tuner),
            so arms with identical labels (the paired warm starts) train one model.
    """

    def __init__(
        self,
        pool: SegSet,
        backbone: UNet,
        select: SelectConfig | None = None,
        tune: TuneConfig | None = None,
        seed: int = 0,
        state: str | Path | None = None,
        model_cache: dict[Any, SegModel] | None = None,
    ) -> None:
        self.pool = pool
        self.backbone = backbone.eval()
        self.select = select or SelectConfig()
        self.tune_config = tune or TuneConfig()
        self.seed = seed
        self.state_path = Path(state) if state is not None else None
        self.strategy = make_strategy(self.select.strategy)
        self.features = encoder_features(backbone, pool.images)
        self.index = {item: i for i, item in enumerate(pool.ids)}
        self.labels: dict[str, np.ndarray] = {}
        self.pending: list[str] = []
        self.history: list[dict[str, Any]] = []
        self.model_cache = model_cache if model_cache is not None else {}

    # -- the loop -------------------------------------------------------------------------------------------------
    @property
    def round(self) -> int:
        return len(self.history)

    @property
    def labelled_ids(self) -> list[str]:
        return list(self.labels)

    def propose(self, budget: int) -> list[str]:
        """Choose `budget` pool ids to label next (label-free when nothing is labelled yet)."""
        if self.pending:
            raise LoopStateError(f"propose: {len(self.pending)} proposed ids still unlabelled; call update() first")
        available = len(self.pool) - len(self.labels)
        if not isinstance(budget, int) or not 1 <= budget <= available:
            raise ValueError(f"budget: expected an int in 1..{available} (unlabelled pool items), got {budget!r}")
        began = time.perf_counter()
        r = self.round
        labelled = [self.index[i] for i in self.labels]
        ctx = SelectionContext(
            images=self.pool.images,
            features=self.features,
            labelled=labelled,
            rng=numpy_generator(self.seed, "round", r),
            config=self.select,
            selection_model=lambda: self.selection_model(r),
        )
        stage = "warm" if labelled else "cold"
        picks = self.strategy.warm(ctx, budget) if labelled else self.strategy.cold(ctx, budget)
        if len(set(picks)) != budget or set(picks) & set(labelled):
            raise RuntimeError(f"strategy {self.select.strategy!r} returned {picks}: not {budget} new unique items")
        ids = [self.pool.ids[i] for i in picks]
        record: dict[str, Any] = {"round": r, "stage": stage, "strategy": self.select.strategy, "ids": ids}
        if "scores" in ctx.info:
            cand = ctx.unlabelled()
            by_index = dict(zip(cand.tolist(), ctx.info["scores"], strict=True))
            record["scores"] = [round(float(by_index[i]), 6) for i in picks]
        record["seconds"] = round(time.perf_counter() - began, 3)
        self.history.append(record)
        self.pending = ids
        self.save()
        return ids

    def update(self, labels: Mapping[str, np.ndarray]) -> None:
        """Add masks for proposed ids (binary arrays of the pool's image shape)."""
        shape = self.pool.images.shape[2:]
        for item, mask in labels.items():
            if item not in self.index:
                raise KeyError(f"update: {item!r} is not a pool id")
            m = np.asarray(mask)
            if m.shape != shape:
                raise ValueError(f"update: mask for {item!r} has shape {m.shape}, expected {shape}")
            if not np.isin(m, (0, 1)).all():
                raise ValueError(f"update: mask for {item!r} must be binary (0/1), got values {np.unique(m)[:5]}")
            self.labels[item] = m.astype(np.uint8)
        self.pending = [i for i in self.pending if i not in self.labels]
        self.save()

    def labelled_set(self) -> SegSet:
        idx = [self.index[i] for i in self.labels]
        return SegSet(self.pool.images[idx], np.stack([self.labels[i] for i in self.labels]), list(self.labels))

    def selection_model(self, r: int) -> SegModel:
        """The tuner trained on the current labels (cached by labelled ids, seed and settings)."""
        key = (tuple(sorted(self.labels)), self.seed, r, repr(self.tune_config))
        if key not in self.model_cache:
            data = self.labelled_set()
            model = make_tuner(self.backbone, self.tune_config, derive_seed(self.seed, "select-init", r))
            tune(model, data.images, data.masks, self.tune_config, derive_seed(self.seed, "select-train", r))
            self.model_cache[key] = model
        return self.model_cache[key]

    def fit(
        self,
        tune_config: TuneConfig | None = None,
        seed: int | None = None,
        *,
        checkpoint: str | Path | None = None,
        checkpoint_every: int = 0,
    ) -> SegModel:
        """Train a final model (default: the loop's tuner) on every label so far.

        `checkpoint` is core.train's resume file (written every `checkpoint_every` steps and at the end): an
        interrupted fit called again with it continues exactly.
        """
        config = tune_config or self.tune_config
        s = self.seed if seed is None else seed
        data = self.labelled_set()
        model = make_tuner(self.backbone, config, derive_seed(s, "final-init"))
        tune(
            model, data.images, data.masks, config, derive_seed(s, "final-train"),
            checkpoint=checkpoint, checkpoint_every=checkpoint_every,
        )  # fmt: skip
        return model

    # -- state ----------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "seed": self.seed,
            "select": asdict(self.select),
            "tune": asdict(self.tune_config),
            "pool_size": len(self.pool),
            "image_shape": list(self.pool.images.shape[2:]),
            "labelled": list(self.labels),
            "pending": list(self.pending),
            "history": self.history,
        }

    def save(self) -> None:
        if self.state_path is None:
            return
        buffer = io.BytesIO()
        arrays: dict[str, Any] = {f"m{i}": self.labels[k] for i, k in enumerate(self.labels)}
        np.savez_compressed(buffer, **arrays)
        write_bytes_atomic(self._labels_path(self.state_path), buffer.getvalue())
        write_json_atomic(self.state_path, self.state_dict())

    @staticmethod
    def _labels_path(state: Path) -> Path:
        return state.with_name(state.name.removesuffix(".json") + ".labels.npz")

    @classmethod
    def resume(
        cls, state: str | Path, pool: SegSet, backbone: UNet, model_cache: dict[Any, SegModel] | None = None
    ) -> ActiveLearner:
        """Continue a loop from its state file (and its .labels.npz beside it)."""
        path = Path(state)
        try:
            doc = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise LoopStateError(f"{path}: expected a JSON state file written by ActiveLearner ({err})") from err
        need = ("version", "seed", "select", "tune", "labelled", "pending", "history", "image_shape")
        missing = [k for k in need if not isinstance(doc, dict) or k not in doc]
        if missing or doc.get("version") != STATE_VERSION:
            raise LoopStateError(
                f"{path}: expected an ActiveLearner state (version {STATE_VERSION}); missing {missing}"
            )
        if list(doc["image_shape"]) != list(pool.images.shape[2:]):
            raise LoopStateError(
                f"{path}: state images {doc['image_shape']}, pool images {list(pool.images.shape[2:])}"
            )
        unknown = [i for i in doc["labelled"] + doc["pending"] if i not in set(pool.ids)]
        if unknown:
            raise LoopStateError(f"{path}: ids {unknown[:3]} are not in the pool (expected the same pool as before)")
        learner = cls(
            pool,
            backbone,
            from_dict(SelectConfig, doc["select"]),
            from_dict(TuneConfig, doc["tune"]),
            seed=int(doc["seed"]),
            state=path,
            model_cache=model_cache,
        )
        with np.load(cls._labels_path(path)) as masks:
            if len(masks.files) != len(doc["labelled"]):
                raise LoopStateError(f"{path}: {len(doc['labelled'])} labelled ids but {len(masks.files)} saved masks")
            learner.labels = {k: masks[f"m{i}"] for i, k in enumerate(doc["labelled"])}
        learner.pending = list(doc["pending"])
        learner.history = list(doc["history"])
        return learner
