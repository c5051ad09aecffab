"""VMT-Adapter and VMT-Adapter-Lite (Xin et al., "VMT-Adapter: Parameter-Efficient Transfer Learning for
Multi-Task Dense Scene Understanding", AAAI 2024, arXiv:2312.08733), plus the shared-adapter ablation.

No official code exists; this is a reconstruction (docs/adapters.md#the-method-as-implemented), every choice an
option of the method (:class:`VMTOptions` for ``vmt``, :class:`VMTLiteOptions` for ``vmt_lite``,
:class:`SharedAdapterOptions` for ``shared_adapter``; the encoder runs on the resolved :class:`VMTSettings`):

- [verified] adapters parallel to each block's MLP; knowledge shared across tasks plus small task-specific
  knowledge-extraction modules; each task's decoder gets multi-scale task-generic and task-specific features; Lite
  shares parameters between down- and up-projections; about O(1) cost in the number of tasks.
- [inferred] shared path (AdaptFormer style): z = act(tap W_down + b_down), g = z W_up + b_up; the block output gets
  s * g and is the only stream that continues, so one backbone pass serves every task.
- [inferred] task t: z_t = K_t(z) (default scale-and-shift gamma_t, beta_t in R^r, init 1 and 0), side output
  h_t = s_t (z_t W_up) with the shared W_up, never fed back; decoder input of task t at stage k is
  F^k + sum over the stage's blocks of h_t (``combine="add"``), or the ``replace_generic`` / ``concat`` variants.
- [inferred] W_down default (Kaiming-uniform) init, W_up zero, so step 0 equals the frozen model.
- [inferred] Lite (``share_mode="transpose"``): W_up = W_down^T; where a block changes width (EfficientNet) the
  r -> d_in map is cycled over output channels (channel j reads j mod d_in), a parameter-free generalisation; a
  separate up bias and a learnable per-channel scale initialised to 0 (W_up cannot start at zero).
- [inferred] EfficientNet: side outputs join the stage map only from blocks whose width equals the stage's.

Options added for issue 19 (each [inferred], each off by default so the defaults give today's encoder exactly):

- ``task_module="lowrank_up"``: task t gets its own up-projection U_t (r x d_out, zero-init) instead of the shared
  W_up, h_t = s_t (z U_t): a rank-r map of the shared bottleneck, so task features are not confined to the shared
  up-projection's directions.
- ``task_feature_source``: "all_blocks_in_stage" (every block, summed: today) or "last_block" (last of each stage).
- ``placement="conv"``: instead of one adapter parallel to the whole block, one parallel to the block's expansion
  conv / fc1 and one parallel to its projection conv / fc2 (EfficientNet MBConv / ViT MLP); the projection adapter
  carries the task modules. Swin is not supported.
- ``budget_pct``: the bottleneck width r is derived from a parameter budget in percent of the backbone's parameters:
  the largest r with :func:`vmt_parameter_count` (r) <= budget_pct / 100 * backbone parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import torch
from torch import nn

from tailorkit.adapters.methods.base import MultiTaskEncoder, activation, register
from tailorkit.core.config import check, check_int_at_least, check_number_at_least

__all__ = [
    "AdapterSite",
    "SharedAdapterOptions",
    "VMTEncoder",
    "VMTLiteOptions",
    "VMTOptions",
    "VMTSettings",
    "VMTSlot",
    "adapter_sites",
    "vmt_parameter_count",
    "width_for_budget",
]

DEFAULT_R = 8  # the bottleneck width that puts VMT at ~1 % of EfficientNet-Lite0
TASK_MODULES = ("scale_shift", "linear", "gate", "lowrank_up", "none")
TaskModule = Literal["scale_shift", "linear", "gate", "lowrank_up", "none"]
FeatureSource = Literal["all_blocks_in_stage", "last_block"]
Combine = Literal["add", "replace_generic", "concat"]


def _one_of(name: str, value: object, allowed: Sequence[str]) -> None:
    check(value in allowed, f"{name}: expected one of {', '.join(allowed)}, got {value!r}")


def _check_shared(options: Any, method: str) -> None:
    """Checks every VMT-family options class shares (width, activation, placement, budget, insert_last)."""
    check_int_at_least("r", options.r, 1)
    _one_of("act", options.act, ("relu", "gelu"))
    _one_of("placement", options.placement, ("block", "conv"))
    check_number_at_least("budget_pct", options.budget_pct, 0.0)
    check_int_at_least("insert_last", options.insert_last, 0)
    check(
        options.budget_pct == 0 or options.r == DEFAULT_R,
        f"r: unused by {method} when budget_pct is set (the width is derived from the budget); "
        f"expected {DEFAULT_R}, got {options.r!r}",
    )


def _check_tasks(options: Any) -> None:
    _one_of("task_module", options.task_module, TASK_MODULES)
    _one_of("task_feature_source", options.task_feature_source, ("all_blocks_in_stage", "last_block"))
    _one_of("combine", options.combine, ("add", "replace_generic", "concat"))
    check_number_at_least("task_scale", options.task_scale, 0.0)


@dataclass(frozen=True)
class SharedAdapterOptions:
    """``shared_adapter``: one parallel adapter per block shared by all tasks (no task modules).

    Attributes:
        r: Bottleneck width (8 puts VMT at ~1 % of EfficientNet-Lite0).
        act: Bottleneck activation ("relu" as AdaptFormer, or "gelu").
        scale: Scale s of the adapter output (AdaptFormer's 0.1).
        learn_scale: Make s a learnable per-channel vector (initialised to ``scale``).
        placement: Adapters parallel to the whole block ("block") or one parallel to each block's expansion and
            projection layer ("conv": EfficientNet's expand / project 1x1 convs, the ViT MLP's fc1 / fc2).
        budget_pct: 0 (off): the width is ``r``. Above 0: the largest r whose parameter count
            (:func:`vmt_parameter_count`) is at most budget_pct % of the backbone's parameters, for the run's number
            of tasks; ``r`` must then stay at its default.
        insert_last: Insert adapters only in the last N blocks (0: every block).
    """

    r: int = DEFAULT_R
    act: Literal["relu", "gelu"] = "relu"
    scale: float = 0.1
    learn_scale: bool = False
    placement: Literal["block", "conv"] = "block"
    budget_pct: float = 0.0
    insert_last: int = 0

    def __post_init__(self) -> None:
        _check_shared(self, "shared_adapter")
        check_number_at_least("scale", self.scale, 0.0)


@dataclass(frozen=True)
class VMTOptions(SharedAdapterOptions):
    """``vmt``: the shared adapter's options plus the task-specific knowledge extraction.

    Attributes:
        task_module: Task t's extraction on the bottleneck: "scale_shift" (gamma, beta in R^r, init 1, 0), "linear"
            (r x r, init identity), "gate" (SE-style sigmoid gate), "lowrank_up" (each task its own zero-init
            r x d_out up-projection in place of the shared W_up) or "none" (the shared adapter ablation).
        task_scale: Initial scale s_t of each task side output (a learnable scalar per site and task).
        task_feature_source: "all_blocks_in_stage" (sum side outputs of every block of a stage whose width matches
            the stage map) or "last_block" (only the last block of each stage, MTLoRA-like).
        combine: How side outputs meet the stage map: "add", "replace_generic" (F + sum(h_t - s g)) or "concat".
    """

    task_module: TaskModule = "scale_shift"
    task_scale: float = 0.1
    task_feature_source: FeatureSource = "all_blocks_in_stage"
    combine: Combine = "add"

    def __post_init__(self) -> None:
        _check_shared(self, "vmt")
        check_number_at_least("scale", self.scale, 0.0)
        _check_tasks(self)


@dataclass(frozen=True)
class VMTLiteOptions:
    """``vmt_lite``: VMT's options without ``scale`` and ``learn_scale`` (Lite's tied W_up is not zero at init, so
    its output scale is a learnable per-channel vector initialised to 0); see :class:`VMTOptions` for the rest.
    ``task_scale`` is read only with ``task_module="lowrank_up"``: Lite's other task modules start from s_t = 0."""

    r: int = DEFAULT_R
    act: Literal["relu", "gelu"] = "relu"
    placement: Literal["block", "conv"] = "block"
    budget_pct: float = 0.0
    insert_last: int = 0
    task_module: TaskModule = "scale_shift"
    task_scale: float = 0.1
    task_feature_source: FeatureSource = "all_blocks_in_stage"
    combine: Combine = "add"

    def __post_init__(self) -> None:
        _check_shared(self, "vmt_lite")
        _check_tasks(self)
        check(
            self.task_scale == 0.1 or self.task_module == "lowrank_up",
            f"task_scale: unused by vmt_lite unless task_module=lowrank_up (its side outputs start from s_t = 0); "
            f"expected 0.1, got {self.task_scale!r}",
        )


