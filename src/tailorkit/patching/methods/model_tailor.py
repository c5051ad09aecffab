"""Model Tailor (Zhu et al., "Model Tailor: Mitigating Catastrophic Forgetting in Multi-modal Large Language
Models", ICML 2024, arXiv 2402.12048) and its "mask only" ablation.

theta_MT = theta_pre + M * tau + delta: a sparse patch M (density rho) of the task vector tau = theta_ft - theta_pre
is kept, everything else returns to theta_pre, and a compensation delta supported on the patch ("patch decorator")
reduces the layer-wise reconstruction error ||W_ft X - W X||^2 on new-task calibration inputs X.

Per layer, following the released code (didizhu-zju/Model-Tailor, llava/train/sparsegpt.py, `fasterprune`):

1. H = mean x x^T over calibration tokens (float64, padding masked out); dead inputs get H_jj = 1;
   H += percdamp * mean(diag H) * I; U = upper Cholesky factor of H^-1 (U^T U = H^-1).
2. Salience s = |W_ft - W_pre| (once, uncompensated). Per block of `block_size` columns, sensitivity
   v = W1^2 / U_jj^2 on the current, partly compensated W1 ("weight", released) or (W1 - W_pre1)^2 / U_jj^2
   ("delta": the OBS cost of reverting, our derivation); importance = alpha z(s) + (1 - alpha) z(v) with per-row
   z-scores inside the block; the top rho of the block's entries form the patch.
3. Left-to-right OBS sweep: column i's reverted entries take W_pre; err = (w - q) / U_ii;
   W1[:, i:] += sign * err U[i, i:]; after the block W[:, i2:] += sign * Err1 U[i1:i2, i2:]. Reverted entries are
   overwritten by W_pre, so the compensation lands on patch entries to the right.

Deviations and inferred details (all options: `ModelTailorOptions`, and `MaskOnlyOptions` for mask only):

- `compensation_sign`: the OBS optimum subtracts (sign -1, SparseGPT's `-=`, default here); the released code adds
  (+1). tests/patching/test_model_tailor.py shows -1 lowers and +1 raises the layer error versus mask only.
- `scope` "layer" / "global": the scores are computed once from the uncompensated weights (sensitivity with the
  full diag(U)) and thresholded per tensor / over all tensors; for "global" the Hessians of that first pass come
  from the fine-tuned model, the masks are then fixed and the compensation runs as usual.
- Top-k is exact: k = int(rho * n) entries per unit (the released code thresholds a sorted score, ties aside).
- `normalization` "layer_z" z-scores over the whole unit (block or tensor); z-scores divide by max(std, 1e-12).
- Blocks = module-name prefixes up to the first numeric component (`encoder.layer.3`); `sequential` tailors block
  by block and recomputes the next block's Hessians through the tailored model (released), each forward stopping
  after the block. The released code tailors each block's linears from one pass over the untailored block; so here.
- Multi-task (`combine`): each task is tailored alone on its own calibration; "sum" adds the patches, "overlap_average"
  divides each entry by the number of patches that cover it, "joint" merges the fine-tuned weights with RegMean
  (W = (sum_t W_t H_t)(sum_t H_t)^-1, the minimiser of sum_t ||(W_t - W) X_t||^2) and compensates it once with
  H = sum_t H_t on the union of the task masks (Hessians one-pass per task, i.e. not sequential).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch
from torch import nn

from tailorkit.core.config import check, check_int_at_least
from tailorkit.core.progress import track
from tailorkit.patching.hessian import (
    HessianAccumulator,
    get_matrix,
    inverse_cholesky,
    module_weight,
    reconstruction_error,
    run_calibration,
    set_matrix,
    token_mask,
)
from tailorkit.patching.methods.base import MethodInfo, PatchContext, PatchError, register

if TYPE_CHECKING:
    from tailorkit.patching.config import PatchConfig

__all__ = [
    "MaskOnlyOptions",
    "ModelTailorOptions",
    "block_groups",
    "importance_scores",
    "model_tailor",
    "obs_block_sweep",
    "regmean_merge",
    "tailor_matrix",
    "tailor_options",
    "topk_mask",
]

Sensitivity = Literal["weight", "delta"]
Normalization = Literal["row_block_z", "layer_z", "none"]
Scope = Literal["block", "layer", "global"]
Combine = Literal["sum", "overlap_average", "joint"]


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class MaskOnlyOptions:
    """The options of `mask_only`: Model Tailor's patch selection without the compensation step.

    Attributes:
        alpha: Weight of salience |W_ft - W_pre| in the fused score; 1 - alpha goes to sensitivity (0.8 in
            main_model_tailor.py's sparsegpt.py, 0.5 in the llava/ copy).
        sensitivity: "weight" = W^2 / U_jj^2 (released code, SparseGPT's zeroing cost) or "delta" =
            (W - W_pre)^2 / U_jj^2 (the OBS cost of reverting to W_pre).
        normalization: "row_block_z" (z-score per row inside each block of columns, released), "layer_z" (one
            z-score over the block or tensor) or "none".
        scope: Where the top-rho threshold is taken: "block" (per block_size columns, released), "layer" (per
            tensor) or "global" (one threshold over every tailored tensor).
        block_size: Columns per lazy-update block (128 released).
        percdamp: H += percdamp * mean(diag H) * I; escalated x10 with a warning when Cholesky fails.
        sequential: Feed tailored blocks' outputs to the next block when accumulating Hessians (released), else all
            Hessians come from the fine-tuned model.
        cache_block_inputs: With sequential, when the blocks are entries of one nn.ModuleList, cache each block's
            inputs and run block by block (as the released code) instead of a forward from the input per block;
            same result, O(L) instead of O(L^2) block forwards.
        combine: Several fine-tunes: "sum" of patches, "overlap_average" (entries in k patches are averaged over
            k), or "joint" (one compensation with H = sum_t H_t on the union of the masks).
    """

    alpha: float = 0.8
    sensitivity: Sensitivity = "weight"
    normalization: Normalization = "row_block_z"
    scope: Scope = "block"
    block_size: int = 128
    percdamp: float = 0.01
    sequential: bool = True
    cache_block_inputs: bool = True
    combine: Combine = "sum"

    def __post_init__(self) -> None:
        check(
            _number(self.alpha) and 0.0 <= self.alpha <= 1.0, f"alpha: expected a number in [0, 1], got {self.alpha!r}"
        )
        check(
            self.sensitivity in ("weight", "delta"),
            f"sensitivity: expected 'weight' or 'delta', got {self.sensitivity!r}",
        )
        check(
            self.normalization in ("row_block_z", "layer_z", "none"),
            f"normalization: expected 'row_block_z', 'layer_z' or 'none', got {self.normalization!r}",
        )
        check(
            self.scope in ("block", "layer", "global"),
            f"scope: expected 'block', 'layer' or 'global', got {self.scope!r}",
        )
        check_int_at_least("block_size", self.block_size, 1)
        check(_number(self.percdamp) and self.percdamp >= 0, f"percdamp: expected a number >= 0, got {self.percdamp!r}")
        for name in ("sequential", "cache_block_inputs"):
            check(isinstance(getattr(self, name), bool), f"{name}: expected true or false, got {getattr(self, name)!r}")
        check(
            self.combine in ("sum", "overlap_average", "joint"),
            f"combine: expected 'sum', 'overlap_average' or 'joint', got {self.combine!r}",
        )


@dataclass(frozen=True)
class ModelTailorOptions(MaskOnlyOptions):
    """The options of `model_tailor`: those of `MaskOnlyOptions` (see there) and the compensation's.

    Attributes:
        compensate: Apply the OBS compensation to the patch ("patch decorator"); False = mask only.
        compensation_sign: -1 = OBS optimum (default), +1 = as in the released code.
    """

    compensate: bool = True
    compensation_sign: int = -1

    def __post_init__(self) -> None:
        super().__post_init__()
        check(isinstance(self.compensate, bool), f"compensate: expected true or false, got {self.compensate!r}")
        check(
            self.compensation_sign in (-1, 1) and not isinstance(self.compensation_sign, bool),
            f"compensation_sign: expected -1 (OBS) or 1 (released code), got {self.compensation_sign!r}",
        )


def tailor_options(config: PatchConfig) -> ModelTailorOptions:
    """The Model Tailor settings of a `model_tailor` or `mask_only` config (mask only: compensate=False)."""
    options = config.options
    if type(options) is ModelTailorOptions:
        return options
    if type(options) is MaskOnlyOptions:
        values = {f.name: getattr(options, f.name) for f in dataclasses.fields(options)}
        return ModelTailorOptions(**values, compensate=False)
    raise TypeError(f"method {config.method!r} has {type(options).__name__}, not Model Tailor's options")


def topk_mask(scores: torch.Tensor, density: float) -> torch.Tensor:
    """Bool mask of the int(density * n) largest entries of `scores` (same shape)."""
    n = scores.numel()
    k = int(density * n)
    mask = torch.zeros(n, dtype=torch.bool, device=scores.device)
    if k >= n:
        mask[:] = True
    elif k > 0:
        mask[torch.topk(scores.reshape(-1), k, sorted=False).indices] = True
    return mask.reshape(scores.shape)


def _z(x: torch.Tensor, normalization: str, block_size: int) -> torch.Tensor:
    if normalization == "none":
        return x
    if normalization == "layer_z":
        std = x.std(correction=1 if x.numel() > 1 else 0).clamp_min(1e-12)
        return (x - x.mean()) / std
    out = torch.empty_like(x)  # row_block_z: per row, inside each block of columns
    for j in range(0, x.shape[1], block_size):
        chunk = x[:, j : j + block_size]
        corr = 1 if chunk.shape[1] > 1 else 0
        out[:, j : j + block_size] = (chunk - chunk.mean(1, keepdim=True)) / chunk.std(
            1, keepdim=True, correction=corr
        ).clamp_min(1e-12)
    return out


def importance_scores(
    w: torch.Tensor, w_pre: torch.Tensor, salience: torch.Tensor, u_diag: torch.Tensor, options: MaskOnlyOptions
) -> torch.Tensor:
    """alpha z(salience) + (1 - alpha) z(sensitivity) for an (out, cols) slice; u_diag (cols,) = diag of U."""
    base = w if options.sensitivity == "weight" else w - w_pre
    sensitivity = base.pow(2) / u_diag.pow(2).unsqueeze(0)
    score = torch.zeros_like(w)
    if options.alpha > 0:
        score = score + options.alpha * _z(salience, options.normalization, options.block_size)
    if options.alpha < 1:
        score = score + (1 - options.alpha) * _z(sensitivity, options.normalization, options.block_size)
    return score


def tailor_matrix(
    w_ft: torch.Tensor,
    w_pre: torch.Tensor,
    h: torch.Tensor,
    config: PatchConfig,
    *,
    mask: torch.Tensor | None = None,
    name: str = "",
    u: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """Model Tailor on one (out, in) weight.

    Args:
        w_ft: Fine-tuned weight (the reconstruction target).
        w_pre: Pretrained weight (the value outside the patch).
        h: Hessian mean x x^T of the layer inputs.
        config: A model_tailor or mask_only config: density and the options alpha, sensitivity, normalization,
            scope ("block" selects inside the sweep, anything else needs `mask`), block_size, percdamp, compensate,
            compensation_sign.
        mask: A fixed patch mask (True = patch) instead of selecting one.
        u: `inverse_cholesky(h, percdamp)` when the caller has it already (layers sharing a Hessian).

    Returns:
        (W_hat, mask, errors) with errors {"mask_only", "compensated", "pretrained"} = ||(W_ft - .) X||^2 / n.

    Shapes:
        w_ft, w_pre: (out, in); h: (in, in).
    """
    return _tailor_matrix(w_ft, w_pre, h, config.density, tailor_options(config), mask=mask, name=name, u=u)


def _tailor_matrix(
    w_ft: torch.Tensor,
    w_pre: torch.Tensor,
    h: torch.Tensor,
    density: float,
    options: ModelTailorOptions,
    *,
    mask: torch.Tensor | None = None,
    name: str = "",
    u: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """`tailor_matrix` with the density and the options given apart."""
    rows, cols = w_ft.shape
    if h.shape != (cols, cols):
        raise PatchError(f"{name}: Hessian {tuple(h.shape)} does not fit a weight with {cols} input columns")
    dtype = torch.float32 if w_ft.dtype != torch.float64 else torch.float64
    w = w_ft.to(dtype).clone()
    wp = w_pre.to(dtype)
    salience = (w_ft.to(dtype) - wp).abs()
    u = (inverse_cholesky(h, options.percdamp, name=name) if u is None else u).to(dtype)
    u_diag = torch.diagonal(u)
    if mask is None and options.scope != "block":
        mask = topk_mask(importance_scores(w, wp, salience, u_diag, options), density)
    chosen = torch.zeros(rows, cols, dtype=torch.bool, device=w.device)
    sign = float(options.compensation_sign)
    bs = options.block_size
    for i1 in range(0, cols, bs):
        i2 = min(i1 + bs, cols)
        w1 = w[:, i1:i2].clone()
        wp1 = wp[:, i1:i2]
        if mask is not None:
            m1 = mask[:, i1:i2].to(w.device)
        else:
            m1 = topk_mask(importance_scores(w1, wp1, salience[:, i1:i2], u_diag[i1:i2], options), density)
        chosen[:, i1:i2] = m1
        if not options.compensate:
            w[:, i1:i2] = torch.where(m1, w1, wp1)
            continue
        u1 = u[i1:i2, i1:i2]
        w[:, i1:i2], err1 = obs_block_sweep(w1, wp1, m1, u1, sign)
        if i2 < cols:
            w[:, i2:].addmm_(err1, u[i1:i2, i2:], alpha=sign)
    w_hat = w.to(w_ft.dtype)
    target = w_ft.to(torch.float64)
    errors = {
        "mask_only": reconstruction_error(target - torch.where(chosen, target, w_pre.to(torch.float64)), h),
        "compensated": reconstruction_error(target - w_hat.to(torch.float64), h),
        "pretrained": reconstruction_error(target - w_pre.to(torch.float64), h),
    }
    return w_hat, chosen, errors


def obs_block_sweep(
    w1: torch.Tensor, wp1: torch.Tensor, m1: torch.Tensor, u1: torch.Tensor, sign: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """SparseGPT's left-to-right OBS column loop over one block, for a fixed patch mask.

    Column i's entries outside the patch revert to W_pre with err_i = (w_i - wp_i) / U_ii (0 inside the patch), and
    the columns to its right move by sign * err_i U_i,i+1:. Written for speed on the CPU: the block is transposed so
    that every column is a contiguous row, the per-column scale r_i / U_ii (r = 1 outside the patch) is computed
    once, every view is made before the loop, and the final where(patch, W, W_pre) is taken once for the block
    (a column is never read again after its own step), so each column costs three in-place kernels. Same arithmetic
    as the released code's loop (tests/patching/test_model_tailor.py compares it with a plain transcription).

    Returns:
        (new block, Err) with Err the (rows, b) errors that the columns right of the block are updated with.

    Shapes:
        w1, wp1, m1: (rows, b); u1: (b, b) upper triangular.
    """
    b = w1.shape[1]
    w1t = w1.t().contiguous()
    wp1t = wp1.t().contiguous()
    scale = (~m1).t().to(w1.dtype) / torch.diagonal(u1).unsqueeze(1)
    err1t = torch.empty_like(w1t)
    cols, pres, errs, scales = w1t.unbind(0), wp1t.unbind(0), err1t.unbind(0), scale.unbind(0)
    tails = [w1t[i + 1 :] for i in range(b - 1)]
    urows = [u1[i, i + 1 :] for i in range(b - 1)]
    for i in range(b):
        err = torch.sub(cols[i], pres[i], out=errs[i])
        err.mul_(scales[i])
        if i + 1 < b:
            tails[i].addr_(urows[i], err, alpha=sign)
    new = torch.where(m1, w1t.t(), wp1)
    return new, err1t.t()


def block_groups(names: list[str]) -> dict[str, list[str]]:
    """Group module names by their prefix up to the first numeric component ("encoder.layer.3"), in order."""
    groups: dict[str, list[str]] = {}
    for name in names:
        parts = name.split(".")
        cut = next((i for i, p in enumerate(parts) if p.isdigit()), None)
        key = ".".join(parts[: cut + 1]) if cut is not None and cut + 1 < len(parts) else name
        groups.setdefault(key, []).append(name)
    return groups


def _submodule(model: nn.Module, name: str) -> nn.Module | None:
    try:
        return model.get_submodule(name)
    except AttributeError:
        return None


def _hessians(
    model: nn.Module, modules: dict[str, nn.Module], batches: list, stop_after: nn.Module | None
) -> HessianAccumulator:
    if not batches:
        raise PatchError("Model Tailor needs calibration data (new-task inputs); got an empty calibration set")
    with HessianAccumulator(modules) as acc:
        run_calibration(model, batches, stop_after=stop_after)
    return acc


def _tailor_one(
    model: nn.Module,
    base: Mapping[str, torch.Tensor],
    targets: dict[str, nn.Module],
    batches: list,
    density: float,
    options: ModelTailorOptions,
    progress: bool,
    info: MethodInfo,
    keep_hessians: dict[str, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """Tailor `model` in place; return the patch masks. Fills info.layer_errors / timings."""
    names = list(targets)
    fixed: dict[str, torch.Tensor] = {}
    if options.scope == "global":
        t0 = time.perf_counter()
        acc = _hessians(model, targets, batches, None)
        scores = {}
        for name, mod in targets.items():
            w = get_matrix(mod).float()
            wp = get_matrix(mod, base[f"{name}.weight"]).float()
            u_diag = torch.diagonal(inverse_cholesky(acc.hessian(name), options.percdamp, name=name)).float()
            scores[name] = importance_scores(w, wp, (w - wp).abs(), u_diag, options)
        flat = torch.cat([s.reshape(-1) for s in scores.values()])
        allm = topk_mask(flat, density)
        offset = 0
        for name, s in scores.items():
            fixed[name] = allm[offset : offset + s.numel()].reshape(s.shape)
            offset += s.numel()
        info.timings["global_scores"] = info.timings.get("global_scores", 0.0) + time.perf_counter() - t0
    masks: dict[str, torch.Tensor] = {}
    pending: dict[str, torch.Tensor] = {}
    groups = block_groups(names) if options.sequential else {"": names}
    plan = _BlockCache.plan(model, list(groups)) if options.sequential and options.cache_block_inputs else None
    cache = _BlockCache(model, plan[0], plan[1][0], batches) if plan is not None else None
    order = [f"{plan[2]}.{i}" for i in range(plan[1][0], plan[1][-1] + 1)] if plan is not None else list(groups)
    hess_s = sweep_s = 0.0
    for key in track(order, "model tailor: blocks", enabled=None if progress else False):
        t0 = time.perf_counter()
        if key not in groups:  # an untouched block between tailored ones: only propagate its outputs
            assert cache is not None
            cache.advance(model.get_submodule(key))
            hess_s += time.perf_counter() - t0
            continue
        members = {n: targets[n] for n in groups[key]}
        if cache is not None:
            with HessianAccumulator(members) as acc:
                cache.run(model.get_submodule(key))
        else:
            stop = _submodule(model, key) if key else None
            acc = _hessians(model, members, batches, stop)
        hess_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        factors: dict[int, torch.Tensor] = {}  # inverse Cholesky factor per Hessian object (q, k, v share one)
        for name, mod in members.items():
            h = acc.hessian(name)
            if id(h) not in factors:
                factors[id(h)] = inverse_cholesky(h, options.percdamp, name=name)
            if keep_hessians is not None:
                keep_hessians[name] = h
            w_ft = get_matrix(mod).clone()
            w_pre = get_matrix(mod, base[f"{name}.weight"]).to(w_ft.device)
            w_hat, mask, errors = _tailor_matrix(
                w_ft, w_pre, h, density, options, mask=fixed.get(name), name=name, u=factors[id(h)]
            )
            masks[name] = mask
            info.layer_errors[f"{name}.weight"] = errors
            if options.sequential:
                set_matrix(mod, w_hat)
            else:
                pending[name] = w_hat
        sweep_s += time.perf_counter() - t0
        if cache is not None and key != order[-1]:
            t0 = time.perf_counter()
            cache.advance(model.get_submodule(key))  # the tailored block's outputs feed the next block
            hess_s += time.perf_counter() - t0
    for name, w_hat in pending.items():
        set_matrix(targets[name], w_hat)
    info.timings["hessians"] = info.timings.get("hessians", 0.0) + hess_s
    info.timings["sweep"] = info.timings.get("sweep", 0.0) + sweep_s
    return masks


class _StopForward(Exception):
    pass


class _BlockCache:
    """The inputs of consecutive blocks of one nn.ModuleList, propagated block by block (the released code's
    `Catcher` + `layer(inps[j])` loop): each block runs once to accumulate its Hessians and once, tailored, to
    produce the next block's inputs, instead of a full forward from the embeddings per block. Keyword arguments
    that are caches (past key values) are dropped so repeated calls cannot grow them.
    """

    def __init__(self, model: nn.Module, layers: nn.ModuleList, first: int, batches: list) -> None:
        if not batches:
            raise PatchError("Model Tailor needs calibration data (new-task inputs); got an empty calibration set")
        self.items: list[tuple[list, dict, torch.Tensor | None]] = []
        captured: dict = {}

        def grab(_m: nn.Module, args: tuple, kwargs: dict) -> None:
            captured["args"], captured["kwargs"] = list(args), dict(kwargs)
            raise _StopForward

        handle = layers[first].register_forward_pre_hook(grab, with_kwargs=True)
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                for batch in batches:
                    captured.clear()
                    try:
                        if isinstance(batch, Mapping):
                            model(**batch)
                        elif isinstance(batch, tuple | list):
                            model(*batch)
                        else:
                            model(batch)
                    except _StopForward:
                        pass
                    if not captured:
                        raise PatchError(f"calibration never reached block {first} of the model")
                    args = [None if "Cache" in type(v).__name__ else v for v in captured["args"]]
                    kwargs = {k: (None if "Cache" in type(v).__name__ else v) for k, v in captured["kwargs"].items()}
                    mask = batch.get("attention_mask") if isinstance(batch, Mapping) else None
                    self.items.append((args, kwargs, mask))
        finally:
            handle.remove()
            model.train(was_training)

    @staticmethod
    def plan(model: nn.Module, keys: list[str]) -> tuple[nn.ModuleList, list[int], str] | None:
        """(module list, block indices, its name) when every key is `<list>.<index>` of one ModuleList, else None."""
        if not keys or any("." not in k for k in keys):
            return None
        parents = {k.rsplit(".", 1)[0] for k in keys}
        if len(parents) != 1:
            return None
        parent = parents.pop()
        layers = _submodule(model, parent)
        tails = [k.rsplit(".", 1)[1] for k in keys]
        if not isinstance(layers, nn.ModuleList) or not all(t.isdigit() for t in tails):
            return None
        idx = [int(t) for t in tails]
        return (layers, idx, parent) if idx == sorted(idx) else None

    def _call(self, block: nn.Module, args: list, kwargs: dict, mask: torch.Tensor | None) -> object:
        with torch.no_grad(), token_mask(mask):
            return block(*args, **kwargs)

    def run(self, block: nn.Module) -> None:
        was_training = block.training
        block.eval()
        try:
            for args, kwargs, mask in self.items:
                self._call(block, args, kwargs, mask)
        finally:
            block.train(was_training)

    def advance(self, block: nn.Module) -> None:
        was_training = block.training
        block.eval()
        try:
            for args, kwargs, mask in self.items:
                out = self._call(block, args, kwargs, mask)
                hidden = out[0] if isinstance(out, tuple | list) else out
                if args:
                    args[0] = hidden
                else:
                    kwargs["hidden_states"] = hidden
        finally:
            block.train(was_training)


def _weight_mask(mod: nn.Module, mask: torch.Tensor) -> torch.Tensor:
    """An (out, in) mask in the layout of the module's weight."""
    if type(mod).__name__ == "Conv1D":
        return mask.t().contiguous()
    return mask.reshape(module_weight(mod).shape)


@register("model_tailor", ModelTailorOptions, calibrated=True)
def model_tailor(ctx: PatchContext, config: PatchConfig) -> MethodInfo:
    """Model Tailor (compensation per `compensate`); several fine-tunes are combined per the option `combine`."""
    return _model_tailor(ctx, config.density, tailor_options(config))


@register("mask_only", MaskOnlyOptions, calibrated=True)
def mask_only(ctx: PatchContext, config: PatchConfig) -> MethodInfo:
    """Model Tailor without the compensation step (the paper's "mask only" ablation)."""
    return _model_tailor(ctx, config.density, tailor_options(config))


def _model_tailor(ctx: PatchContext, density: float, options: ModelTailorOptions) -> MethodInfo:
    info = MethodInfo()
    if not ctx.targets:
        return info
    if len(ctx.models) == 1:
        masks = _tailor_one(ctx.model, ctx.base, ctx.targets, ctx.calibration[0], density, options, ctx.progress, info)
        info.masks = {f"{n}.weight": _weight_mask(ctx.targets[n], m) for n, m in masks.items()}
        return info
    return _multi_task(ctx, density, options, info)


def regmean_merge(
    weights: list[torch.Tensor], hessians: list[torch.Tensor], percdamp: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """RegMean: W = (sum_t W_t H_t)(sum_t H_t + damp I)^-1, the minimiser of sum_t ||(W_t - W) X_t||^2.

    Computed in float64 on the Hessians' device (the weights are moved there); damp = percdamp * mean(diag sum H).
    Returns (W, sum_t H_t). Shapes: weights (out, in) each, hessians (in, in) each.
    """
    h_sum = torch.stack([h.to(torch.float64) for h in hessians]).sum(0)
    damp = percdamp * torch.diagonal(h_sum).mean() + 1e-12  # a tensor on the Hessians' device, no sync
    eye = torch.eye(h_sum.shape[0], dtype=h_sum.dtype, device=h_sum.device)
    rhs = torch.stack(
        [
            w.to(dtype=torch.float64, device=h_sum.device) @ h.to(torch.float64)
            for w, h in zip(weights, hessians, strict=True)
        ]
    ).sum(0)
    return torch.linalg.solve(h_sum + damp * eye, rhs.t()).t(), h_sum


def _multi_task(ctx: PatchContext, density: float, options: ModelTailorOptions, info: MethodInfo) -> MethodInfo:
    import copy

    names = list(ctx.targets)
    task_options = dataclasses.replace(options, sequential=False) if options.combine == "joint" else options
    tailored: list[dict[str, torch.Tensor]] = []
    task_masks: list[dict[str, torch.Tensor]] = []
    hessians: list[dict[str, torch.Tensor]] = []
    for t, model in enumerate(ctx.models):
        work = copy.deepcopy(model)
        mods = {n: work.get_submodule(n) for n in names}
        keep: dict[str, torch.Tensor] = {}
        masks = _tailor_one(work, ctx.base, mods, ctx.calibration[t], density, task_options, ctx.progress, info, keep)
        tailored.append({n: get_matrix(mods[n]).clone() for n in names})
        task_masks.append(masks)
        hessians.append(keep)
        del work
    info.task_masks = [{f"{n}.weight": m[n] for n in names} for m in task_masks]
    for name in names:
        mod = ctx.targets[name]
        w_pre = get_matrix(mod, ctx.base[f"{name}.weight"]).to(dtype=torch.float32, device=module_weight(mod).device)
        union = torch.stack([m[name] for m in task_masks]).any(0)
        if options.combine in ("sum", "overlap_average"):
            delta = sum((tw[name].float() - w_pre) for tw in tailored)
            assert isinstance(delta, torch.Tensor)
            if options.combine == "overlap_average":
                count = torch.stack([m[name] for m in task_masks]).sum(0).clamp_min(1)
                delta = delta / count
            set_matrix(mod, w_pre + delta)
        else:  # joint: RegMean merge of the fine-tuned weights, one compensation with H = sum_t H_t on the union
            hs_t = [hs[name] for hs in hessians]
            ws = [get_matrix(mod, s[f"{name}.weight"]) for s in ctx.finetuned]
            merged, h_sum = regmean_merge(ws, hs_t, options.percdamp)
            w_hat, _, errors = _tailor_matrix(
                merged.float(), w_pre.to(merged.device), h_sum, density, options, mask=union, name=name
            )
            info.layer_errors[f"{name}.weight"] = errors
            set_matrix(mod, w_hat)
        info.masks[f"{name}.weight"] = _weight_mask(mod, union)
    return info
