"""Explicit randomness: generators derived from a seed, never global state.

The library never calls `torch.manual_seed` or `np.random.seed` behind the caller's back. Functions take a
`torch.Generator`, a `numpy.random.Generator` or an int seed; `derive_seed` gives independent, reproducible
sub-streams ("data", "init", "noise") from one run seed.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch loads on first use: numpy-only users (the films workers) never import it
    import torch


def derive_seed(seed: int, *names: str | int) -> int:
    """A 63-bit seed derived from `seed` and a path of names; stable across runs, platforms and Python versions.

    Python's `hash()` is salted per process, so a cryptographic hash is used instead.
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    key = ":".join([str(seed), *map(str, names)]).encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "little") >> 1


def torch_generator(seed: int, *names: str | int, device: torch.device | str | None = None) -> torch.Generator:
    """A torch.Generator on `device` seeded with `derive_seed(seed, *names)` (or `seed` itself when no names)."""
    import torch

    gen = torch.Generator(device=device if device is not None else "cpu")
    gen.manual_seed(derive_seed(seed, *names) if names else seed)
    return gen


def numpy_generator(seed: int, *names: str | int) -> np.random.Generator:
    """A numpy Generator (PCG64) seeded with `derive_seed(seed, *names)` (or `seed` itself when no names)."""
    return np.random.default_rng(derive_seed(seed, *names) if names else seed)
