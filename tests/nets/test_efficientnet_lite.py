"""EfficientNet-Lite0: real-weight reference accuracy, strict loading, and shape/invariance contracts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tailorkit.nets.efficientnet_lite import EfficientNetLite0, load_efficientnet_lite0, preprocess

# Top-1 label and softmax confidence of the released weights on OpenCV's sample photos, from a PIL pipeline
# (bicubic resize to 224x224, TF normalisation); ours differs only in doing the resize in torch.
REFERENCE = {
    "squirrel_cls.jpg": ("fox squirrel", 0.61),
    "baboon.jpg": ("baboon", 0.38),
    "orange.jpg": ("orange", 0.70),
    "apple.jpg": ("Granny Smith", 0.76),
    "butterfly.jpg": ("monarch", 0.52),
}
CONFIDENCE_TOL = 0.05

T = TypeVar("T")


def _asset(fetch: Callable[[], T]) -> T:
    """Call an asset locator, skipping (with its install hint) when the asset is not installed."""
    from tailorkit.assets import AssetMissing

    try:
        return fetch()
    except AssetMissing as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def weights_path() -> Path:
    from tailorkit.assets import efficientnet_lite0_weights

    return Path(_asset(efficientnet_lite0_weights))


@pytest.fixture(scope="module")
def model(weights_path: Path) -> EfficientNetLite0:
    # The default path goes through tailorkit.assets; the fixture above already skipped if that is missing.
    return load_efficientnet_lite0()


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    from tailorkit.assets import opencv_photo

    return {name: np.asarray(_asset(lambda name=name: opencv_photo(name))) for name in REFERENCE}


@pytest.fixture(scope="module")
def imagenet_names() -> list[str]:
    from tailorkit.assets import class_names

    names = list(_asset(lambda: class_names("imagenet")))
    assert len(names) == 1000
    return names


@pytest.fixture(scope="module")
def photo_probs(model: EfficientNetLite0, photos: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    # One batch for all photos (they differ in size; preprocess takes a sequence) keeps the module fast.
    with torch.no_grad():
        probs = model(preprocess(list(photos.values()))).softmax(dim=-1)
    return dict(zip(photos, probs, strict=True))


@pytest.mark.parametrize("photo", sorted(REFERENCE))
def test_reference_top1_label_and_confidence(
    photo: str, photo_probs: dict[str, torch.Tensor], imagenet_names: list[str]
) -> None:
    expected_label, expected_conf = REFERENCE[photo]
    conf, idx = photo_probs[photo].max(dim=-1)
    label = imagenet_names[int(idx)].split(",")[0].strip()
    assert label == expected_label
    assert abs(float(conf) - expected_conf) <= CONFIDENCE_TOL, f"{photo}: {float(conf):.3f} vs {expected_conf}"


def test_strict_load_covers_every_tensor(model: EfficientNetLite0, weights_path: Path) -> None:
    state = torch.load(weights_path, map_location="cpu", weights_only=True)
    assert len(state) == 296
    ours = model.state_dict()
    assert list(ours) == list(state)
    for key, value in state.items():
        assert torch.equal(ours[key].cpu(), value), key
    # 4,694,024 floats in the file: 4,652,008 learnable parameters plus the BN running means and variances.
    assert sum(v.numel() for v in state.values() if v.is_floating_point()) == 4_694_024
    assert sum(p.numel() for p in model.parameters()) == 4_652_008
    # Strictness is real: a file missing one tensor is refused.
    state.pop("_fc.bias")
    with pytest.raises(RuntimeError, match=r"_fc\.bias"):
        EfficientNetLite0().load_state_dict(state, strict=True)


def test_pooled_is_spatial_mean_of_features(model: EfficientNetLite0) -> None:
    x = torch.randn(2, 3, 96, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        feats = model.features(x)
        pooled = model.pooled(x)
    assert feats.shape == (2, model.num_features, 3, 4)
    assert pooled.shape == (2, 1280)
    torch.testing.assert_close(pooled, feats.mean(dim=(2, 3)), rtol=0, atol=1e-6)


@pytest.mark.parametrize("size", [(224, 224), (160, 96)])
def test_stages_shapes_and_strides(model: EfficientNetLite0, size: tuple[int, int]) -> None:
    h, w = size
    x = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        maps = model.stages(x)
        feats = model.features(x)
    expected = [(1, c, h // s, w // s) for c, s in zip((16, 24, 40, 112, 320), (2, 4, 8, 16, 32), strict=True)]
    assert [tuple(m.shape) for m in maps] == expected
    assert tuple(model.stage_channels) == (16, 24, 40, 112, 320)
    # The stride-32 stage is the last block's output: the head applied to it gives features().
    with torch.no_grad():
        head = F.relu6(model._bn1(model._conv_head(maps[-1])))
    torch.testing.assert_close(head, feats, rtol=0, atol=1e-6)


def test_preprocess_output_form_and_normalisation() -> None:
    grey = np.full((300, 200, 3), 128, dtype=np.uint8)
    out = preprocess(grey)
    assert out.shape == (1, 3, 224, 224) and out.dtype == torch.float32
    # A flat image survives any resize; 128 maps to 128/255 * 2 - 1.
    torch.testing.assert_close(out, torch.full_like(out, 128 / 255 * 2 - 1), rtol=0, atol=1e-5)
    batch = preprocess(torch.from_numpy(np.stack([grey, 255 - grey])))
    assert batch.shape == (2, 3, 224, 224)
    assert preprocess([grey, np.zeros((50, 70, 3), np.uint8)]).shape == (2, 3, 224, 224)
    extremes = preprocess(np.tile(np.array([0, 255], np.uint8).repeat(3).reshape(1, 2, 3), (64, 32, 1)))
    assert float(extremes.min()) >= -1.0 and float(extremes.max()) <= 1.0


@pytest.mark.parametrize(
    ("bad", "received"),
    [
        (np.zeros((32, 32, 3), np.float32), "float32"),
        (torch.zeros(32, 32, 3), "torch.float32"),
        (np.zeros((32, 32), np.uint8), "(32, 32)"),
        (np.zeros((32, 32, 4), np.uint8), "(32, 32, 4)"),
        (np.zeros((1, 3, 32, 32), np.uint8), "(1, 3, 32, 32)"),
        (np.zeros((1, 1, 32, 32, 3), np.uint8), "(1, 1, 32, 32, 3)"),
        ([np.zeros((1, 32, 32, 3), np.uint8)], "(1, 32, 32, 3)"),
        ([], "empty"),
        ("photo.jpg", "str"),
    ],
)
def test_preprocess_rejects_bad_input_naming_expected_and_received(bad: object, received: str) -> None:
    with pytest.raises(ValueError, match="expected") as info:
        preprocess(bad)  # type: ignore[arg-type]
    assert received in str(info.value)


def test_forward_rejects_non_rgb_batch(model: EfficientNetLite0) -> None:
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\).*\(2, 1, 64, 64\)"):
        model(torch.zeros(2, 1, 64, 64))


def test_deterministic_and_batch_independent(model: EfficientNetLite0, photos: dict[str, np.ndarray]) -> None:
    apple, baboon = preprocess(photos["apple.jpg"]), preprocess(photos["baboon.jpg"])
    with torch.no_grad():
        alone = model(apple)
        again = model(apple)
        paired = model(torch.cat([baboon, apple]))
    assert torch.equal(alone, again)
    torch.testing.assert_close(paired[1:], alone, rtol=0, atol=1e-5)
    assert not torch.allclose(paired[0], paired[1], atol=1e-2)  # the pair really holds two different images
