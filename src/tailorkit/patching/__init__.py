"""`tailorkit.patching`: Model Tailor (arXiv 2402.12048) and its baselines, for in-memory models and checkpoints.

Main verbs:

- `tailor(base, finetuned, calibration, config) -> PatchResult`: patch a fine-tuned model (or several) so that
  every eligible weight outside a sparse patch returns to its pretrained value.
- `tailor_checkpoint(base_dir, finetuned_dir, calibration_jsonl, out_dir, config)`: the same for Hugging Face
  model folders (safetensors, sharded or not, or a PEFT LoRA adapter as the fine-tune); what `tailorkit patch` runs.
- `save_patch` / `load_patch` / `apply_patch`: the sparse patch alone (safetensors + JSON manifest).

`PatchConfig(method=..., density=..., options=...)`: what every method shares, plus the method's own options
dataclass (`ModelTailorOptions`, `MaskOnlyOptions`, `MagnitudeOptions`, `RandomOptions`, `DareOptions`,
`TiesOptions`, `TaskArithmeticOptions`) or a mapping of its option names to values.
"""

from __future__ import annotations

from tailorkit.patching.checkpoints import load_patch, save_patch, tailor_checkpoint
from tailorkit.patching.config import (
    DareOptions,
    MagnitudeOptions,
    MaskOnlyOptions,
    ModelTailorOptions,
    PatchConfig,
    RandomOptions,
    TaskArithmeticOptions,
    TiesOptions,
)
from tailorkit.patching.engine import (
    METHODS,
    PatchError,
    PatchResult,
    SparsePatch,
    apply_patch,
    eligible_modules,
    jaccard,
    tailor,
)
from tailorkit.patching.methods.model_tailor import tailor_matrix

__all__ = [
    "METHODS",
    "DareOptions",
    "MagnitudeOptions",
    "MaskOnlyOptions",
    "ModelTailorOptions",
    "PatchConfig",
    "PatchError",
    "PatchResult",
    "RandomOptions",
    "SparsePatch",
    "TaskArithmeticOptions",
    "TiesOptions",
    "apply_patch",
    "eligible_modules",
    "jaccard",
    "load_patch",
    "save_patch",
    "tailor",
    "tailor_checkpoint",
    "tailor_matrix",
]
