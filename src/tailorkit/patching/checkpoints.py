"""Checkpoints: the sparse patch on disk, and Model Tailor / baselines on Hugging Face model folders.

Files are read with safetensors only. A pickle checkpoint (`pytorch_model.bin`, `*.pt`, `adapter_model.bin`) is
refused with a message, never unpickled. Folders may be sharded (`model.safetensors.index.json`). A PEFT LoRA
adapter folder (`adapter_config.json` + `adapter_model.safetensors`) can stand for the fine-tune: its delta
B A * scaling (alpha / r, or alpha / sqrt(r) with rsLoRA; transposed for fan_in_fan_out) is merged into the base
weights first. DoRA and other adapter kinds are refused.

`tailor_checkpoint` is load -> `tailorkit.patching.engine.tailor` -> write: target selection, the policy for the
tensors no method tailors and the patch have one implementation, the engine's. Several fine-tuned folders (full
models or LoRA adapters) are the multi-task case.

Memory: one model per fine-tune (float32; the first is patched in place) plus one block's Hessians; pretrained and
fine-tuned tensors are re-read lazily from their files one at a time (the data-free baselines stream one weight at
a time); the output is written shard by shard into a temporary folder next to `out`, which replaces `out` only when
complete (so nothing is half-written).

The output folder loads with `transformers.AutoModel.from_pretrained`; `out/patch/` holds the sparse patch alone
(`patch.safetensors`: `<name>.indices` int64 and `<name>.values`, plus `manifest.json`).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save

from tailorkit.core.config import to_dict
from tailorkit.core.errors import InputError, check_output_dir
from tailorkit.core.progress import status, track
from tailorkit.core.results import atomic_open, write_bytes_atomic, write_json_atomic
from tailorkit.patching.config import PatchConfig
from tailorkit.patching.engine import (
    METHODS,
    PatchError,
    PatchResult,
    SparsePatch,
    check_layout,
    patch_fractions,
    sparse_diff,
    tailor,
)

__all__ = [
    "LazyState",
    "load_calibration",
    "load_patch",
    "lora_delta",
    "save_patch",
    "tailor_checkpoint",
]

PATCH_FORMAT = "tailorkit.patch/1"
_PICKLES = ("pytorch_model.bin", "adapter_model.bin", "*.pt", "*.pth", "*.ckpt", "*.bin")
_COPY = re.compile(
    r"(config|tokenizer|vocab|merges|special_tokens|generation_config|spiece|sentencepiece).*\.(json|txt|model)$"
)


# --- the sparse patch on disk ---------------------------------------------------------------------------------------


def save_patch(
    patch: Mapping[str, SparsePatch], folder: str | os.PathLike[str], manifest: Mapping[str, Any] | None = None
) -> Path:
    """Write `folder/patch.safetensors` and `folder/manifest.json` (format, shapes, dtypes, fractions, extra)."""
    out = Path(folder)
    tensors: dict[str, torch.Tensor] = {}
    shapes: dict[str, Any] = {}
    for name, p in patch.items():
        tensors[f"{name}.indices"] = p.indices.to(torch.int64).contiguous().cpu()
        tensors[f"{name}.values"] = p.values.contiguous().cpu()
        shapes[name] = {
            "shape": list(p.shape),
            "dtype": str(p.values.dtype).replace("torch.", ""),
            "entries": int(p.indices.numel()),
            "fraction": p.fraction,
        }
    write_bytes_atomic(out / "patch.safetensors", save(tensors, metadata={"format": PATCH_FORMAT}))
    doc = {"format": PATCH_FORMAT, "tensors": shapes, **dict(manifest or {})}
    write_json_atomic(out / "manifest.json", doc)
    return out


def load_patch(folder: str | os.PathLike[str]) -> dict[str, SparsePatch]:
    """Read a patch written by `save_patch` (PatchError if the files are missing or inconsistent)."""
    src = Path(folder)
    manifest_path, tensor_path = src / "manifest.json", src / "patch.safetensors"
    if not manifest_path.is_file() or not tensor_path.is_file():
        raise PatchError(f"{src}: expected patch.safetensors and manifest.json (written by save_patch)")
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("format") != PATCH_FORMAT:
        raise PatchError(f"{manifest_path}: expected format {PATCH_FORMAT!r}, got {manifest.get('format')!r}")
    out = {}
    with safe_open(str(tensor_path), framework="pt") as f:
        keys = set(f.keys())
        for name, meta in manifest["tensors"].items():
            if f"{name}.indices" not in keys or f"{name}.values" not in keys:
                raise PatchError(f"{tensor_path}: tensor {name!r} listed in the manifest is missing")
            idx, val = f.get_tensor(f"{name}.indices"), f.get_tensor(f"{name}.values")
            shape = tuple(meta["shape"])
            if idx.shape != val.shape or (idx.numel() and int(idx.max()) >= math.prod(shape)):
                raise PatchError(f"{tensor_path}: tensor {name!r} has inconsistent indices/values for shape {shape}")
            out[name] = SparsePatch(idx, val, shape)
    return out


# --- reading model folders --------------------------------------------------------------------------------------------


def _refuse_pickles(folder: Path) -> None:
    for pattern in _PICKLES:
        found = sorted(folder.glob(pattern))
        if found:
            raise PatchError(
                f"{found[0]}: pickle checkpoints are refused (unpickling can run code); convert the folder to "
                "safetensors (model.save_pretrained(dir, safe_serialization=True)) and try again"
            )


def _safetensors_keys(path: Path) -> list[str]:
    """The tensor names of a safetensors file; a truncated or foreign file is a PatchError naming it."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return list(f.keys())
    except Exception as err:  # safetensors raises its own SafetensorError for a damaged header
        message = f"{path}: not a readable safetensors file ({err}); expected a complete .safetensors file"
        raise PatchError(message) from None


