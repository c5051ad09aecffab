"""From measured curves to the paper's quantities: tau(z), KWW beta, bulk fits, nu, film mobility, S, T_c, front.

Film mobility [inferred, docs/films.md#film-mobility]: Maxwell closure eta(z) = G tau(z); no-slip substrate at
z = 0, stress-free top; M = int_0^h (h - z)^2 / eta(z) dz. On layers j = 0..h-1 (j = 0 at the substrate):
M = (1/3G) sum_j w_j / tau_j with w_j = (h - j)^3 - (h - j - 1)^3 (sum_j w_j = h^3), eta_eff = h^3 / (3M), so
eta_eff / eta_bulk = tau_eff / tau_bulk with tau_eff = h^3 / sum_j (w_j / tau_j), the weighted harmonic mean.
Mobile layer thickness l = number of layers below the top with tau(z) < tau_bulk / e; surface fraction
S = sum_{j >= h - l} w_j / tau_j / sum_j w_j / tau_j; T_c(h) where S = 1/2. Front depth d(t): layers from the
top, contiguous, with at least half of their particles relaxed by t.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

INV_E = math.exp(-1.0)


def tau_crossing(t: np.ndarray, f: np.ndarray, level: float = INV_E) -> float:
    """First time f(t) falls below `level` (linear in f against ln t between samples); nan if it never does."""
    t, f = np.asarray(t, float), np.asarray(f, float)
    ok = np.isfinite(f) & (t > 0)
    t, f = t[ok], f[ok]
    below = np.flatnonzero(f < level)
    if below.size == 0:
        return math.nan
    i = int(below[0])
    if i == 0:
        return float(t[0])
    f0, f1 = f[i - 1], f[i]
    x0, x1 = math.log(t[i - 1]), math.log(t[i])
    x = x0 + (f0 - level) / (f0 - f1) * (x1 - x0)
    return math.exp(x)


def kww_fit(t: np.ndarray, f: np.ndarray, lo: float = 0.05, hi: float = 0.9) -> tuple[float, float]:
    """tau, beta of f = exp(-(t/tau)^beta) from a straight line ln(-ln f) = beta ln t - beta ln tau on lo < f < hi."""
    t, f = np.asarray(t, float), np.asarray(f, float)
    ok = np.isfinite(f) & (f > lo) & (f < hi) & (t > 0)
    if ok.sum() < 3:
        return math.nan, math.nan
    x, y = np.log(t[ok]), np.log(-np.log(f[ok]))
    beta, c = np.polyfit(x, y, 1)
    if not beta > 0 or -c / beta > 700:  # a flat or inverted fit (few points, noise): no KWW time, not an overflow
        return math.nan, float(beta)
    return float(math.exp(-c / beta)), float(beta)


def layer_taus(t: np.ndarray, curves: np.ndarray, level: float = INV_E) -> np.ndarray:
    """tau per layer from curves[time, layer]."""
    return np.array([tau_crossing(t, curves[:, z], level) for z in range(curves.shape[1])])


def mobility_weights(h: int) -> np.ndarray:
    """w_j = (h - j)^3 - (h - j - 1)^3 for j = 0 (substrate) .. h - 1 (top); they sum to h^3."""
    j = np.arange(h, dtype=float)
    return (h - j) ** 3 - (h - j - 1) ** 3


def tau_eff(tau_z: Sequence[float]) -> float:
    """The mobility-weighted harmonic mean h^3 / sum_j w_j / tau_j (nan if any layer is unknown)."""
    tau = np.asarray(tau_z, float)
    if not np.all(np.isfinite(tau)) or np.any(tau <= 0):
        return math.nan
    w = mobility_weights(tau.size)
    return float(tau.size**3 / np.sum(w / tau))


def film_mobility(tau_z: Sequence[float], G: float = 1.0) -> float:
    """M = (1/3G) sum_j w_j / tau_j (lattice units); uniform tau gives h^3 / (3 G tau)."""
    tau = np.asarray(tau_z, float)
    return float(np.sum(mobility_weights(tau.size) / tau) / (3.0 * G))


def two_layer_mobility(h: float, h_m: float, eta_m: float, eta_b: float) -> float:
    """Two-layer model: M = (h^3 - h_m^3) / (3 eta_b) + h_m^3 / (3 eta_m)."""
    return (h**3 - h_m**3) / (3 * eta_b) + h_m**3 / (3 * eta_m)


def mobile_thickness(tau_z: Sequence[float], tau_bulk: float) -> int:
    """Layers from the top (contiguous) with tau < tau_bulk / e."""
    n = 0
    for tau in np.asarray(tau_z, float)[::-1]:
        if math.isfinite(tau) and tau < tau_bulk * INV_E:
            n += 1
        else:
            break
    return n


def surface_fraction(tau_z: Sequence[float], n_mobile: int) -> float:
    """S = share of the film mobility carried by the top `n_mobile` layers, in [0, 1]."""
    tau = np.asarray(tau_z, float)
    if not np.all(np.isfinite(tau)):
        return math.nan
    terms = mobility_weights(tau.size) / tau
    return float(terms[tau.size - n_mobile :].sum() / terms.sum()) if n_mobile > 0 else 0.0


def crossing_temperature(T: Sequence[float], S: Sequence[float], level: float = 0.5) -> float:
    """T where S(T) crosses `level` (linear interpolation in T; nan if it does not)."""
    pairs = sorted((float(a), float(b)) for a, b in zip(T, S, strict=True) if math.isfinite(b))
    for (t0, s0), (t1, s1) in itertools.pairwise(pairs):
        if (s0 - level) * (s1 - level) <= 0 and s0 != s1:
            return t0 + (level - s0) / (s1 - s0) * (t1 - t0)
    return math.nan


def fit_arrhenius(T: Sequence[float], tau: Sequence[float]) -> dict[str, float]:
    """ln tau = a + E/T by least squares, with the Gaussian AIC n ln(RSS/n) + 2k."""
    x, y = 1.0 / np.asarray(T, float), np.log(np.asarray(tau, float))
    E, a = np.polyfit(x, y, 1)
    rss = float(np.sum((y - (a + E * x)) ** 2))
    return {"ln_tau0": float(a), "E": float(E), "rss": rss, "aic": _aic(rss, y.size, 2)}


def fit_vft(T: Sequence[float], tau: Sequence[float]) -> dict[str, float]:
    """ln tau = a + D/(T - T0), T0 scanned on a grid below min(T) (a, D linear given T0)."""
    Ts, y = np.asarray(T, float), np.log(np.asarray(tau, float))
    best: dict[str, float] = {"rss": math.inf}
    if Ts.size < 4:
        return {"ln_tau0": math.nan, "D": math.nan, "T0": math.nan, "rss": math.nan, "aic": math.nan}
    for T0 in np.linspace(0.0, 0.98 * Ts.min(), 200):
        x = 1.0 / (Ts - T0)
        D, a = np.polyfit(x, y, 1)
        rss = float(np.sum((y - (a + D * x)) ** 2))
        if rss < best["rss"]:
            best = {"ln_tau0": float(a), "D": float(D), "T0": float(T0), "rss": rss}
    best["aic"] = _aic(best["rss"], y.size, 3)
    return best


def _aic(rss: float, n: int, k: int) -> float:
    return float(n * math.log(max(rss, 1e-300) / n) + 2 * k)


def facilitation_exponent(phi_v: Sequence[float], tau: Sequence[float]) -> float:
    """nu in tau ~ phi_v^(-nu): minus the slope of ln tau against ln phi_v."""
    x, y = np.log(np.asarray(phi_v, float)), np.log(np.asarray(tau, float))
    ok = np.isfinite(y)
    if ok.sum() < 2:
        return math.nan
    return float(-np.polyfit(x[ok], y[ok], 1)[0])


def relaxed_fraction(
    times: Sequence[float] | np.ndarray, t_relax: np.ndarray, layer0: np.ndarray, n_layers: int
) -> np.ndarray:
    """[time, layer] fraction of the particles (layer at t = 0) first relaxed by each time."""
    out = np.zeros((len(times), n_layers))
    counts = np.bincount(layer0, minlength=n_layers).astype(float)
    relaxed_at = np.where(t_relax >= 0, t_relax, np.inf)
    for i, t in enumerate(times):
        hit = np.bincount(layer0[relaxed_at <= t], minlength=n_layers)
        out[i] = np.where(counts > 0, hit / np.maximum(counts, 1), np.nan)
    return out


def front_depth(fraction: np.ndarray, level: float = 0.5) -> np.ndarray:
    """d(t): layers from the top (last column) contiguous with relaxed fraction >= level, per time row."""
    depth = np.zeros(fraction.shape[0], dtype=int)
    for i, row in enumerate(fraction):
        n = 0
        for value in row[::-1]:
            if value >= level:
                n += 1
            else:
                break
        depth[i] = n
    return depth


def half_relaxation_times(t_relax: np.ndarray, layer0: np.ndarray, n_layers: int) -> np.ndarray:
    """Per layer, the time by which half of its particles have first relaxed (nan if not yet)."""
    out = np.full(n_layers, math.nan)
    for z in range(n_layers):
        tr = t_relax[layer0 == z]
        if tr.size == 0:
            continue
        done = np.sort(tr[tr >= 0])
        need = (tr.size + 1) // 2
        if done.size >= need:
            out[z] = done[need - 1]
    return out
