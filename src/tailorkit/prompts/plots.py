"""Plot the gradient affinity matrix and the partition from a `tailorkit bench prompts` JSON document.

python -m tailorkit.prompts.plots BENCH.json OUT.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

__all__ = ["plot_affinity"]


def plot_affinity(bench_json: str | Path, out: str | Path, seed_index: int = 0) -> Path:
    """Heat map of the cosine affinity of one seed, tasks in bench order, groups found in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    doc = json.loads(Path(bench_json).read_text())
    extra = doc.get("extra", doc)
    if "affinity_cosine" not in extra or "tasks" not in extra:
        raise ValueError(f"{bench_json}: expected a prompts bench document with extra.affinity_cosine and extra.tasks")
    m = np.asarray(extra["affinity_cosine"][seed_index])
    tasks = extra["tasks"]
    fig, ax = plt.subplots(figsize=(5.6, 4.8))
    im = ax.imshow(m, cmap="viridis")
    ax.set_xticks(range(len(tasks)), tasks, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(tasks)), tasks, fontsize=8)
    for i in range(len(tasks)):
        for j in range(len(tasks)):
            ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=7, color="w" if m[i, j] < 0.6 else "k")
    fig.colorbar(im, ax=ax, fraction=0.046)
    groups = extra["groups"][seed_index]
    ax.set_title(
        "per-task gradient cosine (all-shared MmAP warm-up)\ngroups: " + "; ".join("+".join(g) for g in groups),
        fontsize=7,
    )
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


if __name__ == "__main__":  # pragma: no cover
    if len(sys.argv) != 3:
        sys.exit("usage: python -m tailorkit.prompts.plots BENCH.json OUT.png")
    print(plot_affinity(sys.argv[1], sys.argv[2]))
