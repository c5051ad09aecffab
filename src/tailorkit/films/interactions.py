"""Pair energies V_kl drawn from g(V) by a seeded hash, Boltzmann-weighted overrides, Z1(T) and u(T).

Verified (docs/films.md#base-model, docs/films.md#exact-equilibrium-start): g uniform on [V0, V0 + 1] with
V0 = -0.5 in the reference code; the exact equilibrium has the V of every occupied bond distributed as
g(V) exp(-V/T) / Z1 with Z1 = int g(V) exp(-V/T) dV, and the void arrangement weighted by Z1^(number of bonds),
i.e. a lattice gas with constant bond energy u = -T ln Z1.
Inferred (docs/films.md#interactions): the particle-pair variant (V depends on the two particle ids only) with
V_kl computed lazily as V0 + (V1 - V0) * splitmix64(seed ^ (min*N_ids + max)) / 2**64 instead of an N x N table,
and O(1) overrides: each particle keeps the ids of its nd initial neighbours with their Boltzmann-drawn V ("table
modified at t = 0"). g = "delta" (all V = V0) is the tracer/lattice-gas limit used in tests.

Parameter arrays shared by all kernels (packed once by `pack_params`):
    fpar: [1/(2T), w0 exp(-E0/T), V0, V1, v_substrate, v_const, relax_r2]
    ipar: [nd, N, area, substrate_mode (0 constant, 1 pinned ids N + column), g_mode (0 uniform, 1 delta),
           const_mode (1: every bond, substrate included, is v_const), block B, leaves P, dim, rebuild_every,
           quantized (1: every V rounded to a multiple of 2**-36, `run.kernel = "running"`)]

Quantized energies (`run.kernel = "running"`): every V (hashed, override, substrate, constant) is rounded to the
nearest multiple of Q = 2**-36 (a change of at most 7.3e-12). A sum of up to 2^3 such numbers of magnitude <= 2^10
(FilmConfig requires |V0|, |V1| <= 1024 for this kernel) needs at most 49 of float64's 53 bits, so it is exact: a
per-particle running sum of bond energies, updated by + and - on every hop, equals the from-scratch sum bit for bit
in any order (no drift), and the kernel's rates equal the generic path's exactly.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from tailorkit.films.config import FilmConfig

F_INV2T, F_PREF, F_V0, F_V1, F_VSUB, F_VCONST, F_R2 = range(7)
I_ND, I_N, I_AREA, I_SUBMODE, I_GMODE, I_CONST, I_B, I_P, I_DIM, I_REBUILD, I_QUANT = range(11)
_INV53 = 1.0 / 9007199254740992.0
Q_SCALE = float(2**36)
Q_STEP = 1.0 / Q_SCALE


@nb.njit(cache=True, inline="always")
def quantize(v: float) -> float:
    """v rounded to the nearest multiple of 2**-36 (exact: scaling by a power of two and floor are exact)."""
    return math.floor(v * Q_SCALE + 0.5) * Q_STEP


@nb.njit(cache=True, inline="always")
def splitmix64(x: np.uint64) -> np.uint64:
    z = x + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@nb.njit(cache=True, inline="always")
def hashed_u(k: int, j: int, n_ids: int, vseed: np.uint64) -> float:
    """A uniform [0, 1) number for the unordered pair {k, j}: symmetric by construction."""
    a = min(k, j)
    b = max(k, j)
    key = np.uint64(a) * np.uint64(n_ids) + np.uint64(b)
    return float(splitmix64(key ^ vseed) >> np.uint64(11)) * _INV53


@nb.njit(cache=True, inline="always")
def bond_v(
    k: int, j: int, ovr_id: np.ndarray, ovr_v: np.ndarray, fpar: np.ndarray, ipar: np.ndarray, vseed: np.uint64
) -> float:
    """V between particle k and particle (or pinned substrate particle) j: the override of k if any, else hashed."""
    if ipar[I_CONST] != 0:
        return fpar[F_VCONST]
    for i in range(ovr_id.shape[1]):
        if ovr_id[k, i] == j:
            return quantize(ovr_v[k, i]) if ipar[I_QUANT] != 0 else ovr_v[k, i]
    if ipar[I_GMODE] == 1:
        return quantize(fpar[F_V0]) if ipar[I_QUANT] != 0 else fpar[F_V0]
    n_ids = ipar[I_N] + ipar[I_AREA]
    v = fpar[F_V0] + (fpar[F_V1] - fpar[F_V0]) * hashed_u(k, j, n_ids, vseed)
    return quantize(v) if ipar[I_QUANT] != 0 else v


def z1(config: FilmConfig) -> float:
    """Z1(T) = int g(V) exp(-V/T) dV."""
    return config.model.z1()


def u_lattice_gas(config: FilmConfig) -> float:
    """u(T) = -T ln Z1: the constant bond energy of the equivalent lattice gas (and of the smooth substrate)."""
    m, T = config.model, config.model.T
    if m.g == "delta":
        return m.V0
    width = m.V1 - m.V0
    return m.V0 - T * math.log(T * -math.expm1(-width / T) / width)


@nb.njit(cache=True)
def boltzmann_v(u01: float, V0: float, V1: float, T: float, g_mode: int) -> float:
    """Inverse CDF of g(V) exp(-V/T)/Z1 (exact for uniform g): V = V0 - T ln(1 - U (1 - exp(-(V1-V0)/T)))."""
    if g_mode == 1:
        return V0
    c = -math.expm1(-(V1 - V0) / T)
    return V0 - T * math.log1p(-u01 * c)


def vseed_of(seed: int) -> np.uint64:
    """The 64-bit key of the interaction hash for a run seed (pre-mixed so nearby seeds share nothing)."""
    from tailorkit.core.seeding import derive_seed

    return np.uint64(derive_seed(seed, "interactions"))


def pack_params(config: FilmConfig, nd: int, area: int, n_particles: int, const_v: float | None = None):
    """fpar, ipar (see module docstring); `const_v` switches every bond to one value (the lattice-gas preheat)."""
    m, lat = config.model, config.lattice
    block = 1
    while block < nd:
        block *= 2
    n_leaves = 1
    while n_leaves < max(config.n_voids * block, 2):
        n_leaves *= 2
    quant = config.run.kernel == "running"

    def q(v: float) -> float:
        return math.floor(v * Q_SCALE + 0.5) * Q_STEP if quant else v

    fpar = np.array(
        [
            1.0 / (2.0 * m.T),
            m.w0 * math.exp(-m.E0 / m.T),
            m.V0,
            m.V1 if m.g == "uniform" else m.V0,
            q(u_lattice_gas(config)),
            0.0 if const_v is None else q(const_v),
            float(config.run.relax_r2),
        ],
        dtype=np.float64,
    )
    ipar = np.array(
        [
            nd,
            n_particles,
            area,
            1 if lat.substrate == "pinned" else 0,
            1 if m.g == "delta" else 0,
            0 if const_v is None else 1,
            block,
            n_leaves,
            lat.dim,
            config.run.rebuild_every,
            1 if quant else 0,
        ],
        dtype=np.int64,
    )
    return fpar, ipar
