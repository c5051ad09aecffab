"""Settings of a multi-task dense PETL run, as frozen dataclasses (YAML/TOML + key=value overrides).

`MethodConfig` holds the method's name and its own options dataclass, declared where the method is registered
(tailorkit.adapters.methods): every VMT-Adapter detail the paper's available text leaves open is an option there
with a reconstructed default; docs/adapters.md#the-method-as-implemented marks each as [inferred].
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal, TypeVar

from tailorkit.adapters.methods import METHODS
from tailorkit.adapters.tasks import TASKS
from tailorkit.core.config import (
    ConfigError,
    check,
    check_int_at_least,
    check_number_at_least,
    lift_options,
    method_options,
    options_as,
    to_dict,
)
from tailorkit.core.registry import RegistryError

OptionsT = TypeVar("OptionsT")


def _positive_int(name: str, value: object) -> None:
    check_int_at_least(name, value, 1)


def _nonneg(name: str, value: object) -> None:
    check_number_at_least(name, value, 0.0)


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


# The flat MethodConfig before options were per method (issue 23): every field with its default. Configs written then
# (run manifests, `to_dict` dumps) list all of them whatever the method; a flat key the method lacks is accepted only
# at this default (it was never read), any other value is an error naming the option, the method and its options.
LEGACY_FLAT_DEFAULTS: dict[str, object] = {
    "r": 8,
    "act": "relu",
    "scale": 0.1,
    "learn_scale": False,
    "task_module": "scale_shift",
    "task_scale": 0.1,
    "task_feature_source": "all_blocks_in_stage",
    "placement": "block",
    "budget_pct": 0.0,
    "combine": "add",
    "insert_last": 0,
    "share_mode": "none",
    "lora_rank": 4,
    "lora_alpha": 8.0,
    "lora_targets": ("qkv", "fc1", "fc2", "_expand_conv", "_project_conv"),
    "prompt_len": 4,
    "hyper_dim": 8,
}


def _same_value(value: object, default: object) -> bool:
    """Whether a value as read (YAML/JSON/TOML, or a string from the command line) is ``default``."""
    if isinstance(default, tuple):
        items = [v.strip() for v in value.split(",")] if isinstance(value, str) else value
        return isinstance(items, list | tuple) and tuple(items) == default
    if isinstance(default, bool):
        return value is default or (isinstance(value, str) and value.lower() == str(default).lower())
    if isinstance(default, int | float):
        try:
            return not isinstance(value, bool) and float(value) == default  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return False
    return value == default


def options_of_method(name: str) -> type:
    """The options dataclass method ``name`` registered (one line naming the valid methods if it is unknown)."""
    try:
        return METHODS.get(name).options
    except RegistryError as err:
        raise ConfigError(f"name: {err}") from None


@dataclass(frozen=True)
class MethodConfig:
    """The method and its own options (tailorkit.adapters.methods.base describes the contract).

    Attributes:
        name: A registered method (``tailorkit.adapters.METHODS``): vmt, vmt_lite, shared_adapter, decoders_only,
            single_task_full_ft, mtl_full_ft, per_task_adapter, per_task_lora, bitfit, vpt_deep, hyperformer_lite.
        options: The method's options: its frozen dataclass (``VMTOptions``, ``VMTLiteOptions``,
            ``SharedAdapterOptions``, ``PerTaskAdapterOptions``, ``LoRAOptions``, ``VPTOptions``,
            ``HyperformerOptions``, ``NoOptions``), a mapping of option names to values, or None for the method's
            defaults. Always the method's dataclass once built; an option the method does not have is an error
            naming the option, the method and its options. Every VMT detail the paper leaves open is such an option
            (docs/adapters.md#the-method-as-implemented).

    Config files and ``key=value`` overrides may set options nested (``method.options.r=4``) or flat beside the name
    as before options were per method (``method.r=4``): :meth:`upgrade_config` moves flat ones into ``options``.
    """

    name: str = "vmt"
    options: Any = None

    def __post_init__(self) -> None:
        check(isinstance(self.name, str) and bool(self.name), f"name: expected a method name, got {self.name!r}")
        cls = options_of_method(self.name)
        object.__setattr__(self, "options", method_options(self.name, cls, self.options, kind="adapters method"))

    def options_as(self, cls: type[OptionsT]) -> OptionsT:
        """``options`` typed as ``cls`` (``tailorkit.core.config.options_as``)."""
        return options_as(self.name, self.options, cls)

    def with_method(self, name: str) -> MethodConfig:
        """Method ``name`` with the options it shares with this one carried over (the bench's common width ``r``)
        and its own defaults for the rest; options it does not have are left behind."""
        names = {f.name for f in fields(options_of_method(name))}
        shared = {k: v for k, v in to_dict(self.options).items() if k in names}
        return MethodConfig(name, shared)

    @classmethod
    def upgrade_config(cls, data: Mapping[str, Any]) -> dict[str, Any]:
        """A config mapping with flat method options (``r: 4`` beside ``name``, the form before options were per
        method) moved into ``options``; called by :func:`tailorkit.core.config.from_dict`. A flat key the method
        lacks is dropped at its earlier default (``LEGACY_FLAT_DEFAULTS``: old dumps list every key) and refused
        otherwise."""
        method = data.get("name", "vmt")
        if not isinstance(method, str):
            return dict(data)
        options_of = {name: m.options for name, m in METHODS.items()}
        own = {f.name for f in fields(cls)}
        cls_options = options_of.get(method) or options_of_method(method)  # the latter raises, naming the methods
        mine = [f.name for f in fields(cls_options)]
        kept = {
            k: v
            for k, v in data.items()
            if k in own or k in mine or k not in LEGACY_FLAT_DEFAULTS or not _same_value(v, LEGACY_FLAT_DEFAULTS[k])
        }
        if "share_mode" in kept:  # chosen by the method itself (vmt / vmt_lite) since before issue 23
            raise ConfigError(
                f"option 'share_mode' is not an option of adapters method {method!r} (vmt_lite ties the projections, "
                f"vmt does not); its options: {', '.join(mine) or 'none'}"
            )
        return lift_options(kept, own, method, options_of, kind="adapters method")


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