class LazyState(Mapping[str, torch.Tensor]):
    """The tensors of a safetensors model folder (single file or sharded), each read when asked for.

    `dtype` casts floating tensors on read (the calibration model runs in float32).
    """

    def __init__(self, folder: str | os.PathLike[str], dtype: torch.dtype | None = None) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise PatchError(f"{self.folder}: not a folder (expected a Hugging Face model folder)")
        index = self.folder / "model.safetensors.index.json"
        single = self.folder / "model.safetensors"
        if index.is_file():
            weight_map = json.loads(index.read_text()).get("weight_map", {})
            self.files = {k: self.folder / v for k, v in weight_map.items()}
        elif single.is_file():
            self.files = dict.fromkeys(_safetensors_keys(single), single)
        else:
            _refuse_pickles(self.folder)
            raise PatchError(f"{self.folder}: no model.safetensors or model.safetensors.index.json")
        missing = sorted({str(p) for p in self.files.values() if not p.is_file()})
        if missing:
            raise PatchError(f"{self.folder}: shard {missing[0]} listed in the index is missing")
        self.dtype = dtype
        self.shards = sorted(set(self.files.values()))
        self._meta: dict[str, tuple[tuple[int, ...], str]] = {}
        for shard in self.shards:
            _safetensors_keys(shard)  # a damaged shard is named before any read
            with safe_open(str(shard), framework="pt") as f:
                for k in f.keys():  # noqa: SIM118 (safe_open is not a Mapping)
                    sl = f.get_slice(k)
                    self._meta[k] = (tuple(sl.get_shape()), str(sl.get_dtype()))

    def meta(self, key: str) -> tuple[tuple[int, ...], str]:
        """(shape, safetensors dtype string) without reading the tensor."""
        return self._meta[key]

    def __getitem__(self, key: str) -> torch.Tensor:
        if key not in self.files:
            raise KeyError(key)
        with safe_open(str(self.files[key]), framework="pt") as f:
            t = f.get_tensor(key)
        if self.dtype is not None and t.is_floating_point():
            t = t.to(self.dtype)
        return t

    def __iter__(self) -> Iterator[str]:
        return iter(self.files)

    def __len__(self) -> int:
        return len(self.files)


