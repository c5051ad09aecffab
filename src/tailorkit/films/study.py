"""Analysis of a set of runs (a sweep or the bench): one row per (geometry, h, T, phi_v, substrate), seeds pooled.

tau values are pooled over seeds as geometric means; film rows get tau_top / tau_interior, eta_eff / eta_bulk (against
the bulk run at the same T and phi_v), the mobile-layer thickness and the surface fraction S (analysis.py); the extra
part holds bulk Arrhenius/VFT fits, T_c(h) where S crosses 1/2 (None where it does not), fronts and profiles.
Input: the dicts returned by `sweep.run_job` or built from run files by `results_from_files`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from tailorkit.core.config import to_dict
from tailorkit.core.results import Row
from tailorkit.films import analysis as A


def finite_metrics(metrics: dict[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(float(v))}


def results_from_files(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """Run files (or folders of them) -> the job-result dicts `analyze_results` takes."""
    from tailorkit.films.io import load_run

    files: list[Path] = []
    for p in map(Path, paths):
        files += sorted(p.glob("*.h5")) if p.is_dir() else [p]
    out = []
    for f in files:
        run = load_run(f)
        summary = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in run["summary"].items()}
        if "tau" not in summary:
            continue  # an unfinished checkpoint without a summary
        out.append(
            {"config": to_dict(run["config"]), "status": run["attrs"]["status"], "summary": summary, "path": str(f)}
        )
    return out


def analyze_results(results: list[dict[str, Any]]) -> tuple[list[Row], dict[str, Any]]:
    by_key: dict[tuple, list[dict[str, Any]]] = {}
    for res in results:
        c = res["config"]
        lat, model = c["lattice"], c["model"]
        key = (
            lat["geometry"] + ("3d" if lat.get("dim", 2) == 3 else ""),
            lat["h"] if lat["geometry"] == "film" else 0,
            model["T"],
            model["phi_v"],
            lat["substrate"] if lat["geometry"] == "film" else "",
        )
        by_key.setdefault(key, []).append(res)
    phi_main = min(k[3] for k in by_key)
    # bulk tau(T): seed-averaged in log
    tau_bulk: dict[tuple[str, float], float] = {}  # (dimension suffix, T)
    for (geo, _h, T, phi, _sub), group in by_key.items():
        if geo.startswith("bulk") and phi == phi_main:
            tau_bulk[(geo[4:], T)] = _log_mean([g["summary"].get("tau", math.nan) for g in group])
    rows: list[Row] = []
    extra: dict[str, Any] = {"tau_bulk": {f"{T}{d}": v for (d, T), v in sorted(tau_bulk.items())}, "films": {}}
    for (geo, h, T, phi, sub), group in sorted(by_key.items(), key=lambda kv: (kv[0][0], kv[0][1], -kv[0][2])):
        summaries = [g["summary"] for g in group]
        tau = _log_mean([s.get("tau", math.nan) for s in summaries])
        metrics: dict[str, float] = {
            "tau": tau,
            "beta": float(np.nanmean([s.get("beta", math.nan) for s in summaries])),
            "events_per_s": float(np.mean([s["events_per_cpu_s"] for s in summaries])),
            "events_per_wall_s": float(np.mean([s["events_per_s"] for s in summaries])),
            "events": float(np.sum([s["events"] for s in summaries])),
        }
        params: dict[str, Any] = {
            "geometry": geo,
            "T": T,
            "phi_v": phi,
            "seeds": len(group),
            "L": group[0]["config"]["lattice"]["Lx"],
            "status": [g["status"] for g in group],
        }
        if geo.startswith("film"):
            params.update(h=h, substrate=sub)
            tau_z = np.exp(np.nanmean(np.log([s["tau_z"] for s in summaries]), axis=0))
            top_int = _log_mean([s["tau_top"] / s["tau_interior"] for s in summaries])
            tb = tau_bulk.get((geo[4:], T), math.nan)
            eta = A.tau_eff(tau_z) / tb
            n_mob = A.mobile_thickness(tau_z, tb) if math.isfinite(tb) else 0
            S = A.surface_fraction(tau_z, n_mob)
            half = np.nanmean([s["t_half_relax_z"] for s in summaries], axis=0)
            metrics.update(
                tau_top_over_interior=top_int,
                eta_eff_over_bulk=eta,
                surface_fraction=S,
                mobile_layers=float(n_mob),
                tau_interior=_log_mean([s["tau_interior"] for s in summaries]),
            )
            params["tau_z"] = [round(float(x), 6) if math.isfinite(x) else None for x in tau_z]
            params["void_profile"] = [round(float(x), 5) for x in np.mean([s["void_profile"] for s in summaries], 0)]
            extra["films"][f"h{h}_{sub}_T{T:g}{geo[4:]}"] = {
                "t_half_relax_z": [float(x) if math.isfinite(x) else None for x in half],
                "front_depth": summaries[0]["front_depth"],
                "t_obs_end": summaries[0]["t_end"],
                "t_obs": list(summaries[0].get("t_obs", [])),
            }
        rows.append(Row(f"dplm-{geo}", finite_metrics(metrics), params, float(sum(s["wall_s"] for s in summaries))))
    temps = sorted(T for (d, T), v in tau_bulk.items() if d == "" and math.isfinite(v))
    if len(temps) >= 2:
        taus = [tau_bulk[("", T)] for T in temps]
        extra["bulk_fits"] = {"arrhenius": A.fit_arrhenius(temps, taus), "vft": _clean(A.fit_vft(temps, taus))}
    extra["T_c"] = {}
    for h in sorted({r.params["h"] for r in rows if r.method == "dplm-film"}):
        pts = [
            (r.params["T"], r.metrics.get("surface_fraction", math.nan))
            for r in rows
            if r.method == "dplm-film" and r.params["h"] == h and r.params.get("substrate") == "smooth"
        ]
        tc = A.crossing_temperature([p[0] for p in pts], [p[1] for p in pts]) if pts else math.nan
        extra["T_c"][str(h)] = tc if math.isfinite(tc) else None
    return rows, extra


def _clean(d: dict[str, float]) -> dict[str, float | None]:
    return {k: (v if math.isfinite(v) else None) for k, v in d.items()}


def _log_mean(values: list[float]) -> float:
    v = np.array([x for x in values if x is not None and math.isfinite(x) and x > 0], float)
    return float(np.exp(np.log(v).mean())) if v.size == len(values) and v.size else math.nan
