"""Continual strategies, one module per method, registered by name in `METHODS`."""

from __future__ import annotations

from tailorkit.continual.methods import cassle, cppf, finetune, joint, pfr, random_init
from tailorkit.continual.methods.base import (
    METHODS,
    STRATEGIES,
    Extras,
    PhaseContext,
    StepOutputs,
    Strategy,
    make_strategy,
)

__all__ = [
    "METHODS",
    "STRATEGIES",
    "Extras",
    "PhaseContext",
    "StepOutputs",
    "Strategy",
    "cassle",
    "cppf",
    "finetune",
    "joint",
    "make_strategy",
    "pfr",
    "random_init",
]
