"""`tailorkit video train` / `eval` as library calls: one arm on one dataset, saved with its settings.

A run folder holds ``config.yaml`` (the full settings), ``model.safetensors`` (the arm's trainable tensors and a
manifest; tailorkit.video.api) and ``metrics.json`` (test accuracy, trainable parameters, final loss).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from tailorkit.core.config import save_config
from tailorkit.core.results import write_json_atomic
from tailorkit.core.seeding import derive_seed
from tailorkit.video.api import load_model, save_model
from tailorkit.video.config import TrainRunConfig
from tailorkit.video.features import FeatureCache
from tailorkit.video.methods import make_model
from tailorkit.video.train import evaluate, fit

__all__ = ["evaluate_run", "load_split", "train_run"]


def load_split(config: TrainRunConfig, split: str, encoder: Any, manifest: Any, prefix: bool) -> tuple[Any, Any, Any]:
    """(features, labels, class names) of the config's ``train`` or ``test`` split."""
    data = config.data
    stage = 6 if prefix else None
    cache = FeatureCache(config.cache_dir or None)
    if data.kind == "shapes":
        from tailorkit.video.data import shapes_features

        per_class = data.train_per_class if split == "train" else data.test_per_class
        return shapes_features(
            encoder,
            manifest,
            data,
            data.shapes.base_shapes,
            per_class,
            split,
            config.seed,
            prefix_stage=stage,
            cache=cache,
        )
    from tailorkit.video.data import folder_features

    name = data.train_split if split == "train" else data.test_split
    return folder_features(encoder, manifest, data, name, prefix_stage=stage, cache=cache)


def train_run(
    config: TrainRunConfig,
    out: str | Path,
    *,
    progress: bool | None = None,
    checkpoint: str | Path | None = None,
    checkpoint_every: int = 0,
) -> dict[str, Any]:
    """Train the configured arm, evaluate it on the test split, write the run folder; return the metrics.

    `checkpoint` is the fit's core.train resume file (written every `checkpoint_every` steps and at the end), so
    rerunning an interrupted call with the same file continues it exactly.
    """
    from tailorkit.video.api import cached_encoder
    from tailorkit.video.bench import few_shot_index

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_config(config, out / "config.yaml")
    encoder, manifest = cached_encoder()
    options = {"dynamic": config.dynamic} if config.dynamic else {}
    torch.manual_seed(derive_seed(config.seed, "video-init", config.method))
    model = make_model(config.method, encoder, config.data.frames, **options)
    prefix = model.spec.finetune_top
    train, ytr, names = load_split(config, "train", encoder, manifest, prefix)
    if config.shots:
        idx = few_shot_index(ytr, config.shots, config.seed)
        train, ytr = {k: v[idx] for k, v in train.items()}, ytr[idx]
    began = time.perf_counter()
    fit_seed = derive_seed(config.seed, "video-batches")
    result = fit(
        model, train, ytr, names, config.optim, seed=fit_seed, progress=progress,
        checkpoint=checkpoint, checkpoint_every=checkpoint_every,
    )  # fmt: skip
    test, yte, test_names = load_split(config, "test", encoder, manifest, prefix)
    if list(test_names) != list(names):
        raise ValueError(f"the test split's classes {test_names} differ from the training classes {names}")
    metrics = {
        "method": config.method,
        "accuracy": evaluate(model, test, yte, names),
        "train_accuracy": evaluate(model, train, ytr, names),
        "trainable_params": model.trainable_count(),
        "final_loss": result.final_loss,
        "train_seconds": time.perf_counter() - began,
        "n_train": len(ytr),
        "n_test": len(yte),
        "classes": list(names),
    }
    save_model(model, out / "model.safetensors", config.method, {"classes": list(names)})
    write_json_atomic(out / "metrics.json", metrics)
    return metrics


def evaluate_run(run_dir: str | Path) -> dict[str, Any]:
    """Re-evaluate a run folder's saved model on its config's test split."""
    from tailorkit.core.config import load_config
    from tailorkit.video.api import cached_encoder

    run = Path(run_dir)
    if not (run / "config.yaml").is_file() or not (run / "model.safetensors").is_file():
        raise ValueError(f"{run}: expected a run folder with config.yaml and model.safetensors (tailorkit video train)")
    config = load_config(TrainRunConfig, run / "config.yaml")
    encoder, manifest = cached_encoder()
    model, info = load_model(run / "model.safetensors", encoder)
    test, yte, names = load_split(config, "test", encoder, manifest, model.spec.finetune_top)
    return {"method": info["method"], "accuracy": evaluate(model, test, yte, names), "n_test": len(yte)}
