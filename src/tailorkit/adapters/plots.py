"""The cost-versus-number-of-tasks plot from a bench document (docs/adapters.md's figure).

python -m tailorkit.adapters.plots BENCH.json OUT.png
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from tailorkit.core.results import load_bench

__all__ = ["plot_cost"]


def plot_cost(doc: dict[str, Any], path: str | Path) -> Path:
    """Encoder GFLOPs and median step seconds versus T for every cost row of ``doc``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in doc["rows"] if r["params"].get("kind") == "cost"]
    if not rows:
        raise ValueError("plot_cost: the bench document has no cost rows (params.kind == 'cost')")
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for row in rows:
        counts = row["params"]["tasks"]
        axes[0].plot(counts, [row["metrics"][f"gflops_T{n}"] for n in counts], marker="o", label=row["method"])
        if f"step_s_T{counts[0]}" in row["metrics"]:
            axes[1].plot(counts, [row["metrics"][f"step_s_T{n}"] for n in counts], marker="o", label=row["method"])
    axes[0].set_ylabel("encoder GFLOPs per image")
    axes[1].set_ylabel("median training-step seconds")
    for ax in axes:
        ax.set_xlabel("number of tasks T")
        ax.grid(alpha=0.3)
        if ax.get_lines():
            ax.legend(fontsize=8)
    fig.suptitle(f"adapters bench ({doc['mode']}): cost versus number of tasks")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


if __name__ == "__main__":  # pragma: no cover
    if len(sys.argv) != 3:
        raise SystemExit("usage: python -m tailorkit.adapters.plots BENCH.json OUT.png")
    print(plot_cost(load_bench(sys.argv[1]), sys.argv[2]))
