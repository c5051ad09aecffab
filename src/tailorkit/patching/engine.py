"""The patching engine: eligible tensors, input checks, the method call, the bias/norm policy and the patch.

`tailor(base, finetuned, calibration, config)` returns a `PatchResult`: the patched state, the sparse patch (every
entry that differs from the pretrained model: flat indices + values), per-tensor patch fractions, per-layer
reconstruction errors (Model Tailor) and timings. The same engine serves in-memory models (this module) and
checkpoint folders (`tailorkit.patching.checkpoints`).
"""

from __future__ import annotations

import copy
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from tailorkit.core.registry import Registry
from tailorkit.patching.config import PatchConfig
from tailorkit.patching.hessian import eligible_kind, token_mask

__all__ = [
    "METHODS",
    "MethodInfo",
    "PatchContext",
    "PatchError",
    "PatchResult",
    "SparsePatch",
    "apply_patch",
    "check_compatible",
    "eligible_modules",
    "jaccard",
    "run_calibration",
    "tailor",
]


class PatchError(ValueError):
    """Inputs that cannot be patched (mismatched models, NaN weights, empty calibration ...)."""


@dataclass
class MethodInfo:
    """What a method reports besides the weights it wrote."""

    masks: dict[str, torch.Tensor] = field(default_factory=dict)  # weight name -> bool mask of patch entries
    layer_errors: dict[str, dict[str, float]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    task_masks: list[dict[str, torch.Tensor]] = field(default_factory=list)  # multi-task: each task's own masks


@dataclass
class PatchContext:
    """Everything a method needs. `model` is the working copy (first fine-tune) that the method edits in place.

    Attributes:
        model: Working model, initially equal to the first fine-tuned model.
        base: Pretrained parameters by name (any Mapping; may be lazy).
        finetuned: One mapping of fine-tuned parameters per task.
        targets: Eligible modules by module name (their `.weight` is what methods change).
        calibration: Batches per task (Model Tailor); empty lists for data-free methods.
        models: The fine-tuned models themselves (Model Tailor runs calibration through them), one per task.
        progress: Show per-layer progress bars.
    """

    model: nn.Module
    base: Mapping[str, torch.Tensor]
    finetuned: list[Mapping[str, torch.Tensor]]
    targets: dict[str, nn.Module]
    calibration: list[list[Any]]
    models: list[nn.Module]
    progress: bool = True


MethodFn = Callable[[PatchContext, PatchConfig], MethodInfo]
METHODS: Registry[MethodFn] = Registry("patching method")


@dataclass
class SparsePatch:
    """One tensor's entries that differ from the pretrained tensor: flat indices (int64) and their new values."""

    indices: torch.Tensor
    values: torch.Tensor
    shape: tuple[int, ...]

    @property
    def fraction(self) -> float:
        return self.indices.numel() / max(1, math.prod(self.shape))


@dataclass
class PatchResult:
    """The outcome of `tailor`.

    Attributes:
        state: The patched parameters by name (every parameter of the model).
        patch: Sparse differences from the pretrained parameters, by parameter name (only tensors that differ).
        fractions: Per parameter tensor, the fraction of entries that differ from the pretrained value.
        changed_by_finetune: Names of parameters the fine-tune(s) changed (the denominator of `patch_fraction`).
        masks: Per tailored weight, the selected patch mask (Model Tailor, top-k methods).
        layer_errors: Per tailored weight, ||(W_ft - W) X||^2 / n for mask only and after compensation.
        timings: Seconds per stage.
        method: The method name.
        config: The settings used.
        overlap: Multi-task: Jaccard overlap of the task patches (over tailored weights), else None.
    """

    state: dict[str, torch.Tensor]
    patch: dict[str, SparsePatch]
    fractions: dict[str, float]
    changed_by_finetune: list[str]
    masks: dict[str, torch.Tensor]
    layer_errors: dict[str, dict[str, float]]
    timings: dict[str, float]
    method: str
    config: PatchConfig
    overlap: float | None = None

    def patch_fraction(self, names: Iterable[str] | None = None) -> float:
        """Entries differing from pretrained / entries of `names` (default: every tensor the fine-tune changed)."""
        chosen = list(self.changed_by_finetune if names is None else names)
        total = sum(self.state[n].numel() for n in chosen)
        changed = sum(self.patch[n].indices.numel() for n in chosen if n in self.patch)
        return changed / total if total else 0.0


def eligible_modules(model: nn.Module, pattern: str = ".*") -> dict[str, nn.Module]:
    """Linear / HF Conv1D / Conv2d (groups 1) modules whose name matches `pattern` (re.search), in model order."""
    regex = re.compile(pattern)
    return {name: m for name, m in model.named_modules() if eligible_kind(m) is not None and regex.search(name)}


def _describe(t: torch.Tensor) -> str:
    return f"{tuple(t.shape)} {str(t.dtype).replace('torch.', '')}"


def _first(items: Sequence[str], n: int = 3) -> str:
    return ", ".join(items[:n]) + (" ..." if len(items) > n else "")


def check_layout(
    base_keys: Sequence[str], other_keys: Sequence[str], base_meta: Any, other_meta: Any, label: str = "fine-tuned"
) -> None:
    """PatchError naming the first tensors missing on either side, then the first shape/dtype mismatches.

    `base_meta(key)` / `other_meta(key)` describe a tensor (shape and dtype); used for in-memory states and for
    checkpoint headers read lazily alike.
    """
    other_set, base_set = set(other_keys), set(base_keys)
    missing = [k for k in base_keys if k not in other_set]
    extra = [k for k in other_keys if k not in base_set]
    if missing or extra:
        parts = ([f"missing in {label}: {_first(missing)}"] if missing else []) + (
            [f"not in pretrained: {_first(extra)}"] if extra else []
        )
        raise PatchError(f"pretrained and {label} do not have the same tensors ({'; '.join(parts)})")
    bad = [
        f"{k}: pretrained {base_meta(k)} vs {label} {other_meta(k)}" for k in base_keys if base_meta(k) != other_meta(k)
    ]
    if bad:
        raise PatchError(f"tensor shapes/dtypes differ: {_first(bad)}")


def check_compatible(base: Mapping[str, torch.Tensor], others: Sequence[Mapping[str, torch.Tensor]]) -> None:
    """PatchError naming the first mismatched names, shapes or dtypes, or non-finite weights."""
    base_keys = list(base.keys())
    for t, other in enumerate(others):
        label = "fine-tuned" if len(others) == 1 else f"fine-tuned #{t}"
        check_layout(
            base_keys, list(other.keys()), lambda k: _describe(base[k]), lambda k, o=other: _describe(o[k]), label
        )
    for label, state in [("pretrained", base), *((f"fine-tuned #{i}", s) for i, s in enumerate(others))]:
        for k in base_keys:
            v = state[k]
            if v.is_floating_point() and not bool(torch.isfinite(v).all()):
                raise PatchError(f"{label} tensor {k!r} contains NaN or Inf values")


def run_calibration(model: nn.Module, batches: Sequence[Any], *, stop_after: nn.Module | None = None) -> None:
    """Run `batches` through `model` without gradients (eval mode, restored after).

    A batch is a dict (keyword arguments; its "attention_mask", if any, masks padding out of the Hessians), a
    tensor, or a tuple/list of positional arguments. `stop_after`: abort each forward once this submodule has run
    (later layers' outputs are not needed to accumulate a block's Hessians).
    """

    class _Stop(Exception):
        pass

    def stop_hook(*_: object) -> None:
        raise _Stop

    handle = stop_after.register_forward_hook(stop_hook) if stop_after is not None else None
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in batches:
                try:
                    if isinstance(batch, Mapping):
                        with token_mask(batch.get("attention_mask")):
                            model(**batch)
                    elif isinstance(batch, tuple | list):
                        model(*batch)
                    else:
                        model(batch)
                except _Stop:
                    pass
    finally:
        model.train(was_training)
        if handle is not None:
            handle.remove()


def jaccard(masks: Sequence[Mapping[str, torch.Tensor]]) -> float:
    """|intersection| / |union| of several tasks' patch masks, pooled over all tensors (nan if all empty)."""
    inter = union = 0
    for name in masks[0]:
        stack = torch.stack([m[name] for m in masks])
        inter += int(stack.all(0).sum())
        union += int(stack.any(0).sum())
    return inter / union if union else float("nan")


def _as_state(obj: nn.Module | Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
    if isinstance(obj, nn.Module):
        return dict(obj.named_parameters())
    if isinstance(obj, Mapping):
        return obj
    raise PatchError(f"expected an nn.Module or a mapping of parameter tensors, got {type(obj).__name__}")


def tailor(
    base: nn.Module | Mapping[str, torch.Tensor],
    finetuned: nn.Module | Sequence[nn.Module],
    calibration: Sequence[Any] | Sequence[Sequence[Any]] | None = None,
    config: PatchConfig | None = None,
    *,
    inplace: bool = False,
    progress: bool = True,
) -> PatchResult:
    """Patch fine-tuned model(s) so that everything outside a sparse patch returns to the pretrained values.

    Args:
        base: The pretrained model, or its parameters by name.
        finetuned: The fine-tuned model (same architecture), or a list of them (multi-task).
        calibration: Model Tailor: batches of new-task inputs (see `run_calibration`); for several fine-tunes, one
            list of batches per task. Ignored by data-free methods.
        config: Settings (method, density ...); default PatchConfig().
        inplace: Edit the (first) fine-tuned model instead of a copy.
        progress: Show progress bars per layer.

    Returns:
        A PatchResult; `result.state` loads into the model with `load_state_dict(..., strict=False)`.

    Raises:
        PatchError: Mismatched tensors, non-finite weights, empty calibration, nothing eligible.
        tailorkit.core.registry.RegistryError: Unknown method name.
    """
    import tailorkit.patching.methods  # noqa: F401  (fills METHODS)

    config = config or PatchConfig()
    method = METHODS.get(config.method)
    start = time.perf_counter()
    models = list(finetuned) if isinstance(finetuned, Sequence) else [finetuned]
    if not models or not all(isinstance(m, nn.Module) for m in models):
        raise PatchError("finetuned: expected an nn.Module or a non-empty list of them")
    base_state = _as_state(base)
    ft_states: list[Mapping[str, torch.Tensor]] = [dict(m.named_parameters()) for m in models]
    check_compatible(base_state, ft_states)
    work = models[0] if inplace else copy.deepcopy(models[0])
    if inplace:
        ft_states[0] = {k: v.detach().clone() for k, v in ft_states[0].items()}

    calib = _calibration_per_task(calibration, len(models), config)
    targets = _targets(work, base_state, ft_states, config)
    ctx = PatchContext(work, base_state, ft_states, targets, calib, models if not inplace else [work], progress)
    info = method(ctx, config)

    state = dict(work.named_parameters())
    target_weights = {f"{name}.weight" for name in targets}
    changed = [k for k in base_state if any(not torch.equal(s[k], base_state[k]) for s in ft_states)]
    with torch.no_grad():
        for name, param in state.items():
            if name in target_weights:
                continue
            if config.non_linear_policy == "revert":
                param.copy_(base_state[name])
            elif len(ft_states) > 1:  # several fine-tunes: theta_pre + sum of task vectors
                param.copy_(base_state[name] + sum(s[name] - base_state[name] for s in ft_states))
    result_state = {k: v.detach() for k, v in state.items()}
    patch: dict[str, SparsePatch] = {}
    fractions: dict[str, float] = {}
    for name, value in result_state.items():
        diff = (value != base_state[name]).reshape(-1)
        idx = torch.nonzero(diff).reshape(-1)
        fractions[name] = idx.numel() / max(1, value.numel())
        if idx.numel():
            patch[name] = SparsePatch(idx, value.reshape(-1)[idx].clone(), tuple(value.shape))
    timings = dict(info.timings)
    timings["total"] = time.perf_counter() - start
    overlap = jaccard(info.task_masks) if len(info.task_masks) > 1 else None
    return PatchResult(
        result_state, patch, fractions, changed, info.masks, info.layer_errors, timings, config.method, config, overlap
    )


def _calibration_per_task(calibration: Any, n_tasks: int, config: PatchConfig) -> list[list[Any]]:
    if calibration is None:
        return [[] for _ in range(n_tasks)]
    if n_tasks == 1:
        per_task = [list(calibration)]
    else:
        per_task = [list(c) for c in calibration]
        if len(per_task) != n_tasks:
            raise PatchError(
                f"calibration: expected one list of batches per fine-tune ({n_tasks}), got {len(per_task)}"
            )
    return [c[: config.nsamples] for c in per_task]


def _targets(
    work: nn.Module, base: Mapping[str, torch.Tensor], fts: list[Mapping[str, torch.Tensor]], config: PatchConfig
) -> dict[str, nn.Module]:
    found = eligible_modules(work, config.layers)
    targets = {}
    for name, module in found.items():
        key = f"{name}.weight"
        if key not in base:
            continue  # tied or buffer-only weights are not parameters of their own
        if config.skip_unchanged and all(torch.equal(s[key], base[key]) for s in fts):
            continue
        targets[name] = module
    return targets


def apply_patch(base: Mapping[str, torch.Tensor], patch: Mapping[str, SparsePatch]) -> dict[str, torch.Tensor]:
    """Pretrained parameters with the patch written in (a new dict; untouched tensors are shared, not copied)."""
    out = dict(base)
    for name, p in patch.items():
        if name not in base:
            raise PatchError(f"patch tensor {name!r} is not a pretrained parameter")
        if tuple(base[name].shape) != tuple(p.shape):
            raise PatchError(f"patch tensor {name!r}: shape {p.shape} vs pretrained {tuple(base[name].shape)}")
        flat = base[name].detach().reshape(-1).clone()
        flat[p.indices] = p.values.to(flat.dtype)
        out[name] = flat.reshape(base[name].shape)
    return out
