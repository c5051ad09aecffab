"""Training and inference for the tuners, and the Dice metrics.

Loss per prompt set: BCE (lesion pixels weighted by `pos_weight`) + soft Dice, averaged over sets. With `discrepancy` =
lambda > 0 (the default, 0.1) the loss subtracts lambda * mean pairwise squared difference of the sets' probabilities
([inferred], docs/active.md#the-method-as-implemented); the sets then share each step's images and geometric transform
(so their predictions are pixel-aligned) and differ only in intensity jitter. With lambda = 0 every set draws its own
images and its own view (rotation by k * 90 degrees, flips, gamma and noise).

Training runs through `tailorkit.core.train.train` (issue 23): exact resume from a checkpoint, one process or torchrun
DDP, the batch order a seeded per-epoch permutation of the labelled images (before: draws with replacement), and
augmentation and dropout drawn from core.train's per-step random stream. The schedule is core's `learning_rate`:
"cosine" = a 5 % linear warm-up then cosine to 0 (the same formula as this module's former LambdaLR), "constant" = no
warm-up. Adam without weight decay is core's AdamW at weight decay 0 (the same update).

Shapes:
    images: (N, 1, S, S) float32 [0, 1]; masks: (N, S, S) {0, 1}; predict -> (N, K, S, S) probabilities.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from tailorkit.active.config import TuneConfig
from tailorkit.active.methods.base import SegModel
from tailorkit.core.train import TrainConfig as CoreTrainConfig
from tailorkit.core.train import train as core_train

__all__ = [
    "core_config",
    "dice_global",
    "dice_per_case",
    "enable_dropout",
    "predict",
    "segmentation_loss",
    "set_agreement",
    "tune",
]


def _augment(
    x: torch.Tensor, y: torch.Tensor, g: torch.Generator, geometric: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    if geometric:
        k = int(torch.randint(0, 4, (1,), generator=g))
        x, y = torch.rot90(x, k, (-2, -1)), torch.rot90(y, k, (-2, -1))
        if bool(torch.randint(0, 2, (1,), generator=g)):
            x, y = x.flip(-1), y.flip(-1)
    gamma = float(torch.empty(1).uniform_(0.8, 1.25, generator=g))
    scale = float(torch.empty(1).uniform_(0.9, 1.1, generator=g))
    noise = torch.randn(x.shape, generator=g) * 0.02
    return (x.clamp(0, 1) ** gamma * scale + noise.to(x.device)), y


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, pos_weight: float = 1.0) -> torch.Tensor:
    """BCE + soft Dice for binary masks; logits and target (B, *S)."""
    weight = torch.as_tensor(pos_weight, dtype=logits.dtype, device=logits.device)
    bce = F.binary_cross_entropy_with_logits(logits, target, pos_weight=weight)
    prob = torch.sigmoid(logits)
    inter = (prob * target).sum()
    soft_dice = 1 - (2 * inter + 1) / (prob.sum() + target.sum() + 1)
    return bce + soft_dice


class _Labelled(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Item j: (image, mask) of labelled item j mod n. `copies` passes over the n items make one epoch, so a step can
    give each of K independent prompt sets its own `batch` images (K copies, batch K * `batch`)."""

    def __init__(self, images: torch.Tensor, masks: torch.Tensor, copies: int) -> None:
        self.images, self.masks, self.copies = images, masks, copies

    def __len__(self) -> int:
        return len(self.images) * self.copies

    def __getitem__(self, j: int) -> tuple[torch.Tensor, torch.Tensor]:
        i = j % len(self.images)
        return self.images[i], self.masks[i]


class _Views(torch.nn.Module):
    """Routes `forward` to the tuner's `forward_views`: core.train (and its DDP wrapper under torchrun) then calls
    the K-view entry point through `forward`, which is what synchronises gradients."""

    def __init__(self, model: SegModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, views: torch.Tensor) -> torch.Tensor:
        return self.model.forward_views(views)


