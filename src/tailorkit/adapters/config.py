"""Settings of a multi-task dense PETL run, as frozen dataclasses (YAML/TOML + key=value overrides).

Every VMT-Adapter detail the paper's available text leaves open is a setting here with a reconstructed default;
docs/adapters.md#the-method-as-implemented marks each as [inferred].
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from tailorkit.adapters.tasks import TASKS
from tailorkit.core.config import check, check_int_at_least, check_number_at_least


def _positive_int(name: str, value: object) -> None:
    check_int_at_least(name, value, 1)


def _nonneg(name: str, value: object) -> None:
    check_number_at_least(name, value, 0.0)


_DEFAULT_R = 8  # MethodConfig.r


def _one_of(name: str, value: object, allowed: tuple[str, ...]) -> None:
    check(value in allowed, f"{name}: expected one of {', '.join(allowed)}, got {value!r}")


@dataclass(frozen=True)
class DataConfig:
    """Which scenes and tasks.

    Attributes:
        source: "synthcontext" (the procedural generator) or "pascal_context" (the ASTMT folder layout at ``root``).
        root: PASCAL-Context multi-task folder for source="pascal_context".
        tasks: Dense tasks, a subset of semseg, parts, saliency, normals, depth, edges.
        image_size: Square side of the images the network sees.
        n_train, n_test: Scenes per split (synthcontext); the test scenes use a disjoint seed stream.
        textures: "photos" (real OpenCV photos, default) or "procedural" (no asset needed).
        max_objects: Primitives per scene, 1..max_objects.
    """

    source: Literal["synthcontext", "pascal_context"] = "synthcontext"
    root: str = ""
    tasks: tuple[str, ...] = ("semseg", "parts", "saliency", "normals")
    image_size: int = 64
    n_train: int = 800
    n_test: int = 200
    textures: Literal["photos", "procedural"] = "photos"
    max_objects: int = 4

    def __post_init__(self) -> None:
        check(len(self.tasks) >= 1, "tasks: expected at least one task")
        for task in self.tasks:
            check(task in TASKS, f"tasks: expected names from {', '.join(TASKS)}, got {task!r}")
        check(len(set(self.tasks)) == len(self.tasks), f"tasks: expected distinct names, got {self.tasks}")
        check(self.source != "pascal_context" or bool(self.root), "root: expected a folder for pascal_context")
        check(
            isinstance(self.image_size, int) and self.image_size >= 32 and self.image_size % 32 == 0,
            f"image_size: expected a multiple of 32 (>= 32), got {self.image_size!r}",
        )
        for name in ("n_train", "n_test", "max_objects"):
            _positive_int(name, getattr(self, name))


@dataclass(frozen=True)
class BackboneConfig:
    """The frozen pretrained backbone.

    Attributes:
        name: "efficientnet_lite0" (real ImageNet weights), "vit" or "swin" (small, random init: shapes for a
            user's own weights).
        pretrained: EfficientNet only: load the ImageNet weights (False: random init, for tests).
        vit_dim, vit_depth, vit_patch: ViT size.
        weights: A safetensors file with the slot backbone's state dict, loaded strictly in place of the
            initialisation ("" : none). EfficientNet then skips its ImageNet weights.
    """

    name: Literal["efficientnet_lite0", "vit", "swin"] = "efficientnet_lite0"
    pretrained: bool = True
    vit_dim: int = 96
    vit_depth: int = 6
    vit_patch: int = 8
    weights: str = ""

    def __post_init__(self) -> None:
        for name in ("vit_dim", "vit_depth", "vit_patch"):
            _positive_int(name, getattr(self, name))


@dataclass(frozen=True)
class MethodConfig:
    """The method, every reconstructed VMT knob (docs/adapters.md#the-method-as-implemented), the baselines' sizes.

    Attributes:
        name: A registered method (``tailorkit.adapters.METHODS``).
        r: Adapter bottleneck width (VMT, shared and per-task adapters). 8 puts VMT at ~1 % of EfficientNet-Lite0.
        act: Bottleneck activation ("relu" as AdaptFormer, or "gelu").
        scale: Scale s of the shared adapter output (AdaptFormer's 0.1).
        learn_scale: Make s a learnable per-channel vector (initialised to ``scale``).
        task_module: VMT's task-specific knowledge extraction on the bottleneck: "scale_shift" (gamma, beta in R^r,
            init 1, 0), "linear" (r x r, init identity), "gate" (SE-style sigmoid gate), "lowrank_up" (each task its
            own zero-init r x d_out up-projection in place of the shared W_up) or "none" (the shared adapter
            ablation: task features = generic features).
        task_scale: Initial scale s_t of each task side output (learnable scalar per slot and task).
        task_feature_source: "all_blocks_in_stage" (sum side outputs of every block of a stage whose width matches
            the stage map) or "last_block" (only the last block of each stage, MTLoRA-like).
        placement: VMT adapters parallel to the whole block ("block") or one parallel to each block's expansion
            and projection layer ("conv": EfficientNet's expand / project 1x1 convs, the ViT MLP's fc1 / fc2; the
            projection adapter carries the task modules). VMT family only.
        budget_pct: 0 (off): the width is ``r``. Above 0: the width is derived, the largest r whose VMT parameter
            count (methods/vmt.py, vmt_parameter_count) is at most budget_pct % of the backbone's parameters, for
            the run's number of tasks; ``r`` must then stay at its default. VMT family only.
        combine: How side outputs meet the stage map: "add", "replace_generic" (F + sum(h_t - s g)) or "concat".
        insert_last: Insert adapters only in the last N blocks (0: every block).
        share_mode: "none" (VMT) or "transpose" (VMT-Lite: W_up = W_down^T with a channel cycle where widths
            differ, plus a learnable per-channel scale initialised to 0 and an up bias).
        lora_rank, lora_alpha: LoRA rank and alpha (scaling alpha / rank).
        lora_targets: Module-name suffixes LoRA wraps (Linear layers and 1x1 convs).
        prompt_len: VPT-deep prompt tokens per block.
        hyper_dim: Hyperformer-lite task / layer embedding width.
    """

    name: str = "vmt"
    r: int = _DEFAULT_R
    act: Literal["relu", "gelu"] = "relu"
    scale: float = 0.1
    learn_scale: bool = False
    task_module: Literal["scale_shift", "linear", "gate", "lowrank_up", "none"] = "scale_shift"
    task_scale: float = 0.1
    task_feature_source: Literal["all_blocks_in_stage", "last_block"] = "all_blocks_in_stage"
    placement: Literal["block", "conv"] = "block"
    budget_pct: float = 0.0
    combine: Literal["add", "replace_generic", "concat"] = "add"
    insert_last: int = 0
    share_mode: Literal["none", "transpose"] = "none"
    lora_rank: int = 4
    lora_alpha: float = 8.0
    lora_targets: tuple[str, ...] = ("qkv", "fc1", "fc2", "_expand_conv", "_project_conv")
    prompt_len: int = 4
    hyper_dim: int = 8

    def __post_init__(self) -> None:
        for name in ("r", "lora_rank", "prompt_len", "hyper_dim"):
            _positive_int(name, getattr(self, name))
        _nonneg("scale", self.scale)
        _nonneg("task_scale", self.task_scale)
        _nonneg("lora_alpha", self.lora_alpha)
        check(isinstance(self.insert_last, int) and self.insert_last >= 0, "insert_last: expected an int >= 0")
        _one_of("task_module", self.task_module, ("scale_shift", "linear", "gate", "lowrank_up", "none"))
        _one_of("task_feature_source", self.task_feature_source, ("all_blocks_in_stage", "last_block"))
        _one_of("placement", self.placement, ("block", "conv"))
        _nonneg("budget_pct", self.budget_pct)
        vmt_family = ("vmt", "vmt_lite", "shared_adapter")
        for key, default in (("placement", "block"), ("budget_pct", 0.0)):
            value = getattr(self, key)
            check(
                value == default or self.name in vmt_family,
                f"{key}: used by {', '.join(vmt_family)} only; expected {default!r} for method {self.name!r}, "
                f"got {value!r}",
            )
        check(
            self.budget_pct == 0 or self.r == _DEFAULT_R,
            f"r: unused when budget_pct is set (the width is derived from the budget); "
            f"expected {_DEFAULT_R}, got {self.r!r}",
        )


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with a linear warm-up ramp multiplying a cosine decay over all steps (MTLoRA's recipe, scaled down),
    trained by tailorkit.core.train (docs/adapters.md#training-coretrain).

    Attributes:
        lr: Learning rate of everything but a fine-tuned backbone (adapters, prompts, decoders). 1e-2 was chosen
            over 1e-3 and 3e-3 for VMT at 150 steps on validation scenes (seed 1000), never the bench's test scenes.
        full_ft_lr: Learning rate of fine-tuned backbone weights (full fine-tuning methods); 1e-3 was chosen over
            2e-4 for single-task full fine-tuning on the same validation scenes.
        weight_decay: AdamW's decoupled weight decay, on every trainable parameter.
        warmup_steps: The ramp min(1, (s + 1) / warmup_steps) that multiplies the cosine (0: none).
        grad_clip: Gradient-norm clipping (0: none).
    """

    steps: int = 300
    batch_size: int = 16
    lr: float = 1e-2
    full_ft_lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_steps: int = 20
    grad_clip: float = 5.0

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size"):
            _positive_int(name, getattr(self, name))
        check_int_at_least("warmup_steps", self.warmup_steps, 0)
        check(
            isinstance(self.lr, int | float) and not isinstance(self.lr, bool) and self.lr > 0,
            f"lr: expected a number > 0, got {self.lr!r}",
        )
        for name in ("full_ft_lr", "weight_decay", "grad_clip"):
            _nonneg(name, getattr(self, name))


@dataclass(frozen=True)
class TrainConfig:
    """One training run: data, backbone, method, decoder width, optimiser.

    Attributes:
        decoder_width: Channels of each task's light decoder.
        threads: torch threads (0: leave torch's default).
    """

    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    decoder_width: int = 32
    threads: int = 0

    def __post_init__(self) -> None:
        _positive_int("decoder_width", self.decoder_width)
        check(isinstance(self.threads, int) and self.threads >= 0, "threads: expected an int >= 0")
