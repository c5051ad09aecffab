"""Demo part: MmAP's main verb on embedded data: group four cross-domain tasks by gradient affinity, then train
group + task prompts, beside zero-shot and CoOp (about two minutes on 2 cores).

One picture: an example image per task, the gradient affinity matrix with the partition found, and the per-task
test accuracy of the three methods.
"""

from __future__ import annotations

from pathlib import Path

import torch

from tailorkit.core.demo import DEMOS
from tailorkit.core.report import DemoSection

DEMO_TASKS = ("digits-mnist", "digits-opencv", "fashion-photo", "fashion-clipart")


@DEMOS.register("prompts")
def prompts_demo(out_dir: Path, seed: int, device: torch.device) -> DemoSection:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from tailorkit.nets.dual_encoder import load_dual_encoder
    from tailorkit.prompts.api import discover_groups, fit_method
    from tailorkit.prompts.data import make_tasks
    from tailorkit.prompts.engine import Engine, TrainConfig

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small ops: spin-waiting threads only cost CPU on a busy machine
    try:
        encoder, _ = load_dual_encoder(device=device)
        tasks = make_tasks(DEMO_TASKS, shots=8, test_per_class=10, seed=seed)
        engine = Engine(encoder, tasks, 64)
        grouping = discover_groups(engine, steps=8, seed=seed)
        train = TrainConfig(steps=25, batch=16, lr=1e-2)
        fits = {
            "zero-shot": fit_method(engine, "zero_shot", "mt", train, seed=seed),
            "CoOp-MT": fit_method(engine, "coop", "mt", train, seed=seed),
            "MmAP (group + task)": fit_method(
                engine, "mmap", "group+task", train, groups=grouping.groups, seed=seed, options={"depth": 4}
            ),
        }
    finally:
        torch.set_num_threads(threads)

    fig = plt.figure(figsize=(12, 3.8))
    grid = fig.add_gridspec(2, 6, width_ratios=[1, 1, 0.2, 2.2, 0.3, 3.2])
    for i, task in enumerate(tasks):
        ax = fig.add_subplot(grid[i // 2, i % 2])
        ax.imshow(task.test_x[0])
        ax.set_title(task.name, fontsize=8)
        ax.axis("off")
    ax = fig.add_subplot(grid[:, 3])
    m = grouping.matrix()
    ax.imshow(m, cmap="viridis")
    ax.set_xticks(range(len(tasks)), [t.name for t in tasks], rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(len(tasks)), [t.name for t in tasks], fontsize=7)
    for i in range(len(tasks)):
        for j in range(len(tasks)):
            ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=7, color="w")
    groups = [[tasks[t].name for t in g] for g in grouping.groups]
    ax.set_title("gradient cosine affinity", fontsize=9)
    ax = fig.add_subplot(grid[:, 5])
    width = 0.27
    xs = np.arange(len(tasks) + 1)
    for k, (name, fit) in enumerate(fits.items()):
        vals = [fit.accuracy[t.name] for t in tasks] + [fit.accuracy["mean"]]
        ax.bar(xs + (k - 1) * width, vals, width, label=name)
    ax.set_xticks(xs, [t.name.replace("-", "\n") for t in tasks] + ["mean"], fontsize=7)
    ax.set_ylabel("test accuracy")
    ax.axhline(0.1, color="k", lw=0.8, ls=":", label="chance")
    ax.legend(fontsize=7)
    fig.suptitle(
        f"MmAP on a CLIP-like dual encoder (EfficientNet-Lite0 + MiniLM-L6); groups found: {groups}", fontsize=9
    )
    fig.tight_layout()
    image = out_dir / "prompts.png"
    fig.savefig(image, dpi=90)
    plt.close(fig)
    total = encoder.parameter_count()
    rows = [
        [name, f"{fit.accuracy['mean']:.3f}", str(fit.trainable), f"{100 * fit.trainable / total:.4f} %"]
        for name, fit in fits.items()
    ]
    return DemoSection(
        title="prompts: MmAP multi-task prompt learning with gradient-driven task grouping",
        text=(
            "Four tasks (two digit sources, two Fashion-MNIST styles) on a dual encoder made of frozen real towers "
            "aligned through ImageNet class-name prompts. A short all-shared MmAP warm-up measures per-task "
            "gradient cosines; the best partition shares a group prompt, and each task adds its own. "
            "One seed, 25 steps, 8 shots: a tour of the verb, not evidence (see `tailorkit bench prompts`)."
        ),
        image=image,
        table_header=["method", "mean test accuracy", "trainable parameters", "of the dual encoder"],
        table_rows=rows,
    )
