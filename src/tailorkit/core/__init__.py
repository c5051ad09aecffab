"""Shared machinery: configs, registries, seeding, devices, progress, bench results and reports, training.

The names below load on first use (PEP 562), so importing `tailorkit.core.config` for the command-line parser does
not import torch: `tailorkit --help` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ConfigError": "config",
    "load_config": "config",
    "save_config": "config",
    "to_dict": "config",
    "resolve_device": "device",
    "Registry": "registry",
    "RegistryError": "registry",
    "BenchOutcome": "results",
    "Claim": "results",
    "DataInfo": "results",
    "Row": "results",
    "write_json_atomic": "results",
    "derive_seed": "seeding",
    "numpy_generator": "seeding",
    "torch_generator": "seeding",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"tailorkit.core.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'tailorkit.core' has no attribute {name!r}")
