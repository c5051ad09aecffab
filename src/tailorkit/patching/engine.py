"""The patching engine: eligible tensors, input checks, the method call, the policy for every other tensor, the patch.

`tailor(base, finetuned, calibration, config)` returns a `PatchResult`: the patched state, the sparse patch (every
entry that differs from the pretrained model: flat indices + values), per-tensor patch fractions, per-layer
reconstruction errors (Model Tailor) and timings. It is the one implementation of target selection, of the policy
for the tensors no method touches and of the patch: `tailorkit.patching.checkpoints.tailor_checkpoint` loads
model folders, calls `tailor` and writes the result.

The policy for everything that is not a tailored weight (biases, norms, embeddings, layers excluded by `layers`),
`PatchConfig.non_linear_policy`, see docs/patching.md#the-patch-budget-and-the-policy-for-other-tensors:

- "sparsify" (default): each tensor the fine-tune changed keeps its int(density * n) largest |tau| entries, as
  mergekit's TIES / magnitude pruning trims every tensor; with it, the entries that differ from the pretrained
  model are at most `density` of the tensors the fine-tune changed, over the whole model.
- "keep_pretrained" (alias "revert"): every such tensor returns to its pretrained value.
- "keep_finetuned": as the released Model Tailor code; these tensors stay fine-tuned (several fine-tunes: theta_pre
  + sum of their task vectors), so the whole-model patch exceeds `density`.
"""

from __future__ import annotations

import copy
import math
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from tailorkit.patching.config import PatchConfig
from tailorkit.patching.hessian import eligible_kind, run_calibration
from tailorkit.patching.methods import METHODS
from tailorkit.patching.methods._common import tensor_topk_mask
from tailorkit.patching.methods.base import MethodInfo, PatchContext, PatchError

__all__ = [
    "METHODS",
    "MethodInfo",
    "PatchContext",
    "PatchError",
    "PatchResult",
    "SparsePatch",
    "apply_patch",
    "check_compatible",
    "check_layout",
    "eligible_modules",
    "jaccard",
    "patch_fractions",
    "run_calibration",
    "select_targets",
    "sparse_diff",
    "tailor",
]


@dataclass
class SparsePatch:
    """One tensor's entries that differ from the pretrained tensor: flat indices (int64) and their new values."""

    indices: torch.Tensor
    values: torch.Tensor
    shape: tuple[int, ...]

    @property
    def fraction(self) -> float:
        return self.indices.numel() / max(1, math.prod(self.shape))


def sparse_diff(new: torch.Tensor, pre: torch.Tensor) -> SparsePatch | None:
    """The entries of `new` that differ from `pre`, compared in `pre`'s dtype (None when there are none)."""
    value = new.detach().to(dtype=pre.dtype)
    flat = value.reshape(-1)
    idx = torch.nonzero(flat != pre.detach().to(value.device).reshape(-1)).reshape(-1)
    if not idx.numel():
        return None
    return SparsePatch(idx, flat[idx].clone(), tuple(value.shape))


def patch_fractions(
    patch: Mapping[str, SparsePatch], sizes: Mapping[str, int], changed: Iterable[str], tailored: Iterable[str]
) -> dict[str, float]:
    """Entries that differ from the pretrained model, as fractions of three totals.

    Returns:
        "patch_fraction": over the tensors the fine-tune changed (`changed`): the budget "rho of the fine-tuned
        changes"; "patch_fraction_model": over every tensor (`sizes`), the whole model; "patch_fraction_tailored":
        over the tailored weights only (what the released code counts); plus the entry counts.
    """

    def frac(names: Iterable[str]) -> float:
        chosen = [n for n in names if n in sizes]
        total = sum(sizes[n] for n in chosen)
        return sum(patch[n].indices.numel() for n in chosen if n in patch) / total if total else 0.0

    tailored = list(tailored)
    return {
        "patch_fraction": frac(changed),
        "patch_fraction_model": frac(sizes),
        "patch_fraction_tailored": frac(tailored) if tailored else float("nan"),
        "patch_entries": float(sum(p.indices.numel() for n, p in patch.items() if n in sizes)),
        "model_entries": float(sum(sizes.values())),
    }


