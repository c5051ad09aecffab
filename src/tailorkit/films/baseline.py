"""The baseline the rejection-free kernel is measured against: naive rejection KMC with the same rates.

Pick a (void, direction) uniformly among the M = N_v * nd slots, accept with probability w / w_max, advance time by
Exp(M * w_max) per attempt: exact in distribution (the same Markov chain), but at low T nearly every attempt is
rejected because w_max = w0 exp(-(E0 - (nd - 1)(V1 - V0)/2)/T) bounds the fastest possible hop.
"""

from __future__ import annotations

import math
import time

import numba as nb
import numpy as np

from tailorkit.films.kmc import hop_rate
from tailorkit.films.rng import randint, uniform, uniform_open
from tailorkit.films.state import FilmState


@nb.njit(cache=True)
def _rejection_run(
    n_attempts, w_max, nbr, dvec, occ, pos, vsite, void_at, disp, ovr_id, ovr_v, clock, rng, fpar, ipar, vseed
):
    nd = nbr.shape[1]
    n_v = vsite.shape[0]
    total = n_v * nd * w_max
    accepted = 0
    for _ in range(n_attempts):
        clock[0] -= math.log(uniform_open(rng)) / total
        v = randint(rng, n_v)
        d = randint(rng, nd)
        s = vsite[v]
        w = hop_rate(s, d, nbr, occ, ovr_id, ovr_v, fpar, ipar, vseed)
        if w <= 0.0 or uniform(rng) * w_max >= w:
            continue
        m = nbr[s, d]
        k = occ[m]
        occ[s] = k
        occ[m] = -1
        pos[k] = s
        vsite[v] = m
        void_at[s] = -1
        void_at[m] = v
        for c in range(dvec.shape[1]):
            disp[k, c] -= dvec[d, c]
        accepted += 1
    return accepted


def max_rate(state: FilmState) -> float:
    """The largest rate any hop can have: dE >= -(nd - 1)(V1 - V0)."""
    m = state.config.model
    span = (m.V1 - m.V0) if m.g == "uniform" else 0.0
    return float(state.fpar[1] * math.exp((state.lattice.nd - 1) * span * state.fpar[0]))


def rejection_kmc(state: FilmState, n_attempts: int) -> dict[str, float]:
    """Run `n_attempts` rejection-KMC attempts on `state` (modified in place; its sum tree goes stale).

    Returns attempts, accepted events, acceptance, CPU seconds and accepted events per CPU second.
    """
    w_max = max_rate(state)
    lat = state.lattice
    cpu = time.process_time()
    accepted = _rejection_run(
        int(n_attempts),
        w_max,
        lat.nbr,
        lat.dvec,
        state.occ,
        state.pos,
        state.vsite,
        state.void_at,
        state.disp,
        state.ovr_id,
        state.ovr_v,
        state.clock,
        state.rng,
        state.fpar,
        state.ipar,
        state.vseed,
    )
    cpu = time.process_time() - cpu
    return {
        "attempts": float(n_attempts),
        "accepted": float(accepted),
        "acceptance": accepted / n_attempts,
        "cpu_s": cpu,
        "events_per_cpu_s": accepted / cpu if cpu > 0 else float(np.nan),
    }
