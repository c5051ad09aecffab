"""Settings of `tailorkit.patching`: one frozen dataclass shared by Model Tailor and its baselines.

Every method works on the same eligible tensors (weights of nn.Linear, HF Conv1D and nn.Conv2d modules whose name
matches `layers` and that the fine-tune changed) under the same budget `density`, so rows compare at equal budget.
Options that only one method reads say so. Inferred details of Model Tailor (arXiv 2402.12048) are options here,
with the released code's choice as default unless the OBS derivation says otherwise (`compensation_sign`); see
docs/patching.md and `tailorkit.patching.methods.model_tailor`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

Sensitivity = Literal["weight", "delta"]
Normalization = Literal["row_block_z", "layer_z", "none"]
Scope = Literal["block", "layer", "global"]
NonLinearPolicy = Literal["sparsify", "keep_pretrained", "keep_finetuned", "revert"]
Combine = Literal["sum", "overlap_average", "joint"]
TopkScope = Literal["tensor", "global"]


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class PatchConfig:
    """How to build a sparse patch on top of the pretrained weights.

    Attributes:
        method: Registered method name (`tailorkit.patching.METHODS`): model_tailor, mask_only, magnitude, random,
            dare, ties, wise_ft, task_arithmetic.
        density: rho, the fraction of each eligible tensor (or of all, for global scopes) allowed to differ from
            the pretrained value; in [0, 1]. 0 returns the pretrained values, 1 the fine-tuned ones.
        layers: Regex (re.search) on module names choosing which eligible modules are tailored.
        skip_unchanged: Leave modules whose weight equals the pretrained weight alone (frozen during fine-tuning).
        non_linear_policy: Every parameter that is not a tailored weight (biases, norms, embeddings, excluded
            layers) and that a fine-tune changed: "sparsify" (default: keep its int(density * n) largest task-vector
            entries, as mergekit trims every tensor, so the whole model differs from the pretrained one in at most
            `density` of the tensors the fine-tune changed), "keep_pretrained" (alias "revert") or
            "keep_finetuned" (the released code; the whole-model patch then exceeds `density`).
        alpha: Model Tailor: weight of salience |W_ft - W_pre| in the fused score; 1 - alpha goes to sensitivity
            (0.8 in main_model_tailor.py's sparsegpt.py, 0.5 in the llava/ copy).
        sensitivity: Model Tailor: "weight" = W^2 / U_jj^2 (released code, SparseGPT's zeroing cost) or "delta" =
            (W - W_pre)^2 / U_jj^2 (the OBS cost of reverting to W_pre).
        normalization: Model Tailor: "row_block_z" (z-score per row inside each block of columns, released),
            "layer_z" (one z-score over the block or tensor) or "none".
        scope: Model Tailor: where the top-rho threshold is taken: "block" (per block_size columns, released),
            "layer" (per tensor) or "global" (one threshold over every tailored tensor).
        block_size: Model Tailor: columns per lazy-update block (128 released).
        percdamp: Model Tailor: H += percdamp * mean(diag H) * I; escalated x10 with a warning when Cholesky fails.
        compensate: Model Tailor: apply the OBS compensation to the patch ("patch decorator"); False = mask only.
        compensation_sign: Model Tailor: -1 = OBS optimum (default), +1 = as in the released code.
        nsamples: Calibration samples used (first n); 128 released.
        sequential: Model Tailor: feed tailored blocks' outputs to the next block when accumulating Hessians
            (released), else all Hessians come from the fine-tuned model.
        cache_block_inputs: Model Tailor, sequential: when the blocks are entries of one nn.ModuleList, cache each
            block's inputs and run block by block (as the released code) instead of a forward from the input per
            block; same result, O(L) instead of O(L^2) block forwards.
        max_length: Token limit when calibration is given as text.
        lam: wise_ft / task_arithmetic: theta_pre + lam * sum_t tau_t; ties: scale of the merged delta.
        dare_rescale: dare: multiply kept deltas by 1 / density.
        topk_scope: magnitude, random, dare, ties trimming: "tensor" (per tensor, as mergekit and PEFT) or "global".
        combine: Several fine-tunes with model_tailor: "sum" of patches, "overlap_average" (entries in k patches
            are averaged over k), or "joint" (one compensation with H = sum_t H_t on the union of the masks).
        seed: Randomness of random / dare.
    """

    method: str = "model_tailor"
    density: float = 0.1
    layers: str = ".*"
    skip_unchanged: bool = True
    non_linear_policy: NonLinearPolicy = "sparsify"
    alpha: float = 0.8
    sensitivity: Sensitivity = "weight"
    normalization: Normalization = "row_block_z"
    scope: Scope = "block"
    block_size: int = 128
    percdamp: float = 0.01
    compensate: bool = True
    compensation_sign: int = -1
    nsamples: int = 128
    sequential: bool = True
    cache_block_inputs: bool = True
    max_length: int = 128
    lam: float = 1.0
    dare_rescale: bool = True
    topk_scope: TopkScope = "tensor"
    combine: Combine = "sum"
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.method, str) or not self.method:
            raise ValueError(f"method: expected a registered method name, got {self.method!r}")
        if not _number(self.density) or not 0.0 <= self.density <= 1.0:
            raise ValueError(f"density: expected a number in [0, 1], got {self.density!r}")
        try:
            re.compile(self.layers)
        except re.error as err:
            raise ValueError(f"layers: expected a regular expression, got {self.layers!r} ({err})") from None
        if self.non_linear_policy not in ("sparsify", "keep_pretrained", "keep_finetuned", "revert"):
            raise ValueError(
                "non_linear_policy: expected 'sparsify', 'keep_pretrained' (alias 'revert') or 'keep_finetuned', "
                f"got {self.non_linear_policy!r}"
            )
        if not _number(self.alpha) or not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha: expected a number in [0, 1], got {self.alpha!r}")
        if self.sensitivity not in ("weight", "delta"):
            raise ValueError(f"sensitivity: expected 'weight' or 'delta', got {self.sensitivity!r}")
        if self.normalization not in ("row_block_z", "layer_z", "none"):
            raise ValueError(f"normalization: expected 'row_block_z', 'layer_z' or 'none', got {self.normalization!r}")
        if self.scope not in ("block", "layer", "global"):
            raise ValueError(f"scope: expected 'block', 'layer' or 'global', got {self.scope!r}")
        if isinstance(self.block_size, bool) or not isinstance(self.block_size, int) or self.block_size < 1:
            raise ValueError(f"block_size: expected an int >= 1, got {self.block_size!r}")
        if not _number(self.percdamp) or self.percdamp < 0:
            raise ValueError(f"percdamp: expected a number >= 0, got {self.percdamp!r}")
        if self.compensation_sign not in (-1, 1) or isinstance(self.compensation_sign, bool):
            raise ValueError(
                f"compensation_sign: expected -1 (OBS) or 1 (released code), got {self.compensation_sign!r}"
            )
        if isinstance(self.nsamples, bool) or not isinstance(self.nsamples, int) or self.nsamples < 1:
            raise ValueError(f"nsamples: expected an int >= 1, got {self.nsamples!r}")
        if isinstance(self.max_length, bool) or not isinstance(self.max_length, int) or self.max_length < 2:
            raise ValueError(f"max_length: expected an int >= 2, got {self.max_length!r}")
        if not _number(self.lam):
            raise ValueError(f"lam: expected a finite number, got {self.lam!r}")
        if self.topk_scope not in ("tensor", "global"):
            raise ValueError(f"topk_scope: expected 'tensor' or 'global', got {self.topk_scope!r}")
        if self.combine not in ("sum", "overlap_average", "joint"):
            raise ValueError(f"combine: expected 'sum', 'overlap_average' or 'joint', got {self.combine!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed: expected an int >= 0, got {self.seed!r}")