@dataclass
class PatchResult:
    """The outcome of `tailor`.

    Attributes:
        state: The patched parameters by name (every parameter of the model that the pretrained state has).
        patch: Sparse differences from the pretrained parameters, by parameter name (only tensors that differ),
            compared and stored in the pretrained tensors' dtypes.
        fractions: Per parameter tensor, the fraction of entries that differ from the pretrained value.
        changed_by_finetune: Names of parameters the fine-tune(s) changed (the denominator of `patch_fraction`).
        masks: Per tailored weight, the selected patch mask (Model Tailor, top-k methods).
        layer_errors: Per tailored weight, ||(W_ft - W) X||^2 / n for mask only and after compensation.
        timings: Seconds per stage.
        method: The method name.
        config: The settings used.
        overlap: Multi-task: Jaccard overlap of the task patches (over tailored weights), else None.
        tailored: Names of the tailored weights (`<module>.weight`).
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
    tailored: list[str] | None = None

    def patch_fraction(self, names: Iterable[str] | None = None) -> float:
        """Entries differing from pretrained / entries of `names` (default: every tensor the fine-tune changed)."""
        chosen = list(self.changed_by_finetune if names is None else names)
        total = sum(self.state[n].numel() for n in chosen)
        changed = sum(self.patch[n].indices.numel() for n in chosen if n in self.patch)
        return changed / total if total else 0.0

    def summary(self) -> dict[str, float]:
        """`patch_fractions` of this result: over the fine-tune's changes, the whole model and the tailored weights."""
        sizes = {n: v.numel() for n, v in self.state.items()}
        return patch_fractions(self.patch, sizes, self.changed_by_finetune, self.tailored or list(self.masks))


def eligible_modules(model: nn.Module, pattern: str = ".*") -> dict[str, nn.Module]:
    """Linear / HF Conv1D / Conv2d (groups 1) modules whose name matches `pattern` (re.search), in model order."""
    regex = re.compile(pattern)
    return {name: m for name, m in model.named_modules() if eligible_kind(m) is not None and regex.search(name)}


def select_targets(
    model: nn.Module,
    base: Mapping[str, torch.Tensor],
    finetuned: Sequence[Mapping[str, torch.Tensor]],
    config: PatchConfig,
) -> dict[str, nn.Module]:
    """The modules a method tailors: eligible, name matching `config.layers`, weight a pretrained parameter of its
    own (tied weights are not), and changed by at least one fine-tune unless `skip_unchanged` is off."""
    params = dict(model.named_parameters())
    targets = {}
    for name, module in eligible_modules(model, config.layers).items():
        key = f"{name}.weight"
        if key not in base or key not in params:
            continue
        if config.skip_unchanged and not _changed(key, base, finetuned):
            continue
        targets[name] = module
    return targets


def _changed(key: str, base: Mapping[str, torch.Tensor], finetuned: Sequence[Mapping[str, torch.Tensor]]) -> bool:
    pre = base[key]
    return any(not torch.equal(s[key].detach().to(dtype=pre.dtype, device=pre.device), pre) for s in finetuned)


def _describe(t: torch.Tensor) -> str:
    return f"{tuple(t.shape)} {str(t.dtype).replace('torch.', '')}"


_SAFETENSORS_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64"}


