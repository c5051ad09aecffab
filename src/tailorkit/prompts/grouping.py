"""Gradient-driven task grouping (MmAP §"task grouping"; the algorithm is reconstructed [inferred]).

Verified: MmAP partitions the tasks into disjoint groups by gradient similarity, "maximizing the complementarity of
tasks with high similarity"; a group shares an MmAP. Reconstructed (docs/prompts.md#the-method-as-implemented), each an
option:

1. warm-up: train one all-shared MmAP and record, at every step, each task's gradient, either on its raw parameters
   (``wrt="params"``, the default) or on the prompts it generates (``wrt="prompts"``: the text deltas and image
   tokens of every prompted layer, concatenated; issue 20: with a zero source the raw factors' gradients are zero
   and the 2 x d_s sources dominate the raw vector);
2. affinity, two forms: ``cosine`` S_ij = step mean of cos(g_i, g_j); ``lookahead`` (TAG, Fifty et al., NeurIPS
   2021, arXiv:2109.04617) Z_ij = step mean of 1 - L_j(theta - eta g_i) / L_j(theta), the relative drop of task
   j's loss after a step on task i alone (T extra forwards per task per measured step);
3. partition maximising the TAG objective sum_t mean_{u in G(t), u != t} A_ut (a singleton scores 0):
   exhaustive over all set partitions for T <= 8 (Bell(8) = 4140), greedy agglomerative merging beyond;
   ``n_groups`` fixes the number of groups (0 = free).

Shapes:
    affinity matrices: (T, T), row = source task i, column = target task j (symmetric for cosine)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

__all__ = [
    "AffinityResult",
    "best_partition",
    "gradient_affinity",
    "partition_exhaustive",
    "partition_greedy",
    "partition_score",
    "random_partition",
    "set_partitions",
]

Partition = list[list[int]]


@dataclass
class AffinityResult:
    """Per-task gradient affinities recorded during the warm-up."""

    cosine: np.ndarray
    lookahead: np.ndarray | None
    steps: int
    losses: list[float] = field(default_factory=list)


def gradient_affinity(
    params: Sequence[torch.Tensor],
    task_losses: Callable[[int], dict[int, torch.Tensor]],
    n_tasks: int,
    steps: int,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    lookahead_every: int = 0,
    lookahead_lr: float = 0.01,
    measure: Callable[[], Sequence[torch.Tensor]] | None = None,
) -> AffinityResult:
    """Run ``steps`` warm-up steps, recording per-task gradient cosines (and optionally look-ahead affinities).

    Args:
        params: The shared parameters whose per-task gradients are compared.
        task_losses: step -> {task: loss} (a fresh batch per step; tasks 0..n_tasks-1 all present).
        n_tasks: T.
        steps: Warm-up steps; the optimizer (if given) steps on the mean loss after each measurement.
        lookahead_every: Measure look-ahead affinity every this many steps (0 = never).
        lookahead_lr: The step size eta of the look-ahead update (plain SGD, as TAG).
        measure: Called right after ``task_losses(step)``: the tensors of that forward (e.g. the generated prompts)
            whose per-task gradients define the cosine affinity instead of the parameters' (the optimizer and the
            look-ahead still step on the parameters).

    Returns:
        The step-averaged affinity matrices.
    """
    cos_sum = np.zeros((n_tasks, n_tasks))
    look_sum = np.zeros((n_tasks, n_tasks))
    n_look = 0
    losses = []
    params = list(params)
    for step in range(steps):
        per_task = task_losses(step)
        if sorted(per_task) != list(range(n_tasks)):
            raise ValueError(f"task_losses must return every task 0..{n_tasks - 1}; got {sorted(per_task)}")
        measured = list(measure()) if measure is not None else []
        targets = params + measured
        grads, measured_grads = [], []
        for t in range(n_tasks):
            g = torch.autograd.grad(per_task[t], targets, retain_graph=True, allow_unused=True)
            flat = [(x if x is not None else torch.zeros_like(p)).flatten() for x, p in zip(g, targets, strict=True)]
            grads.append(torch.cat(flat[: len(params)]))
            if measured:
                measured_grads.append(torch.cat(flat[len(params) :]))
        G = torch.stack(grads)
        M = torch.stack(measured_grads) if measured else G
        Gn = M / M.norm(dim=1, keepdim=True).clamp_min(1e-12)
        cos_sum += (Gn @ Gn.T).detach().cpu().double().numpy()
        if lookahead_every and step % lookahead_every == 0:
            look_sum += _lookahead(params, G, per_task, task_losses, step, lookahead_lr)
            n_look += 1
        loss = torch.stack([per_task[t] for t in range(n_tasks)]).mean()
        losses.append(float(loss.detach()))
        if optimizer is not None:
            optimizer.zero_grad(set_to_none=True)
            offset = 0
            mean_grad = G.mean(0)
            for p in params:
                p.grad = mean_grad[offset : offset + p.numel()].view_as(p).clone()
                offset += p.numel()
            optimizer.step()
    return AffinityResult(cos_sum / max(steps, 1), look_sum / n_look if n_look else None, steps, losses)


@torch.no_grad()
def _lookahead(
    params: list[torch.Tensor],
    grads: torch.Tensor,
    per_task: dict[int, torch.Tensor],
    task_losses: Callable[[int], dict[int, torch.Tensor]],
    step: int,
    lr: float,
) -> np.ndarray:
    """Z_ij = 1 - L_j(theta - lr g_i) / L_j(theta) on the same batch (``task_losses(step)`` must be repeatable)."""
    n = grads.shape[0]
    base = torch.stack([per_task[t].detach() for t in range(n)])
    out = np.zeros((n, n))
    saved = [p.detach().clone() for p in params]
    for i in range(n):
        offset = 0
        for p, s in zip(params, saved, strict=True):
            p.copy_(s - lr * grads[i, offset : offset + p.numel()].view_as(p))
            offset += p.numel()
        after = task_losses(step)
        for j in range(n):
            out[i, j] = float(1 - after[j].detach() / base[j].clamp_min(1e-12))
    for p, s in zip(params, saved, strict=True):
        p.copy_(s)
    return out


def partition_score(affinity: np.ndarray, groups: Partition) -> float:
    """TAG objective: sum over tasks of the mean affinity from its group mates to it (singletons score 0)."""
    total = 0.0
    for g in groups:
        if len(g) < 2:
            continue
        for t in g:
            total += float(np.mean([affinity[u, t] for u in g if u != t]))
    return total


def set_partitions(items: list[int]) -> Iterator[Partition]:
    """Every partition of ``items`` into non-empty disjoint groups (Bell(n) of them)."""
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for part in set_partitions(rest):
        yield [[first], *part]
        for i in range(len(part)):
            yield [*part[:i], [first, *part[i]], *part[i + 1 :]]


def _canonical(groups: Partition) -> Partition:
    return sorted((sorted(g) for g in groups), key=lambda g: g[0])


def partition_exhaustive(affinity: np.ndarray, n_groups: int = 0) -> Partition:
    """The best partition by exhaustive search (T <= 8); ties break towards fewer groups, then lexicographically."""
    n = affinity.shape[0]
    if n > 8:
        raise ValueError(f"exhaustive partition search is for T <= 8 tasks (Bell(8) = 4140); got {n}, use greedy")
    best: tuple[float, int, Partition] | None = None
    for part in set_partitions(list(range(n))):
        if n_groups and len(part) != n_groups:
            continue
        score = partition_score(affinity, part)
        cand = (round(score, 12), -len(part), _canonical(part))
        if best is None or (cand[0], cand[1]) > (best[0], best[1]):
            best = cand
    assert best is not None, "no partition with the requested number of groups"
    return best[2]


def partition_greedy(affinity: np.ndarray, n_groups: int = 0) -> Partition:
    """Agglomerative: start from singletons, merge the pair of groups that raises the objective most; stop when no
    merge helps (or at ``n_groups`` groups)."""
    groups: Partition = [[i] for i in range(affinity.shape[0])]
    while len(groups) > max(n_groups, 1):
        base = partition_score(affinity, groups)
        best_gain, best_pair = -np.inf, None
        for i in range(len(groups)):
            for j in range(i + 1, len(groups)):
                merged = [g for k, g in enumerate(groups) if k not in (i, j)] + [groups[i] + groups[j]]
                gain = partition_score(affinity, merged) - base
                if gain > best_gain:
                    best_gain, best_pair = gain, (i, j)
        if best_pair is None or (not n_groups and best_gain <= 0):
            break
        i, j = best_pair
        groups = [g for k, g in enumerate(groups) if k not in (i, j)] + [groups[i] + groups[j]]
    return _canonical(groups)


def best_partition(affinity: np.ndarray, n_groups: int = 0, method: str = "auto") -> Partition:
    """Exhaustive for T <= 8 (method "auto" or "exhaustive"), else greedy."""
    if method not in ("auto", "exhaustive", "greedy"):
        raise ValueError(f"partition method: expected auto, exhaustive or greedy; got {method!r}")
    if method == "greedy" or (method == "auto" and affinity.shape[0] > 8):
        return partition_greedy(affinity, n_groups)
    return partition_exhaustive(affinity, n_groups)


def random_partition(sizes: Sequence[int], rng: np.random.Generator) -> Partition:
    """A uniformly random assignment of tasks 0..sum(sizes)-1 to groups of the given sizes."""
    perm = [int(i) for i in rng.permutation(int(sum(sizes)))]
    out, start = [], 0
    for s in sizes:
        out.append(perm[start : start + s])
        start += s
    return _canonical(out)


def groups_to_assignment(groups: Partition, n_tasks: int, *, task_banks: bool = True) -> list[list[int]]:
    """Bank assignment for group (+ task) prompts: group g -> bank g, task t -> bank G + t."""
    where = {t: g for g, members in enumerate(groups) for t in members}
    if sorted(where) != list(range(n_tasks)):
        raise ValueError(f"groups must cover tasks 0..{n_tasks - 1} exactly once; got {groups}")
    n_g = len(groups)
    return [[where[t], n_g + t] if task_banks else [where[t]] for t in range(n_tasks)]
