"""The frozen-feature cache: hits, keys (invalidation on preprocessing), corrupt files; encode_frames shapes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tailorkit.video.data import clip_features
from tailorkit.video.features import FeatureCache, encode_frames, model_key, preprocessing_key
from tests.video.conftest import moving_square


def test_encode_frames_shapes_and_consistency(encoder: Any) -> None:
    clip = moving_square(frames=4)[None]
    out = encode_frames(encoder, clip, 32, prefix_stage=6)
    assert out["emb"].shape == (1, 4, encoder.dim)
    torch.testing.assert_close(out["emb"].norm(dim=-1), torch.ones(1, 4))
    again = encoder.encode_image_prefix(out["prefix"][0], 6)
    torch.testing.assert_close(again, out["emb"][0], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="expected uint8 clips"):
        encode_frames(encoder, clip.astype(np.float32), 32)


def test_cache_round_trip_and_key_check(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    key = {"model": "m", "data": "d", "preprocessing": preprocessing_key(32, None)}
    calls = []

    def compute() -> dict[str, torch.Tensor]:
        calls.append(1)
        return {"emb": torch.arange(6.0).reshape(1, 2, 3)}

    first = cache.get_or_compute(key, compute)
    second = cache.get_or_compute(key, compute)
    assert len(calls) == 1 and cache.hits == 1 and cache.misses == 1
    torch.testing.assert_close(first["emb"], second["emb"])
    cache.path(key).write_bytes(b"corrupt")
    assert cache.get(key) is None  # unreadable: recomputed, never trusted


def test_cache_invalidates_when_preprocessing_changes(
    encoder: Any, encoder_and_manifest: Any, tmp_clip_dir: Path
) -> None:
    _, manifest = encoder_and_manifest
    cache = FeatureCache(tmp_clip_dir / "cache")
    clip = tmp_clip_dir / "clip.mp4"
    a = clip_features(encoder, manifest, clip, frames=4, size=32, cache=cache)
    b = clip_features(encoder, manifest, clip, frames=4, size=32, cache=cache)
    assert (cache.misses, cache.hits) == (1, 1)
    torch.testing.assert_close(a["emb"], b["emb"])
    c = clip_features(encoder, manifest, clip, frames=4, size=48, cache=cache)  # new input size: new entry
    assert cache.misses == 2
    assert not torch.allclose(a["emb"], c["emb"])
    clip_features(encoder, manifest, clip, frames=4, size=32, sampling="segment", cache=cache)
    assert cache.misses == 3
    assert len(list((tmp_clip_dir / "cache").glob("*.safetensors"))) == 3
    keys = {FeatureCache.digest(preprocessing_key(s, p)) for s in (32, 48) for p in (None, 6)}
    assert len(keys) == 4
    assert model_key(encoder, manifest)["towers_digest"] == manifest["towers_digest"]


def test_clip_features_bad_input(encoder: Any, encoder_and_manifest: Any, tmp_clip_dir: Path) -> None:
    from tailorkit.video.io import VideoError

    _, manifest = encoder_and_manifest
    cache = FeatureCache(tmp_clip_dir / "cache2")
    with pytest.raises(VideoError, match="too few frames: the clip has 12, sampling needs at least 16"):
        clip_features(encoder, manifest, tmp_clip_dir / "clip.mp4", frames=16, size=32, cache=cache)
    with pytest.raises(VideoError, match="no such video file"):
        clip_features(encoder, manifest, tmp_clip_dir / "absent.mp4", cache=cache)


@pytest.fixture()
def tmp_clip_dir(tmp_path: Path, tiny_clip: Path) -> Path:
    return tiny_clip.parent
