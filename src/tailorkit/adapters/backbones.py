"""Backbones behind the "adapter slot" interface, and their construction from a config.

The slot interface (defined with :class:`tailorkit.nets.vit.SlotInfo`): a backbone exposes ``slots`` (one
:class:`SlotInfo` per block: stage, MLP-input width ``d_in``, output width ``d_out``), ``stage_channels``,
``stage_strides`` and ``forward_stages(x, hook=None, prompts=None) -> list of (B, C_k, H_k, W_k)``; at every block it
calls ``hook(i, tap)`` with the block's MLP-path input as a channel-last ``(B, h, w, d_in)`` tensor at the block's
output resolution and adds the returned ``(B, h, w, d_out)`` tensor to the block output. One call of
``forward_stages`` is one pass of the frozen backbone, whatever the number of tasks.

EfficientNet-Lite0 (real ImageNet weights) joins through :class:`EfficientNetSlots`, a wrapper that runs the
network's own blocks (nothing in :mod:`tailorkit.nets.efficientnet_lite` changes). Documented generalisation
[inferred]: an MBConv block's expand / depthwise / project path plays the transformer MLP's role, so the adapter
runs in parallel to it: its tap is the block input (average-pooled by the block's stride so it matches the output
resolution) and its delta is added to the block output, including on blocks that change width or resolution
(where the block has no skip connection). The classifier head (``_conv_head``, ``_fc``) is not part of the dense
encoder and is dropped, so "backbone parameters" counts the stem and the 16 blocks (2.96 M of the 4.65 M).

Which backbones are real: EfficientNet-Lite0 is the only pretrained one (real ImageNet weights). ViT and Swin are
architectures (shapes) with a seeded random initialisation; a user's own weights for them load strictly from a
safetensors file (``weights=``, :func:`load_backbone_weights`: every key and shape must match the slot backbone).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from tailorkit.nets.efficientnet_lite import EfficientNetLite0, MBConv, load_efficientnet_lite0
from tailorkit.nets.vit import SlotHook, SlotInfo, ViT

__all__ = ["EfficientNetSlots", "backbone_fingerprint", "build_backbone", "count_parameters", "load_backbone_weights"]


class EfficientNetSlots(nn.Module):
    """EfficientNet-Lite0's stem and MBConv blocks as a slot backbone (module docstring).

    Shapes:
        x: (B, 3, H, W), normalised as :func:`tailorkit.nets.efficientnet_lite.preprocess` does (TF-style).
        forward_stages: maps at strides 2, 4, 8, 16, 32 with 16, 24, 40, 112, 320 channels.
    """

    supports_prompts = False

    def __init__(self, net: EfficientNetLite0) -> None:
        super().__init__()
        self._conv_stem = net._conv_stem
        self._bn0 = net._bn0
        self._blocks = net._blocks
        self.stage_ends = tuple(net._stage_ends)
        self.stage_channels: tuple[int, ...] = tuple(net.stage_channels)
        self.stage_strides: tuple[int, ...] = (2, 4, 8, 16, 32)
        slots = []
        stage = 0
        for i, block in enumerate(net._blocks):
            assert isinstance(block, MBConv)
            d_in = block._depthwise_conv.in_channels // (6 if block.has_expand else 1)
            slots.append(SlotInfo(i, stage, d_in, block._bn2.num_features))
            if i in self.stage_ends:
                stage += 1
        self._slots = slots

    @property
    def slots(self) -> list[SlotInfo]:
        return list(self._slots)

    def forward_stages(
        self, x: torch.Tensor, hook: SlotHook | None = None, prompts: object | None = None
    ) -> list[torch.Tensor]:
        if prompts is not None:
            raise ValueError("EfficientNet-Lite0 takes no prompt tokens (VPT needs a transformer backbone)")
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected a (B, 3, H, W) image batch, got shape {tuple(x.shape)}")
        h = F.relu6(self._bn0(self._conv_stem(x)))
        out = []
        for i, block in enumerate(self._blocks):
            y = block(h)
            if hook is not None:
                tap = h
                if tap.shape[-2:] != y.shape[-2:]:
                    tap = F.adaptive_avg_pool2d(tap, y.shape[-2:])
                delta = hook(i, tap.permute(0, 2, 3, 1))
                if delta is not None:
                    y = y + delta.permute(0, 3, 1, 2)
            h = y
            if i in self.stage_ends:
                out.append(h)
        return out


def build_backbone(
    name: str,
    *,
    pretrained: bool = True,
    image_size: int = 64,
    seed: int = 0,
    vit_dim: int = 96,
    vit_depth: int = 6,
    vit_patch: int = 8,
    weights: str = "",
) -> nn.Module:
    """A slot backbone by name: ``efficientnet_lite0`` (real ImageNet weights unless ``pretrained=False``), ``vit``
    or ``swin`` (small, seeded random init: no pretrained ViT/Swin installs offline, docs/assets.md). Random
    initialisations are seeded by ``seed``, so that every process builds the same network. ``weights``: a
    safetensors file of the slot backbone's state dict, loaded strictly in place of the initialisation (EfficientNet
    is then built without its ImageNet weights).

    Raises:
        ValueError: Unknown name (the message lists the valid ones).
        tailorkit.core.errors.InputError: ``weights`` unreadable or not matching the backbone (one line).
        tailorkit.assets.AssetMissing: EfficientNet weights requested but not installed.
    """
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)  # scoped: the global state is restored below, so callers' streams are untouched
    try:
        if name == "efficientnet_lite0":
            net = load_efficientnet_lite0() if pretrained and not weights else EfficientNetLite0()
            model: nn.Module = EfficientNetSlots(net)
        elif name == "vit":
            stages = 3 if vit_depth % 3 == 0 else 2 if vit_depth % 2 == 0 else 1
            model = ViT(image_size=image_size, patch=vit_patch, dim=vit_dim, depth=vit_depth, heads=4, stages=stages)
        elif name == "swin":
            from tailorkit.nets.swin import Swin

            model = Swin(image_size=image_size)
        else:
            raise ValueError(f"backbone: expected one of efficientnet_lite0, vit, swin; got {name!r}")
    finally:
        torch.random.set_rng_state(gen_state)
    if weights:
        load_backbone_weights(model, weights)
    return model.eval()


def load_backbone_weights(backbone: nn.Module, path: str | Path) -> nn.Module:
    """Load a safetensors state dict into ``backbone`` strictly: the same keys (parameters and persistent buffers)
    and shapes, else a one-line error naming the file and the first offending key.

    Raises:
        tailorkit.core.errors.InputError: Unreadable file, a missing or unexpected key, or a shape mismatch.
    """
    from safetensors.torch import load_file

    from tailorkit.core.errors import InputError, check_safetensors

    file = check_safetensors(path, what="backbone.weights")
    state = load_file(str(file))
    own = backbone.state_dict()
    kind = type(backbone).__name__
    missing = sorted(set(own) - set(state))
    if missing:
        raise InputError(f"backbone.weights {file}: missing key {missing[0]!r} ({len(missing)} missing) for {kind}")
    extra = sorted(set(state) - set(own))
    if extra:
        raise InputError(f"backbone.weights {file}: unexpected key {extra[0]!r} ({len(extra)} extra) for {kind}")
    for key, value in state.items():
        if tuple(value.shape) != tuple(own[key].shape):
            raise InputError(
                f"backbone.weights {file}: {key!r} has shape {tuple(value.shape)}, "
                f"{kind} expects {tuple(own[key].shape)}"
            )
    backbone.load_state_dict(state, strict=True)
    return backbone


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def backbone_fingerprint(backbone: nn.Module) -> str:
    """sha256 of the backbone's parameter and buffer names, shapes and values (manifests compare it on load)."""
    digest = hashlib.sha256()
    for key, value in sorted(backbone.state_dict().items()):
        digest.update(key.encode())
        digest.update(str(tuple(value.shape)).encode())
        digest.update(value.detach().to("cpu", torch.float64).contiguous().numpy().tobytes())
    return digest.hexdigest()
