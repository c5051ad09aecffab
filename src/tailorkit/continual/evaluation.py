"""Evaluation after every phase on all classes seen so far, and the continual metrics.

- kNN (k = 20, cosine, temperature-weighted votes exp(cos / 0.1)), the solo-learn / CaSSLe kNN protocol.
- Linear probe: offline multinomial logistic regression on frozen, standardised features of the labelled training
  images of the seen classes (LBFGS, L2 penalty), one head for all seen classes (class-incremental, no task id).
- Accuracy matrix A[t][j]: accuracy after phase t on the test images of phase j's classes (j <= t), predicted among
  all seen classes. From it:
    * final accuracy = accuracy on all classes after the last phase (NOT the average over phases);
    * average incremental accuracy (AIA) = mean over phases t of the accuracy on all classes seen after phase t;
    * forgetting = mean over phases j < T of (max_{j <= t < T} A[t][j]) - A[T][j] (CaSSLe's all-seen-head form).

Shapes: features (N, D) float; labels (N,) int64; predictions (M,) int64.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from tailorkit.continual.nets import to_float

__all__ = [
    "average_incremental_accuracy",
    "extract_features",
    "final_accuracy",
    "forgetting",
    "knn_predict",
    "linear_probe",
]


@torch.no_grad()
def extract_features(encoder: nn.Module, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Frozen encoder features (eval mode; the module's mode is restored afterwards)."""
    was_training = encoder.training
    encoder.eval()
    device = next(encoder.parameters(), torch.empty(0)).device
    try:
        chunks = [
            encoder(to_float(images[i : i + batch_size]).to(device)).cpu() for i in range(0, len(images), batch_size)
        ]
    finally:
        encoder.train(was_training)
    return torch.cat(chunks) if chunks else torch.zeros(0)


def knn_predict(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    k: int = 20,
    temperature: float = 0.1,
    chunk: int = 1024,
) -> torch.Tensor:
    """Weighted kNN on cosine similarity: each of the k nearest training samples votes exp(cos / T) for its label."""
    classes, y = torch.unique(train_labels, return_inverse=True)
    bank = F.normalize(train_features.float(), dim=1)
    k = min(k, bank.shape[0])
    out = []
    for i in range(0, test_features.shape[0], chunk):
        q = F.normalize(test_features[i : i + chunk].float(), dim=1)
        sim, idx = (q @ bank.T).topk(k, dim=1)
        votes = torch.zeros(q.shape[0], classes.numel())
        votes.scatter_add_(1, y[idx], torch.exp(sim / temperature))
        out.append(classes[votes.argmax(1)])
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


def linear_probe(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    l2: float = 1e-3,
    iters: int = 100,
) -> torch.Tensor:
    """Fit softmax regression on standardised training features (LBFGS, deterministic) and predict test labels."""
    classes, y = torch.unique(train_labels, return_inverse=True)
    x = train_features.double()
    mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
    x = (x - mean) / std
    w = torch.zeros(x.shape[1], classes.numel(), dtype=torch.float64, requires_grad=True)
    b = torch.zeros(classes.numel(), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=iters, history_size=20, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(x @ w + b, y) + l2 * w.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    with torch.no_grad():
        logits = ((test_features.double() - mean) / std) @ w + b
    return classes[logits.argmax(1)]


def _check_matrix(matrix: Sequence[Sequence[float]]) -> int:
    t = len(matrix)
    if t == 0 or any(len(row) < i + 1 for i, row in enumerate(matrix)):
        raise ValueError("accuracy matrix: expected T rows, row t holding at least t+1 accuracies (phases 0..t)")
    return t


def final_accuracy(seen_accuracy: Sequence[float]) -> float:
    """Accuracy on all classes after the last phase (the last entry of the per-phase seen-class accuracies)."""
    if not seen_accuracy:
        raise ValueError("seen_accuracy: expected at least one phase")
    return float(seen_accuracy[-1])


def average_incremental_accuracy(seen_accuracy: Sequence[float]) -> float:
    """AIA: mean over phases of the accuracy on all classes seen after that phase."""
    if not seen_accuracy:
        raise ValueError("seen_accuracy: expected at least one phase")
    return float(sum(seen_accuracy) / len(seen_accuracy))


def forgetting(matrix: Sequence[Sequence[float]]) -> float:
    """Mean over phases j < T-1 of the best earlier accuracy on phase j minus the final one (0 for one phase)."""
    t = _check_matrix(matrix)
    if t == 1:
        return 0.0
    drops = [max(matrix[s][j] for s in range(j, t - 1)) - matrix[t - 1][j] for j in range(t - 1)]
    value = float(sum(drops) / len(drops))
    return 0.0 if math.isclose(value, 0.0, abs_tol=1e-12) else value
