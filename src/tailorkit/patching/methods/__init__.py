"""The patching methods: Model Tailor and its baselines, one module each, registered in `METHODS`.

The contract (what a method receives and returns) is documented in `tailorkit.patching.methods.base`; importing
this package registers every method module listed in `MODULES`.
"""

from __future__ import annotations

import importlib

from tailorkit.patching.methods.base import METHODS, MethodFn, MethodInfo, PatchContext, PatchError

MODULES = ("model_tailor", "magnitude", "dare", "ties", "wise_ft")
for _name in MODULES:
    importlib.import_module(f"tailorkit.patching.methods.{_name}")

__all__ = ["METHODS", "MODULES", "MethodFn", "MethodInfo", "PatchContext", "PatchError"]