def _describe_key(state: Mapping[str, torch.Tensor], key: str) -> str:
    """Shape and dtype of `state[key]`, from the header when the mapping is a lazy checkpoint reader (`meta`)."""
    meta = getattr(state, "meta", None)
    if callable(meta):
        shape, dtype = meta(key)
        return f"{tuple(shape)} {_SAFETENSORS_DTYPES.get(dtype, dtype)}"
    return _describe(state[key])


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
            base_keys,
            list(other.keys()),
            lambda k: _describe_key(base, k),
            lambda k, o=other: _describe_key(o, k),
            label,
        )
    for label, state in [("pretrained", base), *((f"fine-tuned #{i}", s) for i, s in enumerate(others))]:
        if label == "fine-tuned #0" and len(others) == 1:
            label = "fine-tuned"
        for k in base_keys:
            v = state[k]
            if v.is_floating_point() and not bool(torch.isfinite(v).all()):
                raise PatchError(f"{label} tensor {k!r} contains NaN or Inf values")


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
    reference: Sequence[Mapping[str, torch.Tensor]] | None = None,
) -> PatchResult:
    """Patch fine-tuned model(s) so that everything outside a sparse patch returns to the pretrained values.

    Args:
        base: The pretrained model, or its parameters by name (any Mapping, e.g. a lazy checkpoint reader).
        finetuned: The fine-tuned model (same architecture), or a list of them (multi-task).
        calibration: Model Tailor: batches of new-task inputs (see `run_calibration`); for several fine-tunes, one
            list of batches per task. Ignored by data-free methods.
        config: Settings (method, density ...); default PatchConfig().
        inplace: Edit the (first) fine-tuned model instead of a copy.
        progress: Show progress bars per layer.
        reference: The fine-tuned parameters by name, one mapping per fine-tune, read instead of the models' own
            parameters (checkpoints pass lazy readers of their files, so that `inplace` needs no copy).

    Returns:
        A PatchResult; `result.state` loads into the model with `load_state_dict(..., strict=False)`.

    Raises:
        PatchError: Mismatched tensors, non-finite weights, empty calibration, nothing eligible.
        tailorkit.core.registry.RegistryError: Unknown method name.
    """
    config = config or PatchConfig()
    method = METHODS.get(config.method)
    start = time.perf_counter()
    models = list(finetuned) if isinstance(finetuned, Sequence) else [finetuned]
    if not models or not all(isinstance(m, nn.Module) for m in models):
        raise PatchError("finetuned: expected an nn.Module or a non-empty list of them")
    base_state = _as_state(base)
    if reference is not None:
        ft_states = list(reference)
        if len(ft_states) != len(models):
            raise PatchError(f"reference: expected one mapping per fine-tune ({len(models)}), got {len(ft_states)}")
    else:
        ft_states = [dict(m.named_parameters()) for m in models]
    check_compatible(base_state, ft_states)
    if inplace and reference is None:
        ft_states[0] = {k: v.detach().clone() for k, v in ft_states[0].items()}
    work = models[0] if inplace else copy.deepcopy(models[0])
    params = {k: p for k, p in work.named_parameters() if k in base_state}

    calib = _calibration_per_task(calibration, len(models), config)
    targets = select_targets(work, base_state, ft_states, config)
    if not targets:
        raise PatchError(
            f"no eligible layer differs from the pretrained model (layers={config.layers!r}; eligible: Linear, "
            "HF Conv1D, Conv2d weights that the fine-tune changed)"
        )
    changed = [k for k in params if _changed(k, base_state, ft_states)]
    task_models = [work, *models[1:]] if inplace else models
    ctx = PatchContext(work, base_state, ft_states, targets, calib, task_models, progress)
    info = method(ctx, config)
    target_weights = {f"{name}.weight" for name in targets}
    t0 = time.perf_counter()
    with torch.no_grad():
        for name in changed:
            if name not in target_weights:
                _apply_policy(params[name], name, base_state, ft_states, config)

    patch: dict[str, SparsePatch] = {}
    fractions: dict[str, float] = {}
    for name, param in params.items():
        diff = sparse_diff(param, base_state[name])
        fractions[name] = diff.fraction if diff is not None else 0.0
        if diff is not None:
            patch[name] = diff
    timings = dict(info.timings)
    timings["policy_and_patch"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - start
    overlap = jaccard(info.task_masks) if len(info.task_masks) > 1 else None
    state = {k: v.detach() for k, v in params.items()}
    return PatchResult(
        state,
        patch,
        fractions,
        changed,
        info.masks,
        info.layer_errors,
        timings,
        config.method,
        config,
        overlap,
        sorted(target_weights),
    )


def _apply_policy(
    param: torch.Tensor,
    name: str,
    base: Mapping[str, torch.Tensor],
    finetuned: Sequence[Mapping[str, torch.Tensor]],
    config: PatchConfig,
) -> None:
    """Write the policy's value of a tensor no method tailored (and that some fine-tune changed) into `param`."""
    dtype = torch.float64 if param.dtype == torch.float64 else torch.float32
    pre = base[name].detach().to(dtype=dtype, device=param.device)
    policy = config.non_linear_policy
    if policy in ("keep_pretrained", "revert"):
        param.copy_(pre)
        return
    if policy == "keep_finetuned" and len(finetuned) == 1:
        param.copy_(finetuned[0][name])  # already so unless the model was edited; cheap and explicit
        return
    value = pre.clone()
    for state in finetuned:
        tau = state[name].detach().to(dtype=dtype, device=param.device) - pre
        if policy == "sparsify":
            tau = tau * tensor_topk_mask(tau, config.density)
        value += tau
    param.copy_(value)


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
