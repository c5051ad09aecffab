from __future__ import annotations

import pytest
import torch

from tailorkit.nets.swin import Swin, SwinBlock


def test_hierarchical_shapes_and_slots() -> None:
    torch.manual_seed(0)
    swin = Swin(image_size=64)
    maps = swin.forward_stages(torch.randn(2, 3, 64, 64))
    assert [tuple(m.shape) for m in maps] == [(2, 32, 16, 16), (2, 64, 8, 8), (2, 128, 4, 4), (2, 256, 2, 2)]
    assert [s.stage for s in swin.slots] == [0, 0, 1, 1, 2, 2, 3, 3]
    assert [s.d_in for s in swin.slots] == [32, 32, 64, 64, 128, 128, 256, 256]
    with pytest.raises(ValueError, match="no prompt tokens"):
        swin.forward_stages(torch.randn(1, 3, 64, 64), prompts=[torch.zeros(1, 32)])


def test_shifted_window_mask_blocks_attention_across_the_wrap() -> None:
    """A shifted block must not mix tokens that only meet because of the cyclic roll."""
    torch.manual_seed(0)
    block = SwinBlock(dim=8, heads=1, window=4, shift=2).eval()
    x = torch.randn(1, 8, 8, 8)
    base = block(x, None, 0)
    x2 = x.clone()
    # top-left token (not by a constant, which LayerNorm would erase): after the roll it shares a window with
    # the bottom-right tokens, which the mask must keep it from
    x2[0, 0, 0] += 5 * torch.randn(8)
    changed = (block(x2, None, 0) - base).abs().sum(-1)[0] > 1e-6
    # tokens that are far from (0, 0) in the un-rolled image (the last rows/cols) must be unaffected
    assert not changed[6:, 6:].any()
    assert changed[0, 0] and changed[:2, :2].all()


def test_hook_adds_in_parallel_to_the_mlp() -> None:
    torch.manual_seed(0)
    swin = Swin(image_size=32).eval()
    x = torch.randn(1, 3, 32, 32)
    calls = []

    def hook(i: int, tap: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(tap.shape))
        return torch.zeros_like(tap)

    torch.testing.assert_close(swin.forward_stages(x, hook)[-1], swin.forward_stages(x)[-1])
    assert calls[0] == (1, 8, 8, 32) and calls[-1] == (1, 1, 1, 256) and len(calls) == 8
    out = swin.forward_stages(x, lambda i, t: torch.ones_like(t) if i == 7 else None)[-1]
    assert not torch.allclose(out, swin.forward_stages(x)[-1])
