"""Network shapes and strides, losses on reduced cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tailorkit.anatomy import NetConfig, SAMNet, info_nce, prototype_loss, sam_fine_loss
from tailorkit.anatomy.geometry import map_affine
from tailorkit.anatomy.losses import nearest_positive


@pytest.mark.parametrize("size", [(7, 21, 35), (4, 16, 16), (9, 33, 17)])
def test_head_shapes_and_strides_on_odd_sizes(size):
    torch.manual_seed(0)
    net = SAMNet(NetConfig(width=4, emb_dim=8, semantic=True)).eval()
    out = net(torch.randn(2, 1, *size))
    d, h, w = size
    assert out.fine.shape == (2, 8, -(-d // 2), -(-h // 2), -(-w // 2))
    assert out.coarse.shape == (2, 8, -(-d // 4), -(-h // 16), -(-w // 16))
    assert out.semantic is not None and out.semantic.shape == out.fine.shape
    for m in (out.fine, out.coarse, out.semantic):
        assert torch.allclose(m.norm(dim=1), torch.ones(()), atol=1e-5)


def test_no_semantic_head_by_default_and_gradients_flow():
    net = SAMNet(NetConfig(width=4, emb_dim=8))
    out = net(torch.randn(2, 1, 8, 32, 32))
    assert out.semantic is None
    (out.fine.sum() + out.coarse.sum()).backward()
    assert all(p.grad is not None for n, p in net.named_parameters() if "semantic" not in n)


def test_bad_network_input_names_the_expected_form():
    net = SAMNet(NetConfig(width=4, emb_dim=8))
    with pytest.raises(ValueError, match=r"expected \(B, 1, D, H, W\)"):
        net(torch.randn(1, 8, 32, 32))


def test_param_count_matches_notes_at_width_16():
    n = sum(p.numel() for p in SAMNet(NetConfig(width=16)).parameters())
    assert 2.5e6 < n < 3.3e6  # docs/anatomy.md#from-the-official-code: 2.9 M at width 16


def _unit(n, c, seed):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, c, generator=g), dim=1)


def test_info_nce_low_for_identical_views_high_for_permuted_positives():
    q = _unit(64, 32, 0)
    neg = _unit(64 * 50, 32, 1).reshape(64, 50, 32)
    valid = torch.ones(64, 50, dtype=torch.bool)
    same = info_nce(q, q, neg, valid, 0.1)
    permuted = info_nce(q, q[torch.randperm(64, generator=torch.Generator().manual_seed(2))], neg, valid, 0.1)
    assert same < 0.1
    assert permuted > 2.0
    # excluded negatives do not count: all excluded -> loss exactly 0
    assert float(info_nce(q, q, neg, torch.zeros_like(valid), 0.1)) == pytest.approx(0.0, abs=1e-6)


def test_sam_fine_loss_identical_vs_permuted_views():
    n = 400
    f = _unit(n, 32, 3)
    world = torch.stack(
        torch.meshgrid(*[torch.arange(k, dtype=torch.float32) * 6 for k in (4, 10, 10)], indexing="ij"), -1
    ).reshape(-1, 3)
    pos = torch.arange(n)
    kw = dict(n_queries=50, ignore_mm=1.0, pre_select=100, after_select=50, temperature=0.1)
    same = sam_fine_loss(f, world, f, f, world, f, pos, generator=torch.Generator().manual_seed(0), **kw)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(1))
    shuffled = sam_fine_loss(
        f, world, f, f[perm], world, f[perm], pos, generator=torch.Generator().manual_seed(0), **kw
    )
    assert same < 0.5 < 2.0 < shuffled


def test_nearest_positive_on_a_shifted_grid():
    aff = map_affine(np.eye(4) * 1.0 + np.diag([0, 0, 0, 0]), (2, 2, 2), (0, 0, 0))  # 2 mm grid at the origin
    world = torch.tensor([[0.4, 0.0, 0.0], [2.0, 4.0, 6.0], [100.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    idx = nearest_positive(world, aff, (5, 5, 5), max_distance_mm=0.5)
    assert idx.tolist() == [0, (1 * 5 + 2) * 5 + 3, -1, -1]


def test_prototype_loss_low_for_clustered_features():
    labels = torch.arange(6).repeat_interleave(50)
    protos = _unit(6, 16, 4)
    clustered = F.normalize(
        protos[labels] + 0.01 * torch.randn(300, 16, generator=torch.Generator().manual_seed(5)), dim=1
    )
    random = _unit(300, 16, 6)
    # Softmax over all 300 voxels per prototype: the 50 members share the mass, so the optimum is log(50).
    assert float(prototype_loss(clustered, labels, 0.1)) == pytest.approx(np.log(50), abs=0.05)
    assert float(prototype_loss(random, labels, 0.1)) > np.log(300) - 0.3
    assert float(prototype_loss(random, torch.zeros(300, dtype=torch.long))) == 0.0
