"""Trained parts of SAME++ and their cache: the SAM embedding (anatomy) and the deformation network.

Both are cached under `$TAILORKIT_HOME/registration/` keyed by a hash of the settings that produced them, so the
benchmark and the demo train once and reload afterwards (the bench JSON says which happened). Files are written
atomically and read with `weights_only=True`.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from tailorkit.core.config import from_dict, to_dict
from tailorkit.core.results import atomic_open
from tailorkit.registration.config import DeformNetConfig
from tailorkit.registration.deform_net import DeformNet

__all__ = ["cache_dir", "cached_sam", "config_key", "load_deform_net", "save_deform_net"]

DEFORM_FORMAT = "tailorkit.registration.deform/1"


def cache_dir() -> Path:
    from tailorkit.assets.base import tailorkit_home

    return tailorkit_home() / "registration"


def config_key(*parts: Any) -> str:
    """A short stable hash of settings (dataclasses or plain values)."""
    plain = [to_dict(p) if hasattr(p, "__dataclass_fields__") else p for p in parts]
    return hashlib.sha1(json.dumps(plain, sort_keys=True, default=str).encode()).hexdigest()[:12]


def cached_sam(config: Any, *, use_cache: bool = True, progress: bool = False) -> tuple[Any, str, float]:
    """A SAM model trained with `config` (anatomy.SAMTrainConfig): loaded from the cache or trained (and cached).

    Returns (TrainedModel, "cache" | "trained", seconds spent).
    """
    import time

    from tailorkit.anatomy.train import load_model, save_model, train_sam

    path = cache_dir() / f"sam_{config_key(config)}.pt"
    start = time.perf_counter()
    if use_cache and path.is_file():
        return load_model(path), "cache", time.perf_counter() - start
    model = train_sam(config, progress=progress)
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_model(model, path)
    return model, "trained", time.perf_counter() - start


def save_deform_net(net: DeformNet, path: str | os.PathLike[str], extra: dict[str, Any] | None = None) -> Path:
    """Write the network's weights and settings atomically."""
    payload = {
        "format": DEFORM_FORMAT,
        "config": to_dict(net.config),
        "spatial_dims": net.spatial_dims,
        "state": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        "extra": json.dumps(extra or {}),
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path) as handle:
        torch.save(payload, handle)
    return Path(path)


def load_deform_net(path: str | os.PathLike[str]) -> tuple[DeformNet, dict[str, Any]]:
    """Read a `save_deform_net` file; returns the network (eval mode) and its extra information."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(
            f"deformation network {p}: not found (expected a file written by `tailorkit register train`)"
        )
    payload = torch.load(p, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != DEFORM_FORMAT:
        raise ValueError(f"deformation network {p}: not a {DEFORM_FORMAT} file")
    net = DeformNet(from_dict(DeformNetConfig, payload["config"]), int(payload["spatial_dims"]))
    net.load_state_dict(payload["state"])
    return net.eval(), json.loads(payload.get("extra", "{}"))