@dataclass(frozen=True)
class VMTSettings(VMTOptions):
    """Every knob of :class:`VMTEncoder`, resolved from a method's options (what the encoder and the parameter
    count read). ``share_mode``: "none" (VMT) or "transpose" (Lite: W_up = W_down^T with a channel cycle where
    widths differ, plus a learnable per-channel scale initialised to 0 and an up bias)."""

    share_mode: Literal["none", "transpose"] = "none"

    def __post_init__(self) -> None:
        _check_shared(self, "vmt")
        _check_tasks(self)
        _one_of("share_mode", self.share_mode, ("none", "transpose"))


class VMTSlot(nn.Module):
    """One block's VMT adapter: shared down/up projections and per-task extraction modules.

    Shapes:
        tap: (..., d_in) -> delta (..., d_out), sides: T tensors (..., d_out) (none when task_module="none")
    """

    def __init__(self, d_in: int, d_out: int, n_tasks: int, config: VMTSettings, r: int | None = None) -> None:
        super().__init__()
        r = config.r if r is None else r
        self.d_in, self.d_out, self.n_tasks = d_in, d_out, n_tasks
        self.lite = config.share_mode == "transpose"
        self.act = activation(config.act)
        self.task_module = config.task_module
        self.combine = config.combine
        self.down = nn.Linear(d_in, r)
        if self.lite:
            self.up_bias = nn.Parameter(torch.zeros(d_out))
            self.scale = nn.Parameter(torch.zeros(d_out))  # the tied W_up is not zero: start from the frozen model
            self.register_buffer("channel_map", torch.arange(d_out) % d_in, persistent=False)
        else:
            self.up = nn.Linear(r, d_out)
            nn.init.zeros_(self.up.weight)
            nn.init.zeros_(self.up.bias)
            if config.learn_scale:
                self.scale = nn.Parameter(torch.full((d_out,), float(config.scale)))
            else:
                self.register_buffer("scale", torch.tensor(float(config.scale)))
        if self.task_module == "scale_shift":
            self.gamma = nn.Parameter(torch.ones(n_tasks, r))
            self.beta = nn.Parameter(torch.zeros(n_tasks, r))
        elif self.task_module in ("linear", "gate"):
            init = torch.eye(r) if self.task_module == "linear" else torch.zeros(r, r)
            self.task_weight = nn.Parameter(init.repeat(n_tasks, 1, 1))
            self.task_bias = nn.Parameter(torch.zeros(n_tasks, r))
        elif self.task_module == "lowrank_up":
            # each task's own up-projection U_t (r x d_out), zero-init: side outputs start at 0 (Lite included)
            self.task_up = nn.Parameter(torch.zeros(n_tasks, r, d_out))
        elif self.task_module != "none":
            raise ValueError(
                f"task_module: expected scale_shift, linear, gate, lowrank_up or none, got {self.task_module!r}"
            )
        if self.task_module != "none":
            # Lite's tied W_up is not zero at init, so its side outputs start at 0 through s_t = 0.
            zero = self.lite and self.task_module != "lowrank_up"
            self.task_scale = nn.Parameter(torch.full((n_tasks,), 0.0 if zero else float(config.task_scale)))

    def up_project(self, z: torch.Tensor, bias: bool = True) -> torch.Tensor:
        if self.lite:
            channel_map: torch.Tensor = self.channel_map  # type: ignore[assignment]
            out = (z @ self.down.weight)[..., channel_map]
            return out + self.up_bias if bias else out
        return self.up(z) if bias else z @ self.up.weight.T

    def extract(self, z: torch.Tensor, t: int) -> torch.Tensor:
        """Task t's knowledge extraction K_t on the bottleneck."""
        if self.task_module == "scale_shift":
            return z * self.gamma[t] + self.beta[t]
        if self.task_module == "linear":
            return z @ self.task_weight[t].T + self.task_bias[t]
        # gate: SE-style, from the spatial mean of z; 2 * sigmoid(0) = 1 keeps K_t = identity at init
        pooled = z.flatten(1, -2).mean(1) if z.ndim > 2 else z
        gate = 2 * torch.sigmoid(pooled @ self.task_weight[t].T + self.task_bias[t])
        return z * gate.reshape(gate.shape[0], *([1] * (z.ndim - 2)), -1)

    def forward(self, tap: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        z = self.act(self.down(tap))
        delta = self.scale * self.up_project(z)
        if self.task_module == "none":
            return delta, []
        sides = []
        for t in range(self.n_tasks):
            if self.task_module == "lowrank_up":
                h = self.task_scale[t] * (z @ self.task_up[t])
            else:
                h = self.task_scale[t] * self.up_project(self.extract(z, t), bias=False)
            sides.append(h - delta if self.combine == "replace_generic" else h)
        return delta, sides


@dataclass(frozen=True)
class AdapterSite:
    """Where one VMT adapter runs: its key in ``slot_modules``, the block, widths, the stage its task side outputs
    join (None: shared adapter only) and the backbone module it runs parallel to ("" for block placement)."""

    key: str
    slot: int
    d_in: int
    d_out: int
    stage: int | None
    module: str = ""


# (expansion, projection) module names per block i: EfficientNet's MBConv convs, the ViT MLP's Linear layers
_CONV_SITES = (("_blocks.{i}._expand_conv", "_blocks.{i}._project_conv"), ("blocks.{i}.mlp.fc1", "blocks.{i}.mlp.fc2"))


def _widths(module: nn.Module) -> tuple[int, int]:
    if isinstance(module, nn.Conv2d):
        return module.in_channels, module.out_channels
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    raise ValueError(f"placement=conv: expected a Conv2d or Linear layer, got {type(module).__name__}")


def adapter_sites(backbone: Any, config: VMTSettings) -> list[AdapterSite]:
    """The adapter sites of ``config`` on ``backbone`` (``placement``, ``insert_last``, ``task_feature_source``).

    Raises:
        ValueError: placement="conv" on a backbone without expansion / projection layers (Swin).
    """
    slots = backbone.slots
    first = len(slots) - config.insert_last if config.insert_last else 0
    stage_ch = backbone.stage_channels
    last_in_stage = {s.stage: s.index for s in slots}
    sites = []
    for s in slots:
        if s.index < first:
            continue
        contributes = s.d_out == stage_ch[s.stage] and (
            config.task_feature_source == "all_blocks_in_stage" or last_in_stage[s.stage] == s.index
        )
        stage = s.stage if contributes else None
        if config.placement == "block":
            sites.append(AdapterSite(str(s.index), s.index, s.d_in, s.d_out, stage))
            continue
        modules = dict(backbone.named_modules())
        names = next((pair for pair in _CONV_SITES if pair[1].format(i=s.index) in modules), None)
        if names is None:
            raise ValueError(
                f"placement=conv: expected an EfficientNet-Lite0 or ViT backbone (expansion / projection layers), "
                f"got {type(backbone).__name__}"
            )
        expand, project = (n.format(i=s.index) for n in names)
        if expand in modules:
            d_in, d_out = _widths(modules[expand])
            sites.append(AdapterSite(f"{s.index}_expand", s.index, d_in, d_out, None, expand))
        d_in, d_out = _widths(modules[project])
        sites.append(AdapterSite(f"{s.index}_project", s.index, d_in, d_out, stage, project))
    return sites


def _task_module_size(task_module: str, r: int, d_out: int) -> int:
    """Parameters of one task's extraction module at one site (the scalar s_t excluded)."""
    return {"scale_shift": 2 * r, "linear": r * r + r, "gate": r * r + r, "lowrank_up": r * d_out}[task_module]


def vmt_parameter_count(sites: Sequence[AdapterSite], n_tasks: int, config: VMTSettings, r: int) -> int:
    """Trainable VMT parameters at width r (docs/adapters.md#options-for-issue-19), exactly what the encoder builds:

    sum over sites of  r d_in + r + r d_out + d_out [+ d_out with learn_scale]   (Lite: r d_in + r + 2 d_out)
    plus, on sites whose side outputs reach a stage map, T (m(r) + 1) with m = 2r (scale_shift), r^2 + r (linear,
    gate) or r d_out (lowrank_up), and nothing for task_module="none".
    """
    lite = config.share_mode == "transpose"
    total = 0
    for site in sites:
        if lite:
            total += r * site.d_in + r + 2 * site.d_out
        else:
            total += r * site.d_in + r + r * site.d_out + site.d_out + (site.d_out if config.learn_scale else 0)
        if site.stage is not None and config.task_module != "none":
            total += n_tasks * (_task_module_size(config.task_module, r, site.d_out) + 1)
    return total


def width_for_budget(sites: Sequence[AdapterSite], n_tasks: int, config: VMTSettings, backbone_params: int) -> int:
    """The largest r >= 1 whose :func:`vmt_parameter_count` fits ``config.budget_pct`` % of the backbone.

    Raises:
        ValueError: Even r = 1 is over the budget.
    """
    budget = config.budget_pct / 100.0 * backbone_params
    if vmt_parameter_count(sites, n_tasks, config, 1) > budget:
        raise ValueError(
            f"budget_pct: {config.budget_pct:g} % of the backbone ({budget:.0f} parameters) is below the smallest "
            f"adapter (r=1: {vmt_parameter_count(sites, n_tasks, config, 1)} parameters); expected a larger budget"
        )
    r = 1
    while r < 4096 and vmt_parameter_count(sites, n_tasks, config, r + 1) <= budget:
        r += 1
    return r


class _ConvHook:
    """placement="conv": the forward hook that runs one site's adapter parallel to a Conv2d (channels first) or
    Linear (tokens) layer. An object, not a closure, so that a deep copy of the encoder hooks the copy's adapters."""

    def __init__(self, encoder: VMTEncoder, site: AdapterSite) -> None:
        self.encoder, self.site = encoder, site

    def __call__(self, module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor:
        enc, site, x = self.encoder, self.site, inputs[0]
        conv = isinstance(module, nn.Conv2d)
        delta, sides = enc.slot_modules[site.key](x.permute(0, 2, 3, 1) if conv else x)
        if site.stage is not None and sides:
            if not conv:  # ViT tokens (B, N, d) -> the (B, g, g, d) grid of the stage map
                g = enc.backbone.grid
                sides = [h.reshape(h.shape[0], g, g, h.shape[-1]) for h in sides]
            enc._record(site.stage, sides)
        return output + (delta.permute(0, 3, 1, 2) if conv else delta)


class VMTEncoder(MultiTaskEncoder):
    """One backbone pass; shared adapters steer the generic stream, task side outputs go to the decoders."""

    passes_per_batch = "1"

    def __init__(self, backbone: Any, tasks: Sequence[str], config: VMTSettings) -> None:
        super().__init__(backbone, tasks, config)
        self.config = config
        self.sites = adapter_sites(backbone, config)
        #: the bottleneck width in use: config.r, or the one derived from config.budget_pct
        self.r = config.r
        if config.budget_pct > 0:
            self.r = width_for_budget(self.sites, len(tasks), config, self.backbone_parameters())
        self.active = sorted({site.slot for site in self.sites})
        self.contributes = {site.slot: site.stage for site in self.sites if site.stage is not None}
        # sites whose side outputs reach no decoder get no task modules (they would never train)
        no_tasks = replace(config, task_module="none")
        self.slot_modules = nn.ModuleDict(
            {
                site.key: VMTSlot(
                    site.d_in, site.d_out, len(tasks), config if site.stage is not None else no_tasks, self.r
                )
                for site in self.sites
            }
        )
        self._acc: list[list[torch.Tensor | None]] | None = None
        if config.placement == "conv":
            modules = dict(backbone.named_modules())
            for site in self.sites:
                modules[site.module].register_forward_hook(self._conv_hook(site))

    @property
    def stage_channels(self) -> tuple[int, ...]:
        ch = tuple(self.backbone.stage_channels)
        return tuple(2 * c for c in ch) if self.config.combine == "concat" else ch

    def task_parameters(self) -> int:
        per_all = sum(
            p.numel()
            for m in self.slot_modules.values()
            for n, p in m.named_parameters()
            if n.startswith("task_") or n in ("gamma", "beta")
        )
        return per_all // len(self.tasks)

    def _record(self, stage: int | None, sides: list[torch.Tensor]) -> None:
        """Add the task side outputs (channel-last grids) of one site to their stage's sums."""
        acc = self._acc
        if stage is None or acc is None:
            return
        for t, h in enumerate(sides):
            prev = acc[t][stage]
            acc[t][stage] = h if prev is None else prev + h

    def _conv_hook(self, site: AdapterSite) -> _ConvHook:
        return _ConvHook(self, site)

    def forward(self, x: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        n_stages = len(self.backbone.stage_channels)
        acc: list[list[torch.Tensor | None]] = [[None] * n_stages for _ in self.tasks]

        def hook(i: int, tap: torch.Tensor) -> torch.Tensor | None:
            if i not in self.active:
                return None
            delta, sides = self.slot_modules[str(i)](tap)
            self._record(self.contributes.get(i), sides)
            return delta

        self._acc = acc
        try:
            generic = self.backbone.forward_stages(x, hook if self.config.placement == "block" else None)
        finally:
            self._acc = None
        out: dict[str, list[torch.Tensor]] = {}
        for t, task in enumerate(self.tasks):
            maps = []
            for k, feat in enumerate(generic):
                side = acc[t][k]
                side_cf = None if side is None else side.permute(0, 3, 1, 2)
                if self.config.combine == "concat":
                    maps.append(torch.cat([feat, side_cf if side_cf is not None else torch.zeros_like(feat)], 1))
                else:
                    maps.append(feat if side_cf is None else feat + side_cf)
            out[task] = maps
        return out


@register("vmt", VMTOptions)
def vmt(backbone: Any, tasks: Sequence[str], options: VMTOptions) -> VMTEncoder:
    """VMT-Adapter (untied projections)."""
    return VMTEncoder(backbone, tasks, VMTSettings(**asdict(options), share_mode="none"))


@register("vmt_lite", VMTLiteOptions)
def vmt_lite(backbone: Any, tasks: Sequence[str], options: VMTLiteOptions) -> VMTEncoder:
    """VMT-Adapter-Lite: W_up tied to W_down^T (``share_mode="transpose"``)."""
    return VMTEncoder(backbone, tasks, VMTSettings(**asdict(options), share_mode="transpose"))


@register("shared_adapter", SharedAdapterOptions)
def shared_adapter(backbone: Any, tasks: Sequence[str], options: SharedAdapterOptions) -> VMTEncoder:
    """The ablation without task modules: one parallel adapter shared by all tasks (VL-Adapter-style sharing)."""
    return VMTEncoder(backbone, tasks, VMTSettings(**asdict(options), share_mode="none", task_module="none"))
