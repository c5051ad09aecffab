"""Registries: TUNERS (how the frozen backbone is adapted) and STRATEGIES (which pool items get labelled).

Importing this package imports every method module, so every registered name is available.
"""

from __future__ import annotations

from tailorkit.active.methods import baselines, finetune, slpt, tesla  # noqa: F401  (registration)
from tailorkit.active.methods.base import STRATEGIES, TUNERS, SegModel, SelectionStrategy, make_strategy, make_tuner

__all__ = ["STRATEGIES", "TUNERS", "SegModel", "SelectionStrategy", "make_strategy", "make_tuner"]
