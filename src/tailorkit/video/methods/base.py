"""The method contract: the registry `METHODS` of arms, each a factory `() -> ArmSpec`.

A video method is data, not a class: an `ArmSpec` (tailorkit.video.model) names which blocks of the one
`VideoModel` are on (temporal transformer, motion stream and gate, dynamic prompts, communication block, CoOp
context, fine-tuned top layers) and their options. `method_spec(name, **options)` gives a registered arm with
options replaced (unknown options raise); `make_model(name, encoder, ...)` builds its `VideoModel`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from tailorkit.core.registry import Registry
from tailorkit.nets.dual_encoder import DualEncoder
from tailorkit.video.model import ArmSpec, VideoModel

__all__ = ["METHODS", "make_model", "method_spec", "register_method"]

SpecFactory = Callable[[], ArmSpec]
METHODS: Registry[SpecFactory] = Registry("video method")


def register_method(name: str) -> Callable[[SpecFactory], SpecFactory]:
    return METHODS.register(name)


def method_spec(name: str, **options: Any) -> ArmSpec:
    """The registered arm's spec with ``options`` replacing fields (unknown options raise, naming the valid ones)."""
    spec = METHODS.get(name)()
    valid = {f.name for f in dataclasses.fields(ArmSpec)}
    bad = sorted(set(options) - valid)
    if bad:
        raise ValueError(f"method {name!r}: unknown options {bad}; expected some of {sorted(valid)}")
    return dataclasses.replace(spec, **options) if options else spec


def make_model(name: str, encoder: DualEncoder, frames: int, **options: Any) -> VideoModel:
    """Build the registered arm ``name`` on ``encoder`` for clips of at most ``frames`` frames."""
    return VideoModel(encoder, method_spec(name, **options), frames)
