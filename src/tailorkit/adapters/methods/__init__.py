"""Multi-task encoders, one module per method family, registered by name in ``METHODS``."""

from __future__ import annotations

from tailorkit.adapters.methods import baselines, vmt
from tailorkit.adapters.methods.base import METHODS, MultiTaskEncoder, make_encoder

__all__ = ["METHODS", "MultiTaskEncoder", "baselines", "make_encoder", "vmt"]
