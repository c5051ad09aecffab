"""Retention vs gain from a `tailorkit bench patching` JSON: one point per row (speed rows left out).

python examples/patching/plot_bench.py BENCH.json OUT.png
"""

from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def label(row: dict) -> str:
    p = row["params"]
    text = row["method"]
    if "compensation_sign" in p:
        text += f" {p['compensation_sign']:+d}"
    if "density" in p and row["method"] not in ("wise_ft",):
        text += f" rho={p['density']:g}"
    for key in ("alpha", "sensitivity", "topk_scope", "dare_rescale", "combine"):
        if key in p and p[key] not in (0.8, "weight", "tensor", True):
            text += f" {key}={p[key]}"
    return text


def main(src: str, dest: str) -> None:
    with open(src) as handle:
        doc = json.load(handle)
    rows = [r for r in doc["rows"] if r["params"].get("purpose") is None and "retention" in r["metrics"]]
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for r in rows:
        m = r["metrics"]
        marker = "*" if r["method"] in ("model_tailor", "mask_only") else "o"
        ax.scatter(m["gain"], m["retention"], marker=marker, s=90 if marker == "*" else 40)
        ax.annotate(label(r), (m["gain"], m["retention"]), fontsize=7, xytext=(4, 2), textcoords="offset points")
    ax.axhline(0.99, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("new-task gain G_N = (acc - acc_pre) / (acc_ft - acc_pre)")
    ax.set_ylabel("retention R_O (mean score / pretrained score)")
    ax.set_title(f"MiniLM-L6 forgetting, {doc['mode']} mode, seed {doc['seed']}")
    fig.tight_layout()
    fig.savefig(dest, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
