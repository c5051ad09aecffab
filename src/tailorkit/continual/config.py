"""Settings of a self-supervised class-incremental run, as frozen dataclasses (YAML/TOML + key=value overrides).

Every detail the CPPF abstract (arXiv:2311.08764) leaves open is a setting here, with the default of our specification
(docs/continual.md#the-method-as-implemented). Nothing below is "as in the paper": the paper's full text was not
available; docs/continual.md#inferred-details lists the inferred parts and the CPU-scale choices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from tailorkit.core.config import check, check_int_at_least, check_number_at_least

DatasetName = Literal["glyphs", "fashion_mnist", "mnist_5k", "folder", "domains"]
DOMAINS: tuple[str, ...] = ("glyphs", "fashion_mnist", "mnist_5k", "opencv_digits")


def _positive_int(name: str, value: object) -> None:
    check_int_at_least(name, value, 1)


def _nonneg(name: str, value: object) -> None:
    check_number_at_least(name, value, 0.0)


@dataclass(frozen=True)
class DataConfig:
    """Which images, how many classes per phase, and at what size.

    Attributes:
        dataset: "glyphs" (procedural, from matplotlib's fonts), "fashion_mnist", "mnist_5k" (offline assets) or
            "folder" (a CIFAR-100 / ImageNet-100 style `root/{train,test}/<class>/<image>` tree at `root`), or
            "domains": one visual domain per phase (`domains`), so that every phase shifts in style as well as in
            classes. [inferred benchmark design, not from the paper]
        domains: dataset="domains" only: the domains, one per phase (phases must equal their number), each giving
            n_classes / phases classes of its own: "glyphs" (glyph characters class_offset.., all fonts, dark on
            light), "fashion_mnist", "mnist_5k", "opencv_digits" (OpenCV's digits.png; light on dark, unlike MNIST's
            stroke and framing). Class ids are domain-major (domain d holds ids d*k .. d*k + k - 1); the class order
            permutes which domain comes in which phase.
        root: Folder for dataset="folder".
        n_classes: Classes used (the first n of the class set; glyphs has up to 100).
        phases: Number of phases T; classes are split evenly along the class order.
        train_per_class: Training images per class (unlabelled during SSL training; labelled for the probe).
        test_per_class: Test images per class.
        image_size: Side of the square gray image the encoder sees.
        phase_styles: Glyphs only: render each phase's classes in their own font group and polarity, so consecutive
            phases differ in style as well as in content (without a shift, fine-tuning barely forgets at
            CPU scale: docs/continual.md#inferred-details). [inferred benchmark design, not from the paper]
        probe_per_class: Labelled training images per seen class used by the linear probe and kNN bank (<= train).
        class_offset: Glyphs only: use characters class_offset .. class_offset + n_classes - 1. The bench's
            settings were chosen on a held-out class split (offset 40), never on the classes it reports.
    """

    dataset: DatasetName = "glyphs"
    root: str = ""
    n_classes: int = 40
    phases: int = 4
    train_per_class: int = 200
    test_per_class: int = 60
    image_size: int = 24
    phase_styles: bool = True
    probe_per_class: int = 100
    class_offset: int = 0
    domains: tuple[str, ...] = DOMAINS

    def __post_init__(self) -> None:
        ok = self.dataset in ("glyphs", "fashion_mnist", "mnist_5k", "folder", "domains")
        check(ok, f"dataset: expected glyphs, fashion_mnist, mnist_5k, folder or domains, got {self.dataset!r}")
        check(self.dataset != "folder" or bool(self.root), "root: expected a folder when dataset='folder', got ''")
        for name in ("n_classes", "phases", "train_per_class", "test_per_class", "probe_per_class"):
            _positive_int(name, getattr(self, name))
        check(
            self.n_classes % self.phases == 0,
            f"n_classes: expected a multiple of phases={self.phases}, got {self.n_classes}",
        )
        check(self.n_classes >= 2 * self.phases, f"n_classes: expected >= 2 per phase, got {self.n_classes}")
        check(
            isinstance(self.image_size, int) and 12 <= self.image_size <= 64,
            f"image_size: expected 12..64, got {self.image_size!r}",
        )
        check(self.probe_per_class <= self.train_per_class, "probe_per_class: expected <= train_per_class")
        ok = isinstance(self.class_offset, int) and self.class_offset >= 0
        check(ok, f"class_offset: expected an int >= 0, got {self.class_offset!r}")
        if self.dataset == "domains":
            bad = [d for d in self.domains if d not in DOMAINS]
            check(not bad, f"domains: expected names from {DOMAINS}, got {list(self.domains)!r}")
            check(len(set(self.domains)) == len(self.domains), f"domains: expected no repeats, got {self.domains!r}")
            check(
                len(self.domains) == self.phases,
                f"phases: dataset='domains' needs one phase per domain ({len(self.domains)}), got {self.phases}",
            )
            check(
                self.n_classes // self.phases <= 10,
                f"n_classes: at most 10 per domain (the digit and Fashion-MNIST domains have 10), got {self.n_classes}",
            )


@dataclass(frozen=True)
class ModelConfig:
    """The small conv encoder (CPU scale) and its heads.

    Attributes:
        width: Channels of the first conv block (blocks have width, 2*width, 4*width; feature dim 4*width).
        proj_hidden: Projector hidden units.
        proj_dim: Projector output (the embedding space where prototypes live).
        pred_hidden: Hidden units of the predictors (BYOL/SimSiam head, CaSSLe/PFR distillation predictors).
    """

    width: int = 16
    proj_hidden: int = 128
    proj_dim: int = 64
    pred_hidden: int = 128

    def __post_init__(self) -> None:
        for name in ("width", "proj_hidden", "proj_dim", "pred_hidden"):
            _positive_int(name, getattr(self, name))


@dataclass(frozen=True)
class SSLConfig:
    """The self-supervised loss every strategy trains with.

    Attributes:
        loss: Registered SSL loss: "simclr" (default), "byol", "simsiam" or "barlow".
        temperature: SimCLR temperature (CaSSLe's 0.2).
        byol_momentum: EMA momentum of the BYOL target network.
        barlow_lambda: Off-diagonal weight of Barlow Twins.
    """

    loss: str = "simclr"
    temperature: float = 0.2
    byol_momentum: float = 0.99
    barlow_lambda: float = 5e-3

    def __post_init__(self) -> None:
        check(self.temperature > 0, f"temperature: expected > 0, got {self.temperature!r}")
        check(0 <= self.byol_momentum < 1, f"byol_momentum: expected [0, 1), got {self.byol_momentum!r}")
        _nonneg("barlow_lambda", self.barlow_lambda)


@dataclass(frozen=True)
class CPPFConfig:
    """CPPF's three modules, each switchable for ablation (all inferred: docs/continual.md#the-method-as-implemented).

    Attributes:
        pc: Prototype clustering: learn this phase's prototype slice by SwAV-style swapped prediction with
            Sinkhorn-Knopp assignments; earlier slices are frozen, later ones reserved (fixed since initialisation).
        esr: Embedding-space reserving: push features off the reserved (future) prototypes: a logsumexp term
            over them plus ||P_res z||^2, and pull each feature to its nearest current prototype.
        mtd_past: Past teacher: CaSSLe-style predictor distillation to the frozen end-of-previous-phase model.
        mtd_present: Present teacher: a copy of the student trained on the phase's data with the SSL loss alone for
            `present_fraction` of the phase's steps, then frozen; its in-batch relations are distilled (row-wise KL).
        prototypes_per_phase: K; M = K * phases prototypes in all.
        proto_init: "orthogonal" (random orthonormal rows when M <= proj_dim, else random unit vectors) or "random".
        proto_temperature: Temperature of prototype scores (SwAV's 0.1).
        sinkhorn_iters: Sinkhorn-Knopp iterations; sinkhorn_eps its entropic regularisation.
        lambda_pc, lambda_res, lambda_past, lambda_rel: Loss weights.
        esr_pull: Weight of the pull to the nearest current prototype inside the ESR term.
        rel_temperature: Temperature of the relation distillation softmax.
        present_fraction: Present-teacher training steps as a fraction of the phase's steps (the teacher schedule:
            the teacher trains first, then is frozen and distilled at `lambda_rel` for the whole phase).
        reserve_fraction: The largest fraction of the projection space the reserving terms (PC's log-mean-exp,
            ESR's projection energy) keep free: in phase t they act on the first
            min(K (T - 1 - t), round(reserve_fraction * proj_dim)) future prototypes (the next phases' first;
            orthonormal, so each is one masked dimension). 0 switches reserving off; any value >= K (T - 1) /
            proj_dim reserves every future prototype (30 of 64 dimensions in phase 1 with K = 10, T = 4: 0.47).
    """

    pc: bool = True
    esr: bool = True
    mtd_past: bool = True
    mtd_present: bool = True
    prototypes_per_phase: int = 10
    proto_init: Literal["orthogonal", "random"] = "orthogonal"
    proto_temperature: float = 0.1
    sinkhorn_iters: int = 3
    sinkhorn_eps: float = 0.05
    lambda_pc: float = 0.5
    lambda_res: float = 0.1
    lambda_past: float = 1.0
    lambda_rel: float = 1.0
    esr_pull: float = 0.5
    rel_temperature: float = 0.1
    present_fraction: float = 0.5
    reserve_fraction: float = 1.0

    def __post_init__(self) -> None:
        _positive_int("prototypes_per_phase", self.prototypes_per_phase)
        check(0 <= self.reserve_fraction <= 1, f"reserve_fraction: expected [0, 1], got {self.reserve_fraction!r}")
        _positive_int("sinkhorn_iters", self.sinkhorn_iters)
        for name in ("lambda_pc", "lambda_res", "lambda_past", "lambda_rel", "esr_pull"):
            _nonneg(name, getattr(self, name))
        for name in ("proto_temperature", "sinkhorn_eps", "rel_temperature"):
            check(getattr(self, name) > 0, f"{name}: expected > 0, got {getattr(self, name)!r}")
        check(0 < self.present_fraction <= 2, f"present_fraction: expected (0, 2], got {self.present_fraction!r}")
        check(self.proto_init in ("orthogonal", "random"), f"proto_init: got {self.proto_init!r}")


@dataclass(frozen=True)
class StrategyConfig:
    """The continual strategy and its baseline weights.

    Attributes:
        name: Registered strategy: "cppf", "finetune", "cassle", "pfr", "joint" or "random_init".
        lambda_distill: CaSSLe distillation weight (CaSSLe: 1 for contrastive losses).
        lambda_pfr: PFR feature-regularisation weight.
        cppf: CPPF's modules and weights.
    """

    name: str = "finetune"
    lambda_distill: float = 1.0
    lambda_pfr: float = 1.0
    cppf: CPPFConfig = field(default_factory=CPPFConfig)

    def __post_init__(self) -> None:
        _nonneg("lambda_distill", self.lambda_distill)
        _nonneg("lambda_pfr", self.lambda_pfr)


@dataclass(frozen=True)
class OptimConfig:
    """Training budget per phase (the project's `core.train` loop runs it).

    Attributes:
        steps_per_phase: Optimizer steps per phase (Joint takes the same number of steps on more data).
        batch_size: Images per step (two augmented views each).
        lr, weight_decay, warmup_steps, schedule: AdamW settings, restarted each phase.
    """

    steps_per_phase: int = 150
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 10
    schedule: Literal["constant", "linear", "cosine"] = "cosine"

    def __post_init__(self) -> None:
        _positive_int("steps_per_phase", self.steps_per_phase)
        _positive_int("batch_size", self.batch_size)
        check(self.lr > 0, f"lr: expected > 0, got {self.lr!r}")
        _nonneg("weight_decay", self.weight_decay)
        check(0 <= self.warmup_steps <= self.steps_per_phase, "warmup_steps: expected 0..steps_per_phase")


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation after every phase, on all classes seen so far.

    Attributes:
        knn_k: Neighbours (20, as in the CaSSLe/solo-learn protocol).
        knn_temperature: Weight exp(cos / T) per neighbour.
        probe_iters: LBFGS iterations of the linear probe (standardised features, offline probe).
        probe_l2: L2 penalty of the probe.
    """

    knn_k: int = 20
    knn_temperature: float = 0.1
    probe_iters: int = 100
    probe_l2: float = 1e-3

    def __post_init__(self) -> None:
        _positive_int("knn_k", self.knn_k)
        _positive_int("probe_iters", self.probe_iters)
        check(self.knn_temperature > 0, "knn_temperature: expected > 0")
        _nonneg("probe_l2", self.probe_l2)


@dataclass(frozen=True)
class RunConfig:
    """One continual run: data, model, SSL loss, strategy, budget, evaluation.

    Attributes:
        seed: Seeds data rendering, initialisation, augmentation and training order.
        order: Class-order index: the class order is a permutation derived from (seed, order); order 0 is also a
            permutation (never the natural order), so different orders are different permutations.
        threads: torch threads to use (0 = leave torch's setting alone).
    """

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    ssl: SSLConfig = field(default_factory=SSLConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    seed: int = 0
    order: int = 0
    threads: int = 0

    def __post_init__(self) -> None:
        check(isinstance(self.seed, int) and self.seed >= 0, f"seed: expected an int >= 0, got {self.seed!r}")
        check(isinstance(self.order, int) and self.order >= 0, f"order: expected an int >= 0, got {self.order!r}")
        check(
            isinstance(self.threads, int) and self.threads >= 0, f"threads: expected an int >= 0, got {self.threads!r}"
        )