def core_config(config: TuneConfig, lr: float, n_images: int, n_draws: int, seed: int) -> CoreTrainConfig:
    """core.train's settings of one tuning run: Adam(W) without weight decay or clipping at `lr`; "cosine" = a 5 %
    linear warm-up (at least one step) then cosine to 0, "constant" = no warm-up; a step's batch holds `n_draws`
    (1, or K for independent sets) draws of min(batch_size, n_images) images."""
    cosine = config.schedule == "cosine"
    return CoreTrainConfig(
        steps=config.steps,
        lr=lr,
        batch_size=min(config.batch_size, n_images) * n_draws,
        seed=seed,
        optimizer="adamw",
        schedule="cosine" if cosine else "constant",
        warmup_steps=max(1, config.steps // 20) if cosine else 0,
    )


def tune(
    model: SegModel,
    images: np.ndarray,
    masks: np.ndarray,
    config: TuneConfig,
    seed: int,
    progress: bool | None = False,
    checkpoint: str | Path | None = None,
    checkpoint_every: int = 0,
) -> list[float]:
    """Train `model`'s tunable parameters on the labelled (images, masks) through `tailorkit.core.train.train`
    (exact resume, one process or torchrun); return the loss per step.

    Each epoch visits the labelled images in a seeded random order (without replacement); with K independent
    prompt sets (lambda = 0) a step draws K * batch images and each set gets its own batch. Augmentation and dropout
    draw from core.train's per-step random stream.

    Args:
        seed: The run's seed (data order, augmentation, dropout); the model's initialisation is the caller's.
        checkpoint: core.train's resume file: resumed from when it exists, written every `checkpoint_every` steps
            (0: only at the end).
    """
    if len(images) == 0:
        raise ValueError("tune: expected at least one labelled image, got 0")
    params = model.tunable_parameters()
    if not params:
        raise ValueError("tune: the model has no trainable parameters")
    k_sets = model.n_sets
    shared = config.discrepancy > 0 and k_sets > 1
    draws = 1 if shared else k_sets
    batch = min(config.batch_size, len(images))
    data = _Labelled(torch.as_tensor(images, dtype=torch.float32), torch.as_tensor(masks, dtype=torch.float32), draws)
    lr = config.lr if model.prompt_based else config.lr_full
    train_config = replace(core_config(config, lr, len(images), draws, seed), checkpoint_every=checkpoint_every)

    def loss_fn(net: torch.nn.Module, pair: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x_all, y_all = (t.reshape(draws, batch, *t.shape[1:]) for t in pair)
        g = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,))))  # from core.train's per-step seed
        geo_seed = int(torch.randint(0, 2**62, (1,), generator=g))
        xs, ys = [], []
        for k in range(k_sets):
            x, y = (x_all[0], y_all[0]) if shared else (x_all[k], y_all[k])
            if config.augment:
                if shared:  # same geometric transform for every set, own intensity jitter
                    x, y = _augment(x, y, torch.Generator().manual_seed(geo_seed), True)
                    x, y = _augment(x, y, g, False)
                else:
                    x, y = _augment(x, y, g, True)
            xs.append(x)
            ys.append(y)
        views, targets = torch.stack(xs), torch.stack(ys)
        logits = net(views)
        loss = sum(segmentation_loss(logits[k], targets[k], config.pos_weight) for k in range(k_sets)) / k_sets
        if shared:
            prob = torch.sigmoid(logits)
            pair_sq = (prob.unsqueeze(0) - prob.unsqueeze(1)).pow(2).mean(dim=tuple(range(2, prob.dim() + 1)))
            loss = loss - config.discrepancy * pair_sq.sum() / (k_sets * (k_sets - 1))
        return loss  # type: ignore[return-value]

    model.train()  # SegModel.train keeps the frozen modules in eval mode
    try:
        result = core_train(
            _Views(model),
            loss_fn,
            data,
            train_config,
            device=params[0].device,
            checkpoint=checkpoint,
            progress=progress is not False,
        )
    finally:
        model.eval()
    return list(result.losses)


def enable_dropout(model: torch.nn.Module) -> None:
    """Switch only dropout layers to train mode (MC dropout); normalisation stays in eval."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout | torch.nn.Dropout2d | torch.nn.Dropout3d):
            module.train()


@torch.no_grad()
def predict(model: SegModel, images: np.ndarray, batch_size: int = 32, mc_dropout: bool = False) -> np.ndarray:
    """Per-set lesion probabilities (N, K, *S); mc_dropout keeps dropout active (one stochastic pass)."""
    model.eval()
    if mc_dropout:
        enable_dropout(model)
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(images), batch_size):
        x = torch.as_tensor(images[start : start + batch_size], dtype=torch.float32, device=device)
        out.append(torch.sigmoid(model(x)).cpu().numpy())
    model.eval()
    return np.concatenate(out) if out else np.zeros((0, model.n_sets, *images.shape[2:]), np.float32)


def dice_global(pred: np.ndarray, target: np.ndarray) -> float:
    """2|P & G| / (|P| + |G|) pooled over all pixels of all images (1.0 when both are empty)."""
    p, t = np.asarray(pred, bool), np.asarray(target, bool)
    if p.shape != t.shape:
        raise ValueError(f"dice: prediction {p.shape} and target {t.shape} differ")
    denom = p.sum() + t.sum()
    return 1.0 if denom == 0 else float(2 * np.logical_and(p, t).sum() / denom)


def dice_per_case(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean Dice over the images whose target has lesion pixels (NaN when none has)."""
    p, t = np.asarray(pred, bool), np.asarray(target, bool)
    if p.shape != t.shape:
        raise ValueError(f"dice: prediction {p.shape} and target {t.shape} differ")
    scores = [dice_global(pi, ti) for pi, ti in zip(p, t, strict=True) if ti.any()]
    return float(np.mean(scores)) if scores else float("nan")


def set_agreement(probs: np.ndarray, threshold: float = 0.5) -> float:
    """Mean pairwise global Dice between the K prompt sets' masks (probs (N, K, *S) > threshold): 1.0 when the sets
    agree everywhere, lower the more they disagree; NaN for one set. Pairs where neither set predicts anything
    count as full agreement (1.0)."""
    k = probs.shape[1]
    if k < 2:
        return float("nan")
    masks = probs > threshold
    pairs = [dice_global(masks[:, i], masks[:, j]) for i in range(k) for j in range(i + 1, k)]
    return float(np.mean(pairs))
