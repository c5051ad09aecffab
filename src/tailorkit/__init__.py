"""tailorkit: ten published research systems as tested tools, each beside its baselines, reproducible offline."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
