"""mergekit as a peer: its TIES, DARE-TIES and task arithmetic on the same model folders, run in this process.

mergekit (arcee-ai/mergekit, pinned 0.1.5 in the Makefile, installed `--no-deps` because it pins exact versions of
its own dependencies) is what people use to merge task vectors. `mergekit_merge` runs its Python API
(`mergekit.merge.run_merge`) on Hugging Face folders: the same inputs `tailorkit patch` reads, so the bench can set
its rows beside ours and the tests can compare tensors.

Known defect worked around (docs/patching.md#mergekit): mergekit 0.1.4 and 0.1.5 cannot plan any architecture whose
JSON definition has an optional weight with aliases: BERT's `embeddings.position_ids` raises
`TypeError: can only concatenate list (not "tuple") to list` in `MergePlanner.plan_tensor`, before any tensor is
read. For such folders (`infer_architecture=True`, the default for BERT-family configs) mergekit is asked to infer
the architecture from the tensors, its own path for architectures it has no definition for. Decoder LMs (Llama,
GPT-2 ...) use mergekit's definitions unchanged.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = ["MERGEKIT_METHODS", "mergekit_available", "mergekit_merge", "mergekit_version"]

MERGEKIT_METHODS = ("ties", "dare_ties", "task_arithmetic")
_BROKEN_DEFINITIONS = ("bert", "roberta", "distilbert")  # model_type values whose mergekit JSON crashes (above)


def mergekit_available() -> bool:
    return importlib.util.find_spec("mergekit") is not None


def mergekit_version() -> str | None:
    if not mergekit_available():
        return None
    from importlib.metadata import version

    return version("mergekit")


@contextlib.contextmanager
def _inferred_architecture() -> Iterator[None]:
    """While active, mergekit infers the architecture from the tensors instead of its JSON definition."""
    import mergekit.merge as merge_module
    from mergekit.architecture.auto import infer_architecture_info

    original = merge_module.get_architecture_info

    def infer(config: Any, options: Any) -> Any:
        return infer_architecture_info(tuple(config.referenced_models()), config.base_model, options)

    merge_module.get_architecture_info = infer
    try:
        yield
    finally:
        merge_module.get_architecture_info = original


def mergekit_merge(
    base_dir: str | os.PathLike[str],
    finetuned_dirs: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    method: str,
    *,
    density: float = 0.1,
    weight: float = 1.0,
    normalize: bool = True,
    seed: int = 0,
    infer_architecture: bool | None = None,
) -> Path:
    """Merge `finetuned_dirs` onto `base_dir` with mergekit; write `out_dir` (safetensors, float32).

    Args:
        base_dir: Pretrained model folder.
        finetuned_dirs: Fine-tuned folders (same architecture).
        out_dir: Output folder (created by mergekit).
        method: "ties", "dare_ties" or "task_arithmetic" (mergekit's names).
        density: Fraction of each task vector kept (ties, dare_ties).
        weight: Weight of every task vector (task arithmetic's lambda; TIES/DARE scale).
        normalize: Divide by the sum of the weights (ties, dare_ties), as mergekit's default.
        seed: mergekit's random seed (DARE's drop).
        infer_architecture: Let mergekit infer the architecture from the tensors; None = for BERT-family folders,
            whose mergekit definition crashes (module docstring).

    Returns:
        out_dir.
    """
    if method not in MERGEKIT_METHODS:
        raise ValueError(f"method: expected one of {', '.join(MERGEKIT_METHODS)}, got {method!r}")
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions, run_merge

    base = str(Path(base_dir).resolve())
    params: dict[str, Any] = {"weight": weight}
    if method != "task_arithmetic":
        params["density"] = density
    doc: dict[str, Any] = {
        "merge_method": method,
        "base_model": base,
        "models": [{"model": str(Path(d).resolve()), "parameters": dict(params)} for d in finetuned_dirs],
        "dtype": "float32",
    }
    if method != "task_arithmetic":
        doc["parameters"] = {"normalize": normalize}
    if infer_architecture is None:
        model_type = json.loads((Path(base_dir) / "config.json").read_text()).get("model_type", "")
        infer_architecture = model_type in _BROKEN_DEFINITIONS
    options = MergeOptions(
        copy_tokenizer=False,
        write_model_card=False,
        lazy_unpickle=False,
        quiet=True,
        random_seed=seed,
    )
    guard = _inferred_architecture() if infer_architecture else contextlib.nullcontext()
    with guard:
        run_merge(MergeConfiguration.model_validate(doc), str(out_dir), options=options)
    return Path(out_dir)
