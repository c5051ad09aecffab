"""The arms of the video benchmark, one registry: the paper's method, its ablations and the baselines.

Each registered name maps to an :class:`tailorkit.video.model.ArmSpec` factory taking option overrides; every arm
runs through the same :class:`~tailorkit.video.model.VideoModel` and the same training loop.
"""

from __future__ import annotations

from tailorkit.video.methods.base import METHODS, make_model, method_spec, register_method

# Import for registration side effects.
from tailorkit.video.methods import baselines as _baselines  # noqa: F401  isort: skip
from tailorkit.video.methods import sif as _sif  # noqa: F401  isort: skip

__all__ = ["METHODS", "make_model", "method_spec", "register_method"]
