"""Layer statistics for Model Tailor: eligible layers as (out, in) matrices, Hessians H = X X^T / n from
calibration inputs, and the damped inverse Cholesky factor the OBS sweep uses.

Eligible layers are nn.Linear (weight (out, in)), transformers' Conv1D (GPT-2; weight stored (in, out), so the
matrix is its transpose) and nn.Conv2d (weight (out, in, kh, kw) flattened to (out, in*kh*kw); inputs unfolded
with the layer's kernel, stride, padding and dilation, groups = 1 only).

H accumulates over real tokens only: when a calibration batch carries an attention mask, padded positions are
dropped before x x^T (`token_mask` below). Each batch's product is taken in the input's precision (float32 for
float32 models, as SparseGPT) and summed in float64. The released code averages 2 x x^T over samples; here H is
the mean of x x^T over tokens. The factor and the averaging unit do not change the OBS solution, and the damping is
relative to mean(diag H), so it is scale-free too.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "HessianAccumulator",
    "eligible_kind",
    "get_matrix",
    "inverse_cholesky",
    "module_weight",
    "reconstruction_error",
    "run_calibration",
    "set_matrix",
    "token_mask",
]

_TOKEN_MASK: list[torch.Tensor | None] = [None]


@contextlib.contextmanager
def token_mask(mask: torch.Tensor | None) -> Iterator[None]:
    """While active, Hessian hooks keep only the positions where `mask` (B, T) is nonzero (padding masked out)."""
    _TOKEN_MASK.append(mask)
    try:
        yield
    finally:
        _TOKEN_MASK.pop()


def eligible_kind(module: nn.Module) -> str | None:
    """ "linear", "conv1d" (HF), "conv2d" for tailorable modules; None otherwise (grouped convs are not)."""
    if isinstance(module, nn.Linear):
        return "linear"
    if (
        type(module).__name__ == "Conv1D"
        and hasattr(module, "nf")
        and isinstance(getattr(module, "weight", None), torch.Tensor)
    ):
        return "conv1d"
    if isinstance(module, nn.Conv2d) and module.groups == 1:
        return "conv2d"
    return None


def module_weight(module: nn.Module) -> torch.Tensor:
    """The module's `.weight` parameter (typed)."""
    weight = module.weight
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"{type(module).__name__} has no weight tensor")
    return weight


def get_matrix(module: nn.Module, weight: torch.Tensor | None = None) -> torch.Tensor:
    """The layer's weight (or `weight`, a tensor shaped like it) as an (out, in) matrix (a copy for Conv1D)."""
    w = module_weight(module) if weight is None else weight
    kind = eligible_kind(module)
    if kind == "conv1d":
        return w.detach().t()
    if kind == "conv2d":
        return w.detach().reshape(w.shape[0], -1)
    return w.detach()


def set_matrix(module: nn.Module, matrix: torch.Tensor) -> None:
    """Write an (out, in) matrix back into the module's weight, in the weight's dtype and layout."""
    w = module_weight(module)
    kind = eligible_kind(module)
    value = matrix.t() if kind == "conv1d" else matrix.reshape(w.shape)
    with torch.no_grad():
        w.copy_(value.to(w.dtype))


