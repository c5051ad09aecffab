from __future__ import annotations

import pytest
import torch

from tailorkit.nets.unet import UNet


@pytest.mark.parametrize("dims,size", [(2, 16), (3, 8)])
def test_shapes_and_stage_hooks(dims: int, size: int) -> None:
    net = UNet(1, 2, (4, 8, 16), spatial_dims=dims).eval()
    x = torch.randn(2, 1, *(size,) * dims)
    seen: list[tuple[str, int, tuple[int, ...]]] = []

    def hook(name: str, h: torch.Tensor) -> torch.Tensor:
        seen.append((name, h.shape[1], tuple(h.shape[2:])))
        return h

    out = net(x, hook)
    assert out.shape == (2, 2, *(size,) * dims)
    assert [(n, c) for n, c, _ in seen] == net.stage_channels()
    assert [n for n, _, _ in seen] == ["enc0", "enc1", "enc2", "dec0", "dec1"]
    assert seen[2][2] == (size // 4,) * dims  # bottleneck at 1/4 resolution
    assert torch.equal(out, net(x))  # an identity hook changes nothing
    assert net.encode(x).shape == (2, 16)


def test_hook_output_is_used() -> None:
    net = UNet(1, 1, (4, 8), spatial_dims=2).eval()
    x = torch.randn(1, 1, 8, 8)
    base = net(x)
    shifted = net(x, lambda name, h: h + 1.0 if name == "dec0" else h)
    assert not torch.allclose(base, shifted)


def test_bad_input_and_settings_raise() -> None:
    net = UNet(1, 1, (4, 8, 16))
    with pytest.raises(ValueError, match="divisible by 4"):
        net(torch.randn(1, 1, 10, 10))
    with pytest.raises(ValueError, match=r"expected \(B, 1, S, S\)"):
        net(torch.randn(1, 3, 8, 8))
    with pytest.raises(ValueError, match="spatial_dims"):
        UNet(spatial_dims=1)
    with pytest.raises(ValueError, match="channels"):
        UNet(channels=(4,))


def test_dropout_is_stochastic_only_in_train_mode() -> None:
    net = UNet(1, 1, (4, 8), dropout=0.5)
    x = torch.randn(2, 1, 8, 8)
    net.eval()
    assert torch.equal(net(x), net(x))
    net.train()
    torch.manual_seed(0)
    assert not torch.equal(net(x), net(x))
