"""Demo part: Model Tailor patches a forgetful fine-tune on sklearn's embedded digits (seconds on a CPU).

An MLP (64-256-256-10) learns digits 0-4, is fine-tuned on 5-9 (same head; class-incremental, it forgets 0-4
completely), and is then patched at 10 % density by magnitude top-k, Model Tailor without and with compensation
(both signs) and WiSE-FT. The picture shows old-class vs new-class accuracy per method. OBS-sign compensation
trades old for new accuracy here (docs/patching.md#demo): the compensation pulls the outputs on new-task
calibration inputs towards the fine-tune.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tailorkit.core.demo import DEMOS
from tailorkit.core.report import DemoSection
from tailorkit.core.seeding import numpy_generator
from tailorkit.core.train import TrainConfig, train
from tailorkit.patching.config import PatchConfig
from tailorkit.patching.engine import tailor

__all__ = ["digits_forgetting", "patching_demo"]


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))


def _fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int, steps: int = 300) -> None:
    data = list(zip(x, y, strict=True))

    def loss_fn(m: nn.Module, batch: list) -> torch.Tensor:
        xs, ys = batch
        return F.cross_entropy(m(xs), ys)

    config = TrainConfig(steps=steps, lr=1e-3, batch_size=64, seed=seed, log_every=0)
    train(model, loss_fn, data, config, progress=False)  # type: ignore[arg-type]


def _acc(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def digits_forgetting(seed: int = 0) -> list[tuple[str, float, float, float]]:
    """(method, old-class accuracy, new-class accuracy, patch fraction) on the class-incremental digits task."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target, dtype=torch.long)
    order = numpy_generator(seed, "patching", "demo").permutation(len(y))
    train_idx, test_idx = order[: len(y) // 2], order[len(y) // 2 :]
    old = (y < 5).numpy()
    tr_old, tr_new = train_idx[old[train_idx]], train_idx[~old[train_idx]]
    te_old, te_new = test_idx[old[test_idx]], test_idx[~old[test_idx]]
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        pre = _mlp()
    _fit(pre, x[tr_old], y[tr_old], seed)
    import copy

    ft = copy.deepcopy(pre)
    _fit(ft, x[tr_new], y[tr_new], seed + 1)
    pre.eval()
    ft.eval()
    calib = [x[tr_new][i : i + 32] for i in range(0, 128, 32)]
    rows = [("pretrained", _acc(pre, x[te_old], y[te_old]), _acc(pre, x[te_new], y[te_new]), 0.0)]
    rows.append(("fine-tuned", _acc(ft, x[te_old], y[te_old]), _acc(ft, x[te_new], y[te_new]), 1.0))
    specs = [
        ("WiSE-FT 0.5", PatchConfig(method="wise_ft", options={"lam": 0.5})),
        ("magnitude 10%", PatchConfig(method="magnitude")),
        ("MT mask only", PatchConfig(method="mask_only")),
        ("MT comp. -1 (OBS)", PatchConfig(options={"compensation_sign": -1})),
        ("MT comp. +1 (code)", PatchConfig(options={"compensation_sign": 1})),
    ]
    model = copy.deepcopy(pre)
    for label, cfg in specs:
        result = tailor(pre, ft, calib, cfg, progress=False)
        model.load_state_dict(result.state)
        rows.append(
            (label, _acc(model, x[te_old], y[te_old]), _acc(model, x[te_new], y[te_new]), result.patch_fraction())
        )
    return rows


@DEMOS.register("patching")
def patching_demo(out_dir: Path, seed: int, device: torch.device) -> DemoSection:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = digits_forgetting(seed)
    labels = [r[0] for r in rows]
    pos = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.bar(pos - 0.2, [r[1] for r in rows], 0.4, label="old classes 0-4")
    ax.bar(pos + 0.2, [r[2] for r in rows], 0.4, label="new classes 5-9")
    ax.set_xticks(pos, labels, rotation=20, fontsize=8)
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1.05)
    ax.legend(loc="upper center", ncols=2, fontsize=8)
    ax.set_title("Patching a forgetful fine-tune (sklearn digits, class-incremental, 10 % patch)")
    fig.tight_layout()
    path = out_dir / "patching.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return DemoSection(
        title="Patching: Model Tailor and baselines (tailorkit.patching)",
        text=(
            "An MLP learns digits 0-4, is fine-tuned on 5-9 and forgets 0-4. tailor() keeps a 10 % patch of the "
            "fine-tune and reverts the rest to the pretrained weights; Model Tailor picks the patch by fused "
            "salience and sensitivity and can compensate it with an OBS update computed on new-task inputs. On this "
            "task a sparse patch keeps the old classes but cannot carry the new ones unless compensated, and "
            "compensation trades old-class accuracy for new-class accuracy."
        ),
        image=path,
        table_header=["method", "old-class acc", "new-class acc", "patch fraction"],
        table_rows=[[r[0], f"{r[1]:.3f}", f"{r[2]:.3f}", f"{r[3]:.3f}"] for r in rows],
    )
