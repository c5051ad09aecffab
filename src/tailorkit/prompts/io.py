"""Save and load a learner's prompt parameters as safetensors with a JSON manifest naming the towers.

The manifest records the method, its options, the bank assignment and the dual encoder's manifest (towers,
shared-space width, template); loading rebuilds the learner and refuses a file made for other towers.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from safetensors import safe_open
from safetensors.torch import load_file, save

from tailorkit.core.results import atomic_open
from tailorkit.nets.dual_encoder import DualEncoder
from tailorkit.prompts.methods.base import PromptLearner, make_learner

__all__ = ["load_learner", "save_learner"]


def save_learner(
    learner: PromptLearner, encoder: DualEncoder, path: str | os.PathLike[str], *, method: str, options: dict[str, Any]
) -> Path:
    """Write the learner's trainable tensors and a manifest (method, options, assignment, towers), atomically."""
    manifest = {
        "method": method,
        "options": options,
        "assignment": [list(a) for a in learner.assignment],
        "encoder": {k: encoder.manifest[k] for k in ("image_tower", "text_tower", "dim", "template")},
    }
    tensors = {k: v.detach().cpu().contiguous() for k, v in learner.state_dict().items()}
    with atomic_open(path) as handle:
        handle.write(save(tensors, metadata={"manifest": json.dumps(manifest, sort_keys=True)}))
    return Path(path)


def load_learner(path: str | os.PathLike[str], encoder: DualEncoder) -> tuple[PromptLearner, dict[str, Any]]:
    """Rebuild a learner saved by :func:`save_learner` on ``encoder`` (whose towers must match the manifest)."""
    with safe_open(str(path), framework="pt") as f:
        manifest = json.loads((f.metadata() or {}).get("manifest", "{}"))
    if not manifest:
        raise ValueError(f"{path}: no prompt manifest (expected a file written by save_learner)")
    for key, value in manifest["encoder"].items():
        if encoder.manifest.get(key) != value:
            raise ValueError(f"{path}: saved for {key}={value!r}, this encoder has {encoder.manifest.get(key)!r}")
    learner = make_learner(manifest["method"], encoder, manifest["assignment"], **manifest["options"])
    learner.load_state_dict(load_file(str(path), device=str(encoder.device)), strict=True)
    return learner.to(encoder.device).eval(), manifest
