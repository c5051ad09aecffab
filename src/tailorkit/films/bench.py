"""`tailorkit bench films`: the reduced reproduction of arXiv:2402.11210 (docs/films.md#reduced-reproduction-plan) plus
the speed comparison.

Quick (<= 5 min on 2 cores): bulk 48x48 and films h = 6, 16 (Lx = 256) at T = 0.30, 0.22, 0.18, one seed, plus bulk
runs at phi_v = 0.02 for the facilitation exponent nu. Full (budget ~40 min, not run here): bulk 64x64 and h = 6, 10,
16, 32 at T = 0.30 ... 0.15, 2 seeds, a pinned-substrate set, the front from h = 32, and 3D (bulk 16^3, an
h = 8 film of 24 x 24) at T >= 0.22. Rows: one per (geometry, h, T)
with tau, tau_top_over_interior, eta_eff_over_bulk, surface_fraction, events_per_s (events per CPU second of the
worker: the per-core rate, independent of how loaded the host is); plus the speed rows: the rejection-free kernel
and the naive rejection KMC baseline on the same L x L bulk (L = 30, 100, 400, 1000, phi_v = 0.01), in the same
process. Claims are computed from the rows.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tailorkit.core.bench import EvidencePlan, register_bench
from tailorkit.core.progress import status
from tailorkit.core.results import BenchOutcome, Claim, DataInfo, Row
from tailorkit.films import analysis as A
from tailorkit.films.config import FilmConfig, LatticeConfig, ModelConfig, RunConfig
from tailorkit.films.study import analyze_results, finite_metrics
from tailorkit.films.sweep import run_serial, run_sweep

if TYPE_CHECKING:
    import torch


SPEED_GOALS = {30: 5e6, 100: 3e6, 1000: 1.5e6}  # events per CPU second (issue 24)


@dataclass(frozen=True)
class FilmsBenchConfig:
    temperatures_quick: tuple[float, ...] = (0.30, 0.22, 0.18)
    temperatures_full: tuple[float, ...] = (0.30, 0.25, 0.22, 0.20, 0.18, 0.16, 0.15)
    thicknesses_quick: tuple[int, ...] = (6, 16)
    thicknesses_full: tuple[int, ...] = (6, 10, 16, 32)
    seeds_quick: int = 1
    seeds_full: int = 2
    bulk_L_quick: int = 48
    bulk_L_full: int = 64
    film_Lx: int = 256
    film_Lx_thick: int = 128
    phi_v: float = 0.01
    phi_v_nu: float = 0.02
    budget_s_quick: float = 150.0
    budget_s_full: float = 900.0
    workers: int = 2
    baseline_events: int = 2_000_000
    speed_sizes: tuple[int, ...] = (30, 100, 400, 1000)  # L of the L x L bulks of the speed rows (empty: none)
    use_dask: bool = True
    runs_dir: str = ""  # keep every run's HDF5 here; a rerun reuses finished runs and resumes interrupted ones

    def __post_init__(self) -> None:
        if self.workers < 1 or self.baseline_events < 1000 or self.seeds_quick < 1 or self.seeds_full < 1:
            raise ValueError("workers >= 1, seeds_quick/seeds_full >= 1 and baseline_events >= 1000 are required")
        if self.speed_sizes and min(self.speed_sizes) < 10:  # empty: no speed rows
            raise ValueError(f"speed_sizes: expected lattice sizes L >= 10, got {self.speed_sizes}")


def _jobs(cfg: FilmsBenchConfig, mode: str, seed: int) -> list[FilmConfig]:
    quick = mode == "quick"
    temps = cfg.temperatures_quick if quick else cfg.temperatures_full
    hs = cfg.thicknesses_quick if quick else cfg.thicknesses_full
    seeds = [seed + i for i in range(cfg.seeds_quick if quick else cfg.seeds_full)]
    bulk_L = cfg.bulk_L_quick if quick else cfg.bulk_L_full
    budget = cfg.budget_s_quick if quick else cfg.budget_s_full
    # CPU-time budgets: a loaded machine must not shorten the runs and change the rows
    run = RunConfig(budget_s=budget, budget_clock="cpu", checkpoint_every_s=1e9)
    jobs = []
    for s in seeds:
        for T in temps:
            model = ModelConfig(T=T, phi_v=cfg.phi_v)
            r = replace(run, seed=s)
            jobs.append(FilmConfig(LatticeConfig(geometry="bulk", Lx=bulk_L, h=bulk_L), model, r))
            if s == seed:
                jobs.append(
                    FilmConfig(
                        LatticeConfig(geometry="bulk", Lx=bulk_L, h=bulk_L), replace(model, phi_v=cfg.phi_v_nu), r
                    )
                )
            for h in hs:
                lx = cfg.film_Lx if h <= 16 else cfg.film_Lx_thick
                jobs.append(FilmConfig(LatticeConfig(Lx=lx, h=h), model, r))
                if not quick and h == 16 and T in (0.20, 0.16) and s == seed:
                    jobs.append(FilmConfig(LatticeConfig(Lx=lx, h=h, substrate="pinned"), model, r))
            if not quick and T >= 0.22 and s == seed:  # the dimension check: 3D bulk and an h = 8 film
                jobs.append(FilmConfig(LatticeConfig(geometry="bulk", dim=3, Lx=16, Ly=16, h=16), model, r))
                jobs.append(FilmConfig(LatticeConfig(dim=3, Lx=24, Ly=24, h=8), model, r))
    return jobs


def _claim(kind: str, id: str, text: str, value: float, target: float) -> Claim:
    """Claim.at_least / at_most, except that an unmeasurable (nan) value is reported as -1 and does not hold."""
    if not math.isfinite(value):
        return Claim(id, text + " (not measurable in this run)", -1.0, float(target), False)
    return Claim.at_least(id, text, value, target) if kind == "min" else Claim.at_most(id, text, value, target)


# Evidence mode: the film claims over 5 paired seeds (seed s fixes every run's lattice, energies and event stream),
# one seed per call, without the speed rows (a measurement of the machine, not of the seed). The simulations have no
# training steps: `--budget K` multiplies each run's CPU-second budget, i.e. the simulated time reached. Estimate:
# the quick run without its speed rows, about 10 min a seed on 2 idle cores, about 50 min in all.
EVIDENCE = EvidencePlan(
    budget_fields=("budget_s_quick", "budget_s_full"),
    one_seed={"seeds_quick": 1, "seeds_full": 1, "speed_sizes": ()},
    seeds=5,
)


@register_bench("films", config=FilmsBenchConfig, plan=EVIDENCE)
def films_bench(config: FilmsBenchConfig, mode: str, seed: int, device: torch.device) -> BenchOutcome:
    jobs = _jobs(config, mode, seed)
    status(f"films bench: {len(jobs)} runs on {config.workers} worker(s)")
    start = time.perf_counter()
    runs_dir = Path(config.runs_dir).expanduser() if config.runs_dir else None
    if runs_dir is not None:
        runs_dir.mkdir(parents=True, exist_ok=True)
        status(f"films bench: run files in {runs_dir} (finished runs there are reused, interrupted ones resumed)")
    if config.use_dask:
        results = run_sweep(jobs, runs_dir, workers=config.workers, reuse=True)
    else:
        results = run_serial(jobs, runs_dir, reuse=True)
    sweep_s = time.perf_counter() - start
    rows, extra = analyze_results(results)
    rows += _speed_rows(config)
    claims = _claims(rows, extra, mode)
    extra["sweep_wall_s"] = sweep_s
    data = DataInfo(
        "DPLM films (generated: exact equilibrium states)", "tailorkit.films, no external data", 0, len(jobs)
    )
    return BenchOutcome(data, rows, claims, extra)


def _speed_rows(cfg: FilmsBenchConfig) -> list[Row]:
    """Rejection-free kernel vs naive rejection KMC on the same L x L bulk (the system the C++ reference was timed
    on, see films.speed), per size, in the same process under the same load: events per CPU second."""
    from tailorkit.films.speed import baseline_rate, kernel_rate

    rows = []
    for L in cfg.speed_sizes:
        T = 0.18 if L <= 150 else 0.25
        r = kernel_rate(L, T, cfg.baseline_events, warmup=min(100_000, cfg.baseline_events))
        params = {"L": L, "T": T, "geometry": "bulk", "phi_v": 0.01}
        rows.append(
            Row(
                "rejection-free-kmc",
                {"events_per_s": r["events_per_s"], "events_per_wall_s": r["events_per_wall_s"]},
                {**params, "events": r["events"], "table": r["table"], "role": "speed"},
                r["cpu_s"],
            )
        )
        b = baseline_rate(L, T, cfg.baseline_events)
        rows.append(
            Row(
                "rejection-kmc",
                finite_metrics(
                    {
                        "events_per_s": b["events_per_cpu_s"],
                        "attempts_per_s": b["attempts"] / b["cpu_s"],
                        "acceptance": b["acceptance"],
                    }
                ),
                {**params, "attempts": cfg.baseline_events, "role": "speed baseline"},
                b["cpu_s"],
            )
        )
    return rows


def top_first_ratio(t_half: list[float | None]) -> float:
    """Half-relaxation time of the top layer (last) over the fastest other layer's; < 1: the top relaxes first.

    Every layer counts, the substrate layer too: comparing only the top with the middle (the earlier claim) passed a
    seed on which the substrate layer relaxed fastest (issue 18's audit). nan when a layer never half-relaxed.
    """
    times = [math.nan if t is None else float(t) for t in t_half]
    if len(times) < 2 or not all(math.isfinite(t) for t in times):
        return math.nan
    return times[-1] / min(times[:-1])


def front_levels(depth: list[float], h: int) -> float:
    """Distinct front depths strictly between 0 and h that d(t) passes through; -1 if d(t) ever retreats.

    A front that advances layer by layer visits many intermediate depths; a film that relaxes all at once jumps
    0 -> h and visits none. Counting advances instead (the earlier claim: at least 3) passed 0 -> 1 -> 3 -> 16, a
    jump with two stutters, and depended on how often d(t) was sampled.
    """
    d = np.asarray(depth, dtype=float)
    if d.size == 0:
        return math.nan
    if (np.diff(d) < 0).any():
        return -1.0
    return float(len({x for x in d.tolist() if 0 < x < h}))


def _claims(rows: list[Row], extra: dict[str, Any], mode: str) -> list[Claim]:
    claims = []
    bulk = {
        r.params["T"]: r.metrics.get("tau", math.nan)
        for r in rows
        if r.method == "dplm-bulk"
        and r.params["phi_v"] == min(x.params["phi_v"] for x in rows if x.method == "dplm-bulk")
    }
    temps = sorted(bulk)
    decades = math.log10(bulk[temps[0]] / bulk[temps[-1]]) if len(temps) > 1 else math.nan
    if mode == "quick":
        # The design asks >= 4 decades over T 0.30 -> 0.15; quick mode stops at 0.18, where no such range exists.
        # So in quick mode the range only checks the setting (is it glassy enough for the film claims?), not a claim.
        extra.setdefault("sanity", {})["bulk-tau-range-quick"] = {
            "value": decades,
            "pass": bool(decades >= 1.5),
            "text": f"bulk tau rises >= 1.5 decades from T={temps[-1]} to T={temps[0]} (quick range; not a claim)",
        }
    else:
        claims.append(
            _claim(
                "min",
                "bulk-tau-range",
                f"bulk tau rises >= 4 decades from T={temps[-1]} to T={temps[0]}",
                decades,
                4.0,
            )
        )
    films = [r for r in rows if r.method == "dplm-film" and r.params.get("substrate") == "smooth"]
    cold = [r.metrics.get("tau_top_over_interior", math.nan) for r in films if r.params["T"] <= 0.20]
    claims.append(
        _claim(
            "max",
            "surface-faster",
            "tau_top / tau_interior < 1 at T <= 0.20 (largest over films)",
            max(cold) if cold else math.nan,
            1.0,
        )
    )
    etas = [r.metrics.get("eta_eff_over_bulk", math.nan) for r in films]
    claims.append(
        _claim(
            "max",
            "eta-below-bulk",
            "eta_eff / eta_bulk <= 1 for every film and T (largest)",
            max(etas) if etas and all(map(math.isfinite, etas)) else math.nan,
            1.0,
        )
    )
    eta = {(r.params["h"], r.params["T"]): r.metrics.get("eta_eff_over_bulk", math.nan) for r in films}
    hs = sorted({h for h, _ in eta})
    ts = sorted({t for _, t in eta})
    thin_bad = sum(
        1 for T in ts for a, b in itertools.pairwise(hs) if not eta.get((a, T), math.nan) <= eta.get((b, T), math.nan)
    )
    cool_bad = sum(
        1 for h in hs for a, b in itertools.pairwise(ts) if not eta.get((h, a), math.nan) <= eta.get((h, b), math.nan)
    )
    claims.append(
        Claim.at_most("eta-thinner", "eta_eff/eta_bulk falls with thinner films at every T (violations)", thin_bad, 0)
    )
    claims.append(
        Claim.at_most("eta-cooling", "eta_eff/eta_bulk falls on cooling for every h (violations)", cool_bad, 0)
    )
    phis = sorted({r.params["phi_v"] for r in rows if r.method == "dplm-bulk"})
    nu = {}
    for T in temps:
        taus = {
            r.params["phi_v"]: r.metrics.get("tau", math.nan)
            for r in rows
            if r.method == "dplm-bulk" and r.params["T"] == T
        }
        nu[T] = A.facilitation_exponent(phis, [taus.get(p, math.nan) for p in phis]) if len(phis) > 1 else math.nan
    extra["nu"] = {str(T): v for T, v in nu.items()}
    claims.append(
        _claim(
            "min",
            "nu-grows",
            f"facilitation exponent nu grows on cooling: nu({temps[0]}) - nu({temps[-1]})",
            nu[temps[0]] - nu[temps[-1]],
            0.0,
        )
    )
    coldest = min(ts) if ts else math.nan
    thick = max(hs) if hs else 0
    front = extra["films"].get(f"h{thick}_smooth_T{coldest:g}", {})
    claims.append(
        _claim(
            "max",
            "front-from-surface",
            f"h={thick}, T={coldest}: the top layer half-relaxes first of all layers (its time over the fastest other "
            "layer's, substrate included)",
            top_first_ratio(front.get("t_half_relax_z") or []),
            1.0,
        )
    )
    claims.append(
        _claim(
            "min",
            "front-advances",
            f"h={thick}, T={coldest}: a mobile front crosses the film gradually: distinct depths strictly inside the "
            f"film that d(t) passes through (target h/4 = {thick / 4:g}; -1 if d(t) ever retreats)",
            front_levels(front.get("front_depth") or [], thick),
            thick / 4,
        )
    )
    # issue 24's goals (per CPU second; the C++ reference code reaches 4.6-5.0 M at L = 30 and 1.8-2.4 M at L = 100)
    fast = {r.params["L"]: r.metrics["events_per_s"] for r in rows if r.method == "rejection-free-kmc"}
    for L, goal in SPEED_GOALS.items():
        if L in fast:
            claims.append(
                Claim.at_least(
                    f"speed-L{L}",
                    f"rejection-free kernel >= {goal / 1e6:g} M events per CPU second on the {L} x {L} bulk",
                    fast[L],
                    goal,
                )
            )
    # no accepted event at all: bound the baseline by one event in its CPU time (the ratio is then a lower bound)
    base = {
        r.params["L"]: max(r.metrics.get("events_per_s", 0.0), 1.0 / max(r.seconds, 1e-9))
        for r in rows
        if r.method == "rejection-kmc"
    }
    if fast:  # no speed rows (speed_sizes empty: evidence mode's seeds) -> no speed claims
        L_ref = min(fast, key=lambda L: abs(L - 100))
        claims.append(
            Claim.at_least(
                "speedup-vs-rejection",
                f"rejection-free / rejection KMC accepted events per CPU second on the {L_ref} x {L_ref} bulk",
                fast[L_ref] / base[L_ref],
                10.0,
            )
        )
    S = [r.metrics.get("surface_fraction", math.nan) for r in films]
    extra["surface_dominated_reached"] = bool(any(s > 0.5 for s in S if math.isfinite(s)))
    extra["surface_fraction_max"] = max((s for s in S if math.isfinite(s)), default=None)
    return claims
