"""Prompt methods, registered by name: MmAP and its baselines (importing this package registers all of them)."""

from __future__ import annotations

from tailorkit.prompts.methods import baselines, deep_prompts, mmap  # noqa: F401  (registration)
from tailorkit.prompts.methods.base import METHODS, PromptLearner, make_learner, spatial_bases, tokens_to_map

__all__ = ["METHODS", "PromptLearner", "make_learner", "spatial_bases", "tokens_to_map"]
