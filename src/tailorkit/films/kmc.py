"""Rejection-free kinetic Monte Carlo (BKL / n-fold way) of the DPLM: rates, binary sum tree, the event loop.

Verified (docs/films.md#base-model, reference code): events are (void, direction) pairs, a particle next to a
void swaps into it at w = w0 exp(-(E0 + dE/2)/T), dE = (bonds the particle forms at the void site, without the
bond to its old site) - (bonds it breaks at its old site); detailed balance w(A->B)/w(B->A) = exp(-dE/T); only
rates near the two changed sites change. Deliberate deviations: the waiting time is exponential, dt = -ln(U)/R
(the reference code uses 1/R; that is exact only on average), and parents are recomputed from their children on
each update (no running-sum drift), with a periodic full rebuild kept as a safeguard.

Tree layout: void v owns the aligned leaf block [v*B, v*B + B) (B = nd rounded up to a power of two; padding leaves
stay 0), leaves at tree[P + i], root tree[1], so all of a void's rates are refreshed with one walk to the root.
The pending event time t_next lives in `clock` (clock = [t, t_next]): stopping at any t_stop does not consume random
numbers, so the trajectory does not depend on how a run is cut into segments (checkpoints resume bit for bit).

After a hop from site m into void site s, the rate of (v', d') depends on the occupancy of v', its neighbours and
the neighbours of its target, i.e. on sites within lattice distance 2 of v': every void within distance 2 of s or m
is recomputed (a stamp avoids doing one twice).

Speed (issue 24; every step keeps the trajectory bit for bit, tests/films/test_reference_trajectory.py):
- the parameters reach the kernel as a tuple of scalars (`KParams`), not as arrays that every store could alias;
- the configuration (nd, substrate mode, g mode, constant bonds, table kind) is carried by the *type* of a tuple
  `spec` (kernel_spec), so each configuration gets its own machine code with the direction loops unrolled and the
  mode branches gone;
- the event is inlined into the loop, `error_model="numpy"` drops the division checks, the tree descent is
  branch-free;
- the bonds the hoppers into one void would form there are looked up once per pair of the void's neighbours (V is
  symmetric), each hopper still adding its terms in direction order (_set_void_rates): 18 lookups per isolated 2D
  event instead of 24, with the same sums bit for bit;
- the event loop keeps the sum tree 4-way inside the binary array: only every second level is updated, each node as
  (g0 + g1) + (g2 + g3) of its grandchildren, which is the binary node's value bit for bit, and the descent computes
  the skipped level's left child on the fly with the binary descent's comparisons (_propagate4, _select_leaf4); the
  loop rebuilds the skipped levels on return, so between calls `tree` is the complete binary tree it always was;
- the overrides (the Boltzmann-drawn V of each particle's initial neighbours) are looked up in per-site records
  that travel with the particle (`site_records`), so that the lookups of a hop read memory next to the void
  instead of two random rows of the per-particle tables (this is what keeps large lattices fast);
- small lattices use a dense table of every pair energy instead (`dense_table`, chosen by `choose_table`), whose
  entries are exactly the values the records and the hash give.
No fastmath: NaN is never produced by the rates, but IEEE semantics keep the clock and the sums bit-exact.

Option `run.kernel = "running"` (not bit-identical to the reference fingerprints, tested in
tests/films/test_running_kernel.py): the energies are rounded to a 2**-36 grid (interactions.quantize), so sums are
exact in any order; then each particle's bond energy is a running sum `esum` updated on every hop (the bonds a hop
breaks cost no lookup), and the bonds formed by the hops into one void are looked up once per pair of its
neighbours (_void_rates_shared): 12 lookups per event for an isolated 2D void instead of 24. It is a separate event
loop (`_run_running`, its own functions below), so the reference kernel's code, and its compile time per
configuration, stay what they were: numba inlines `inline="always"` functions into the numba IR *before* the
constant `len(spec[...])` branches are pruned, so running-sum branches inside the shared functions were compiled
into every reference variant too (their first-call compile time went from ~14 s to ~35 s CPU each).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numba as nb
import numpy as np

from tailorkit.films.interactions import (
    F_INV2T,
    F_PREF,
    F_R2,
    F_V0,
    F_V1,
    F_VCONST,
    F_VSUB,
    I_AREA,
    I_B,
    I_CONST,
    I_GMODE,
    I_N,
    I_ND,
    I_P,
    I_QUANT,
    I_REBUILD,
    I_SUBMODE,
    bond_v,
    hashed_u,
    quantize,
)
from tailorkit.films.rng import uniform, uniform_open

# Dense pair tables are used while they take at most this many bytes (float64 [n_ids, n_ids]); above it, records.
DENSE_MAX_BYTES = 8 << 20


class KParams(NamedTuple):
    """The scalar parameters of a kernel (from fpar / ipar, see interactions.py)."""

    inv2T: float
    pref: float
    V0: float
    dV: float  # V1 - V0: the same double the reference expression V0 + (V1 - V0) u computes
    vsub: float
    vconst: float
    r2: float
    N: int
    area: int
    n_ids: int
    B: int
    P: int
    rebuild: int
    vseed: np.uint64


def kernel_params(fpar: np.ndarray, ipar: np.ndarray, vseed: np.uint64) -> KParams:
    return KParams(
        float(fpar[F_INV2T]),
        float(fpar[F_PREF]),
        float(fpar[F_V0]),
        float(fpar[F_V1] - fpar[F_V0]),
        float(fpar[F_VSUB]),
        float(fpar[F_VCONST]),
        float(fpar[F_R2]),
        int(ipar[I_N]),
        int(ipar[I_AREA]),
        int(ipar[I_N] + ipar[I_AREA]),
        int(ipar[I_B]),
        int(ipar[I_P]),
        int(ipar[I_REBUILD]),
        np.uint64(vseed),
    )


def kernel_spec(ipar: np.ndarray, dense: bool) -> tuple:
    """The configuration the kernels are specialised on, as a tuple whose *type* carries it (numba compiles one
    kernel per type, with `len` of each member a compile-time constant): (range(nd), pinned substrate, g = delta,
    constant bonds, dense table), each flag an empty or one-element tuple."""

    def flag(on: bool) -> tuple[int, ...]:
        return (0,) if on else ()

    return (
        tuple(range(int(ipar[I_ND]))),
        flag(ipar[I_SUBMODE] == 1),
        flag(ipar[I_GMODE] == 1),
        flag(ipar[I_CONST] != 0),
        flag(dense),
    )


def choose_table(n_ids: int, const: bool) -> bool:
    """Whether the dense pair table is used: when it fits in DENSE_MAX_BYTES (and bonds are not all one value)."""
    return not const and n_ids * n_ids * 8 <= DENSE_MAX_BYTES


# ---------------------------------------------------------------------------------------------------------------
# One hop's rate. `o` is the row of the hopper k's overrides in (ids, vals): its site in the site records (or k
# itself in the per-particle tables); with the dense table, vals is the [n_ids, n_ids] table and ids is unused.


@nb.njit(cache=True, inline="always", error_model="numpy")
def _bond(o, k, j, ids, vals, p, spec):
    """V between the hopper k (overrides in row o) and particle j: exactly interactions.bond_v."""
    if len(spec[3]) != 0:
        return p.vconst
    if len(spec[4]) != 0:
        return vals[k, j]
    for i in range(len(spec[0])):
        if ids[o, i] == j:
            return vals[o, i]
    if len(spec[2]) != 0:
        return p.V0
    return p.V0 + p.dV * hashed_u(k, j, p.n_ids, p.vseed)


@nb.njit(cache=True, inline="always", error_model="numpy")
def _site_energy(o, k, s, skip, nbr, occ, ids, vals, p, spec):
    """Bond energy particle k would have at site s, ignoring the neighbour site `skip`."""
    pinned = len(spec[1]) != 0
    e = 0.0
    for d in range(len(spec[0])):
        m = nbr[s, d]
        if m >= 0:
            if m == skip:
                continue
            j = occ[m]
            if j >= 0:
                e += _bond(o, k, j, ids, vals, p, spec)
        elif m == -2:
            if not pinned:
                e += p.vsub
            else:
                e += _bond(o, k, p.N + s % p.area, ids, vals, p, spec)
    return e


@nb.njit(cache=True, inline="always", error_model="numpy")
def _propagate(tree, base, B):
    """The sums above the aligned leaf block [base, base + B), each recomputed from its two children."""
    lo = base >> 1
    n = B >> 1
    while n >= 1 and lo >= 1:
        for j in range(lo, lo + n):
            tree[j] = tree[2 * j] + tree[2 * j + 1]
        lo >>= 1
        n >>= 1
    while lo >= 1:
        tree[lo] = tree[2 * lo] + tree[2 * lo + 1]
        lo >>= 1


@nb.njit(cache=True, inline="always", error_model="numpy")
def _propagate4(tree, base, B, odd):
    """The 4-way tree's sums above the aligned leaf block [base, base + B): only the nodes an even number of levels
    above the leaves (and the root) are kept, each as (g0 + g1) + (g2 + g3) of its four grandchildren, which is
    bit for bit the binary tree's tree[2j] + tree[2j + 1]; the levels between are stale until rebuild_sums. `odd`:
    log2(P) is odd, so the root is the sum of its two children (kept nodes)."""
    lo = base >> 2
    n = B >> 2
    while lo >= 1:
        for j in range(lo, lo + n):
            g = 4 * j
            tree[j] = (tree[g] + tree[g + 1]) + (tree[g + 2] + tree[g + 3])
        lo >>= 2
        n = (n >> 2) if n >= 4 else 1
    if odd:
        tree[1] = tree[2] + tree[3]


@nb.njit(cache=True, inline="always", error_model="numpy")
def _select_leaf4(tree, P, r, odd):
    """_select_leaf on the 4-way tree of _propagate4: the same comparisons and subtractions as the binary descent
    (its left child's value is g0 + g1, computed here from the kept grandchildren), so the same leaf for any r."""
    i = 1
    if odd:
        left = tree[2]
        right = r >= left
        r = r - left if right else r
        i = 2 + (1 if right else 0)
    while i < P:
        g = 4 * i
        g0 = tree[g]
        g2 = tree[g + 2]
        left = g0 + tree[g + 1]
        right = r >= left
        r = r - left if right else r
        h = g2 if right else g0
        right2 = r >= h
        r = r - h if right2 else r
        i = g + (2 if right else 0) + (1 if right2 else 0)
    leaf = i - P
    while tree[P + leaf] <= 0.0 and leaf > 0:  # rounding can push r past the last non-zero leaf
        leaf -= 1
    return leaf


@nb.njit(cache=True, inline="always", error_model="numpy")
def _set_void_rates(v, vsite, nbr, occ, ids, vals, tree, p, spec, site_rows, hk, he, odd):
    """Recompute the nd leaves of void v and the 4-way sums above them (_propagate4). hk, he: scratch of length nd.

    The bonds the hoppers would form at the void are looked up once per pair of the void's neighbours and counted for
    both (V is symmetric: hashed by the unordered pair, overrides stored in both particles with one value, and the
    config keeps periodic neighbours distinct), but each hopper's sum still adds its terms in direction order, as
    _site_energy does, so the rates are the same bit for bit with half the lookups for the energy at the void."""
    nd = len(spec[0])
    pinned = len(spec[1]) != 0
    B = p.B
    sv = vsite[v]
    base = p.P + v * B
    for d in range(nd):
        a = nbr[sv, d]
        he[d] = 0.0
        hk[d] = occ[a] if a >= 0 else a  # particle id, -1 (empty or free) or -2 (substrate)
    for d in range(nd):  # row d adds the term of direction d to every later hopper, and its own later terms
        k = hk[d]
        if k >= 0:
            o = nbr[sv, d] if site_rows else k
            for d2 in range(d + 1, nd):
                j = hk[d2]
                if j >= 0:
                    b = _bond(o, k, j, ids, vals, p, spec)
                    he[d] += b
                    he[d2] += b
                elif j == -2:
                    he[d] += _bond(o, k, p.N + sv % p.area, ids, vals, p, spec) if pinned else p.vsub
        elif k == -2:
            for d2 in range(d + 1, nd):
                j = hk[d2]
                if j >= 0:
                    if pinned:
                        he[d2] += _bond(nbr[sv, d2] if site_rows else j, j, p.N + sv % p.area, ids, vals, p, spec)
                    else:
                        he[d2] += p.vsub
    for d in range(nd):
        k = hk[d]
        if k >= 0:
            m = nbr[sv, d]
            e_old = _site_energy(m if site_rows else k, k, m, sv, nbr, occ, ids, vals, p, spec)
            tree[base + d] = p.pref * math.exp(-(he[d] - e_old) * p.inv2T)
        else:
            tree[base + d] = 0.0
    _propagate4(tree, base, B, odd)


@nb.njit(cache=True, inline="always", error_model="numpy")
def _select_leaf(tree, P, r):
    """The leaf i with cumsum(leaves)[i-1] <= r < cumsum(leaves)[i], for r in [0, root); branch-free descent."""
    i = 1
    while i < P:
        left = tree[2 * i]
        right = r >= left
        r = r - left if right else r
        i = 2 * i + (1 if right else 0)
    leaf = i - P
    while tree[P + leaf] <= 0.0 and leaf > 0:  # rounding can push r past the last non-zero leaf
        leaf -= 1
    return leaf


@nb.njit(cache=True, inline="always")
def _gather_near(c, ev, stamp, void_at, nbr, near, n_near, nd):
    """Append to `near` the voids within lattice distance 2 of site c not yet stamped with event ev."""
    v = void_at[c]
    if v >= 0 and stamp[v] != ev:
        stamp[v] = ev
        near[n_near] = v
        n_near += 1
    for d1 in range(nd):
        a = nbr[c, d1]
        if a < 0:
            continue
        v = void_at[a]
        if v >= 0 and stamp[v] != ev:
            stamp[v] = ev
            near[n_near] = v
            n_near += 1
        for d2 in range(nd):
            b = nbr[a, d2]
            if b < 0:
                continue
            v = void_at[b]
            if v >= 0 and stamp[v] != ev:
                stamp[v] = ev
                near[n_near] = v
                n_near += 1
    return n_near


@nb.njit(cache=True, inline="always", error_model="numpy")
def _event(
    leaf,
    t,
    nbr,
    dvec,
    occ,
    pos,
    vsite,
    void_at,
    disp,
    hops,
    t_relax,
    ids,
    vals,
    tree,
    stamp,
    counters,
    near,
    hk,
    he,
    odd,
    p,
    spec,
    site_rows,
):
    """Perform event `leaf` = (void, direction) at time t and refresh the affected rates (near, hk, he: scratch)."""
    nd = len(spec[0])
    dim = nd // 2
    v = leaf // p.B
    d = leaf - v * p.B
    s = vsite[v]
    m = nbr[s, d]
    k = occ[m]
    occ[s] = k
    occ[m] = -1
    pos[k] = s
    vsite[v] = m
    void_at[s] = -1
    void_at[m] = v
    if site_rows and len(spec[4]) == 0:  # the hopper's override record moves with it
        for i in range(nd):
            ids[s, i] = ids[m, i]
            vals[s, i] = vals[m, i]
    r2 = 0
    for c in range(dim):
        x = disp[k, c] - dvec[d, c]
        disp[k, c] = x
        r2 += x * x
    hops[k] += 1
    if t_relax[k] < 0.0 and r2 >= p.r2:
        t_relax[k] = t
    ev = counters[0] + 1
    counters[0] = ev
    n_near = _gather_near(s, ev, stamp, void_at, nbr, near, 0, nd)
    n_near = _gather_near(m, ev, stamp, void_at, nbr, near, n_near, nd)
    for i in range(n_near):
        _set_void_rates(near[i], vsite, nbr, occ, ids, vals, tree, p, spec, site_rows, hk, he, odd)


@nb.njit(cache=True, error_model="numpy")
def _run(
    t_stop,
    max_events,
    nbr,
    dvec,
    occ,
    pos,
    vsite,
    void_at,
    disp,
    hops,
    t_relax,
    ids,
    vals,
    tree,
    stamp,
    rng,
    clock,
    counters,
    p,
    spec,
):
    """The event loop, compiled once per configuration `spec` (see kernel_spec). It keeps the sum tree 4-way
    (_propagate4, _select_leaf4) and leaves it a complete binary tree again on return."""
    nd = len(spec[0])
    P = p.P
    odd = False  # log2(P) is odd
    q = P
    while q > 1:
        q >>= 1
        odd = not odd
    near = np.empty(2 * (1 + nd * (1 + nd)), dtype=np.int64)
    hk = np.empty(nd, dtype=np.int64)
    he = np.empty(nd)
    n = 0
    t_next = clock[1]
    while n < max_events:
        if t_next > t_stop:
            if t_stop > clock[0]:
                clock[0] = t_stop
            rebuild_sums(tree, P)
            return n
        t = t_next
        clock[0] = t
        leaf = _select_leaf4(tree, P, uniform(rng) * tree[1], odd)
        _event(
            leaf,
            t,
            nbr,
            dvec,
            occ,
            pos,
            vsite,
            void_at,
            disp,
            hops,
            t_relax,
            ids,
            vals,
            tree,
            stamp,
            counters,
            near,
            hk,
            he,
            odd,
            p,
            spec,
            True,
        )
        c = counters[1] + 1
        if c >= p.rebuild:
            rebuild_sums(tree, P)
            c = 0
        counters[1] = c
        R = tree[1]
        t_next = t - math.log(uniform_open(rng)) / R if R > 0.0 else np.inf
        clock[1] = t_next
        n += 1
    rebuild_sums(tree, P)
    return n


@nb.njit(cache=True)
def fill_site_records(occ, ovr_id, ovr_v, rec_id, rec_v, quant):
    """rec_*[s] = the overrides of the particle at site s (rows of empty sites are left as they are); the values
    rounded to the 2**-36 grid when `quant` (run.kernel = "running")."""
    for s in range(occ.shape[0]):
        k = occ[s]
        if k >= 0:
            for i in range(ovr_id.shape[1]):
                rec_id[s, i] = ovr_id[k, i]
                rec_v[s, i] = quantize(ovr_v[k, i]) if quant else ovr_v[k, i]


@nb.njit(cache=True)
def fill_dense_table(table, ovr_id, ovr_v, fpar, ipar, vseed):
    """table[k, j] = bond_v(k, j) for every particle k and every id j (particles and pinned substrate sites)."""
    for k in range(table.shape[0]):
        for j in range(table.shape[1]):
            table[k, j] = bond_v(k, j, ovr_id, ovr_v, fpar, ipar, vseed)


def run_until(state, t_stop: float, max_events: int) -> int:
    """Advance `state` (a FilmState) until the next event would pass t_stop, or by max_events events."""
    lat = state.lattice
    ids, vals = state.kernel_tables()
    args = (
        float(t_stop),
        int(max_events),
        lat.nbr,
        lat.dvec,
        state.occ,
        state.pos,
        state.vsite,
        state.void_at,
        state.disp,
        state.hops,
        state.t_relax,
        ids,
        vals,
        state.tree,
        state.stamp,
        state.rng,
        state.clock,
        state.counters,
        state.kparams,
        state.spec,
    )
    if not state.ipar[I_QUANT]:
        return int(_run(*args))
    return int(_run_running(*args, state.energy_sums(ids, vals)))


# ---------------------------------------------------------------------------------------------------------------
# The running-sum kernel (run.kernel = "running"): its own functions, compiled only when that kernel is asked for.
# The energies are on the 2**-36 grid (records and dense table quantized when filled, hashed values and V0 here).


@nb.njit(cache=True, inline="always", error_model="numpy")
def _bond_q(o, k, j, ids, vals, p, spec):
    """_bond on the quantized energies (the records, the table, vsub and vconst are quantized already)."""
    if len(spec[3]) != 0:
        return p.vconst
    if len(spec[4]) != 0:
        return vals[k, j]
    for i in range(len(spec[0])):
        if ids[o, i] == j:
            return vals[o, i]
    if len(spec[2]) != 0:
        return quantize(p.V0)
    return quantize(p.V0 + p.dV * hashed_u(k, j, p.n_ids, p.vseed))


@nb.njit(cache=True, error_model="numpy")
def fill_energy_sums(esum, pos, nbr, occ, ids, vals, p, spec):
    """esum[k] = the bond energy of particle k at its site (site records: row = its site), from scratch."""
    pinned = len(spec[1]) != 0
    for k in range(pos.shape[0]):
        s = pos[k]
        e = 0.0
        for d in range(len(spec[0])):
            m = nbr[s, d]
            if m >= 0:
                j = occ[m]
                if j >= 0:
                    e += _bond_q(s, k, j, ids, vals, p, spec)
            elif m == -2:
                if not pinned:
                    e += p.vsub
                else:
                    e += _bond_q(s, k, p.N + s % p.area, ids, vals, p, spec)
        esum[k] = e


@nb.njit(cache=True, inline="always", error_model="numpy")
def _void_rates_shared(sv, base, nbr, occ, ids, vals, esum, tree, p, spec, hk, he):
    """The leaves of the void at sv: each bond between two of the void's neighbours is looked up once and counted for
    both hoppers (bonds formed), the bonds broken are the running sums (sv is a void, so it is not among them).
    Exact sums make the order of the additions irrelevant, so the rates equal the generic path's bit for bit on the
    same quantized energies. hk, he: scratch of length nd."""
    nd = len(spec[0])
    sub = False
    for d in range(nd):
        a = nbr[sv, d]
        he[d] = 0.0
        if a >= 0:
            hk[d] = occ[a]
        else:
            hk[d] = -1
            if a == -2:
                sub = True
    for d in range(nd):
        k = hk[d]
        if k < 0:
            tree[base + d] = 0.0
            continue
        o = nbr[sv, d]
        for d2 in range(d + 1, nd):
            j = hk[d2]
            if j >= 0:
                b = _bond_q(o, k, j, ids, vals, p, spec)
                he[d] += b
                he[d2] += b
        if sub:
            if len(spec[1]) == 0:
                he[d] += p.vsub
            else:
                he[d] += _bond_q(o, k, p.N + sv % p.area, ids, vals, p, spec)
        tree[base + d] = p.pref * math.exp(-(he[d] - esum[k]) * p.inv2T)


@nb.njit(cache=True, inline="always", error_model="numpy")
def _event_running(
    leaf,
    t,
    nbr,
    dvec,
    occ,
    pos,
    vsite,
    void_at,
    disp,
    hops,
    t_relax,
    ids,
    vals,
    esum,
    tree,
    stamp,
    counters,
    near,
    hk,
    he,
    p,
    spec,
):
    """_event with the running sums (site records: a particle's overrides are in the row of its site)."""
    nd = len(spec[0])
    dim = nd // 2
    B = p.B
    v = leaf // B
    d = leaf - v * B
    s = vsite[v]
    m = nbr[s, d]
    k = occ[m]
    for dd in range(nd):  # k's old neighbours lose their bond to k (exact: quantized energies)
        a = nbr[m, dd]
        if a >= 0:
            j = occ[a]
            if j >= 0:
                esum[j] -= _bond_q(m, k, j, ids, vals, p, spec)
    occ[s] = k
    occ[m] = -1
    pos[k] = s
    vsite[v] = m
    void_at[s] = -1
    void_at[m] = v
    if len(spec[4]) == 0:  # the hopper's override record moves with it
        for i in range(nd):
            ids[s, i] = ids[m, i]
            vals[s, i] = vals[m, i]
    e = 0.0  # its new neighbours gain one; k's own sum is rebuilt from the bonds at s
    for dd in range(nd):
        a = nbr[s, dd]
        if a >= 0:
            j = occ[a]
            if j >= 0 and a != m:
                b = _bond_q(s, k, j, ids, vals, p, spec)
                esum[j] += b
                e += b
        elif a == -2:
            if len(spec[1]) == 0:
                e += p.vsub
            else:
                e += _bond_q(s, k, p.N + s % p.area, ids, vals, p, spec)
    esum[k] = e
    r2 = 0
    for c in range(dim):
        x = disp[k, c] - dvec[d, c]
        disp[k, c] = x
        r2 += x * x
    hops[k] += 1
    if t_relax[k] < 0.0 and r2 >= p.r2:
        t_relax[k] = t
    ev = counters[0] + 1
    counters[0] = ev
    n_near = _gather_near(s, ev, stamp, void_at, nbr, near, 0, nd)
    n_near = _gather_near(m, ev, stamp, void_at, nbr, near, n_near, nd)
    for i in range(n_near):
        w = near[i]
        base = p.P + w * B
        _void_rates_shared(vsite[w], base, nbr, occ, ids, vals, esum, tree, p, spec, hk, he)
        _propagate(tree, base, B)


@nb.njit(cache=True, error_model="numpy")
def _run_running(
    t_stop,
    max_events,
    nbr,
    dvec,
    occ,
    pos,
    vsite,
    void_at,
    disp,
    hops,
    t_relax,
    ids,
    vals,
    tree,
    stamp,
    rng,
    clock,
    counters,
    p,
    spec,
    esum,
):
    """_run with the running sums `esum` (filled by fill_energy_sums), compiled once per configuration `spec`."""
    nd = len(spec[0])
    P = p.P
    near = np.empty(2 * (1 + nd * (1 + nd)), dtype=np.int64)
    hk = np.empty(nd, dtype=np.int64)
    he = np.empty(nd)
    n = 0
    t_next = clock[1]
    while n < max_events:
        if t_next > t_stop:
            if t_stop > clock[0]:
                clock[0] = t_stop
            return n
        t = t_next
        clock[0] = t
        leaf = _select_leaf(tree, P, uniform(rng) * tree[1])
        _event_running(
            leaf,
            t,
            nbr,
            dvec,
            occ,
            pos,
            vsite,
            void_at,
            disp,
            hops,
            t_relax,
            ids,
            vals,
            esum,
            tree,
            stamp,
            counters,
            near,
            hk,
            he,
            p,
            spec,
        )
        c = counters[1] + 1
        if c >= p.rebuild:
            rebuild_sums(tree, P)
            c = 0
        counters[1] = c
        R = tree[1]
        t_next = t - math.log(uniform_open(rng)) / R if R > 0.0 else np.inf
        clock[1] = t_next
        n += 1
    return n


# ---------------------------------------------------------------------------------------------------------------
# The generic path (parameters as arrays, one compiled version for every configuration): the reference the fast
# kernel is tested against (from-scratch rates), the rejection baseline's rates, and stepping by hand in tests.


@nb.njit(cache=True, inline="always")
def site_energy(k, s, skip, nbr, occ, ovr_id, ovr_v, fpar, ipar, vseed):
    """Bond energy particle k would have at site s, ignoring the neighbour site `skip`."""
    e = 0.0
    for d in range(ipar[I_ND]):
        m = nbr[s, d]
        if m >= 0:
            if m == skip:
                continue
            j = occ[m]
            if j >= 0:
                e += bond_v(k, j, ovr_id, ovr_v, fpar, ipar, vseed)
        elif m == -2:
            if ipar[I_SUBMODE] == 0:
                e += fpar[F_VSUB]
            else:
                e += bond_v(k, ipar[I_N] + s % ipar[I_AREA], ovr_id, ovr_v, fpar, ipar, vseed)
    return e


@nb.njit(cache=True, inline="always")
def hop_de(sv, d, nbr, occ, ovr_id, ovr_v, fpar, ipar, vseed):
    """dE of the hop of the particle at nbr[sv, d] into void site sv (nan if there is no particle there)."""
    m = nbr[sv, d]
    if m < 0:
        return np.nan
    k = occ[m]
    if k < 0:
        return np.nan
    e_new = site_energy(k, sv, m, nbr, occ, ovr_id, ovr_v, fpar, ipar, vseed)
    e_old = site_energy(k, m, sv, nbr, occ, ovr_id, ovr_v, fpar, ipar, vseed)
    return e_new - e_old


@nb.njit(cache=True, inline="always")
def hop_rate(sv, d, nbr, occ, ovr_id, ovr_v, fpar, ipar, vseed):
    """w0 exp(-(E0 + dE/2)/T) for the hop into void site sv from direction d; 0 when no particle can hop."""
    de = hop_de(sv, d, nbr, occ, ovr_id, ovr_v, fpar, ipar, vseed)
    if np.isnan(de):
        return 0.0
    return fpar[F_PREF] * math.exp(-de * fpar[F_INV2T])


@nb.njit(cache=True, inline="always")
def set_void_rates(v, vsite, nbr, occ, ovr_id, ovr_v, tree, fpar, ipar, vseed):
    """Recompute the nd leaves of void v and the sums above them."""
    nd = ipar[I_ND]
    B = ipar[I_B]
    P = ipar[I_P]
    sv = vsite[v]
    base = P + v * B
    for d in range(nd):
        tree[base + d] = hop_rate(sv, d, nbr, occ, ovr_id, ovr_v, fpar, ipar, vseed)
    lo = base >> 1
    n = B >> 1
    while n >= 1 and lo >= 1:
        for j in range(lo, lo + n):
            tree[j] = tree[2 * j] + tree[2 * j + 1]
        lo >>= 1
        n >>= 1
    while lo >= 1:
        tree[lo] = tree[2 * lo] + tree[2 * lo + 1]
        lo >>= 1


@nb.njit(cache=True)
def rebuild_sums(tree, P):
    for j in range(P - 1, 0, -1):
        tree[j] = tree[2 * j] + tree[2 * j + 1]


@nb.njit(cache=True)
def build_tree(vsite, nbr, occ, ovr_id, ovr_v, tree, fpar, ipar, vseed):
    """All leaves from scratch, then the sums."""
    nd = ipar[I_ND]
    B = ipar[I_B]
    P = ipar[I_P]
    tree[:] = 0.0
    for v in range(vsite.shape[0]):
        for d in range(nd):
            tree[P + v * B + d] = hop_rate(vsite[v], d, nbr, occ, ovr_id, ovr_v, fpar, ipar, vseed)
    rebuild_sums(tree, P)


@nb.njit(cache=True)
def select_leaf(tree, P, r):
    """The leaf i with cumsum(leaves)[i-1] <= r < cumsum(leaves)[i], for r in [0, root)."""
    return _select_leaf(tree, P, r)


@nb.njit(cache=True)
def select_leaf4(tree, P, r):
    """select_leaf by the event loop's 4-way descent (tests: the same leaf as the binary descent)."""
    odd = False
    q = P
    while q > 1:
        q >>= 1
        odd = not odd
    return _select_leaf4(tree, P, r, odd)


@nb.njit(cache=True)
def propagate4(tree, base, B, P):
    """_propagate4 (tests: its kept nodes equal the binary sums)."""
    odd = False
    q = P
    while q > 1:
        q >>= 1
        odd = not odd
    _propagate4(tree, base, B, odd)


@nb.njit(cache=True)
def do_event(
    leaf,
    t,
    nbr,
    dvec,
    occ,
    pos,
    vsite,
    void_at,
    disp,
    hops,
    t_relax,
    ovr_id,
    ovr_v,
    tree,
    stamp,
    counters,
    fpar,
    ipar,
    vseed,
    near,
):
    """Perform event `leaf` = (void, direction) at time t and refresh the affected rates (`near`: scratch)."""
    B = ipar[I_B]
    v = leaf // B
    d = leaf - v * B
    s = vsite[v]
    m = nbr[s, d]
    k = occ[m]
    occ[s] = k
    occ[m] = -1
    pos[k] = s
    vsite[v] = m
    void_at[s] = -1
    void_at[m] = v
    r2 = 0
    for c in range(dvec.shape[1]):
        disp[k, c] -= dvec[d, c]
        r2 += disp[k, c] * disp[k, c]
    hops[k] += 1
    if t_relax[k] < 0.0 and r2 >= fpar[F_R2]:
        t_relax[k] = t
    ev = counters[0] + 1
    counters[0] = ev
    n_near = _gather_near(s, ev, stamp, void_at, nbr, near, 0, nbr.shape[1])
    n_near = _gather_near(m, ev, stamp, void_at, nbr, near, n_near, nbr.shape[1])
    for i in range(n_near):
        set_void_rates(near[i], vsite, nbr, occ, ovr_id, ovr_v, tree, fpar, ipar, vseed)


@nb.njit(cache=True, inline="always")
def draw_next(clock, tree, rng):
    """t_next = t + Exp(R) with R the total rate (inf when nothing can move)."""
    R = tree[1]
    if R > 0.0:
        clock[1] = clock[0] - math.log(uniform_open(rng)) / R
    else:
        clock[1] = np.inf
