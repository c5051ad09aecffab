"""Demo part: the phase runner on embedded glyphs: random-init vs fine-tuning vs CPPF over 4 phases (about a minute).

One picture: a row of example glyphs per phase (each phase has its own classes and style) and the seen-class
linear-probe accuracy after every phase for the three strategies.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from tailorkit.continual.config import DataConfig, ModelConfig, OptimConfig, RunConfig, StrategyConfig
from tailorkit.continual.data import make_benchmark
from tailorkit.continual.runner import run_continual
from tailorkit.core.demo import DEMOS
from tailorkit.core.report import DemoSection

DEMO_CONFIG = RunConfig(
    data=DataConfig(n_classes=20, phases=4, train_per_class=80, test_per_class=40, probe_per_class=80, image_size=20),
    model=ModelConfig(width=8),
    optim=OptimConfig(steps_per_phase=80, batch_size=64, lr=2e-3),
)


@DEMOS.register("continual")
def continual_demo(out_dir: Path, seed: int, device: torch.device) -> DemoSection:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    base = dataclasses.replace(DEMO_CONFIG, seed=seed)
    bench = make_benchmark(base.data, seed, 0)
    results = {}
    # One thread: the tiny convs gain nothing from more, and OpenMP spin-waiting on a busy 2-core machine multiplies
    # the CPU time (docs/continual.md#inferred-details). Restored afterwards for the other demo parts.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for name in ("random_init", "finetune", "cppf"):
            config = dataclasses.replace(base, strategy=StrategyConfig(name=name))
            results[name] = run_continual(config, benchmark=bench, device=device, verbose=False)
    finally:
        torch.set_num_threads(threads)

    fig = plt.figure(figsize=(11, 4.2))
    grid = fig.add_gridspec(4, 8, width_ratios=[1, 1, 1, 1, 1, 0.3, 3, 3])
    for p, classes in enumerate(bench.phases):
        for j, c in enumerate(classes[:5]):
            ax = fig.add_subplot(grid[p, j])
            index = int(torch.nonzero(bench.test.labels == c)[0, 0])
            ax.imshow(bench.test.images[index, 0].numpy(), cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(f"phase {p + 1}", fontsize=9)
    ax = fig.add_subplot(grid[:, 6:])
    phases = range(1, len(bench.phases) + 1)
    for name, result in results.items():
        m = result.metrics()
        ax.plot(phases, result.seen_linear, marker="o", label=f"{name} (AIA {m['aia_linear']:.2f})")
    ax.set_xlabel("after phase")
    ax.set_ylabel("accuracy on all seen classes (linear probe)")
    ax.set_xticks(list(phases))
    ax.legend(fontsize=9)
    ax.grid(alpha=0.3)
    fig.suptitle("Self-supervised class-incremental learning on glyphs (no labels during training)")
    fig.tight_layout()
    image = out_dir / "continual.png"
    fig.savefig(image, dpi=90)
    plt.close(fig)
    rows = []
    for name, result in results.items():
        m = result.metrics()
        rows.append(
            [
                name,
                f"{m['final_acc_linear']:.3f}",
                f"{m['aia_linear']:.3f}",
                f"{m['forgetting_linear']:.3f}",
                f"{m['final_acc_knn']:.3f}",
            ]
        )
    return DemoSection(
        title="continual: CPPF self-supervised class-incremental learning",
        text=(
            "20 glyph classes arrive in 4 phases, each in its own font family and polarity; every strategy trains "
            "SimCLR on the new phase's unlabelled images, then a linear probe and kNN are fitted on all classes seen "
            "so far. One seed, tiny budget: a tour of the verb, not evidence (see `tailorkit bench continual`)."
        ),
        image=image,
        table_header=[
            "strategy",
            "final accuracy (linear)",
            "AIA (linear)",
            "forgetting (linear)",
            "final accuracy (kNN)",
        ],
        table_rows=rows,
    )
