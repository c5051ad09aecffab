"""Every arm on the real (frozen) dual encoder: neutral start, what trains, reversal, save/load, bad input."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tailorkit.video.api import load_model, parse_classes, save_model
from tailorkit.video.features import encode_frames
from tailorkit.video.methods import METHODS, make_model
from tailorkit.video.shapes import MotionShapes, class_names
from tailorkit.video.train import OptimSettings, evaluate, fit
from tests.conftest import Interrupted as _Crash
from tests.conftest import interrupt_after as _crash_at

NAMES = class_names(["square", "star"])


@pytest.fixture(scope="module")
def clips(encoder: Any) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    gen = MotionShapes(frames=6, size=32)
    rng = np.random.default_rng(0)
    frames, labels = [], []
    for label in range(len(NAMES)):
        frames.append(gen.clip(NAMES[label].split()[0], label % 8, "train", rng))
        labels.append(label)
    feats = encode_frames(encoder, np.stack(frames), 32, prefix_stage=6)
    return feats, torch.tensor(labels)


def test_every_method_registered() -> None:
    assert METHODS.names() == sorted(
        ["coop_mean", "coop_temporal", "finetune_top", "motion_dynamic", "motion_static", "sif", "zero_shot"]
    )
    with pytest.raises(KeyError, match="expected one of"):
        METHODS.get("x_clip")


ARMS_AT_INIT = [
    ("sif", "context"),
    ("sif", "after"),
    ("motion_dynamic", "context"),
    ("motion_dynamic", "after"),
    ("motion_static", ""),
    ("coop_mean", ""),
    ("coop_temporal", ""),
    ("finetune_top", ""),
]


@pytest.mark.parametrize(("name", "dynamic"), ARMS_AT_INIT)
def test_zero_init_equals_frozen_clip_mean_pooling(
    encoder: Any, clips: tuple[dict[str, torch.Tensor], torch.Tensor], name: str, dynamic: str
) -> None:
    feats, _ = clips
    reference = make_model("zero_shot", encoder, 6)
    options = {"dynamic": dynamic} if dynamic else {}
    model = make_model(name, encoder, 6, **options)
    with torch.no_grad():
        expected = reference(feats, NAMES)
        # frozen CLIP + mean pooling by hand: mean of frame embeddings vs template text
        manual = encoder.logits(torch.nn.functional.normalize(feats["emb"].mean(1), dim=-1), encoder.encode_text(NAMES))
        torch.testing.assert_close(expected, manual, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(model(feats, NAMES), expected, atol=1e-4, rtol=1e-4)


def test_only_intended_parameters_train(encoder: Any, clips: tuple[dict[str, torch.Tensor], torch.Tensor]) -> None:
    feats, labels = clips
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    model = make_model("sif", encoder, 6, dynamic="after")
    names = {n.split(".")[0] for n, _ in model.named_parameters()}
    assert names == {"ctx", "block", "dynamic", "comm"}
    start = {k: v.clone() for k, v in model.state_dict().items()}
    fit(model, feats, labels, NAMES, OptimSettings(steps=3, batch=8, warmup=0))
    for k, v in encoder.state_dict().items():
        assert torch.equal(v, before[k]), f"frozen encoder tensor {k} changed"
    changed = {k.split(".")[0] for k, v in model.state_dict().items() if not torch.equal(v, start[k])}
    assert changed == {"ctx", "block", "dynamic", "comm"}
    assert model.trainable_count() == sum(p.numel() for p in model.parameters())
    assert make_model("zero_shot", encoder, 6).trainable_count() == 0


def test_finetune_top_moves_only_deltas(encoder: Any, clips: tuple[dict[str, torch.Tensor], torch.Tensor]) -> None:
    feats, labels = clips
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    model = make_model("finetune_top", encoder, 6)
    fit(model, feats, labels, NAMES, OptimSettings(steps=2, batch=8, warmup=0))
    assert all(torch.equal(v, before[k]) for k, v in encoder.state_dict().items())
    assert any(p.abs().sum() > 0 for p in model.parameters())
    with pytest.raises(ValueError, match="needs the cached image-tower prefix"):
        model({"emb": feats["emb"]}, NAMES)


def test_training_fits_the_training_clips(encoder: Any, clips: tuple[dict[str, torch.Tensor], torch.Tensor]) -> None:
    feats, labels = clips
    torch.manual_seed(0)  # module initialisation draws from the global generator
    model = make_model("motion_static", encoder, 6)
    start = evaluate(model, feats, labels, NAMES)
    result = fit(model, feats, labels, NAMES, OptimSettings(steps=25, batch=16, lr=3e-3))
    assert result.losses[-1] < result.losses[0]
    assert evaluate(model, feats, labels, NAMES) > start


def test_reversal_changes_motion_features_not_mean(
    encoder: Any, clips: tuple[dict[str, torch.Tensor], torch.Tensor]
) -> None:
    feats, _ = clips
    f = feats["emb"][:4]
    model = make_model("sif", encoder, 6)
    assert model.block is not None
    v, m = model.block(f)
    v_rev, m_rev = model.block(f.flip(1))
    torch.testing.assert_close(f.mean(1), f.flip(1).mean(1))
    torch.testing.assert_close(v, v_rev)  # closed gate: mean pooling, blind to order
    assert m is not None and m_rev is not None and (m - m_rev).abs().max() > 1e-3


def test_save_load_round_trip(
    encoder: Any, clips: tuple[dict[str, torch.Tensor], torch.Tensor], tmp_path: Path
) -> None:
    feats, labels = clips
    model = make_model("motion_dynamic", encoder, 6, dynamic="after")
    fit(model, feats, labels, NAMES, OptimSettings(steps=2, batch=8, warmup=0))
    path = save_model(model, tmp_path / "m.safetensors", "motion_dynamic")
    loaded, manifest = load_model(path, encoder)
    assert manifest["method"] == "motion_dynamic" and loaded.spec == model.spec
    with torch.no_grad():
        torch.testing.assert_close(loaded(feats, NAMES), model(feats, NAMES))
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(ValueError, match="not a readable safetensors model"):
        load_model(tmp_path / "junk.safetensors", encoder)


def test_empty_class_list_and_bad_options(encoder: Any, clips: tuple[dict[str, torch.Tensor], torch.Tensor]) -> None:
    feats, _ = clips
    with pytest.raises(ValueError, match="expected a comma-separated list of class names"):
        parse_classes(" , ")
    with pytest.raises(ValueError, match="at least one class"):
        make_model("zero_shot", encoder, 6)(feats, [])
    with pytest.raises(ValueError, match="unknown options"):
        make_model("sif", encoder, 6, depth=3)
    with pytest.raises(ValueError, match="dynamic prompts need the motion stream"):
        make_model("coop_mean", encoder, 6, dynamic="after")


@pytest.mark.parametrize("name", ["sif", "finetune_top"])  # sif: base + gate groups; finetune_top: the delta group
def test_interrupted_fit_resumes_to_the_uninterrupted_run(
    encoder: Any, clips: tuple[dict[str, torch.Tensor], torch.Tensor], tmp_path: Path, name: str
) -> None:
    # 16 clips in batches of 6: two batches an epoch, so the checkpoint at step 3 sits mid-epoch and the crash at
    # step 5 loses two steps; AdamW moments of every group, the warm-up + cosine schedule and the batch order all
    # have to line up after the resume for the runs to agree bit for bit.
    feats, labels = clips
    settings = OptimSettings(steps=7, batch=6, warmup=2)
    options = {"dynamic": "after"} if name == "sif" else {}

    def model(init: int) -> Any:
        torch.manual_seed(init)
        return make_model(name, encoder, 6, **options)

    straight_model = model(0)
    straight = fit(straight_model, feats, labels, NAMES, settings, seed=11)
    ckpt = tmp_path / "fit.pt"
    with pytest.raises(_Crash):
        fit(
            model(0), feats, labels, NAMES, settings, seed=11, checkpoint=ckpt, checkpoint_every=3, on_step=_crash_at(5)
        )
    assert torch.load(ckpt, weights_only=True)["step"] == 3
    resumed_model = model(9)  # another initialisation: the checkpoint overwrites it
    resumed = fit(resumed_model, feats, labels, NAMES, settings, seed=11, checkpoint=ckpt, checkpoint_every=3)
    assert len(straight.losses) == settings.steps
    assert resumed.losses == straight.losses
    expected = straight_model.state_dict()
    for key, value in resumed_model.state_dict().items():
        assert torch.equal(value, expected[key]), key
    # the seed sets the batch order: another seed's first two steps (same schedule) already differ
    other = fit(model(0), feats, labels, NAMES, replace(settings, steps=2), seed=12)
    assert other.losses != straight.losses[:2]


def test_fit_on_fewer_clips_than_a_batch(encoder: Any, clips: tuple[dict[str, torch.Tensor], torch.Tensor]) -> None:
    feats, labels = clips
    torch.manual_seed(0)
    model = make_model("coop_mean", encoder, 6)
    result = fit(model, feats, labels, NAMES, OptimSettings(steps=2, batch=64, warmup=0))
    assert len(result.losses) == 2 and all(math.isfinite(v) for v in result.losses)
