"""Random initialisation: the floor. The encoder is never trained; the probe and kNN are run on its random
features after every phase. FT close to this floor means the benchmark cannot tell learning from architecture."""

from __future__ import annotations

from tailorkit.continual.methods.base import METHODS, Strategy

__all__ = ["RandomInit"]


@METHODS.register("random_init")
class RandomInit(Strategy):
    name = "random_init"
    trains = False
