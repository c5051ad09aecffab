"""VMT-Adapter and VMT-Adapter-Lite (Xin et al., "VMT-Adapter: Parameter-Efficient Transfer Learning for
Multi-Task Dense Scene Understanding", AAAI 2024, arXiv:2312.08733), plus the shared-adapter ablation.

No official code exists; this is a reconstruction (docs/adapters.md#the-method-as-implemented), every choice a
:class:`~tailorkit.adapters.config.MethodConfig` knob:

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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from tailorkit.adapters.config import MethodConfig
from tailorkit.adapters.methods.base import METHODS, MultiTaskEncoder, activation

__all__ = ["VMTEncoder", "VMTSlot"]


class VMTSlot(nn.Module):
    """One block's VMT adapter: shared down/up projections and per-task extraction modules.

    Shapes:
        tap: (..., d_in) -> delta (..., d_out), sides: T tensors (..., d_out) (none when task_module="none")
    """

    def __init__(self, d_in: int, d_out: int, n_tasks: int, config: MethodConfig) -> None:
        super().__init__()
        r = config.r
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
        elif self.task_module != "none":
            raise ValueError(f"task_module: expected scale_shift, linear, gate or none, got {self.task_module!r}")
        if self.task_module != "none":
            # Lite's tied W_up is not zero at init, so its side outputs start at 0 through s_t = 0.
            self.task_scale = nn.Parameter(torch.full((n_tasks,), 0.0 if self.lite else float(config.task_scale)))

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
            h = self.task_scale[t] * self.up_project(self.extract(z, t), bias=False)
            sides.append(h - delta if self.combine == "replace_generic" else h)
        return delta, sides


class VMTEncoder(MultiTaskEncoder):
    """One backbone pass; shared adapters steer the generic stream, task side outputs go to the decoders."""

    passes_per_batch = "1"

    def __init__(self, backbone: Any, tasks: Sequence[str], config: MethodConfig) -> None:
        super().__init__(backbone, tasks, config)
        slots = backbone.slots
        first = len(slots) - config.insert_last if config.insert_last else 0
        self.active = [s.index for s in slots if s.index >= first]
        stage_ch = backbone.stage_channels
        last_in_stage = {s.stage: s.index for s in slots}
        self.contributes = {
            s.index: s.stage
            for s in slots
            if s.index in self.active
            and s.d_out == stage_ch[s.stage]
            and (config.task_feature_source == "all_blocks_in_stage" or last_in_stage[s.stage] == s.index)
        }
        # blocks whose side outputs reach no decoder get no task modules (they would never train)
        no_tasks = replace(config, task_module="none")
        self.slot_modules = nn.ModuleDict(
            {
                str(i): VMTSlot(
                    slots[i].d_in, slots[i].d_out, len(tasks), config if i in self.contributes else no_tasks
                )
                for i in self.active
            }
        )

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

    def forward(self, x: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        n_stages = len(self.backbone.stage_channels)
        acc: list[list[torch.Tensor | None]] = [[None] * n_stages for _ in self.tasks]

        def hook(i: int, tap: torch.Tensor) -> torch.Tensor | None:
            if i not in self.active:
                return None
            delta, sides = self.slot_modules[str(i)](tap)
            stage = self.contributes.get(i)
            if stage is not None:
                for t, h in enumerate(sides):
                    prev = acc[t][stage]
                    acc[t][stage] = h if prev is None else prev + h
            return delta

        generic = self.backbone.forward_stages(x, hook)
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


@METHODS.register("vmt")
def vmt(backbone: Any, tasks: Sequence[str], config: MethodConfig) -> VMTEncoder:
    """VMT-Adapter (untied projections; ``share_mode`` is forced to "none")."""
    return VMTEncoder(backbone, tasks, replace(config, share_mode="none"))


@METHODS.register("vmt_lite")
def vmt_lite(backbone: Any, tasks: Sequence[str], config: MethodConfig) -> VMTEncoder:
    """VMT-Adapter-Lite: W_up tied to W_down^T (``share_mode="transpose"``)."""
    return VMTEncoder(backbone, tasks, replace(config, share_mode="transpose"))


@METHODS.register("shared_adapter")
def shared_adapter(backbone: Any, tasks: Sequence[str], config: MethodConfig) -> VMTEncoder:
    """The ablation without task modules: one parallel adapter shared by all tasks (VL-Adapter-style sharing)."""
    return VMTEncoder(backbone, tasks, replace(config, share_mode="none", task_module="none"))
