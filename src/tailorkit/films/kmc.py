"""Rejection-free kinetic Monte Carlo (BKL / n-fold way) of the DPLM: rates, binary sum tree, the event loop.

Verified (notes §1.2, reference code): events are (void, direction) pairs, a particle next to a void swaps into it at
w = w0 exp(-(E0 + dE/2)/T), dE = (bonds the particle forms at the void site, without the bond to its old site) -
(bonds it breaks at its old site); detailed balance w(A->B)/w(B->A) = exp(-dE/T); only rates near the two changed
sites change. Deliberate deviations: the waiting time is exponential, dt = -ln(U)/R (the reference code uses 1/R;
that is exact only on average), and parents are recomputed from their children on each update (no running-sum
drift), with a periodic full rebuild kept as a safeguard.

Tree layout: void v owns the aligned leaf block [v*B, v*B + B) (B = nd rounded up to a power of two; padding leaves
stay 0), leaves at tree[P + i], root tree[1], so all of a void's rates are refreshed with one walk to the root.
The pending event time t_next lives in `clock` (clock = [t, t_next]): stopping at any t_stop does not consume random
numbers, so the trajectory does not depend on how a run is cut into segments (checkpoints resume bit for bit).

After a hop from site m into void site s, the rate of (v', d') depends on the occupancy of v', its neighbours and
the neighbours of its target, i.e. on sites within lattice distance 2 of v': every void within distance 2 of s or m
is recomputed (a stamp avoids doing one twice).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from tailorkit.films.interactions import (
    F_INV2T,
    F_PREF,
    F_R2,
    F_VSUB,
    I_AREA,
    I_B,
    I_N,
    I_ND,
    I_P,
    I_REBUILD,
    I_SUBMODE,
    bond_v,
)
from tailorkit.films.rng import uniform, uniform_open


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


@nb.njit(cache=True, inline="always")
def select_leaf(tree, P, r):
    """The leaf i with cumsum(leaves)[i-1] <= r < cumsum(leaves)[i], for r in [0, root)."""
    i = 1
    while i < P:
        left = 2 * i
        if r < tree[left]:
            i = left
        else:
            r -= tree[left]
            i = left + 1
    leaf = i - P
    while tree[P + leaf] <= 0.0 and leaf > 0:  # rounding can push r past the last non-zero leaf
        leaf -= 1
    return leaf


@nb.njit(cache=True, inline="always")
def _gather_near(c, ev, stamp, void_at, nbr, near, n_near):
    """Append to `near` the voids within lattice distance 2 of site c not yet stamped with event ev."""
    nd = nbr.shape[1]
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
    n_near = _gather_near(s, ev, stamp, void_at, nbr, near, 0)
    n_near = _gather_near(m, ev, stamp, void_at, nbr, near, n_near)
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


@nb.njit(cache=True)
def run_until(
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
    ovr_id,
    ovr_v,
    tree,
    stamp,
    rng,
    clock,
    counters,
    fpar,
    ipar,
    vseed,
):
    """Advance until the next event would pass t_stop (then t = t_stop) or max_events events; return the count."""
    P = ipar[I_P]
    near = np.empty(2 * (1 + nbr.shape[1] * (1 + nbr.shape[1])), dtype=np.int64)
    n = 0
    while n < max_events:
        if clock[1] > t_stop:
            if t_stop > clock[0]:
                clock[0] = t_stop
            return n
        t = clock[1]
        clock[0] = t
        leaf = select_leaf(tree, P, uniform(rng) * tree[1])
        do_event(
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
        )
        counters[1] += 1
        if counters[1] >= ipar[I_REBUILD]:
            rebuild_sums(tree, P)
            counters[1] = 0
        draw_next(clock, tree, rng)
        n += 1
    return n
