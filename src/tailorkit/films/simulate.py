"""`run`: one trajectory from the exact equilibrium start, observed at log-spaced times, checkpointed, resumable.

Observation times t_k = t_first * 10^(k / per_decade), t_first = t_first_hops / (w0 exp(-E0/T)). Stops (status):
`relaxed` once every layer's F_s has fallen below 1/e and t >= stop_after_tau x the latest such
crossing time (adaptive), `t_max`, `max_events`, `budget` (budget_s seconds of wall time, or with
budget_clock = "cpu" of the trajectory thread's CPU time, so that a loaded machine does not shorten the run; the run is
kept and its tau are lower bounds or nan). Checkpoints every checkpoint_every_s wall seconds and on Ctrl-C
(status `interrupted`); `resume` continues bit for bit because the pending event time is part of the state.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tailorkit.core.progress import bar, status
from tailorkit.films.analysis import (
    INV_E,
    front_depth,
    half_relaxation_times,
    kww_fit,
    layer_taus,
    relaxed_fraction,
    tau_crossing,
)
from tailorkit.films.config import FilmConfig
from tailorkit.films.interactions import z1
from tailorkit.films.io import FilmIOError, restore_state, write_run
from tailorkit.films.observables import FIELDS, measure, origin
from tailorkit.films.state import FilmState, initial_state


@dataclass
class RunResult:
    """A finished (or stopped) run: observables obs[field] with shape [n_obs, n_layers], t[n_obs], summary."""

    config: FilmConfig
    status: str
    obs: dict[str, np.ndarray]
    init: dict[str, np.ndarray]
    t_relax: np.ndarray
    summary: dict[str, Any]
    events: int
    wall_s: float
    cpu_s: float
    path: Path | None = None
    state: FilmState | None = field(default=None, repr=False)


def observation_time(config: FilmConfig, k: int) -> float:
    m = config.model
    t_first = config.run.t_first_hops / (m.w0 * math.exp(-m.E0 / m.T))
    return t_first * 10.0 ** (k / config.run.per_decade)


def _empty_obs(n_layers: int) -> dict[str, list[Any]]:
    return {name: [] for name in (*FIELDS, "t", "events", "ebond")}


def _as_arrays(rec: dict[str, list[Any]], n_layers: int) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name, values in rec.items():
        if name in FIELDS:
            out[name] = np.asarray(values, float).reshape(len(values), n_layers)
        else:
            out[name] = np.asarray(values, np.int64 if name == "events" else float)
    return out


def simulate(
    config: FilmConfig,
    out: str | os.PathLike[str] | None = None,
    *,
    resume: bool = False,
    force: bool = False,
    progress: bool | None = None,
    interrupt_after_events: int | None = None,
) -> RunResult:
    """Run `config`; write `out` (HDF5) if given. `resume` continues an existing checkpoint of the same config.

    `interrupt_after_events` raises KeyboardInterrupt once that many events are done (after checkpointing), which is
    how tests and the CLI check interruption and resume.
    """
    path = Path(out) if out is not None else None
    rcfg = config.run
    if resume:
        if path is None or not path.is_file():
            raise FilmIOError(f"nothing to resume: run file {str(path)!r} not found")
        state, run = restore_state(path, config)
        init = run["init"]
        rec: dict[str, list[Any]] = {k: list(v) for k, v in run["obs"].items()}
        k = int(run["state_attrs"]["next_obs"])
        wall0, cpu0 = float(run["state_attrs"]["wall_s"]), float(run["state_attrs"]["cpu_s"])
        if run["attrs"].get("status") not in ("running", "interrupted", "budget"):
            status(f"{path}: run already finished ({run['attrs'].get('status')}); nothing to do")
    else:
        if path is not None and path.exists() and not force:
            raise FilmIOError(f"run file {str(path)!r} exists; pass --resume to continue it or --force to overwrite")
        state = initial_state(config)
        init = origin(state)
        rec = _empty_obs(state.lattice.n_layers)
        k = 0
        wall0 = cpu0 = 0.0
    n_layers = state.lattice.n_layers
    wall_start, cpu_start = time.perf_counter(), time.process_time()
    last_ckpt = wall_start
    budget_clock = time.thread_time if config.run.budget_clock == "cpu" else time.perf_counter
    budget_start = budget_clock()
    run_status = "running"
    done_before = state.events

    def elapsed() -> tuple[float, float]:
        return wall0 + time.perf_counter() - wall_start, cpu0 + time.process_time() - cpu_start

    def checkpoint(stat: str, summary: dict[str, Any] | None = None) -> None:
        if path is None:
            return
        wall, cpu = elapsed()
        write_run(
            path,
            state=state,
            init=init,
            obs=_as_arrays(rec, n_layers),
            status=stat,
            next_obs=k,
            wall_s=wall,
            cpu_s=cpu,
            summary=summary,
        )

    finished = resume and run["attrs"].get("status") in ("relaxed", "t_max", "max_events")
    pbar = bar(f"film T={config.model.T:g} h={config.lattice.h}", enabled=progress)
    try:
        while not finished:
            target = observation_time(config, k)
            if target > rcfg.t_max:
                run_status = "t_max"
                break
            while state.t < target:
                chunk = rcfg.chunk_events
                if rcfg.max_events:
                    chunk = min(chunk, rcfg.max_events - state.events)
                    if chunk <= 0:
                        break
                n = state.run_until(target, chunk)
                now = time.perf_counter()
                wall, cpu = elapsed()
                pbar.update(n)
                pbar.set_postfix_str(f"t={state.t:.3g} ev/s={state.events / max(cpu, 1e-9):.3g}")
                if interrupt_after_events is not None and state.events >= interrupt_after_events:
                    raise KeyboardInterrupt
                if budget_clock() - budget_start > rcfg.budget_s:  # per session: a resumed budget run goes on
                    break
                if now - last_ckpt > rcfg.checkpoint_every_s:
                    checkpoint("running")
                    last_ckpt = now
            if state.t < target:  # stopped inside a segment
                run_status = "max_events" if rcfg.max_events and state.events >= rcfg.max_events else "budget"
                break
            values = measure(state, init)
            for name in FIELDS:
                rec[name].append(values[name])
            rec["t"].append(state.t)
            rec["events"].append(state.events)
            rec["ebond"].append(float(values["ebond"]))
            k += 1
            if rcfg.stop_after_tau > 0 and _relaxed_everywhere(rec, state.t, rcfg.stop_after_tau):
                run_status = "relaxed"
                break
    except KeyboardInterrupt:
        checkpoint("interrupted")
        raise
    finally:
        pbar.close()
    obs = _as_arrays(rec, n_layers)
    wall, cpu = elapsed()
    summary = summarize(config, obs, init, state.t_relax)
    summary.update(
        events=state.events,
        wall_s=wall,
        cpu_s=cpu,
        events_per_cpu_s=_rate(state.events, cpu, 0),
        events_per_s=_rate(state.events - done_before, time.perf_counter() - wall_start, 0),
    )
    if path is not None:
        checkpoint(run_status if not finished else str(run["attrs"]["status"]), summary)
    return RunResult(config, run_status, obs, init, state.t_relax.copy(), summary, state.events, wall, cpu, path, state)


def _relaxed_everywhere(rec: dict[str, list[Any]], t: float, factor: float) -> bool:
    fs = np.asarray(rec["fs"], float)
    times = np.asarray(rec["t"], float)
    below = fs < INV_E
    has = np.isfinite(fs[0])
    if not np.all(below[:, has].any(axis=0)):
        return False
    first = times[np.argmax(below[:, has], axis=0)]
    return bool(t >= factor * first.max())


def _rate(n: int, seconds: float, default: float) -> float:
    return n / seconds if seconds > 0 else default


def summarize(
    config: FilmConfig, obs: dict[str, np.ndarray], init: dict[str, np.ndarray], t_relax: np.ndarray
) -> dict[str, Any]:
    """Per-layer tau (F_s at 1/e), KWW beta, bond tau, pooled and interior tau, void profile, front, energies."""
    t = obs["t"]
    n_layers = obs["fs"].shape[1] if obs["fs"].ndim == 2 else config.lattice.h
    counts = np.bincount(init["layer0"], minlength=n_layers).astype(float)
    summary: dict[str, Any] = {"n_obs": int(t.size)}
    if t.size == 0:
        return summary
    fs, bond = obs["fs"], obs["bond"]
    summary["tau_z"] = layer_taus(t, fs)
    summary["tau_bond_z"] = layer_taus(t, bond)
    summary["beta_z"] = np.array([kww_fit(t, fs[:, z])[1] for z in range(n_layers)])
    pooled = np.nansum(fs * counts, axis=1) / counts.sum()
    summary["tau"] = tau_crossing(t, pooled)
    summary["beta"] = kww_fit(t, pooled)[1]
    h = n_layers
    interior = list(range(2, h - 2)) if h >= 5 else [h // 2]
    curve = np.nansum(fs[:, interior] * counts[interior], axis=1) / counts[interior].sum()
    summary["tau_interior"] = tau_crossing(t, curve)
    summary["tau_top"] = float(summary["tau_z"][-1])
    summary["void_profile"] = obs["voids"].mean(axis=0) / max(config.lattice.Lx * config.lattice.Ly, 1)
    summary["hop_rate_z"] = obs["hops"][-1] / max(float(t[-1]), 1e-300)
    summary["t_half_relax_z"] = half_relaxation_times(t_relax, init["layer0"], n_layers)
    frac = relaxed_fraction(t, t_relax, init["layer0"], n_layers)
    summary["front_depth"] = front_depth(frac).astype(float)
    summary["ebond_start"] = float(obs["ebond"][0])
    summary["ebond_end"] = float(obs["ebond"][-1])
    summary["ebond_equilibrium"] = expected_bond_energy(config)
    summary["t_end"] = float(t[-1])
    summary["t_obs"] = t.copy()
    return summary


def expected_bond_energy(config: FilmConfig) -> float:
    """<V> over occupied bonds in equilibrium: int V g(V) exp(-V/T) dV / Z1."""
    m = config.model
    if m.g == "delta":
        return m.V0
    v = np.linspace(m.V0, m.V1, 20001)
    w = np.exp(-(v - m.V0) / m.T)
    return float(np.trapezoid(v * w, v) / np.trapezoid(w, v))


__all__ = ["RunResult", "expected_bond_energy", "observation_time", "simulate", "summarize", "z1"]
