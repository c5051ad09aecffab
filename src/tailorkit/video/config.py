"""Settings of the video subsystem as frozen dataclasses (YAML/TOML + key=value overrides).

Every inferred detail of SiF (arXiv:2308.04828; only the abstract is available) is an option of
:class:`tailorkit.video.model.ArmSpec`; the run-level settings below say which data, which arm and how to train.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tailorkit.core.config import check, check_int_at_least
from tailorkit.video.shapes import MOTIONS, SHAPES
from tailorkit.video.train import OptimSettings

__all__ = ["DataConfig", "ShapesConfig", "TrainRunConfig"]


@dataclass(frozen=True)
class ShapesConfig:
    """MotionShapes generator settings (tailorkit.video.shapes.MotionShapes).

    Attributes:
        base_shapes: Shapes whose (shape, motion) classes are trained and tested few-shot.
        novel_shapes: Held-out shapes for the base-to-novel zero-shot test.
        speed, spin, growth: Per-frame translation (fraction of the frame), rotation (radians), log-scale change.
        background: ``flat`` (one dimmed colour) or ``photo`` (a dimmed photo crop; much harder for the frozen
            tower at CPU resolution, see docs/video.md).
    """

    base_shapes: tuple[str, ...] = ("square", "triangle", "star")
    novel_shapes: tuple[str, ...] = ("arrow",)
    speed: float = 0.05
    spin: float = 0.25
    growth: float = 0.09
    background: str = "flat"

    def __post_init__(self) -> None:
        for s in (*self.base_shapes, *self.novel_shapes):
            check(s in SHAPES, f"shapes: expected names from {SHAPES}, got {s!r}")
        check(bool(self.base_shapes), "base_shapes: expected at least one shape")
        check(not set(self.base_shapes) & set(self.novel_shapes), "novel_shapes: must not overlap base_shapes")
        check(self.background in ("flat", "photo"), f"background: expected 'flat' or 'photo', got {self.background!r}")

    @property
    def n_motions(self) -> int:
        return len(MOTIONS)


@dataclass(frozen=True)
class DataConfig:
    """Where clips come from and how frames are sampled and preprocessed.

    Attributes:
        kind: ``shapes`` (MotionShapes) or ``folder`` (``root/<class_name>/<clip>.mp4`` with ``splits_csv``).
        root, splits_csv, train_split, test_split: Folder data (CSV columns ``path,label,split``).
        frames: T, frames per clip.
        size: Frame side fed to the image tower (and rendered, for MotionShapes).
        sampling: ``uniform`` or ``segment`` (tailorkit.video.io.sample_indices).
        train_per_class, test_per_class: MotionShapes clips per class.
        shapes: MotionShapes settings.
    """

    kind: str = "shapes"
    root: str = ""
    splits_csv: str = ""
    train_split: str = "train"
    test_split: str = "test"
    frames: int = 8
    size: int = 64
    sampling: str = "uniform"
    train_per_class: int = 8
    test_per_class: int = 6
    shapes: ShapesConfig = field(default_factory=ShapesConfig)

    def __post_init__(self) -> None:
        check(self.kind in ("shapes", "folder"), f"kind: expected 'shapes' or 'folder', got {self.kind!r}")
        check(self.kind != "folder" or bool(self.root), "root: expected a folder when kind='folder', got ''")
        check_int_at_least("frames", self.frames, 2)
        check(
            16 <= self.size <= 512 and self.size % 2 == 0, f"size: expected an even number in 16..512, got {self.size}"
        )
        check(self.sampling in ("uniform", "segment"), f"sampling: expected uniform|segment, got {self.sampling!r}")
        check_int_at_least("train_per_class", self.train_per_class, 1)
        check_int_at_least("test_per_class", self.test_per_class, 1)


@dataclass(frozen=True)
class TrainRunConfig:
    """`tailorkit video train CONFIG.yaml`: one arm on one dataset.

    Attributes:
        method: A registered arm (tailorkit.video.methods: sif, motion_dynamic, motion_static, coop_mean,
            coop_temporal, finetune_top, zero_shot).
        dynamic: Override of the arm's dynamic-prompt mode (``context``, ``after``, ``none``); empty = the arm's.
        shots: Training clips per class (0 = all of the training split).
        data, optim: Data and optimiser settings.
        seed: Seeds data generation, the few-shot draw and initialisation.
        threads: torch threads (0 = leave as is).
        cache_dir: Feature cache folder (empty = tailorkit_home()/video-features).
    """

    method: str = "sif"
    dynamic: str = ""
    shots: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimSettings = field(default_factory=OptimSettings)
    seed: int = 0
    threads: int = 0
    cache_dir: str = ""

    def __post_init__(self) -> None:
        check(
            self.dynamic in ("", "context", "after", "none"),
            f"dynamic: expected context|after|none|'', got {self.dynamic!r}",
        )
        from tailorkit.video.methods import METHODS

        METHODS.get(self.method)  # an unknown name raises, listing the valid ones, before anything is written
        check_int_at_least("shots", self.shots, 0)
        check_int_at_least("threads", self.threads, 0)
