"""Settings of an HOI detection run, as frozen dataclasses (YAML/TOML + key=value overrides).

Every detail the HODN abstract (arXiv:2308.10158) leaves open is a setting, with a default from the DETR / QPIC / CDN
lineage; docs/hoi.md#the-detector-as-implemented says what is inferred.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from tailorkit.core.config import check, check_int_at_least, check_number_at_least, options_as
from tailorkit.core.train import SCHEDULES

Variant = Literal["single", "cascade", "hodn", "cascade_deep", "single_deep"]
Link = Literal["human", "object", "pair", "none"]

VARIANTS = ("single", "cascade", "hodn", "cascade_deep", "single_deep")
LINKS = ("human", "object", "pair", "none")


@dataclass(frozen=True)
class SynthConfig:
    """The procedural SynthHOI scenes (data.py).

    Attributes:
        image_size: Side of the square RGB image.
        n_train / n_test: Scenes per split.
        max_humans: 1 or 2 stick figures per scene.
        max_objects: 1..3 objects per scene.
        texture: "photo" fills objects with crops of real photos (OpenCV samples); "flat" with one random colour.
        look_distance: A human looks at the nearest object in its facing half-plane within this fraction of the
            image side.
        held_look: Interaction changes the object's look [synthetic stand-in, our design for issue 22]: an object
            some hand holds (a `hold` label) is drawn tilted inside its box (a skewed quadrilateral touching all four
            sides, leaning the holder's way), in the hand's shadow (texture darkened to 60 %) and partly covered
            by the holder's fist (a disc of the figure's colour, radius 0.45 figure units, at the hand). Boxes and
            labels are unchanged (the same scenes, annotation for annotation, as with it off), so only the object's
            appearance carries the interaction. Off by default; the bench turns it on (`HOIBenchConfig.held_look`).
    """

    image_size: int = 128
    n_train: int = 600
    n_test: int = 200
    max_humans: int = 1
    max_objects: int = 2
    texture: Literal["photo", "flat"] = "photo"
    look_distance: float = 0.6
    held_look: bool = False

    def __post_init__(self) -> None:
        check(isinstance(self.held_look, bool), f"held_look: expected true or false, got {self.held_look!r}")
        check(
            isinstance(self.image_size, int) and 48 <= self.image_size <= 512,
            f"image_size: expected 48..512, got {self.image_size!r}",
        )
        check_int_at_least("n_train", self.n_train, 1)
        check_int_at_least("n_test", self.n_test, 1)
        check(self.max_humans in (1, 2), f"max_humans: expected 1 or 2, got {self.max_humans!r}")
        check(self.max_objects in (1, 2, 3), f"max_objects: expected 1..3, got {self.max_objects!r}")
        check(self.texture in ("photo", "flat"), f"texture: expected 'photo' or 'flat', got {self.texture!r}")
        check(0 < self.look_distance <= 2, f"look_distance: expected (0, 2], got {self.look_distance!r}")


@dataclass(frozen=True)
class FilesConfig:
    """Your own annotated images in the QPIC/CDN JSON form (HICO-DET or V-COCO ids) instead of SynthHOI.

    Attributes:
        format: "" (train on SynthHOI, the default), "hico" (COCO object ids, verbs 1..117) or "vcoco" (verbs 0..28,
            object_id -1 allowed).
        train_annotations / test_annotations: The JSON files (QPIC's `trainval_hico.json` / `test_hico.json`).
        train_images / test_images: Folders their `file_name`s are relative to (HICO-DET: images/train2015 and
            images/test2015).
        image_size: Every image is resized to this square side and its boxes scaled with it. Box IoU is invariant
            under per-axis scaling, so the metrics equal those in the original pixels. [CPU deviation: DETR-style
            training uses aspect-kept 800-1333 px inputs with multi-scale augmentation, not done here]
        limit: Read at most this many images per split (0 = all); images are held in memory as uint8.
    """

    format: Literal["", "hico", "vcoco"] = ""
    train_annotations: str = ""
    test_annotations: str = ""
    train_images: str = ""
    test_images: str = ""
    image_size: int = 256
    limit: int = 0

    def __post_init__(self) -> None:
        check(self.format in ("", "hico", "vcoco"), f"format: expected '', 'hico' or 'vcoco', got {self.format!r}")
        check(
            isinstance(self.image_size, int) and 48 <= self.image_size <= 1333,
            f"image_size: expected 48..1333, got {self.image_size!r}",
        )
        check_int_at_least("limit", self.limit, 0)


@dataclass(frozen=True)
class SingleOptions:
    """The options of variant `single` (QPIC-like).

    Attributes:
        dec_layers: Layers of the one decoder.
    """

    dec_layers: int = 3

    def __post_init__(self) -> None:
        check_int_at_least("dec_layers", self.dec_layers, 1)


@dataclass(frozen=True)
class CascadeOptions:
    """The options of variant `cascade` (CDN-like).

    Attributes:
        pair_layers / inter_layers: Layers of the pair decoder and of the interaction decoder.
    """

    pair_layers: int = 2
    inter_layers: int = 2

    def __post_init__(self) -> None:
        check_int_at_least("pair_layers", self.pair_layers, 1)
        check_int_at_least("inter_layers", self.inter_layers, 1)


@dataclass(frozen=True)
class HODNOptions:
    """The options of variant `hodn` (ModelConfig's docstring describes each; all [inferred] beyond the abstract).

    Attributes:
        human_layers / object_layers / inter_layers: Layers of the human, object and interaction decoders.
        link, layerwise_link, sg_obj, sg_hum, obj_as_tgt: How the interaction decoder reads the instance decoders.
    """

    human_layers: int = 2
    object_layers: int = 2
    inter_layers: int = 2
    link: Link = "human"
    layerwise_link: bool = False
    sg_obj: bool = True
    sg_hum: bool = False
    obj_as_tgt: bool = True

    def __post_init__(self) -> None:
        for name in ("human_layers", "object_layers", "inter_layers"):
            check_int_at_least(name, getattr(self, name), 1)
        check(self.link in LINKS, f"link: expected one of {LINKS}, got {self.link!r}")
        check(
            not self.layerwise_link or self.inter_layers == self.human_layers,
            "layerwise_link: expected inter_layers == human_layers",
        )


@dataclass(frozen=True)
class DepthMatchedOptions:
    """The options of the depth-matched controls `cascade_deep` and `single_deep`: HODN's decoder depths, which they
    match (cascade_deep: a pair decoder of human_layers + object_layers, then inter_layers; single_deep: one decoder
    of all three).

    Attributes:
        human_layers / object_layers / inter_layers: HODN's decoder depths being matched.
    """

    human_layers: int = 2
    object_layers: int = 2
    inter_layers: int = 2

    def __post_init__(self) -> None:
        for name in ("human_layers", "object_layers", "inter_layers"):
            check_int_at_least(name, getattr(self, name), 1)


# Each variant's own options. ModelConfig keeps them as flat fields (so config files and `model.link=object` style
# overrides are unchanged) and refuses a field that belongs only to other variants when it is set away from its
# default: such a setting would be silently ignored.
VARIANT_OPTIONS: dict[str, type] = {
    "single": SingleOptions,
    "cascade": CascadeOptions,
    "hodn": HODNOptions,
    "cascade_deep": DepthMatchedOptions,
    "single_deep": DepthMatchedOptions,
}
OptionsT = TypeVar("OptionsT")


def _option_names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def defaults_of(cls: type) -> dict[str, Any]:
    """The default of every option of `cls` (a variant that builds another variant resets the options it read)."""
    return {f.name: f.default for f in dataclasses.fields(cls)}


def variant_options(variant: str, **options: Any) -> Any:
    """The options dataclass of `variant` with `options` set; unknown names raise, listing the valid ones."""
    check(variant in VARIANT_OPTIONS, f"variant: expected one of {VARIANTS}, got {variant!r}")
    cls = VARIANT_OPTIONS[variant]
    valid = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(options) - set(valid))
    check(not unknown, f"variant {variant!r}: unknown options {unknown}; expected some of {valid}")
    return cls(**options)


@dataclass(frozen=True)
class ModelConfig:
    """The detector.

    Attributes:
        variant: "single" (QPIC-like: one decoder), "cascade" (CDN-like: pair decoder -> interaction decoder),
            "hodn" (human decoder + object decoder -> interaction decoder), and HODN's depth-matched controls
            "cascade_deep" (pair decoder of human_layers + object_layers layers -> interaction decoder of
            inter_layers) and "single_deep" (one decoder of human_layers + object_layers + inter_layers layers):
            the same decoder layers and parameters as HODN (issue 22).
        backbone: "efficientnet_lite0" (real ImageNet weights) or "tiny" (a small CNN, for tests).
        backbone_stage: EfficientNet stage whose map feeds the encoder (3: stride 16, 112 channels).
        freeze_backbone: Keep the backbone fixed (its features can then be cached, as the bench does).
        tiny_width: Width of the tiny backbone.
        d_model / heads / ffn / dropout: Transformer sizes.
        enc_layers: Encoder layers.
        num_queries: Queries (triplet slots) per image.
        dec_layers: Layers of the single decoder (variant single).
        pair_layers / inter_layers: Cascade: pair decoder and interaction decoder layers (hodn uses inter_layers).
        human_layers / object_layers: HODN's two instance decoders. [inferred: 2 + 2 + 2 at CPU scale]
        link: HODN's interaction query positions: "human" (Human-Guide Linking), "object", "pair" (human +
            object) or "none" (the learned queries). [inferred reading of the abstract]
        layerwise_link: Layer i of the interaction decoder takes layer i's human features (GEN-VLKT-style) instead
            of the last layer's for every layer. [inferred option; default off]
        sg_obj: Stop-gradient on object features entering the interaction decoder (the paper's choice).
        sg_hum: Stop-gradient on human features entering it (negative control; off in HODN).
        obj_as_tgt: Feed the (stop-gradient) object features as the interaction decoder's content input; else
            zeros (CDN's choice). [inferred; default on]
        verb_head: "linear" (QPIC/CDN) or "mlp" (a 2-layer head): the head registry makes "HODN + another head"
            a setting.
    """

    variant: Variant = "hodn"
    backbone: Literal["efficientnet_lite0", "tiny"] = "efficientnet_lite0"
    backbone_stage: int = 3
    freeze_backbone: bool = True
    tiny_width: int = 32
    d_model: int = 64
    heads: int = 4
    ffn: int = 128
    dropout: float = 0.0
    enc_layers: int = 2
    num_queries: int = 8
    dec_layers: int = 3
    pair_layers: int = 2
    inter_layers: int = 2
    human_layers: int = 2
    object_layers: int = 2
    link: Link = "human"
    layerwise_link: bool = False
    sg_obj: bool = True
    sg_hum: bool = False
    obj_as_tgt: bool = True
    verb_head: Literal["linear", "mlp"] = "linear"

    def __post_init__(self) -> None:
        check(self.variant in VARIANTS, f"variant: expected one of {VARIANTS}, got {self.variant!r}")
        check(self.link in LINKS, f"link: expected one of {LINKS}, got {self.link!r}")
        check(
            self.backbone in ("efficientnet_lite0", "tiny"),
            f"backbone: expected 'efficientnet_lite0' or 'tiny', got {self.backbone!r}",
        )
        check(self.verb_head in ("linear", "mlp"), f"verb_head: expected 'linear' or 'mlp', got {self.verb_head!r}")
        for name in (
            "d_model",
            "heads",
            "ffn",
            "num_queries",
            "dec_layers",
            "pair_layers",
            "inter_layers",
            "human_layers",
            "object_layers",
            "tiny_width",
        ):
            check_int_at_least(name, getattr(self, name), 1)
        check_int_at_least("enc_layers", self.enc_layers, 0)
        check(
            self.d_model % 4 == 0 and self.d_model % self.heads == 0,
            f"d_model: expected a multiple of 4 and of heads={self.heads}, got {self.d_model}",
        )
        check(0 <= self.dropout < 1, f"dropout: expected [0, 1), got {self.dropout!r}")
        check(
            not self.layerwise_link or self.inter_layers == self.human_layers,
            "layerwise_link: expected inter_layers == human_layers",
        )
        own = _option_names(VARIANT_OPTIONS[self.variant])
        for name in sorted(set().union(*map(_option_names, VARIANT_OPTIONS.values())) - own):
            default = ModelConfig.__dataclass_fields__[name].default
            owners = " and ".join(v for v, c in VARIANT_OPTIONS.items() if name in _option_names(c))
            check(
                getattr(self, name) == default,
                f"{name}: an option of variant {owners}, unused by variant {self.variant!r}; expected the default "
                f"{default!r}, got {getattr(self, name)!r}",
            )

    def options(self) -> Any:
        """This variant's options dataclass, filled from the fields of the same names."""
        cls = VARIANT_OPTIONS[self.variant]
        return cls(**{f.name: getattr(self, f.name) for f in dataclasses.fields(cls)})

    def options_as(self, cls: type[OptionsT]) -> OptionsT:
        """`options()` typed as `cls` (`tailorkit.core.config.options_as`)."""
        return options_as(self.variant, self.options(), cls)


@dataclass(frozen=True)
class OptimConfig:
    """AdamW on core.train's one schedule (docs/hoi.md#the-detector-as-implemented).

    Attributes:
        steps / batch_size: Optimizer steps and images per step (per process under torchrun).
        lr / weight_decay: AdamW's peak rate and decoupled weight decay (every trainable parameter).
        clip: Clip the global gradient norm to this value; 0 = no clipping.
        schedule: `tailorkit.core.train.learning_rate`'s decay after the warm-up: "step" (default: x 0.1 once, at
            `step_at`, QPIC/CDN's single drop and this config's schedule before issue 23), "constant", "linear" or
            "cosine" (both to 0 at the last step).
        warmup_steps: Linear warm-up steps before the decay (0: none, as before issue 23).
        step_at: Fraction of the steps after which the "step" schedule runs at a tenth of `lr` (the former
            `lr_drop_at`).
    """

    steps: int = 600
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    clip: float = 0.1
    schedule: Literal["constant", "linear", "cosine", "step"] = "step"
    warmup_steps: int = 0
    step_at: float = 0.8

    def __post_init__(self) -> None:
        check_int_at_least("steps", self.steps, 1)
        check_int_at_least("batch_size", self.batch_size, 1)
        check_number_at_least("lr", self.lr, 0.0)
        check_number_at_least("weight_decay", self.weight_decay, 0.0)
        check_number_at_least("clip", self.clip, 0.0)
        check(
            self.schedule in SCHEDULES,
            f"schedule: expected one of {', '.join(map(repr, SCHEDULES))}, got {self.schedule!r}",
        )
        check(
            isinstance(self.step_at, (int, float)) and 0 < self.step_at <= 1,
            f"step_at: expected a number in (0, 1], got {self.step_at!r}",
        )
        check_int_at_least("warmup_steps", self.warmup_steps, 0)
        check(
            self.warmup_steps <= self.steps,
            f"warmup_steps: expected at most steps={self.steps}, got {self.warmup_steps!r}",
        )


@dataclass(frozen=True)
class LossConfig:
    """QPIC/CDN loss and matching weights."""

    obj_ce: float = 1.0
    verb: float = 1.0
    bbox: float = 2.5
    giou: float = 1.0
    eos_coef: float = 0.1
    aux: bool = True


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation: triplets kept per image, IoU threshold, AP flavour and the rare split.

    Attributes:
        top_k: Highest-scoring triplets kept per image (QPIC/CDN keep 100 on HICO-DET; 30 suits a few pairs).
        iou: Both boxes must reach this IoU.
        ap: "voc" (all-point interpolated, VOC 2010+) or "11point" (the QPIC/CDN Python evaluator's).
        rare_threshold: A triplet category with fewer training instances is "rare" (HICO-DET uses 10).
    """

    top_k: int = 30
    iou: float = 0.5
    ap: Literal["voc", "11point"] = "voc"
    rare_threshold: int = 10

    def __post_init__(self) -> None:
        check_int_at_least("top_k", self.top_k, 1)
        check(0 < self.iou < 1, f"iou: expected (0, 1), got {self.iou!r}")
        check(self.ap in ("voc", "11point"), f"ap: expected 'voc' or '11point', got {self.ap!r}")


@dataclass(frozen=True)
class TrainConfig:
    """One training run (`tailorkit hoi train CONFIG.yaml`)."""

    data: SynthConfig = field(default_factory=SynthConfig)
    files: FilesConfig = field(default_factory=FilesConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    seed: int = 0
    threads: int = 0

    def __post_init__(self) -> None:
        check_int_at_least("threads", self.threads, 0)

    @property
    def image_size(self) -> int:
        """The square input side the model is trained on: the files' when `files.format` is set, else SynthHOI's."""
        return self.files.image_size if self.files.format else self.data.image_size
