"""Training and inference for the tuners, and the Dice metrics.

Loss per prompt set: BCE (lesion pixels weighted by `pos_weight`) + soft Dice, averaged over sets. With `discrepancy` =
lambda > 0 (the default, 0.1) the loss subtracts lambda * mean pairwise squared difference of the sets' probabilities
([inferred], docs/active.md#the-method-as-implemented); the sets then share each step's images and geometric transform
(so their predictions are pixel-aligned) and differ only in intensity jitter. With lambda = 0 every set draws its own
images and its own view (rotation by k * 90 degrees, flips, gamma and noise).

Shapes:
    images: (N, 1, S, S) float32 [0, 1]; masks: (N, S, S) {0, 1}; predict -> (N, K, S, S) probabilities.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from tailorkit.active.config import TuneConfig
from tailorkit.active.methods.base import SegModel
from tailorkit.core.progress import bar

__all__ = [
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


def tune(
    model: SegModel,
    images: np.ndarray,
    masks: np.ndarray,
    config: TuneConfig,
    seed: int,
    progress: bool | None = False,
) -> list[float]:
    """Train `model`'s tunable parameters on the labelled (images, masks); return the loss per step."""
    if len(images) == 0:
        raise ValueError("tune: expected at least one labelled image, got 0")
    params = model.tunable_parameters()
    if not params:
        raise ValueError("tune: the model has no trainable parameters")
    device = params[0].device
    g = torch.Generator().manual_seed(seed)
    x_all = torch.as_tensor(images, dtype=torch.float32)
    y_all = torch.as_tensor(masks, dtype=torch.float32)
    lr = config.lr if model.prompt_based else config.lr_full
    optim = torch.optim.Adam(params, lr=lr)
    warmup = max(1, config.steps // 20)

    def factor(step: int) -> float:
        if config.schedule == "constant":
            return 1.0
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, config.steps - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optim, factor)
    k_sets = model.n_sets
    shared = config.discrepancy > 0 and k_sets > 1
    batch = min(config.batch_size, len(images))
    losses: list[float] = []
    # Dropout in trainable (fine-tuned) networks draws from torch's global stream: fork it and seed it, so runs are
    # reproducible without changing the caller's random state.
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        _loop(model, x_all, y_all, config, g, optim, scheduler, k_sets, shared, batch, device, losses, progress)
    model.eval()
    return losses


def _loop(
    model: SegModel,
    x_all: torch.Tensor,
    y_all: torch.Tensor,
    config: TuneConfig,
    g: torch.Generator,
    optim: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR,
    k_sets: int,
    shared: bool,
    batch: int,
    device: torch.device,
    losses: list[float],
    progress: bool | None,
) -> None:
    n = len(x_all)
    model.train()
    with bar("tune", total=config.steps, enabled=progress) as progress_bar:
        for _ in range(config.steps):
            xs, ys = [], []
            common = torch.randint(0, n, (batch,), generator=g)
            geo_seed = int(torch.randint(0, 2**62, (1,), generator=g))
            for _k in range(k_sets):
                idx = common if shared else torch.randint(0, n, (batch,), generator=g)
                x, y = x_all[idx], y_all[idx]
                if config.augment:
                    if shared:  # same geometric transform for every set, own intensity jitter
                        x, y = _augment(x, y, torch.Generator().manual_seed(geo_seed), True)
                        x, y = _augment(x, y, g, False)
                    else:
                        x, y = _augment(x, y, g, True)
                xs.append(x)
                ys.append(y)
            views, targets = torch.stack(xs).to(device), torch.stack(ys).to(device)
            logits = model.forward_views(views)
            loss = sum(segmentation_loss(logits[k], targets[k], config.pos_weight) for k in range(k_sets)) / k_sets
            if shared:
                prob = torch.sigmoid(logits)
                pair = (prob.unsqueeze(0) - prob.unsqueeze(1)).pow(2).mean(dim=tuple(range(2, prob.dim() + 1)))
                loss = loss - config.discrepancy * pair.sum() / (k_sets * (k_sets - 1))
            optim.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[union-attr]
            optim.step()
            scheduler.step()
            losses.append(float(loss.detach()))  # type: ignore[union-attr]
            progress_bar.update(1)


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
