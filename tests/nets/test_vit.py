from __future__ import annotations

import pytest
import torch

from tailorkit.nets.vit import ViT


def test_shapes_slots_and_stage_grouping() -> None:
    torch.manual_seed(0)
    vit = ViT(image_size=32, patch=8, dim=32, depth=4, heads=4, stages=2)
    maps = vit.forward_stages(torch.randn(2, 3, 32, 32))
    assert [tuple(m.shape) for m in maps] == [(2, 32, 4, 4)] * 2
    assert [(s.index, s.stage, s.d_in, s.d_out) for s in vit.slots] == [
        (0, 0, 32, 32),
        (1, 0, 32, 32),
        (2, 1, 32, 32),
        (3, 1, 32, 32),
    ]
    with pytest.raises(ValueError, match="expected a \\(B, 3, 32, 32\\)"):
        vit.forward_stages(torch.randn(1, 3, 16, 16))
    with pytest.raises(ValueError, match="depth divisible"):
        ViT(depth=4, stages=3)


def test_hook_sees_the_mlp_input_and_adds_in_parallel() -> None:
    torch.manual_seed(0)
    vit = ViT(image_size=32, patch=8, dim=16, depth=2, heads=2, stages=1).eval()
    x = torch.randn(1, 3, 32, 32)
    seen = []

    def none_hook(i: int, tap: torch.Tensor) -> None:
        seen.append((i, tuple(tap.shape)))

    base = vit.forward_stages(x)[0]
    torch.testing.assert_close(vit.forward_stages(x, none_hook)[0], base)
    assert seen == [(0, (1, 4, 4, 16)), (1, (1, 4, 4, 16))]
    # a constant delta on the last block only shifts its output before the final LayerNorm: compare with a manual pass
    h = vit.patch_embed(x).flatten(2).transpose(1, 2) + vit.pos_embed
    h = vit.blocks[0](h)
    b1 = vit.blocks[1]
    mid = h + b1.attn(b1.norm1(h))
    tap = b1.norm2(mid)
    manual = vit.norm(mid + b1.mlp(tap) + 2 * tap)
    out = vit.forward_stages(x, lambda i, t: 2 * t if i == 1 else None)[0]
    torch.testing.assert_close(out, manual.transpose(1, 2).reshape(1, 16, 4, 4))


def test_deep_prompts_change_the_output_and_are_dropped_after_each_block() -> None:
    torch.manual_seed(0)
    vit = ViT(image_size=32, patch=8, dim=16, depth=2, heads=2, stages=1)
    x = torch.randn(2, 3, 32, 32)
    prompts = [torch.randn(3, 16), torch.randn(3, 16)]
    out = vit.forward_stages(x, prompts=prompts)[0]
    assert out.shape == (2, 16, 4, 4) and not torch.allclose(out, vit.forward_stages(x)[0])
    with pytest.raises(ValueError, match="one prompt tensor per block"):
        vit.forward_stages(x, prompts=prompts[:1])
