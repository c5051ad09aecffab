"""Settings of the anatomy subsystem: network, preprocessing, self-supervised training, matching, bench.

Frozen dataclasses validated in `__post_init__`; loaded from YAML/TOML with `key=value` overrides by
`tailorkit.core.config.load_config`. Defaults follow the official SAM/SAMv2 configuration
(docs/anatomy.md#from-the-official-code) where it fits a CPU, and a CPU feasibility configuration (width 16, 3 mm,
16x48x48 crops, Adam 1e-3; docs/anatomy.md#inferred-or-changed) otherwise; each departure is named in the field's
comment.

`SAMTrainConfig` holds what SAM and SAMv2 share plus `method` ("sam" or "samv2") and `options`, the method's own
frozen dataclass (`SAMOptions`: none; `SAMv2Options`: the prototype loss and its inter-volume views), as in
`tailorkit.patching`; an option the method does not have is refused in one line naming it, the method and the
method's options. Files and overrides may still write SAMv2's options flat (`semantic_prob: 0.3`), as before.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from tailorkit.core.config import (
    ConfigError,
    check,
    check_int_at_least,
    from_dict,
    lift_options,
    method_options,
    options_as,
)

__all__ = [
    "METHOD_OPTIONS",
    "BenchConfig",
    "EmbedConfig",
    "MatchConfig",
    "NetConfig",
    "SAMOptions",
    "SAMTrainConfig",
    "SAMv2Options",
]

OptionsT = TypeVar("OptionsT")


def _positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name}: expected a finite number {bound}, got {value!r}")


def _probability(name: str, value: float) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 1:
        raise ValueError(f"{name}: expected a probability in [0, 1], got {value!r}")


@dataclass(frozen=True)
class NetConfig:
    """The SAM network. width: channels of the first stage (64 official; 16-32 on CPU)."""

    width: int = 16
    emb_dim: int = 128
    semantic: bool = False  # SAMv2's third (semantic) head
    in_channels: int = 1

    def __post_init__(self) -> None:
        check_int_at_least("width", self.width, 1)
        check_int_at_least("emb_dim", self.emb_dim, 1)
        check_int_at_least("in_channels", self.in_channels, 1)
        if not isinstance(self.semantic, bool):
            raise ValueError(f"semantic: expected true or false, got {self.semantic!r}")


@dataclass(frozen=True)
class EmbedConfig:
    """Preprocessing for `embed`: isotropic resampling and intensity rescaling (docs/anatomy.md#from-the-official-code).

    intensity: "percentile" (MRI, UAE-M: clip to the `percentiles`, map to [0, 255], minus 50) or "ct" (clip
    [-1024, 3071] HU, same map).
    """

    spacing_mm: float = 3.0  # official 2 mm; 3 mm keeps CPU training affordable (docs/anatomy.md#inferred-or-changed)
    intensity: Literal["percentile", "ct"] = "percentile"
    percentiles: tuple[float, float] = (0.2, 99.8)

    def __post_init__(self) -> None:
        _positive("spacing_mm", self.spacing_mm)
        if self.intensity not in ("percentile", "ct"):
            raise ValueError(f"intensity: expected 'percentile' or 'ct', got {self.intensity!r}")
        lo, hi = self.percentiles
        if not 0 <= lo < hi <= 100:
            raise ValueError(f"percentiles: expected 0 <= low < high <= 100, got {self.percentiles!r}")


def _size3(name: str, size: object) -> None:
    ok = isinstance(size, tuple | list) and len(size) == 3 and all(isinstance(n, int) and n >= 4 for n in size)
    check(ok, f"{name}: expected three integers >= 4 (z, y, x), got {size!r}")


@dataclass(frozen=True)
class SAMOptions:
    """The options of method `sam`: none. SAM's settings are the shared fields of `SAMTrainConfig`, with which
    SAMv2 trains its intra-volume steps too."""


@dataclass(frozen=True)
class SAMv2Options:
    """The options of method `samv2`: the inter-volume prototype loss on the semantic head.

    Attributes:
        semantic_prob: Share of steps that use the inter-volume prototype loss (official 0.4).
        semantic_labels: The atlas labels of the prototype loss when training on the MNI152 brain: "aal" (116
            regions) or "tissue" (classes).
        proto_temperature: Temperature of the prototype loss (official 0.1).
        inter_crop: (z, y, x) voxel crop of each inter-volume view (at most).
        inter_max_disp_mm: Random smooth deformation between the two inter-volume views [inferred].
        inter_rotate_deg: Random rotation of each inter-volume view.
        contrast_prob: Inter views: chance of a random tissue-contrast image instead of the T1 [inferred].
    """

    semantic_prob: float = 0.4
    semantic_labels: Literal["aal", "tissue"] = "aal"
    proto_temperature: float = 0.1
    inter_crop: tuple[int, int, int] = (40, 56, 48)
    inter_max_disp_mm: float = 6.0
    inter_rotate_deg: float = 8.0
    contrast_prob: float = 0.5

    def __post_init__(self) -> None:
        _size3("inter_crop", self.inter_crop)
        for name in ("semantic_prob", "contrast_prob"):
            _probability(name, getattr(self, name))
        for name in ("inter_max_disp_mm", "inter_rotate_deg"):
            _positive(name, getattr(self, name), allow_zero=True)
        _positive("proto_temperature", self.proto_temperature)
        if self.semantic_labels not in ("aal", "tissue"):
            raise ValueError(f"semantic_labels: expected 'aal' or 'tissue', got {self.semantic_labels!r}")


# Each method's options (not a registry: SAM and SAMv2 are one code path; docs/anatomy.md, "Why there is no
# `methods/` registry").
METHOD_OPTIONS: dict[str, type] = {"sam": SAMOptions, "samv2": SAMv2Options}


@dataclass(frozen=True)
class SAMTrainConfig:
    """Self-supervised SAM / SAMv2 training (docs/anatomy.md#from-the-official-code).

    `method`: "sam" or "samv2" (SAM plus the semantic head, trained with the prototype loss; it sets
    `net.semantic`); "" (the default) takes it from `net.semantic`. After construction `method` is always "sam" or
    "samv2" and `options` the method's options dataclass (`SAMOptions`, `SAMv2Options`; a mapping of option names
    to values, or None for the defaults, is turned into it). `volumes` lists the training scans (NIfTI, DICOM
    directory, ..., or an offline asset as "asset:mni_t1", "asset:pydeface_head", "asset:itk_t1", "asset:lits_ct"
    (with its liver/tumour labels)); empty = the MNI152 T1, whose AAL labels (or tissue classes) feed the SAMv2
    prototype loss. `labels` optionally lists one label map per volume for the prototype loss of user scans (SAMv2
    only).
    """

    method: Literal["", "sam", "samv2"] = ""
    net: NetConfig = field(default_factory=NetConfig)
    embed: EmbedConfig = field(default_factory=EmbedConfig)
    volumes: tuple[Path, ...] = ()
    labels: tuple[Path, ...] = ()
    steps: int = 300
    lr: float = 1e-3  # official SGD 0.02 for 20 000 steps; Adam 1e-3 converges in the few hundred a CPU affords
    optimizer: Literal["adamw", "sgd"] = "adamw"
    weight_decay: float = 1e-4
    warmup_steps: int = 10
    schedule: Literal["constant", "linear", "cosine"] = "cosine"  # official: constant after warm-up (then steps)
    pairs_per_step: int = 1
    patch_size: tuple[int, int, int] = (16, 48, 48)  # (z, y, x) voxels; official 32x96x96 at 2 mm
    scale_range: tuple[float, float] = (0.8, 1.2)
    overlap_prob: float = 0.8
    rotate_deg: float = 5.0  # small-affine augmentation (UAE-M0 RandomAffine3d +/-5 deg)
    noise_std: float = 0.001  # on [0, 1] before rescaling (official: std U(0, 0.001) on the 0-255 scale)
    blur_prob: float = 0.5
    blur_sigma_mm: float = 4.0  # sigma ~ U(0, blur_sigma_mm)
    remap_prob: float = 0.9  # UAE-M0 RandHistogramShift: random monotone piecewise-linear intensity map
    invert_prob: float = 0.3  # ... applied to the inverted image 1 - x with this probability
    temperature: float = 0.5
    positive_mode: Literal["nearest", "interpolate"] = "nearest"
    # 0.75 voxel at 3 mm (official 2 mm at 2 mm); docs/anatomy.md#inferred-or-changed
    positive_distance_mm: float = 2.25
    ignore_distance_mm: float = 20.0
    after_select_pos: int = 100
    pre_select_neg: int = 2000
    after_select_neg: int = 500
    coarse_positive_distance_mm: float = 25.0
    coarse_z_distance_mm: float = 8.0
    coarse_ignore_distance_mm: float = 5.0
    coarse_pre_select_neg: int = 250
    coarse_after_select_neg: int = 200
    checkpoint_every: int = 25
    seed: int = 0
    threads: int = 0  # torch threads; 0 = leave as is
    options: Any = None  # the method's options: SAMOptions (none) or SAMv2Options

    def __post_init__(self) -> None:
        check_int_at_least("steps", self.steps, 1)
        _positive("lr", self.lr)
        _positive("weight_decay", self.weight_decay, allow_zero=True)
        check_int_at_least("warmup_steps", self.warmup_steps, 0)
        if self.warmup_steps > self.steps:
            raise ValueError(f"warmup_steps: expected <= steps ({self.steps}), got {self.warmup_steps}")
        check_int_at_least("pairs_per_step", self.pairs_per_step, 1)
        _size3("patch_size", self.patch_size)
        lo, hi = self.scale_range
        if not 0 < lo <= hi:
            raise ValueError(f"scale_range: expected 0 < low <= high, got {self.scale_range!r}")
        for name in ("overlap_prob", "blur_prob", "remap_prob", "invert_prob"):
            _probability(name, getattr(self, name))
        for name in ("rotate_deg", "noise_std", "blur_sigma_mm"):
            _positive(name, getattr(self, name), allow_zero=True)
        for name in (
            "temperature",
            "positive_distance_mm",
            "ignore_distance_mm",
            "coarse_positive_distance_mm",
            "coarse_z_distance_mm",
            "coarse_ignore_distance_mm",
        ):
            _positive(name, getattr(self, name))
        for name in (
            "after_select_pos",
            "pre_select_neg",
            "after_select_neg",
            "coarse_pre_select_neg",
            "coarse_after_select_neg",
        ):
            check_int_at_least(name, getattr(self, name), 1)
        if self.positive_mode not in ("nearest", "interpolate"):
            raise ValueError(f"positive_mode: expected 'nearest' or 'interpolate', got {self.positive_mode!r}")
        if self.labels and len(self.labels) != len(self.volumes):
            raise ValueError(f"labels: expected one label map per volume ({len(self.volumes)}), got {len(self.labels)}")
        check_int_at_least("checkpoint_every", self.checkpoint_every, 0)
        check_int_at_least("threads", self.threads, 0)
        check(self.method in ("", "sam", "samv2"), f"method: expected 'sam' or 'samv2', got {self.method!r}")
        method = self.method or ("samv2" if self.net.semantic else "sam")
        if method == "sam":
            check(
                not self.net.semantic,
                "net.semantic: true is SAMv2's semantic head; method 'sam' trains none (set method=samv2)",
            )
            check(not self.labels, "labels: only SAMv2's prototype loss reads label maps; method 'sam' does not")
        elif not self.net.semantic:
            object.__setattr__(self, "net", dataclasses.replace(self.net, semantic=True))
        object.__setattr__(self, "method", method)
        object.__setattr__(self, "options", method_options(method, METHOD_OPTIONS[method], self.options))

    def options_as(self, cls: type[OptionsT]) -> OptionsT:
        """`options` typed as `cls` (`tailorkit.core.config.options_as`)."""
        return options_as(self.method, self.options, cls)

    @classmethod
    def upgrade_config(cls, data: Mapping[str, Any]) -> dict[str, Any]:
        """A config mapping with SAMv2's options written flat (`semantic_prob: 0.3`, the form before options were
        per method) moved into `options`; called by `tailorkit.core.config.from_dict`. Refuses them for SAM."""
        method = data.get("method") or ""
        if not method:
            net = data.get("net")
            try:
                semantic = isinstance(net, Mapping) and from_dict(NetConfig, net, where="net").semantic
            except ConfigError:
                semantic = False  # the section's own error is raised when it is built
            method = "samv2" if semantic else "sam"
        own = [f.name for f in dataclasses.fields(cls)]
        return lift_options(data, own, str(method), METHOD_OPTIONS, kind="method")


@dataclass(frozen=True)
class MatchConfig:
    """Landmark matching (docs/anatomy.md#from-the-official-code). Similarities are means of per-head cosines (max 1).

    heads: which embedding heads enter the similarity ("fine", "coarse", "semantic").
    subvoxel: "parabolic" refines each arg-max on the fine grid by a 1D parabola per axis [inferred; the official
    arg-max over a trilinearly upsampled similarity map lands on grid nodes], "none" keeps the grid node.
    """

    heads: tuple[str, ...] = ("fine", "coarse")
    subvoxel: Literal["none", "parabolic"] = "parabolic"
    fp_margin: int = 2  # fixed point: (2m+1)^3 neighbourhood on the fine grid
    fp_iterations: int = 2  # forward/backward rounds (q -> k -> q' -> k' -> q'' is 2)
    fp_score_threshold: float = 0.8  # official mean-of-three-cosines threshold after commit 5a22f59
    fp_back_distance_mm: float = 100.0
    fp_min_points: int = 12  # fewer kept points: use the best-scoring ones [inferred]
    huber_c: float = 1.345
    irls_iterations: int = 10
    cycle_rounds: int = 5  # SAME++ stable matching: forward/backward rounds
    batch: int = 4096  # query vectors per similarity matmul

    def __post_init__(self) -> None:
        bad = [h for h in self.heads if h not in ("fine", "coarse", "semantic")]
        if not self.heads or bad:
            raise ValueError(f"heads: expected a non-empty subset of fine, coarse, semantic, got {self.heads!r}")
        if self.subvoxel not in ("none", "parabolic"):
            raise ValueError(f"subvoxel: expected 'none' or 'parabolic', got {self.subvoxel!r}")
        check_int_at_least("fp_margin", self.fp_margin, 0)
        check_int_at_least("fp_iterations", self.fp_iterations, 1)
        check_int_at_least("fp_min_points", self.fp_min_points, 1)
        check_int_at_least("irls_iterations", self.irls_iterations, 1)
        check_int_at_least("cycle_rounds", self.cycle_rounds, 1)
        check_int_at_least("batch", self.batch, 1)
        _positive("huber_c", self.huber_c)
        _positive("fp_back_distance_mm", self.fp_back_distance_mm)


@dataclass(frozen=True)
class BenchConfig:
    """The one-shot landmark benchmark (docs/anatomy.md#the-benchmark).

    Quick mode trains both embeddings within its budget.
    """

    train: SAMTrainConfig = field(default_factory=SAMTrainConfig)
    match: MatchConfig = field(default_factory=MatchConfig)
    quick_steps: int = 160
    full_steps: int = 1500
    pairs_per_tier: int = 3
    quick_fp_margin: int = 1  # quick mode: 3^3 fixed-point neighbourhood (5x cheaper than the official 5^3)
    quick_pairs_per_tier: int = 2
    easy_rotate_deg: float = 8.0
    easy_scale: float = 0.08
    easy_translate_mm: float = 6.0
    easy_max_disp_mm: float = 6.0
    hard_rotate_deg: float = 15.0
    hard_scale: float = 0.1
    hard_translate_mm: float = 12.0
    hard_max_disp_mm: float = 12.0
    threads: int = 1  # one torch thread: two threads spin-wait on a busy 2-core machine (measured 2x CPU)
    workers: int = 2  # processes training SAM and SAMv2 side by side on CPU (1: one after the other)

    def __post_init__(self) -> None:
        check_int_at_least("quick_steps", self.quick_steps, 1)
        check_int_at_least("full_steps", self.full_steps, 1)
        check_int_at_least("pairs_per_tier", self.pairs_per_tier, 1)
        check_int_at_least("quick_pairs_per_tier", self.quick_pairs_per_tier, 1)
        check_int_at_least("quick_fp_margin", self.quick_fp_margin, 0)
        check_int_at_least("threads", self.threads, 0)
        check_int_at_least("workers", self.workers, 1)
