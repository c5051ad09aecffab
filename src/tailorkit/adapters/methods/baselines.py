"""The PETL and fine-tuning baselines of the Polyhistor / VMT multi-task benchmark.

docs/adapters.md#baselines-same-loop-same-decoders lists them beside the method.

- ``decoders_only``: frozen backbone, one pass, only the decoders train.
- ``single_task_full_ft``: one full backbone copy per task, each fine-tuned on its own task (T passes). Training
  the T copies together under a summed loss is the same as T separate runs: the copies share no parameter and
  AdamW is per-parameter (gradient clipping is per task here for the same reason).
- ``mtl_full_ft``: one backbone fine-tuned on all tasks, one pass.
- ``per_task_adapter``: a parallel bottleneck adapter per task in every block (He et al. ICLR 2022 / AdaptFormer
  form, W_up zero-init, scale s); T passes.
- ``per_task_lora``: LoRA (Hu et al., ICLR 2022) per task on the Linear layers / 1x1 convs named in
  ``lora_targets`` (B zero-init, A Kaiming-uniform, scaling alpha / rank); T passes.
- ``bitfit``: BitFit (Ben Zaken et al., ACL 2022) per task: each task trains its own copy of every bias of the
  backbone (implemented as zero-initialised deltas on the frozen biases; EfficientNet's only biases are its
  BatchNorm shifts); T passes.
- ``vpt_deep``: VPT-deep (Jia et al., ECCV 2022) per task, transformer backbones only; T passes.
- ``hyperformer_lite``: Hyperformer (Mahabadi et al., ACL 2021) reduced: a hypernetwork shared by all tasks and
  blocks of one width pair generates each block's adapter weights from a task embedding and a block embedding;
  T passes (one generated adapter set per task). [inferred size: one Linear from the 2 * hyper_dim embedding]
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from tailorkit.adapters.methods.base import MultiTaskEncoder, NoOptions, activation, register
from tailorkit.core.config import check, check_int_at_least, check_number_at_least
from tailorkit.nets.vit import SlotHook

__all__ = [
    "BitFitEncoder",
    "DecodersOnly",
    "FullFineTune",
    "HyperformerLite",
    "HyperformerOptions",
    "LoRAOptions",
    "PerTaskAdapter",
    "PerTaskAdapterOptions",
    "PerTaskLoRA",
    "SingleTaskFullFT",
    "VPTDeep",
    "VPTOptions",
]

LORA_TARGETS = ("qkv", "fc1", "fc2", "_expand_conv", "_project_conv")


def _check_adapter(options: Any) -> None:
    check_int_at_least("r", options.r, 1)
    check(options.act in ("relu", "gelu"), f"act: expected one of relu, gelu, got {options.act!r}")
    check_number_at_least("scale", options.scale, 0.0)


@dataclass(frozen=True)
class PerTaskAdapterOptions:
    """``per_task_adapter``: bottleneck width ``r``, activation ``act``, output scale ``scale`` (AdaptFormer's 0.1)."""

    r: int = 8
    act: Literal["relu", "gelu"] = "relu"
    scale: float = 0.1

    def __post_init__(self) -> None:
        _check_adapter(self)


@dataclass(frozen=True)
class LoRAOptions:
    """``per_task_lora``: rank and alpha (scaling alpha / rank), and the module-name suffixes LoRA wraps (Linear
    layers and 1x1 convs)."""

    lora_rank: int = 4
    lora_alpha: float = 8.0
    lora_targets: tuple[str, ...] = LORA_TARGETS

    def __post_init__(self) -> None:
        check_int_at_least("lora_rank", self.lora_rank, 1)
        check_number_at_least("lora_alpha", self.lora_alpha, 0.0)
        check(len(self.lora_targets) >= 1, "lora_targets: expected one or more module-name suffixes, got none")


@dataclass(frozen=True)
class VPTOptions:
    """``vpt_deep``: prompt tokens per block."""

    prompt_len: int = 4

    def __post_init__(self) -> None:
        check_int_at_least("prompt_len", self.prompt_len, 1)


@dataclass(frozen=True)
class HyperformerOptions:
    """``hyperformer_lite``: the generated adapters' width ``r``, activation and output scale, and the task / block
    embedding width ``hyper_dim``."""

    r: int = 8
    act: Literal["relu", "gelu"] = "relu"
    scale: float = 0.1
    hyper_dim: int = 8

    def __post_init__(self) -> None:
        _check_adapter(self)
        check_int_at_least("hyper_dim", self.hyper_dim, 1)


@register("decoders_only", NoOptions)
class DecodersOnly(MultiTaskEncoder):
    """Frozen backbone; every task reads the same generic features."""

    def forward(self, x: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        feats = self.backbone.forward_stages(x)
        return {task: feats for task in self.tasks}


@register("mtl_full_ft", NoOptions)
class FullFineTune(MultiTaskEncoder):
    """One backbone fine-tuned on all tasks (one pass)."""

    fine_tunes_backbone = True

    def forward(self, x: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        feats = self.backbone.forward_stages(x)
        return {task: feats for task in self.tasks}


@register("single_task_full_ft", NoOptions)
class SingleTaskFullFT(MultiTaskEncoder):
    """One fine-tuned backbone copy per task (the Delta_m reference)."""

    passes_per_batch = "T"
    fine_tunes_backbone = True

    def __init__(self, backbone: Any, tasks: Sequence[str], options: NoOptions | None = None) -> None:
        super().__init__(backbone, tasks, options)
        self.copies = nn.ModuleList(copy.deepcopy(backbone) for _ in tasks[1:])

    def backbone_for(self, t: int) -> Any:
        return self.backbone if t == 0 else self.copies[t - 1]

    def task_parameters(self) -> int:
        return self.backbone_parameters()

    def forward(self, x: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        return {task: self.backbone_for(t).forward_stages(x) for t, task in enumerate(self.tasks)}


class _PerTaskSlots(MultiTaskEncoder):
    """Shared machinery of per-task methods: T backbone passes with the active task's hook."""

    passes_per_batch = "T"

    def task_parameters(self) -> int:
        return self.trainable_parameters() // len(self.tasks)

    def task_hook(self, t: int) -> SlotHook | None:
        return None

    def forward(self, x: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        out = {}
        for t, task in enumerate(self.tasks):
            self.active_task = t
            out[task] = self.backbone.forward_stages(x, self.task_hook(t))
        return out


@register("per_task_adapter", PerTaskAdapterOptions)
class PerTaskAdapter(_PerTaskSlots):
    """A parallel bottleneck adapter per task and block."""

    def __init__(self, backbone: Any, tasks: Sequence[str], options: PerTaskAdapterOptions) -> None:
        super().__init__(backbone, tasks, options)
        self.config = config = options
        self.act = activation(config.act)
        self.down = nn.ModuleDict()
        self.up = nn.ModuleDict()
        for s in backbone.slots:
            self.down[str(s.index)] = nn.ModuleList(nn.Linear(s.d_in, config.r) for _ in tasks)
            ups = [nn.Linear(config.r, s.d_out) for _ in tasks]
            for up in ups:
                nn.init.zeros_(up.weight)
                nn.init.zeros_(up.bias)
            self.up[str(s.index)] = nn.ModuleList(ups)

    def task_hook(self, t: int) -> SlotHook:
        def hook(i: int, tap: torch.Tensor) -> torch.Tensor:
            down: Any = self.down[str(i)]
            up: Any = self.up[str(i)]
            return self.config.scale * up[t](self.act(down[t](tap)))

        return hook


class _ModuleHooks(_PerTaskSlots):
    """Per-task methods that act through forward hooks on backbone modules (LoRA, BitFit)."""

    def __init__(self, backbone: Any, tasks: Sequence[str], options: Any = None) -> None:
        super().__init__(backbone, tasks, options)
        self.active_task = 0

    def forward(self, x: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        out = {}
        for t, task in enumerate(self.tasks):
            self.active_task = t
            out[task] = self.backbone.forward_stages(x)
        return out


def _channel_dim(module: nn.Module) -> int:
    return 1 if isinstance(module, nn.Conv2d | nn.modules.batchnorm._BatchNorm) else -1


@register("per_task_lora", LoRAOptions)
class PerTaskLoRA(_ModuleHooks):
    """LoRA per task on the target Linear / 1x1-conv layers: out += (alpha / rank) * B_t A_t x."""

    def __init__(self, backbone: Any, tasks: Sequence[str], options: LoRAOptions) -> None:
        super().__init__(backbone, tasks, options)
        config = options
        self.lora_a = nn.ParameterDict()
        self.lora_b = nn.ParameterDict()
        self.scaling = config.lora_alpha / config.lora_rank
        n = 0
        for name, module in backbone.named_modules():
            if not name.endswith(tuple(config.lora_targets)):
                continue
            if isinstance(module, nn.Linear):
                d_in, d_out = module.in_features, module.out_features
            elif isinstance(module, nn.Conv2d) and module.kernel_size == (1, 1) and module.groups == 1:
                d_in, d_out = module.in_channels, module.out_channels
            else:
                continue
            key = name.replace(".", "__")
            a = torch.empty(len(tasks), config.lora_rank, d_in)
            for t in range(len(tasks)):
                nn.init.kaiming_uniform_(a[t], a=math.sqrt(5))
            self.lora_a[key] = nn.Parameter(a)
            self.lora_b[key] = nn.Parameter(torch.zeros(len(tasks), d_out, config.lora_rank))
            module.register_forward_hook(self._make_hook(key, module))
            n += 1
        if n == 0:
            raise ValueError(f"per_task_lora: no Linear or 1x1 conv layer matches lora_targets={config.lora_targets}")

    def _make_hook(self, key: str, module: nn.Module) -> Callable[..., torch.Tensor]:
        dim = _channel_dim(module)

        def hook(mod: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor:
            x = inputs[0]
            a, b = self.lora_a[key][self.active_task], self.lora_b[key][self.active_task]
            # low rank all the way (A then B): r * (in + out) multiply-adds per position, never the merged B A
            if dim == 1:
                delta = torch.einsum("or,brhw->bohw", b, torch.einsum("ri,bihw->brhw", a, x))
            else:
                delta = F.linear(F.linear(x, a), b)
            return output + self.scaling * delta

        return hook


@register("bitfit", NoOptions)
class BitFitEncoder(_ModuleHooks):
    """Per-task bias deltas on every biased backbone module (Linear, conv with bias, LayerNorm, BatchNorm)."""

    def __init__(self, backbone: Any, tasks: Sequence[str], options: NoOptions | None = None) -> None:
        super().__init__(backbone, tasks, options)
        self.bias_delta = nn.ParameterDict()
        for name, module in backbone.named_modules():
            bias = getattr(module, "bias", None)
            if not isinstance(bias, torch.Tensor) or not isinstance(
                module, nn.Linear | nn.Conv2d | nn.LayerNorm | nn.modules.batchnorm._BatchNorm
            ):
                continue
            key = name.replace(".", "__")
            self.bias_delta[key] = nn.Parameter(torch.zeros(len(tasks), bias.numel()))
            module.register_forward_hook(self._make_hook(key, module))

    def _make_hook(self, key: str, module: nn.Module) -> Callable[..., torch.Tensor]:
        dim = _channel_dim(module)

        def hook(mod: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor:
            delta = self.bias_delta[key][self.active_task]
            if dim == 1:
                delta = delta.reshape(1, -1, *([1] * (output.ndim - 2)))
            return output + delta

        return hook


@register("vpt_deep", VPTOptions)
class VPTDeep(_PerTaskSlots):
    """Per-task deep prompts (transformer backbones only)."""

    def __init__(self, backbone: Any, tasks: Sequence[str], options: VPTOptions) -> None:
        config = options
        if not getattr(backbone, "supports_prompts", False):
            raise ValueError(
                "vpt_deep: expected a transformer backbone (vit or swin-less ViT); this one takes no prompts"
            )
        super().__init__(backbone, tasks, options)
        depth, dim = len(backbone.slots), backbone.slots[0].d_in
        bound = math.sqrt(6.0 / (3 * config.prompt_len + dim))  # VPT's xavier-uniform over the patch size
        self.prompts = nn.Parameter(torch.empty(len(tasks), depth, config.prompt_len, dim).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        return {
            task: self.backbone.forward_stages(x, prompts=list(self.prompts[t])) for t, task in enumerate(self.tasks)
        }


@register("hyperformer_lite", HyperformerOptions)
class HyperformerLite(_PerTaskSlots):
    """Adapters generated per task and block by a shared hypernetwork (one per (d_in, d_out) pair)."""

    def __init__(self, backbone: Any, tasks: Sequence[str], options: HyperformerOptions) -> None:
        super().__init__(backbone, tasks, options)
        self.config = config = options
        e, r = config.hyper_dim, config.r
        self.act = activation(config.act)
        self.task_embed = nn.Parameter(torch.randn(len(tasks), e) * 0.1)
        self.slot_embed = nn.Parameter(torch.randn(len(backbone.slots), e) * 0.1)
        self.generators = nn.ModuleDict()
        self.shape_of: dict[int, tuple[str, int, int]] = {}
        for s in backbone.slots:
            key = f"{s.d_in}x{s.d_out}"
            self.shape_of[s.index] = (key, s.d_in, s.d_out)
            if key not in self.generators:
                down = nn.Linear(2 * e, s.d_in * r + r)
                up = nn.Linear(2 * e, r * s.d_out + s.d_out)
                nn.init.zeros_(up.weight)
                nn.init.zeros_(up.bias)
                self.generators[key] = nn.ModuleList([down, up])

    def task_parameters(self) -> int:
        return self.task_embed.shape[1]

    def task_hook(self, t: int) -> SlotHook:
        r = self.config.r

        def hook(i: int, tap: torch.Tensor) -> torch.Tensor:
            key, d_in, d_out = self.shape_of[i]
            emb = torch.cat([self.task_embed[t], self.slot_embed[i]])
            gens: Any = self.generators[key]
            gen_down, gen_up = gens[0], gens[1]
            wd = gen_down(emb)
            wu = gen_up(emb)
            z = self.act(tap @ wd[: d_in * r].reshape(d_in, r) + wd[d_in * r :])
            return self.config.scale * (z @ wu[: r * d_out].reshape(r, d_out) + wu[r * d_out :])

        return hook