def is_lora_folder(folder: Path) -> bool:
    return (folder / "adapter_config.json").is_file()


def lora_delta(folder: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Dense weight deltas of a PEFT LoRA adapter folder: {module_name: delta shaped like the module's weight}.

    Module names have PEFT's `base_model.model.` prefix removed.
    """
    src = Path(folder)
    config = json.loads((src / "adapter_config.json").read_text())
    if config.get("peft_type", "LORA") != "LORA":
        raise PatchError(f"{src}: adapter type {config.get('peft_type')!r} is not supported (LoRA only)")
    if config.get("use_dora"):
        raise PatchError(f"{src}: DoRA adapters are not supported (their magnitude vector is not a weight delta)")
    path = src / "adapter_model.safetensors"
    if not path.is_file():
        _refuse_pickles(src)
        raise PatchError(f"{src}: no adapter_model.safetensors")
    r, alpha = int(config.get("r", 8)), float(config.get("lora_alpha", 8))
    rank_pattern, alpha_pattern = config.get("rank_pattern") or {}, config.get("alpha_pattern") or {}
    tensors: dict[str, torch.Tensor] = {}
    with safe_open(str(path), framework="pt") as f:
        for k in f.keys():  # noqa: SIM118
            tensors[k] = f.get_tensor(k)
    prefix = "base_model.model."
    deltas = {}
    for key in tensors:
        if ".lora_A." not in key:
            if ".lora_B." in key:
                continue
            raise PatchError(
                f"{path}: adapter tensor {key!r} is not a LoRA A/B factor "
                "(modules_to_save or embedding adapters are not supported)"
            )
        module = key.split(".lora_A.")[0]
        b_key = key.replace(".lora_A.", ".lora_B.")
        if b_key not in tensors:
            raise PatchError(f"{path}: {key!r} has no matching {b_key!r}")
        a, b = tensors[key].float(), tensors[b_key].float()
        if a.ndim != 2 or b.ndim != 2:
            raise PatchError(f"{path}: {key!r}: only Linear / Conv1D LoRA factors are supported")
        name = module[len(prefix) :] if module.startswith(prefix) else module
        rank = next((int(v) for p, v in rank_pattern.items() if re.search(rf"(^|\.){re.escape(p)}$", name)), r)
        alpha_n = next(
            (float(v) for p, v in alpha_pattern.items() if re.search(rf"(^|\.){re.escape(p)}$", name)), alpha
        )
        scale = alpha_n / math.sqrt(rank) if config.get("use_rslora") else alpha_n / rank
        delta = (b @ a) * scale
        deltas[name] = delta.t().contiguous() if config.get("fan_in_fan_out") else delta
    if not deltas:
        raise PatchError(f"{path}: no LoRA factors found")
    return deltas


def _model_class(folder: Path) -> Any:
    import transformers

    config = json.loads((folder / "config.json").read_text()) if (folder / "config.json").is_file() else None
    if config is None:
        raise PatchError(f"{folder}: no config.json (expected a Hugging Face model folder)")
    for arch in config.get("architectures") or []:
        cls = getattr(transformers, arch, None)
        if cls is None:
            continue
        if not (isinstance(cls, type) and hasattr(cls, "from_pretrained")):
            raise PatchError(
                f"{folder / 'config.json'}: architectures names {arch!r}, which is not a transformers model class; "
                "expected a model class such as 'BertModel'"
            )
        return cls
    return transformers.AutoModel


def _load_model(folder: Path) -> torch.nn.Module:
    from transformers.utils import logging as hf_logging

    cls = _model_class(folder)
    # Tensors the checkpoint lacks (an unused pooler) are initialised by transformers and never written out, since
    # the output holds exactly the checkpoint's tensors; its load report would only alarm users.
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        model: torch.nn.Module = cls.from_pretrained(str(folder), local_files_only=True, dtype=torch.float32)
    except (OSError, ValueError, RuntimeError) as err:
        raise PatchError(f"{folder}: could not load the model ({err})".replace("\n", " ")) from err
    finally:
        hf_logging.set_verbosity(verbosity)
    model.eval()
    return model


def load_calibration(path: str | os.PathLike[str]) -> list[str]:
    """Texts of a JSONL file: one JSON object per line with a "text" field (or a bare JSON string)."""
    p = Path(path)
    if not p.is_file():
        raise PatchError(f"calibration file {str(p)!r} not found")
    texts = []
    for i, line in enumerate(p.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as err:
            raise PatchError(f"{p}:{i}: not valid JSON ({err.msg})") from None
        text = item.get("text") if isinstance(item, dict) else item
        if not isinstance(text, str) or not text.strip():
            raise PatchError(f'{p}:{i}: expected {{"text": "..."}} with a non-empty string')
        texts.append(text)
    if not texts:
        raise PatchError(f"calibration file {p} is empty: Model Tailor needs new-task inputs")
    return texts


def _calibration_batches(
    texts: Sequence[str], tokenizer_dir: Path, config: PatchConfig, batch_size: int = 8
) -> list[dict[str, torch.Tensor]]:
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
    except (OSError, ValueError) as err:
        raise PatchError(
            f"{tokenizer_dir}: no usable tokenizer for the calibration texts ({err})".replace("\n", " ")
        ) from err
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token or tok.unk_token
    texts = list(texts)[: config.nsamples]
    batches = []
    for i in range(0, len(texts), batch_size):
        enc = tok(
            texts[i : i + batch_size], padding=True, truncation=True, max_length=config.max_length, return_tensors="pt"
        )
        batches.append({k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")})
    return batches


def _check_headers(base: LazyState, ft: LazyState) -> None:
    check_layout(list(base), list(ft), base.meta, ft.meta)


class LoraState(Mapping[str, torch.Tensor]):
    """The fine-tuned parameters that a LoRA adapter implies: pretrained tensors (read lazily) plus the dense LoRA
    deltas on the weights they target (float32). `meta` reports the pretrained headers."""

    def __init__(self, base: LazyState, deltas: Mapping[str, torch.Tensor]) -> None:
        self.base, self.deltas = base, dict(deltas)

    def meta(self, key: str) -> tuple[tuple[int, ...], str]:
        return self.base.meta(key)

    def __getitem__(self, key: str) -> torch.Tensor:
        t = self.base[key]
        return t.float() + self.deltas[key] if key in self.deltas else t

    def __iter__(self) -> Iterator[str]:
        return iter(self.base)

    def __len__(self) -> int:
        return len(self.base)


_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64}


def _paths(value: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[Path]:
    return [Path(value)] if isinstance(value, str | os.PathLike) else [Path(v) for v in value]


def _texts_per_task(
    calibration: str | os.PathLike[str] | Sequence[Any] | None, n_tasks: int, config: PatchConfig
) -> list[list[str]]:
    """Calibration texts per fine-tune: one file (or list of texts) for all, or one per fine-tune."""
    if not METHODS.get(config.method).calibrated:
        return [[] for _ in range(n_tasks)]
    if calibration is None:
        raise PatchError("Model Tailor needs --calibration FILE.jsonl (new-task texts)")
    if isinstance(calibration, str | os.PathLike):
        per_task: list[Any] = [calibration] * n_tasks
    elif n_tasks == 1 and all(isinstance(c, str) for c in calibration):
        per_task = [list(calibration)]  # the texts themselves
    else:
        per_task = list(calibration)
        if len(per_task) == 1:
            per_task = per_task * n_tasks
    if len(per_task) != n_tasks:
        raise PatchError(
            f"calibration: expected one file for all fine-tunes or one per fine-tune ({n_tasks}), got {len(per_task)}"
        )
    out = []
    for item in per_task:
        texts = load_calibration(item) if isinstance(item, str | os.PathLike) else list(item)
        if not texts:
            raise PatchError("calibration is empty: Model Tailor needs new-task inputs")
        out.append(texts)
    return out


def tailor_checkpoint(
    base_dir: str | os.PathLike[str],
    finetuned_dir: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    calibration: str | os.PathLike[str] | Sequence[Any] | None,
    out_dir: str | os.PathLike[str],
    config: PatchConfig | None = None,
    *,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Patch fine-tuned Hugging Face model folder(s) (or LoRA adapter folders) against their base; write `out_dir`.

    Load -> `tailorkit.patching.tailor` (in place on the first fine-tune, fine-tuned tensors re-read lazily from
    their files) -> write. Several fine-tuned folders are the multi-task case (Model Tailor's option `combine`).

    Args:
        base_dir: Pretrained model folder (config.json + safetensors).
        finetuned_dir: Fine-tuned model folder with the same tensors, or a PEFT LoRA adapter folder; or a list.
        calibration: JSONL file of new-task texts (or a list of texts), one for all fine-tunes or one per fine-tune
            (a list of files); required by Model Tailor.
        out_dir: Output model folder; must not exist unless `overwrite`.
        config: Settings (method, density ...).
        overwrite: Replace an existing `out_dir` (only once the new one is complete).
        progress: Progress bars.

    Returns:
        The manifest written to out_dir/patch/manifest.json (patch fractions, per-layer errors, timings ...).

    Raises:
        PatchError: Any bad input (named); nothing is written then.
    """
    config = config or PatchConfig()
    METHODS.get(config.method)  # an unknown method fails before any work
    start = time.perf_counter()
    base_dir, out = Path(base_dir), Path(out_dir)
    ft_dirs = _paths(finetuned_dir)
    if not ft_dirs:
        raise PatchError("finetuned: expected at least one fine-tuned folder")
    if out.exists() and not overwrite:
        raise PatchError(f"output folder {out} exists; pass --overwrite to replace it")
    try:
        check_output_dir(out)
    except InputError as err:
        raise PatchError(str(err)) from None
    for ft_dir in ft_dirs:
        if not ft_dir.is_dir():
            raise PatchError(f"{ft_dir}: not a folder")
    texts = _texts_per_task(calibration, len(ft_dirs), config)
    raw_base = LazyState(base_dir)
    models: list[torch.nn.Module] = []
    references: list[Mapping[str, torch.Tensor]] = []
    lora = [is_lora_folder(d) for d in ft_dirs]
    layout = raw_base
    for i, ft_dir in enumerate(ft_dirs):
        reference: Mapping[str, torch.Tensor]
        if lora[i]:
            model, reference = _load_lora(base_dir, ft_dir, raw_base)
        else:
            files = LazyState(ft_dir)
            _check_headers(raw_base, files)
            model = _load_model(ft_dir)
            reference = files
            if i == 0:
                layout = files
        state = model.state_dict()
        unknown = [k for k in raw_base if k not in state]
        if unknown:
            raise PatchError(f"checkpoint tensors with no counterpart in the loaded model: {', '.join(unknown[:3])}")
        models.append(model)
        references.append(reference)
    batches = []
    for ft_dir, is_lora, task_texts in zip(ft_dirs, lora, texts, strict=True):
        tok_dir = (
            ft_dir if not is_lora and (any(ft_dir.glob("tokenizer*")) or (ft_dir / "vocab.txt").is_file()) else base_dir
        )
        batches.append(_calibration_batches(task_texts, tok_dir, config) if task_texts else [])
    calib: Any = batches[0] if len(batches) == 1 else batches
    status("tailoring" + (f" {len(models)} fine-tunes" if len(models) > 1 else ""))
    result = tailor(
        raw_base,
        models if len(models) > 1 else models[0],
        calib,
        config,
        inplace=True,
        progress=progress,
        reference=references,
    )
    manifest_extra = {
        "base": str(base_dir),
        "finetuned": [str(d) for d in ft_dirs] if len(ft_dirs) > 1 else str(ft_dirs[0]),
        "finetuned_is_lora": lora if len(ft_dirs) > 1 else lora[0],
        "calibration_texts": [len(t[: config.nsamples]) for t in texts]
        if len(texts) > 1
        else len(texts[0][: config.nsamples]),
    }
    manifest = _write(
        result, models[0], raw_base, layout, (base_dir, ft_dirs[0], lora[0]), out, manifest_extra, progress, start
    )
    status(
        f"patched model written to {out} ({int(manifest['patch_entries'])} entries differ from the pretrained model)"
    )
    return manifest


def _load_lora(base_dir: Path, ft_dir: Path, raw_base: LazyState) -> tuple[torch.nn.Module, LoraState]:
    """The base model with the adapter's dense deltas added, and the matching lazy fine-tuned state."""
    deltas = lora_delta(ft_dir)
    model = _load_model(base_dir)
    params = dict(model.named_parameters())
    by_key: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for name, delta in deltas.items():
            key = _match_param(f"{name}.weight", params)
            if key is None or key not in raw_base:
                raise PatchError(f"LoRA target {name!r} is not a module of the base model")
            if params[key].shape != delta.shape:
                raise PatchError(
                    f"LoRA delta for {key!r} has shape {tuple(delta.shape)}, weight {tuple(params[key].shape)}"
                )
            params[key].add_(delta)
            by_key[key] = delta
    return model, LoraState(raw_base, by_key)


def _write(
    result: PatchResult,
    model: torch.nn.Module,
    raw_base: LazyState,
    layout: LazyState,
    sources: tuple[Path, Path, bool],
    out: Path,
    extra: dict[str, Any],
    progress: bool,
    start: float,
) -> dict[str, Any]:
    """Write the patched folder into a temporary sibling and swap it in; return the manifest.

    `sources` = (base folder, first fine-tuned folder, whether it is a LoRA adapter): where the config and tokenizer
    files are copied from.
    """
    base_dir, ft_dir, lora = sources
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        state = model.state_dict()
        patch = dict(result.patch)
        changed = list(result.changed_by_finetune)
        sizes: dict[str, int] = {}
        for shard in track(layout.shards, "writing shards", enabled=progress):
            tensors = {}
            for k in [k for k in layout if layout.files[k] == shard]:
                pre = raw_base[k]
                value = result.state[k] if k in result.state else state[k]
                new = value.detach().to(dtype=_DTYPES.get(raw_base.meta(k)[1], pre.dtype), device="cpu").contiguous()
                tensors[k] = new
                sizes[k] = new.numel()
                if k not in result.state:  # buffers and tied copies: no method or policy touched them
                    diff = sparse_diff(new, pre)
                    if diff is not None:
                        patch[k] = diff
                        changed.append(k)
            with atomic_open(tmp / shard.name) as handle:
                handle.write(save(tensors, metadata={"format": "pt"}))
        index = layout.folder / "model.safetensors.index.json"
        if index.is_file():
            shutil.copy2(index, tmp / index.name)
        for src_dir in [base_dir, ft_dir] if lora else [ft_dir]:
            for f in src_dir.iterdir():
                if f.is_file() and _COPY.match(f.name) and f.name != "adapter_config.json":
                    shutil.copy2(f, tmp / f.name)
        fractions = patch_fractions(patch, sizes, changed, result.tailored or [])
        manifest = {
            "method": result.method,
            "config": to_dict(result.config),
            **extra,
            "tailored_layers": len(result.tailored or []),
            **fractions,
            "patch_fraction_of_tailored_weights": fractions["patch_fraction_tailored"],
            "changed_by_finetune": len(changed),
            "layer_errors": result.layer_errors,
            "timings": {**result.timings, "total": time.perf_counter() - start},
        }
        save_patch(patch, tmp / "patch", manifest)
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def _match_param(key: str, params: Mapping[str, Any]) -> str | None:
    if key in params:
        return key
    matches = [k for k in params if k.endswith("." + key) or key.endswith("." + k)]
    return matches[0] if len(matches) == 1 else None
