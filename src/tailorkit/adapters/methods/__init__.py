"""Multi-task encoders, one module per method family, registered by name in ``METHODS`` with their own options
(the contract: tailorkit.adapters.methods.base)."""

from __future__ import annotations

from tailorkit.adapters.methods import baselines, vmt
from tailorkit.adapters.methods.base import METHODS, Method, MultiTaskEncoder, NoOptions, make_encoder, register
from tailorkit.adapters.methods.baselines import HyperformerOptions, LoRAOptions, PerTaskAdapterOptions, VPTOptions
from tailorkit.adapters.methods.vmt import SharedAdapterOptions, VMTLiteOptions, VMTOptions

__all__ = [
    "METHODS",
    "HyperformerOptions",
    "LoRAOptions",
    "Method",
    "MultiTaskEncoder",
    "NoOptions",
    "PerTaskAdapterOptions",
    "SharedAdapterOptions",
    "VMTLiteOptions",
    "VMTOptions",
    "VPTOptions",
    "baselines",
    "make_encoder",
    "register",
    "vmt",
]
