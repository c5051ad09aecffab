"""Blocks alone (no encoder): neutral starts, reversal sensitivity, shapes."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tailorkit.video.blocks import CommunicationBlock, DynamicPrompts, MotionBlock, MotionStream, TemporalTransformer


def _frames(b: int = 3, t: int = 8, d: int = 32) -> torch.Tensor:
    return F.normalize(torch.randn(b, t, d, generator=torch.Generator().manual_seed(0)), dim=-1)


def test_temporal_transformer_identity_at_init() -> None:
    f = _frames()
    torch.testing.assert_close(TemporalTransformer(32, 8, layers=2)(f), f)


def test_motion_block_zero_gate_is_mean_pooling() -> None:
    f = _frames()
    block = MotionBlock(32, 8, temporal_layers=1, motion=True)
    v, m = block(f)
    torch.testing.assert_close(v, f.mean(1))
    assert m is not None and m.abs().sum() > 0  # the cue exists even while the gate is closed


def test_reversal_changes_motion_not_mean() -> None:
    f = _frames()
    stream = MotionStream(32, hidden=16)
    rev = f.flip(1)
    torch.testing.assert_close(f.mean(1), rev.mean(1))
    assert (stream(f) - stream(rev)).abs().max() > 1e-3


def test_motion_stream_of_static_clip_is_constant() -> None:
    still = F.normalize(torch.randn(1, 1, 32), dim=-1).expand(2, 8, 32)
    stream = MotionStream(32, hidden=16)
    out = stream(still)
    torch.testing.assert_close(out[0], out[1])  # zero differences: the same output for any still clip


def test_dynamic_prompts_and_communication_start_neutral() -> None:
    cue = torch.randn(4, 32)
    assert DynamicPrompts(32, 48, "context")(cue).abs().max() == 0
    assert DynamicPrompts(32, 48, "after")(cue).shape == (4, 32)
    comm = CommunicationBlock(32)
    text = F.normalize(torch.randn(5, 32), dim=-1)
    f = _frames(4)
    out = comm(text, f, f.mean(1))
    assert out.shape == (4, 5, 32)
    torch.testing.assert_close(out, text.expand(4, -1, -1))
