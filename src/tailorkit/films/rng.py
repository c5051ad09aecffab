"""xoshiro256** in numba with an explicit uint64[4] state: checkpointable, so restarts are bit-exact.

The state comes from `numpy.random.SeedSequence(derive_seed(seed, name))`; numba's global `np.random` is never used.
Reference: Blackman & Vigna, "Scrambled linear pseudorandom number generators" (2018), xoshiro256** 1.0.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from tailorkit.core.seeding import derive_seed

_INV53 = 1.0 / 9007199254740992.0  # 2**-53


@nb.njit(cache=True, inline="always")
def _rotl(x: np.uint64, k: int) -> np.uint64:
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


@nb.njit(cache=True, inline="always")
def next_u64(s: np.ndarray) -> np.uint64:
    """Advance state `s` (uint64[4]) and return 64 random bits."""
    s0 = s[0]
    s1 = s[1]
    s2 = s[2]
    s3 = s[3]
    result = _rotl(s1 * np.uint64(5), 7) * np.uint64(9)
    t = s1 << np.uint64(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = _rotl(s3, 45)
    s[0] = s0
    s[1] = s1
    s[2] = s2
    s[3] = s3
    return result


@nb.njit(cache=True, inline="always")
def uniform(s: np.ndarray) -> float:
    """A double in [0, 1) with 53 random bits."""
    return float(next_u64(s) >> np.uint64(11)) * _INV53


@nb.njit(cache=True, inline="always")
def uniform_open(s: np.ndarray) -> float:
    """A double in (0, 1]: safe under log()."""
    return (float(next_u64(s) >> np.uint64(11)) + 1.0) * _INV53


@nb.njit(cache=True, inline="always")
def randint(s: np.ndarray, n: int) -> int:
    """An integer in [0, n) (multiply-shift on 53 bits; bias < n / 2**53)."""
    return int(uniform(s) * n)


def rng_state(seed: int, *names: str | int) -> np.ndarray:
    """A fresh uint64[4] xoshiro state for the stream `names` of `seed`."""
    state = np.random.SeedSequence(derive_seed(seed, *names)).generate_state(4, np.uint64)
    if not state.any():  # the all-zero state is a fixed point
        state[0] = np.uint64(1)
    return state
