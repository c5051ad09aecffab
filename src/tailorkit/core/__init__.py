"""Shared machinery: configs, registries, seeding, devices, progress, bench results and reports, training."""

from __future__ import annotations

from tailorkit.core.config import ConfigError, load_config, save_config, to_dict
from tailorkit.core.device import resolve_device
from tailorkit.core.registry import Registry, RegistryError
from tailorkit.core.results import BenchOutcome, Claim, DataInfo, Row, write_json_atomic
from tailorkit.core.seeding import derive_seed, numpy_generator, torch_generator

__all__ = [
    "BenchOutcome",
    "Claim",
    "ConfigError",
    "DataInfo",
    "Registry",
    "RegistryError",
    "Row",
    "derive_seed",
    "load_config",
    "numpy_generator",
    "resolve_device",
    "save_config",
    "to_dict",
    "torch_generator",
    "write_json_atomic",
]
