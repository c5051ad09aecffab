"""Worker that tests/core/test_train.py launches under `torchrun --nproc_per_node=2`.

Each rank runs three phases and saves what it saw to OUTDIR/rank{RANK}.pt (atomically):

1. `train()` creates the process group itself and trains `STEPS_FIRST` steps with a checkpoint ("the crash").
2. A fresh model (the restarted job) resumes from the checkpoint up to `CONFIG.steps`, reusing the group.
3. A loss_fn that bypasses the DDP wrapper (`model.module`) must make `train()` raise instead of drifting silently.

Rank 1 perturbs its freshly built model every time: DDP broadcasts rank 0's state, so the result must not depend on it.
The module also holds the problem definition (`build`, `loss_fn`, `CONFIG`) so the test computes its single-process
reference from the same pieces.
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from tailorkit.core.train import TrainConfig, rank, train

N_SAMPLES = 32  # 16 per rank: 4 batches of 4 per epoch, so 6 steps cross an epoch boundary
STEPS_FIRST = 3
# SGD, no shuffling, a mean loss and equal shards: DDP's gradient average then equals one step on the union of the
# two ranks' batches, which is the contiguous block [8t, 8t + 8) of the dataset (rank r holds indices r, r+2, ...).
CONFIG = TrainConfig(
    steps=6, lr=0.1, batch_size=4, optimizer="sgd", shuffle=False, log_every=0, checkpoint_every=2, seed=0
)


def build(seed: int = 0) -> tuple[nn.Module, TensorDataset]:
    """A small MLP whose first layer is frozen, and a regression dataset, both drawn from `seed`."""
    gen = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    model[0].requires_grad_(False)
    x = torch.randn(N_SAMPLES, 3, generator=gen)
    y = torch.sin(x.sum(dim=1, keepdim=True))
    return model, TensorDataset(x, y)


def loss_fn(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = batch
    return F.mse_loss(model(x), y)


def _bypassing_loss_fn(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = batch
    return F.mse_loss(model.module(x), y)  # the mistake train() must catch: no gradient averaging


def _fresh_model(this_rank: int) -> tuple[nn.Module, TensorDataset]:
    model, data = build()
    if this_rank == 1:
        with torch.no_grad():
            for p in model.parameters():
                p.add_(1.0)
    return model, data


def main(outdir: Path) -> None:
    this_rank = rank()
    ckpt = outdir / "ckpt.pt"

    model, data = _fresh_model(this_rank)
    assert not dist.is_initialized()
    first = train(model, loss_fn, data, replace(CONFIG, steps=STEPS_FIRST), checkpoint=ckpt, progress=False)
    group_created = dist.is_initialized() and dist.get_backend() == "gloo" and dist.get_world_size() == 2

    model, data = _fresh_model(this_rank)
    second = train(model, loss_fn, data, CONFIG, checkpoint=ckpt, progress=False)

    guard_fired = False
    bad_model, data = _fresh_model(this_rank)
    try:
        train(bad_model, _bypassing_loss_fn, data, replace(CONFIG, steps=2), progress=False)
    except RuntimeError as err:
        guard_fired = "different parameters" in str(err)

    record = {
        "params": {name: p.detach().clone() for name, p in model.named_parameters()},
        "first_losses": list(first.losses),
        "losses": list(second.losses),
        "start_step": second.start_step,
        "steps": second.steps,
        "group_created": group_created,
        "guard_fired": guard_fired,
    }
    target = outdir / f"rank{this_rank}.pt"
    tmp = outdir / f".rank{this_rank}.pt.tmp"
    torch.save(record, tmp)
    os.replace(tmp, target)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
