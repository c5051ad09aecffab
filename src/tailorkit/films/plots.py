"""Figures a physicist would put in a paper, from `analyze` results (JSON) or single run files (HDF5).

- study figure: tau(z) profiles per T (log), bulk tau(T) with Arrhenius/VFT fits, eta_eff/eta_bulk vs 1/T per h,
  S(h, T), and the front depth d(t);
- run figure: layer F_s(q, t; z), tau(z), void profile, and real-space snapshot panels of first-relaxation times.
No experimental data are drawn: nothing from Yang et al. (2010) has been digitised into the project.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _note(ax: Any, text: str) -> None:
    """A grey note in the middle of a panel (an empty panel says why it is empty)."""
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=8, color="0.35", wrap=True)


def _legend_below(ax: Any, ncol: int = 3, title: str | None = None) -> None:
    """A legend under the panel's x label, so it covers neither the data nor the ticks (nothing if no labels)."""
    if ax.get_legend_handles_labels()[1]:
        ax.legend(
            fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=ncol, frameon=False, title=title,
            title_fontsize=7,
        )  # fmt: skip


_FILM_KEY = re.compile(r"^h(\d+)_([a-z]+)_T([0-9.]+)$")


def plot_study(results: dict[str, Any], out: str | Path) -> Path:
    """Five panels from `analyze` output (rows + extra); returns the PNG path.

    Legends sit under their panels; a panel without data says so (e.g. no bulk runs in the sweep); the front-depth
    panel shows the thickest smooth film per temperature (one entry per T, not one per run).
    """
    plt = _plt()
    rows = results["rows"]
    extra = results.get("extra", {})
    films = [r for r in rows if r["method"] == "dplm-film" and r["params"].get("substrate", "smooth") == "smooth"]
    bulk = sorted((r for r in rows if r["method"] == "dplm-bulk"), key=lambda r: r["params"]["T"])
    fig, axes = plt.subplots(1, 5, figsize=(22, 5.2))
    ax = axes[0]
    hmax = max((r["params"]["h"] for r in films), default=0)
    cmap = plt.get_cmap("coolwarm")
    temps = sorted({r["params"]["T"] for r in films})

    def t_colour(T: float) -> Any:
        return cmap(temps.index(T) / max(len(temps) - 1, 1)) if T in temps else "0.5"

    for r in films:
        if r["params"]["h"] != hmax:
            continue
        tau_z = np.array([np.nan if x is None else x for x in r["params"]["tau_z"]], float)
        ax.semilogy(
            np.arange(tau_z.size), tau_z, "o-", ms=3, color=t_colour(r["params"]["T"]), label=f"{r['params']['T']:g}"
        )
    ax.set(xlabel="layer z (0 = substrate)", ylabel="tau(z)", title=f"relaxation profile, h={hmax}")
    if not films:
        _note(ax, "no smooth film runs in these results")
    _legend_below(ax, ncol=4, title="T")
    ax = axes[1]
    phis = sorted({r["params"]["phi_v"] for r in bulk})
    for phi in phis:
        pts = [(r["params"]["T"], r["metrics"].get("tau", np.nan)) for r in bulk if r["params"]["phi_v"] == phi]
        T, tau = np.array(pts).T
        ax.semilogy(1 / T, tau, "o-", label=f"bulk phi_v={phi:g}")
    fits = extra.get("bulk_fits", {})
    if fits.get("arrhenius") and bulk:
        Tg = np.linspace(min(r["params"]["T"] for r in bulk), max(r["params"]["T"] for r in bulk), 50)
        a = fits["arrhenius"]
        ax.semilogy(1 / Tg, np.exp(a["ln_tau0"] + a["E"] / Tg), "k--", lw=0.8, label=f"Arrhenius E={a['E']:.2f}")
        v = fits.get("vft") or {}
        if v.get("T0") is not None and math.isfinite(v.get("T0", math.nan)):
            ax.semilogy(1 / Tg, np.exp(v["ln_tau0"] + v["D"] / (Tg - v["T0"])), "k:", lw=0.8, label="VFT")
    ax.set(xlabel="1/T", ylabel="tau_bulk", title="bulk tau(T)")
    if not bulk:
        _note(ax, "no bulk runs in these results:\nadd bulk rows to the sweep (docs/films.md)")
    _legend_below(ax, ncol=2)
    ax = axes[2]
    hs = sorted({r["params"]["h"] for r in films})
    eta_seen = False
    for h in hs:
        pts = sorted(
            (r["params"]["T"], r["metrics"].get("eta_eff_over_bulk", np.nan)) for r in films if r["params"]["h"] == h
        )
        T, eta = np.array(pts, dtype=float).T
        eta_seen = eta_seen or bool(np.isfinite(eta).any())
        ax.semilogy(1 / T, eta, "o-", label=f"h={h}")
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set(xlabel="1/T", ylabel="eta_eff / eta_bulk", title="film viscosity (weighted harmonic mean)")
    if not eta_seen:
        _note(ax, "needs film and bulk runs\n(eta_bulk comes from the bulk rows)")
    _legend_below(ax, ncol=4)
    ax = axes[3]
    s_max = 0.0
    for h in hs:
        pts = sorted(
            (r["params"]["T"], r["metrics"].get("surface_fraction", np.nan)) for r in films if r["params"]["h"] == h
        )
        T, S = np.array(pts, dtype=float).T
        s_max = max(s_max, float(np.nanmax(S)) if np.isfinite(S).any() else 0.0)
        ax.plot(1 / T, S, "o-", label=f"h={h}")
    ax.axhline(0.5, color="k", lw=0.8, ls="--")
    ax.set(xlabel="1/T", ylabel="S(h, T)", title="surface share of film mobility")
    if films and s_max < 0.05:
        # all values near 0 would be one flat line on a linear 0..1 axis: a symmetric log axis keeps 0, the small
        # values and the 0.5 threshold visible at once
        ax.set_yscale("symlog", linthresh=1e-4)
        ax.set_ylim(0, 1.02)
        _note(ax, f"max S = {s_max:.2g}: the surface never\ncarries half of the mobility (threshold 0.5)")
    else:
        ax.set_ylim(-0.02, 1.02)
    if not films:
        _note(ax, "no smooth film runs in these results")
    _legend_below(ax, ncol=4)
    ax = axes[4]
    runs = extra.get("films", {})
    parsed = {k: _FILM_KEY.match(k) for k in runs}
    smooth = {k: m for k, m in parsed.items() if m and m.group(2) == "smooth"}
    h_front = max((int(m.group(1)) for m in smooth.values()), default=None)
    chosen = sorted(
        (k for k, m in smooth.items() if int(m.group(1)) == h_front), key=lambda k: float(smooth[k].group(3))
    )
    for key in chosen:
        info = runs[key]
        if info.get("t_obs") and info.get("front_depth"):
            T = float(smooth[key].group(3))
            ax.semilogx(info["t_obs"], info["front_depth"], drawstyle="steps-post", color=t_colour(T), label=f"{T:g}")
    ax.set(xlabel="t", ylabel="front depth d(t) [layers]", title="mobile front from the free surface"
           + (f", h={h_front}" if h_front else ""))  # fmt: skip
    if not chosen:
        _note(ax, "no smooth film runs with front data")
    _legend_below(ax, ncol=4, title="T")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def plot_run(run: dict[str, Any], out: str | Path, n_snapshots: int = 4) -> Path:
    """F_s per layer, tau(z) and first-relaxation snapshots of one run (the dict of io.load_run)."""
    plt = _plt()
    cfg = run["config"]
    lat = cfg.lattice
    t, fs = run["obs"]["t"], run["obs"]["fs"]
    summary = run["summary"]
    t_relax = run["state"]["t_relax"]
    pos0 = run["init"]["pos0"]
    fig = plt.figure(figsize=(16, 6.5))
    grid = fig.add_gridspec(2, n_snapshots)
    ax = fig.add_subplot(grid[0, : n_snapshots // 2])
    cmap = plt.get_cmap("viridis")
    for z in range(fs.shape[1]):
        ax.semilogx(t, fs[:, z], color=cmap(z / max(fs.shape[1] - 1, 1)), lw=1)
    ax.axhline(math.exp(-1), color="k", lw=0.6, ls="--")
    ax.set(xlabel="t", ylabel="F_s(q, t; z)", title=f"{lat.geometry} h={lat.h} T={cfg.model.T:g}: layers (dark = 0)")
    ax = fig.add_subplot(grid[0, n_snapshots // 2 :])
    if "tau_z" in summary:
        ax.semilogy(np.arange(len(summary["tau_z"])), summary["tau_z"], "o-", label="F_s tau(z)")
        ax.semilogy(np.arange(len(summary["tau_z"])), summary["t_half_relax_z"], "s--", label="half relaxed")
    ax.set(xlabel="layer z", ylabel="time", title="relaxation time by layer")
    ax.legend(fontsize=8)
    finite = t_relax[t_relax > 0]
    if finite.size:
        times = np.geomspace(
            np.quantile(finite, 0.05), max(np.quantile(finite, 0.6), 1.0001 * finite.min()), n_snapshots
        )
    else:
        times = np.ones(n_snapshots)
    area = lat.Lx * (lat.Ly if lat.dim == 3 else 1)
    x = pos0 % lat.Lx
    z = pos0 // area
    plane = (pos0 // lat.Lx) % max(lat.Ly, 1) == 0 if lat.dim == 3 else np.ones(pos0.size, bool)
    for i, ts in enumerate(times):
        img = np.full((lat.h, lat.Lx), np.nan)
        relaxed = (t_relax >= 0) & (t_relax <= ts)
        img[z[plane], x[plane]] = relaxed[plane].astype(float)
        ax = fig.add_subplot(grid[1, i])
        ax.imshow(img, origin="lower", cmap="Greys", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
        ax.set(title=f"relaxed by t={ts:.3g}", xlabel="x", ylabel="z (initial)")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
