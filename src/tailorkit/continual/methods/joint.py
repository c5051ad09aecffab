"""Joint (cumulative) training: the upper bound. Phase t trains the SSL loss on the unlabelled images of every class
seen so far (phases 0..t), continuing from the previous phase's weights, with the same number of steps per phase as
the other strategies, so it measures forgetting, not extra training (docs/continual.md#inferred-details)."""

from __future__ import annotations

from tailorkit.continual.methods.base import METHODS, Strategy

__all__ = ["Joint"]


@METHODS.register("joint")
class Joint(Strategy):
    name = "joint"

    def train_classes(self, phases: tuple[tuple[int, ...], ...], phase: int) -> tuple[int, ...]:
        return tuple(c for p in phases[: phase + 1] for c in p)
