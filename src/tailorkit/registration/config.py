"""Settings of SAME++ registration, its deformation-network training and its benchmark (frozen dataclasses).

Every detail the official code (alibaba-damo-academy/same) fixes is a default here with its source; every inferred
or CPU-driven change is a setting marked [inferred] or [CPU], so the official value can be restored. The reading of
the official code behind each default is in docs/registration.md#the-method-as-implemented; the initialisation and
the checks that refuse a poor result (not part of SAME++) are in docs/registration.md#initialisation-and-checks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tailorkit.anatomy.config import SAMTrainConfig
from tailorkit.core.config import check, check_int_at_least, check_number_at_least

STEPS = ("affine", "coarse", "deform", "io")


def _pos(name: str, value: object) -> None:
    check_number_at_least(name, value, 0.0)
    check(float(value) > 0, f"{name}: expected > 0, got {value!r}")  # type: ignore[arg-type]


@dataclass(frozen=True)
class FeatureConfig:
    """Which features drive the matching steps.

    kind: "sam" (a trained SAM embedding: fine + coarse descriptors on the fine grid,
    docs/registration.md#the-method-as-implemented), "mind" (MIND-like
    self-similarity of the intensities, the fallback without a trained embedding [inferred]) or "auto" (sam when a
    model is given, else mind).
    """

    kind: Literal["auto", "sam", "mind"] = "auto"
    mind_radius: int = 1  # box half-width of the patch distance (voxels of the working grid)
    mind_dilations: tuple[int, ...] = (1, 2, 4)  # neighbour offsets (voxels); several scales for global matching
    mind_stride: int = 2  # feature grid = working grid / 2, like SAM's fine grid

    def __post_init__(self) -> None:
        check(self.kind in ("auto", "sam", "mind"), f"features.kind: expected auto, sam or mind, got {self.kind!r}")
        check_int_at_least("mind_radius", self.mind_radius, 0)
        check(
            len(self.mind_dilations) > 0 and all(isinstance(d, int) and d >= 1 for d in self.mind_dilations),
            f"mind_dilations: expected positive integers, got {self.mind_dilations!r}",
        )
        check_int_at_least("mind_stride", self.mind_stride, 1)


@dataclass(frozen=True)
class AffineConfig:
    """SAM-Affine (docs/registration.md#the-method-as-implemented): cycle-consistent grid matches + least squares.

    The acceptance test of the fitted affine (docs/registration.md#initialisation-and-checks) [inferred]: it is kept
    only when det(A) lies in [min_det, max_det], the condition number of its linear part is at most `max_condition`,
    at least `min_inliers` matches and a share `min_inlier_fraction` of them lie within `inlier_mm` of the fit, and
    the similarity to the fixed image improves on the initialisation's; otherwise the pipeline falls back to the
    initialisation and says so. `model`: "affine" (official), "rigid" (rotation + translation fitted to the
    matches) or "rigid+affine" (rigid first; when accepted the moving image is re-aligned, re-matched, then affine).
    """

    query_stride_mm: float = 16.0  # official: every 8th voxel at 2 mm
    cycle_rounds: int = 5  # official find_point_in_vol_stable rounds
    score_threshold: float = 0.7  # mean of the heads' cosines (official: dot / 2 > 0.7)
    fit: Literal["lstsq", "huber"] = "lstsq"  # official lstsq (no robust weighting); huber = anatomy.robust_affine
    min_matches: int = 12  # below this, the best-scoring stable matches are used [inferred]
    mask_percentile: float = 20.0  # queries where the fixed intensity exceeds this percentile ("body mask") [inferred]
    search_radius_mm: float = 0.0  # 0 = whole image (official); > 0 restricts matches to a window [inferred]
    mind_search_radius_mm: float = 40.0  # window used with MIND-like features, which are not globally unique [inferred]
    model: Literal["affine", "rigid", "rigid+affine"] = "affine"
    check: bool = True  # apply the acceptance test below (off = the official behaviour: always accept)
    min_det: float = 0.25
    max_det: float = 4.0
    max_condition: float = 2.0
    inlier_mm: float = 10.0
    min_inliers: int = 8
    min_inlier_fraction: float = 0.5

    def __post_init__(self) -> None:
        _pos("query_stride_mm", self.query_stride_mm)
        check_int_at_least("cycle_rounds", self.cycle_rounds, 1)
        check_number_at_least("score_threshold", self.score_threshold, -1.0)
        check_number_at_least("search_radius_mm", self.search_radius_mm, 0.0)
        check_number_at_least("mind_search_radius_mm", self.mind_search_radius_mm, 0.0)
        check(self.fit in ("lstsq", "huber"), f"affine.fit: expected lstsq or huber, got {self.fit!r}")
        check_int_at_least("min_matches", self.min_matches, 4)
        check(
            self.model in ("affine", "rigid", "rigid+affine"),
            f"affine.model: expected affine, rigid or rigid+affine, got {self.model!r}",
        )
        _pos("min_det", self.min_det)
        check(self.max_det >= self.min_det, f"max_det: expected >= min_det ({self.min_det}), got {self.max_det!r}")
        check_number_at_least("max_condition", self.max_condition, 1.0)
        _pos("inlier_mm", self.inlier_mm)
        check_int_at_least("min_inliers", self.min_inliers, 3)
        check(
            0 <= self.min_inlier_fraction <= 1,
            f"min_inlier_fraction: expected [0, 1], got {self.min_inlier_fraction!r}",
        )
        check(0 <= self.mask_percentile < 100, f"mask_percentile: expected [0, 100), got {self.mask_percentile!r}")


@dataclass(frozen=True)
class CoarseConfig:
    """SAM-Coarse (docs/registration.md#the-method-as-implemented): a dense field on a coarse grid fitted to the
    matches by Adam."""

    stride: int = 16  # grid = working grid / 16 (official: image size / 16)
    iterations: int = 100  # official CLI default (function default 800)
    lr: float = 0.05  # Adam, in [-1, 1] units as the official code
    diffusion: float = 0.04  # weight of the mean squared forward differences ([-1, 1] units)

    def __post_init__(self) -> None:
        check_int_at_least("stride", self.stride, 1)
        check_int_at_least("iterations", self.iterations, 0)
        _pos("lr", self.lr)
        check_number_at_least("diffusion", self.diffusion, 0.0)


@dataclass(frozen=True)
class DeformNetConfig:
    """SAM-Deform (docs/registration.md#the-method-as-implemented): a VoxelMorph-style U-Net on the SAM correlation
    volume, SVF + scaling and squaring.

    [CPU] The whole network runs on the fine feature grid (half the working resolution); the official encoder sees
    the full-resolution images and joins the correlation at its first downsampled level.
    """

    channels: tuple[int, ...] = (16, 32, 32, 32)  # official encoder widths
    use_images: bool = True  # official: the pre-aligned moving and the fixed image enter beside the correlation
    int_steps: int = 7
    lncc_window: int = 5  # voxels of the feature grid (official 21 at 2 mm image resolution) [CPU]
    lncc_weight: float = 0.01  # official train_config_abdomen_wSAMLoss
    grad_weight: float = 10.0  # official voxelmorph Grad('l2', loss_mult=2) weight on the velocity (voxel units)
    lr: float = 1e-3  # official Adam 5e-5 for 200 epochs x 380 pairs; a CPU run affords ~100 steps [CPU]
    steps: int = 100
    train_pairs: int = 6  # random deformations of the atlas (training streams, never the test pairs)
    seed: int = 0

    def __post_init__(self) -> None:
        check(
            len(self.channels) >= 2 and all(isinstance(c, int) and c >= 1 for c in self.channels),
            f"channels: expected >= 2 positive integers, got {self.channels!r}",
        )
        check_int_at_least("int_steps", self.int_steps, 0)
        check_int_at_least("lncc_window", self.lncc_window, 1)
        check_number_at_least("lncc_weight", self.lncc_weight, 0.0)
        check_number_at_least("grad_weight", self.grad_weight, 0.0)
        _pos("lr", self.lr)
        check_int_at_least("steps", self.steps, 0)
        check_int_at_least("train_pairs", self.train_pairs, 1)


def _integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class ConvexIOConfig:
    """The convexAdam-family instance optimisation (`io.kind=convex_adam`, registration/convex_io.py,
    docs/registration.md#convex-adam-instance-optimisation). Units are voxels of the fixed feature grid (half the
    working grid: 6 mm at the default 3 mm working spacing). Defaults follow the convexAdam package
    (Siebert, Grossbroehmer, Hansen and Heinrich; `convexAdam.convex_adam_MIND`) where it has a counterpart and are
    [inferred] otherwise.
    """

    search: bool = True  # run the coupled convex discrete search (off: Adam alone, from the previous map)
    grid: int = 2  # control-point spacing (convexAdam grid_sp 6 image voxels = 3 feature voxels) [inferred]
    radius: int = 4  # half-width of the displacement cube, in steps (convexAdam disp_hw 4)
    step: int = 1  # feature voxels per displacement step (convexAdam: one control cell) [inferred]
    cost_smooth: int = 2  # 3^n box filters of the cost over the control points (convexAdam 2)
    coupling: tuple[float, ...] = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)  # convexAdam's schedule, per squared step
    inverse_consistent: bool = True  # convexAdam ic=True: forward and backward search, made inverse consistent
    ic_iterations: int = 15  # convexAdam 15
    levels: tuple[int, ...] = (2, 1)  # Adam levels: the feature grid pooled by these factors, coarse to fine [inferred]
    iterations: tuple[int, ...] = (40, 40)  # Adam iterations per level (convexAdam: one level, 80) [inferred]
    lr: float = 0.5  # Adam, level-voxel units (convexAdam 1) [inferred]
    lr_decay: bool = True  # cosine decay of lr to 0 over each level (convexAdam: constant) [inferred]
    diffusion: float = 0.6  # lambda x sum of mean squared forward differences (level voxels) [inferred], see below
    smooth_pools: int = 3  # 3^n average pools of the parameter every iteration, B-spline-like (convexAdam 3)

    def __post_init__(self) -> None:
        for name in ("grid", "step", "ic_iterations"):
            check_int_at_least(f"io.convex.{name}", getattr(self, name), 1)
        for name in ("radius", "cost_smooth", "smooth_pools"):
            check_int_at_least(f"io.convex.{name}", getattr(self, name), 0)
        check(
            all(_number(c) and c >= 0 for c in self.coupling),
            f"io.convex.coupling: expected non-negative numbers, got {self.coupling!r}",
        )
        check(
            all(_integer(f) and f >= 1 for f in self.levels),
            f"io.convex.levels: expected positive integers (pooling factors, coarse to fine), got {self.levels!r}",
        )
        check(
            len(self.iterations) == len(self.levels) and all(_integer(i) and i >= 0 for i in self.iterations),
            f"io.convex.iterations: expected {len(self.levels)} non-negative integers (one per level), "
            f"got {self.iterations!r}",
        )
        _pos("io.convex.lr", self.lr)
        check_number_at_least("io.convex.diffusion", self.diffusion, 0.0)
        check(self.search or len(self.levels) > 0, "io.convex: expected search=true or at least one Adam level")


@dataclass(frozen=True)
class IOConfig:
    """Instance optimisation (the `io` step). kind: "adam" (SAM-IO as the official code does it,
    docs/registration.md#the-method-as-implemented; `iterations` .. `diffusion` below) or "convex_adam" (a coupled
    convex discrete search, then multi-level Adam with diffusion regularisation, `convex`;
    docs/registration.md#convex-adam-instance-optimisation). `pca_channels` applies to both."""

    kind: Literal["adam", "convex_adam"] = "adam"
    iterations: int = 50
    lr: float = 0.05  # Adam, [-1, 1] units, eps 1e-4
    smooth_pools: int = 3  # 3x3x3 average pools of the parameter every iteration (and after upsampling)
    diffusion: float = 1000.0  # weight of the mean squared forward differences ([-1, 1] units)
    pca_channels: int = 32  # project wider descriptors (SAM: 256) to this many channels first; 0 = off [CPU]
    convex: ConvexIOConfig = field(default_factory=ConvexIOConfig)

    def __post_init__(self) -> None:
        check(self.kind in ("adam", "convex_adam"), f"io.kind: expected adam or convex_adam, got {self.kind!r}")
        check_int_at_least("iterations", self.iterations, 0)
        check_int_at_least("pca_channels", self.pca_channels, 0)
        _pos("lr", self.lr)
        check_int_at_least("smooth_pools", self.smooth_pools, 0)
        check_number_at_least("diffusion", self.diffusion, 0.0)


@dataclass(frozen=True)
class InitConfig:
    """The initial transform every method starts from (docs/registration.md#initialisation-and-checks) [inferred].

    kind: "moments" (candidates: identity, the centre-of-mass translation and the principal-axes rotations about
    it with det +1 and at most `max_rotation_deg`; the one with the highest similarity wins, so the result is never
    worse than identity by that measure), "com" (identity or the centre-of-mass translation, whichever is more
    similar) or "none" (identity). Moments are those of each image's foreground (Otsu threshold).
    """

    kind: Literal["moments", "com", "none"] = "moments"
    max_rotation_deg: float = 60.0
    margin_mm: float = 12.0  # the pre-aligned moving image covers the fixed working grid plus this margin

    def __post_init__(self) -> None:
        check(self.kind in ("moments", "com", "none"), f"init.kind: expected moments, com or none, got {self.kind!r}")
        check_number_at_least("max_rotation_deg", self.max_rotation_deg, 0.0)
        check_number_at_least("margin_mm", self.margin_mm, 0.0)


@dataclass(frozen=True)
class QualityConfig:
    """Checks that refuse a poor result (docs/registration.md#initialisation-and-checks) [inferred thresholds].

    A result is poor when the share of folded voxels (det J <= 0) inside the fixed foreground exceeds
    `max_folding_pct`, when the median det J there lies outside [min_det, max_det] (a reflection or a collapse),
    or when the similarity to the fixed image (`similarity`: "mind" = mean cosine of MIND-like descriptors, which
    compares across contrasts; "ncc" = normalised cross-correlation) is lower than the initialisation's by more
    than `tolerance`. The CLI exits 3 on a poor result unless --accept-poor is given.
    """

    similarity: Literal["mind", "ncc"] = "mind"
    max_folding_pct: float = 1.0
    min_det: float = 0.25
    max_det: float = 4.0
    tolerance: float = 0.01

    def __post_init__(self) -> None:
        check(self.similarity in ("mind", "ncc"), f"quality.similarity: expected mind or ncc, got {self.similarity!r}")
        check_number_at_least("max_folding_pct", self.max_folding_pct, 0.0)
        _pos("min_det", self.min_det)
        check(self.max_det >= self.min_det, f"max_det: expected >= min_det ({self.min_det}), got {self.max_det!r}")
        check_number_at_least("tolerance", self.tolerance, 0.0)


@dataclass(frozen=True)
class RegistrationConfig:
    """The SAME++ pipeline: which steps, on which features, at which working spacing."""

    steps: tuple[str, ...] = STEPS
    spacing_mm: float = 3.0  # working grid (official 2 mm; 3 mm on CPU) [CPU]
    features: FeatureConfig = field(default_factory=FeatureConfig)
    affine: AffineConfig = field(default_factory=AffineConfig)
    coarse: CoarseConfig = field(default_factory=CoarseConfig)
    deform: DeformNetConfig = field(default_factory=DeformNetConfig)
    io: IOConfig = field(default_factory=IOConfig)
    init: InitConfig = field(default_factory=InitConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    label_mode: Literal["nearest", "onehot"] = "nearest"
    threads: int = 0  # torch threads; 0 = leave as is

    def __post_init__(self) -> None:
        bad = [s for s in self.steps if s not in STEPS]
        check(not bad and len(self.steps) > 0, f"steps: expected a subset of {', '.join(STEPS)}, got {self.steps!r}")
        _pos("spacing_mm", self.spacing_mm)
        check(
            self.label_mode in ("nearest", "onehot"), f"label_mode: expected nearest or onehot, got {self.label_mode!r}"
        )
        check_int_at_least("threads", self.threads, 0)


@dataclass(frozen=True)
class DeformTrainConfig:
    """`tailorkit register train CONFIG.yaml`: train the deformation network on random deformations of a scan.

    `model` is a SAM model.pt (`tailorkit anatomy train`); empty = MIND-like features. `atlas` is the training scan;
    empty = the MNI152 T1 (offline). The run keeps a resume point beside its output (`train_state_<key>.pt`, every
    `checkpoint_every` steps): the same command continues an interrupted run exactly.
    """

    model: Path | None = None
    atlas: Path | None = None
    registration: RegistrationConfig = field(default_factory=RegistrationConfig)
    max_disp_mm: float = 8.0  # random SVF of the training pairs
    rotate_deg: float = 10.0
    translate_mm: float = 8.0
    checkpoint_every: int = 25  # steps between resume points (DIR/train_state_<key>.pt); 0 = only at the end

    def __post_init__(self) -> None:
        for name in ("max_disp_mm", "rotate_deg", "translate_mm"):
            check_number_at_least(name, getattr(self, name), 0.0)
        check_int_at_least("checkpoint_every", self.checkpoint_every, 0)


@dataclass(frozen=True)
class BenchConfig:
    """`tailorkit bench registration` (docs/registration.md#the-benchmark): known-transform pairs of MNI152 + AAL.

    `peer_init`: the peers start from the registration's initialisation (`registration.init`) like SAME++ does.
    """

    quick_spacing_mm: float = 3.0
    full_spacing_mm: float = 2.0
    quick_pairs_per_tier: int = 2
    pairs_per_tier: int = 5
    quick_sam_steps: int = 150
    full_sam_steps: int = 1000
    sam: SAMTrainConfig = field(default_factory=SAMTrainConfig)
    registration: RegistrationConfig = field(default_factory=RegistrationConfig)
    easy: tuple[float, float, float, float] = (8.0, 0.08, 6.0, 6.0)  # rotate deg, scale, translate mm, SVF mm
    hard: tuple[float, float, float, float] = (15.0, 0.10, 12.0, 12.0)
    peers: tuple[str, ...] = ("ants_affine", "ants_syn", "sitk_demons", "elastix", "convexadam")
    quick_deform_steps: int = 60  # quick mode: deformation-network steps and training pairs [CPU]
    quick_deform_pairs: int = 4
    quick_elastix_iterations: int = 64  # quick mode only (elastix default 256 per resolution; ~90 CPU-s per pair)
    # [CPU] quick mode only: elastix's step-size estimation (ASGDParameterEstimationMethod). Its default, Original,
    # is computed per resolution whatever the iterations; DisplacementDistribution, elastix's faster method, halved
    # elastix's CPU time on one pair at equal or better Dice (docs/registration.md#the-benchmark). Full mode: Original.
    quick_elastix_estimation: Literal["Original", "DisplacementDistribution"] = "DisplacementDistribution"
    workers: int = 2  # processes sharing the jobs (training, SAME++ / MIND per tier, each peer on each pair)
    threads: int = 1
    peer_init: bool = True
    use_cache: bool = True  # load the SAM embedding / deformation network from $TAILORKIT_HOME/registration/
    # [inferred] claim `mindcvx_matches_convexadam`: "matches" = Dice not below the convexAdam peer's by more than this
    convex_margin_dice: float = 0.02
    # Landmark confidence (issue 26 item 4; anatomy/calibration.py): the SAM matcher that locates the landmarks, the
    # validation pairs per tier that choose the confidence definition, the error classes, the claim's AUC, the bins.
    landmark_matcher: Literal["nn", "cycle", "fixed_point"] = "nn"
    landmark_val_pairs: int = 1
    landmark_good_mm: float = 5.0
    landmark_bad_mm: float = 15.0
    landmark_auc_target: float = 0.8
    landmark_bins: int = 5

    def __post_init__(self) -> None:
        for name in ("quick_spacing_mm", "full_spacing_mm"):
            _pos(name, getattr(self, name))
        for name in ("quick_pairs_per_tier", "pairs_per_tier", "quick_sam_steps", "full_sam_steps", "workers"):
            check_int_at_least(name, getattr(self, name), 1)
        check_int_at_least("threads", self.threads, 0)
        check_number_at_least("convex_margin_dice", self.convex_margin_dice, 0.0)
        estimations = ("Original", "DisplacementDistribution")
        check(
            self.quick_elastix_estimation in estimations,
            "quick_elastix_estimation: expected Original or DisplacementDistribution, "
            f"got {self.quick_elastix_estimation!r}",
        )
        matchers = ("nn", "cycle", "fixed_point")
        check(
            self.landmark_matcher in matchers,
            f"landmark_matcher: expected nn, cycle or fixed_point, got {self.landmark_matcher!r}",
        )
        check_int_at_least("landmark_val_pairs", self.landmark_val_pairs, 1)
        check_int_at_least("landmark_bins", self.landmark_bins, 1)
        _pos("landmark_good_mm", self.landmark_good_mm)
        check(
            self.landmark_bad_mm > self.landmark_good_mm,
            f"landmark_bad_mm: expected > landmark_good_mm ({self.landmark_good_mm}), got {self.landmark_bad_mm!r}",
        )