def _layer_inputs(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Rows of layer inputs (N, in) as the (out, in) matrix sees them, padding removed."""
    kind = eligible_kind(module)
    if kind == "conv2d":
        assert isinstance(module, nn.Conv2d)
        if isinstance(module.padding, str):
            raise ValueError(f"Conv2d with padding={module.padding!r} is not supported; use integer padding")
        cols = F.unfold(x, module.kernel_size, module.dilation, module.padding, module.stride)  # (B, in*k*k, L)
        return cols.transpose(1, 2).reshape(-1, cols.shape[1])
    mask = _TOKEN_MASK[-1]
    if mask is not None and x.ndim == 3 and tuple(mask.shape) == tuple(x.shape[:2]):
        return x[mask.to(torch.bool)]
    return x.reshape(-1, x.shape[-1])


class HessianAccumulator:
    """Forward pre-hooks that accumulate H = mean over tokens of x x^T for a set of modules.

    Use as a context manager; `hessian(name)` (in, in, float64) is ready once calibration has run. Each batch's
    X^T X is one matrix product in the input's precision (float32 for float32 models, as SparseGPT accumulates),
    added into a float64 sum. Linear / Conv1D modules that receive the very same input tensor one after the other
    (the query, key and value projections of an attention block) reuse one product, and modules whose sums came
    from the same products get the same Hessian object from `hessian`, so callers may cache work per Hessian.
    """

    def __init__(self, modules: dict[str, nn.Module]) -> None:
        self.modules = modules
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}
        self._events: dict[str, list[int]] = {}
        self._last: tuple[torch.Tensor, torch.Tensor, int] | None = None
        self._event = 0
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._cache: dict[tuple[int, ...], torch.Tensor] = {}

    def __enter__(self) -> HessianAccumulator:
        for name, module in self.modules.items():
            self._handles.append(module.register_forward_pre_hook(self._hook(name)))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._last = None

    def _hook(self, name: str) -> Callable[[nn.Module, tuple[torch.Tensor, ...]], None]:
        def hook(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            x = args[0]
            last = self._last
            if last is not None and last[0] is x and eligible_kind(module) != "conv2d":
                _, gram, n = last  # the same input as the module hooked just before: the same product
            else:
                rows = _layer_inputs(module, x.detach())
                if rows.dtype not in (torch.float32, torch.float64):
                    rows = rows.float()
                gram, n = (rows.t() @ rows).to(torch.float64), rows.shape[0]
                self._event += 1
                self._last = (x, gram, n)
            if n == 0:
                return
            if name in self.sums:
                self.sums[name] += gram
            else:
                self.sums[name] = gram.clone()
            self.counts[name] = self.counts.get(name, 0) + n
            self._events.setdefault(name, []).append(self._event)

        return hook

    def hessian(self, name: str) -> torch.Tensor:
        """H = mean x x^T (float64); ValueError if the module saw no calibration tokens."""
        if self.counts.get(name, 0) == 0:
            raise ValueError(f"layer {name!r} received no calibration tokens; is the calibration empty?")
        key = tuple(self._events[name])
        if key not in self._cache:
            self._cache[key] = self.sums[name] / self.counts[name]
        return self._cache[key]


def inverse_cholesky(h: torch.Tensor, percdamp: float, *, name: str = "", max_tries: int = 8) -> torch.Tensor:
    """Upper U with U^T U = (H + damp I)^-1, damp = percdamp * mean(diag H); dead inputs get H_jj = 1.

    When Cholesky fails, the damping is multiplied by 10 (a warning names the layer) up to `max_tries` times.
    Returns float64.
    """
    h = h.to(torch.float64).clone()
    diag = torch.diagonal(h)
    dead = diag == 0
    h[dead, dead] = 1.0  # as SparseGPT / the released code: unused inputs do not make H singular
    mean_diag = float(torch.diagonal(h).mean())
    damp = percdamp if percdamp > 0 else 1e-8
    eye = torch.eye(h.shape[0], dtype=h.dtype, device=h.device)
    for attempt in range(max_tries):
        # U = J L'^-1 J with L' L'^T = J H J (J reverses the order): then U is upper triangular with a positive
        # diagonal and U^T U = H^-1, i.e. the upper Cholesky factor of H^-1 that SparseGPT obtains with
        # cholesky(cholesky_inverse(cholesky(H)), upper=True), here with one factorisation and one triangular solve.
        flipped, info = torch.linalg.cholesky_ex(torch.flip(h + damp * mean_diag * eye, (0, 1)))
        if int(info) == 0:
            inv = torch.linalg.solve_triangular(flipped, eye, upper=False)
            if bool(torch.isfinite(inv).all()):
                return torch.flip(inv, (0, 1))
        if attempt + 1 < max_tries:
            warnings.warn(
                f"Cholesky of the Hessian of {name or 'a layer'} failed at percdamp={damp:g}; "
                f"retrying with {damp * 10:g}",
                RuntimeWarning,
                stacklevel=2,
            )
        damp *= 10
    raise FloatingPointError(f"Hessian of {name or 'a layer'} is not positive definite even with percdamp={damp:g}")


def reconstruction_error(diff: torch.Tensor, h: torch.Tensor) -> float:
    """||diff X||_F^2 / n_tokens = trace(diff H diff^T) for H = mean x x^T. Shapes: diff (out, in), h (in, in)."""
    d = diff.to(torch.float64)
    return float(((d @ h.to(torch.float64)) * d).sum())


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
