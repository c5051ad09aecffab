"""HOI detector variants, one module per method, registered by name in `METHODS` (single, cascade, hodn,
and HODN's depth-matched controls cascade_deep and single_deep)."""

from __future__ import annotations

from tailorkit.hoi.methods import cascade, hodn, single
from tailorkit.hoi.methods.base import HEADS, METHODS, MODELS, HOIHeads, HOIModel, build_model

__all__ = ["HEADS", "METHODS", "MODELS", "HOIHeads", "HOIModel", "build_model", "cascade", "hodn", "single"]
