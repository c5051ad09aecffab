"""Settings of `tailorkit.patching`: `PatchConfig`, what every method shares, plus the method's own `options`.

Every method works on the same eligible tensors (weights of nn.Linear, HF Conv1D and nn.Conv2d modules whose name
matches `layers` and that the fine-tune changed) under the same budget `density`, so rows compare at equal budget.
What only one method reads is that method's options, a frozen dataclass the method declares when it registers
(`tailorkit.patching.methods.base`), as peft's `LoraConfig` or mergekit's per-method parameters:

- model_tailor: `ModelTailorOptions` (alpha, sensitivity, normalization, scope, block_size, percdamp, sequential,
  cache_block_inputs, combine, compensate, compensation_sign);
- mask_only: `MaskOnlyOptions` (the same without compensate and compensation_sign);
- magnitude, random: `MagnitudeOptions`, `RandomOptions` (topk_scope);
- dare: `DareOptions` (rescale);
- ties: `TiesOptions` (lam, topk_scope);
- wise_ft, task_arithmetic: `TaskArithmeticOptions` (lam).

An option the method does not have is an error naming the option, the method and its options. Config files and
`key=value` overrides may set options nested (`options.alpha=0.5`, `options: {alpha: 0.5}`) or, as before options
were per method, flat beside `method` (`alpha=0.5`): `PatchConfig.upgrade_config` moves flat ones into `options`.
Inferred details of Model Tailor (arXiv 2402.12048) are options, with the released code's choice as default unless
the OBS derivation says otherwise (`compensation_sign`); see docs/patching.md and
`tailorkit.patching.methods.model_tailor`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal, TypeVar

from tailorkit.core.config import ConfigError, lift_options, method_options, options_as
from tailorkit.core.registry import RegistryError
from tailorkit.patching.methods import METHODS
from tailorkit.patching.methods._common import TopkScope
from tailorkit.patching.methods.dare import DareOptions
from tailorkit.patching.methods.magnitude import MagnitudeOptions, RandomOptions
from tailorkit.patching.methods.model_tailor import (
    Combine,
    MaskOnlyOptions,
    ModelTailorOptions,
    Normalization,
    Scope,
    Sensitivity,
)
from tailorkit.patching.methods.ties import TiesOptions
from tailorkit.patching.methods.wise_ft import TaskArithmeticOptions

__all__ = [
    "OPTION_ALIASES",
    "Combine",
    "DareOptions",
    "MagnitudeOptions",
    "MaskOnlyOptions",
    "ModelTailorOptions",
    "NonLinearPolicy",
    "Normalization",
    "PatchConfig",
    "RandomOptions",
    "Scope",
    "Sensitivity",
    "TaskArithmeticOptions",
    "TiesOptions",
    "TopkScope",
]

NonLinearPolicy = Literal["sparsify", "keep_pretrained", "keep_finetuned", "revert"]
OptionsT = TypeVar("OptionsT")

# Earlier flat names of options that are named differently inside their method's options.
OPTION_ALIASES = {"dare_rescale": "rescale"}


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _int_at_least(name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name}: expected an int >= {low}, got {value!r}")


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
            "keep_finetuned" (the released code; the whole-model patch exceeds `density`).
        nsamples: Calibration samples used (first n); 128 released. Read by the methods that take calibration data
            (model_tailor, mask_only).
        max_length: Token limit when calibration is given as text (same methods).
        seed: Randomness of random / dare.
        options: The method's own options: its dataclass (`ModelTailorOptions` ...), a mapping of option names to
            values, or None for the method's defaults. Always the method's dataclass once built.
    """

    method: str = "model_tailor"
    density: float = 0.1
    layers: str = ".*"
    skip_unchanged: bool = True
    non_linear_policy: NonLinearPolicy = "sparsify"
    nsamples: int = 128
    max_length: int = 128
    seed: int = 0
    options: Any = None

    def __post_init__(self) -> None:
        if not isinstance(self.method, str) or not self.method:
            raise ValueError(f"method: expected a registered method name, got {self.method!r}")
        try:
            spec = METHODS.get(self.method)
        except RegistryError as err:
            raise ValueError(f"method: {err}") from None
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
        _int_at_least("nsamples", self.nsamples, 1)
        _int_at_least("max_length", self.max_length, 2)
        _int_at_least("seed", self.seed, 0)
        object.__setattr__(self, "options", method_options(self.method, spec.options, self.options, kind="method"))

    def options_as(self, cls: type[OptionsT]) -> OptionsT:
        """`options` typed as `cls` (`tailorkit.core.config.options_as`)."""
        return options_as(self.method, self.options, cls)

    @classmethod
    def upgrade_config(cls, data: Mapping[str, Any]) -> dict[str, Any]:
        """A config mapping with flat method options (`alpha: 0.5`, the form before options were per method) moved
        into `options`; called by `tailorkit.core.config.from_dict`. Refuses a flat option the method lacks."""
        method = data.get("method", "model_tailor")
        if isinstance(method, str) and method not in METHODS:
            raise ConfigError(f"method: unknown patching method {method!r}; expected one of: {', '.join(METHODS)}")
        options_of = {name: spec.options for name, spec in METHODS.items()}
        own = [f.name for f in fields(cls)]
        return lift_options(data, own, str(method), options_of, aliases=OPTION_ALIASES, kind="method")
