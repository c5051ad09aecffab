"""The registry of patching methods: Model Tailor and its baselines, one module each.

A method is `fn(ctx: PatchContext, config: PatchConfig) -> MethodInfo`: it writes the new values of the eligible
weights (`ctx.targets`) into the working model `ctx.model` and reports masks, per-layer errors and timings.
Everything else (which tensors are eligible, the policy for biases and norms, the patch bookkeeping, checks) is the
engine's job (`tailorkit.patching.engine`), so every method is applied to the same tensors at the same budget.
"""

from __future__ import annotations

import importlib

from tailorkit.patching.engine import METHODS, MethodInfo, PatchContext

MODULES = ("model_tailor", "magnitude", "dare", "ties", "wise_ft")
for _name in MODULES:
    importlib.import_module(f"tailorkit.patching.methods.{_name}")

__all__ = ["METHODS", "MODULES", "MethodInfo", "PatchContext"]
