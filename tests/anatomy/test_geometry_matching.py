"""Matchers on exact synthetic embeddings, robust affine, deformation round trips, orientation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tailorkit.anatomy import MATCHERS, Embedding, MatchConfig, random_deformation, robust_affine
from tailorkit.anatomy.deform import rotation_matrix
from tailorkit.anatomy.geometry import grid_world, sample_world


def _embedding(fine: torch.Tensor, spacing: float = 4.0) -> Embedding:
    aff = np.diag([spacing, spacing, spacing, 1.0])
    aff[:3, 3] = [-10.0, 5.0, 3.0]
    coarse = F.normalize(torch.randn(fine.shape[0], 2, 2, 2), dim=0)
    return Embedding(fine, aff, coarse, aff, None, torch.zeros(1, 1, 1), aff)


def test_matcher_registry():
    assert MATCHERS.names() == ["cycle", "fixed_point", "identity", "nn"]


@pytest.mark.parametrize("method", ["nn", "fixed_point", "cycle"])
def test_matchers_recover_a_known_integer_shift_exactly(method):
    g = torch.Generator().manual_seed(0)
    big = F.normalize(torch.randn(16, 14, 15, 16, generator=g), dim=0)
    shift = (2, -1, 3)  # fine voxels along (d, h, w)
    atlas_f = big[:, 3:11, 3:12, 3:13].contiguous()
    target_f = big[
        :, 3 + shift[0] : 11 + shift[0], 3 + shift[1] : 12 + shift[1], 3 + shift[2] : 13 + shift[2]
    ].contiguous()
    atlas, target = _embedding(atlas_f), _embedding(target_f)
    idx = torch.tensor([[3, 4, 5], [2, 3, 4], [4, 5, 4], [3, 6, 3]], dtype=torch.float32)
    aff = torch.as_tensor(atlas.fine_affine, dtype=torch.float32)
    points = idx @ aff[:3, :3].T + aff[:3, 3]
    config = MatchConfig(heads=("fine",), subvoxel="none", fp_margin=1, fp_score_threshold=0.99, fp_min_points=4)
    res = MATCHERS.get(method)(atlas, target, points, config)
    expected = points - torch.tensor(shift, dtype=torch.float32) * 4.0
    assert torch.allclose(res.points, expected, atol=1e-4)
    if method == "cycle":
        assert bool(res.consistent.all())


def test_random_features_do_not_match():  # the exact-shift test can fail: without the shift, matches are wrong
    g = torch.Generator().manual_seed(1)
    atlas = _embedding(F.normalize(torch.randn(16, 8, 9, 10, generator=g), dim=0))
    target = _embedding(F.normalize(torch.randn(16, 8, 9, 10, generator=g), dim=0))
    pts = torch.tensor([[0.0, 20.0, 20.0]])
    res = MATCHERS.get("nn")(atlas, target, pts, MatchConfig(heads=("fine",), subvoxel="none"))
    assert float(res.score[0]) < 0.99


def _random_affine(rng):
    a = np.eye(4)
    a[:3, :3] = rotation_matrix(rng.uniform(-20, 20, 3)) @ np.diag(rng.uniform(0.8, 1.2, 3))
    a[:3, 3] = rng.uniform(-10, 10, 3)
    return a


def test_robust_affine_exact_and_with_outliers():
    rng = np.random.default_rng(0)
    a = _random_affine(rng)
    src = rng.uniform(-50, 50, (200, 3))
    dst = src @ a[:3, :3].T + a[:3, 3]
    fit = robust_affine(torch.tensor(src), torch.tensor(dst)).numpy()
    assert np.allclose(fit, a, atol=1e-5)
    noisy = dst + rng.normal(0, 0.3, dst.shape)
    bad = rng.random(200) < 0.2
    noisy[bad] += rng.uniform(-60, 60, (bad.sum(), 3))
    robust = robust_affine(torch.tensor(src), torch.tensor(noisy), iterations=30).numpy()
    plain = robust_affine(torch.tensor(src), torch.tensor(noisy), iterations=1).numpy()  # = least squares
    test = rng.uniform(-50, 50, (100, 3))

    def err(m):
        return np.linalg.norm(test @ (m[:3, :3] - a[:3, :3]).T + (m[:3, 3] - a[:3, 3]), axis=1).mean()

    assert err(robust) < 1.0
    assert err(robust) < 0.2 * err(plain)


def test_robust_affine_batched_with_weights_ignores_masked_points():
    rng = np.random.default_rng(1)
    a = _random_affine(rng)
    src = rng.uniform(-30, 30, (2, 40, 3))
    dst = src @ a[:3, :3].T + a[:3, 3]
    dst[:, :10] += 500.0
    w = np.ones((2, 40))
    w[:, :10] = 0
    fit = robust_affine(torch.tensor(src), torch.tensor(dst), torch.tensor(w)).numpy()
    assert np.allclose(fit, np.stack([a, a]), atol=1e-5)


def test_deformation_inverse_round_trip_and_warp_consistency():
    shape, aff = (30, 34, 28), np.diag([3.0, 3.0, 3.0, 1.0])
    d = random_deformation(shape, aff, np.random.default_rng(0), rotate_deg=15, max_disp_mm=12)
    pts = torch.tensor(np.random.default_rng(1).uniform(20, 70, (200, 3)), dtype=torch.float32)
    # scaling and squaring errs by a small fraction of the 12 mm displacement (discretisation of the 3 mm grid)
    for err in ((d.phi(d.psi(pts)) - pts).norm(dim=1), (d.psi(d.phi(pts)) - pts).norm(dim=1)):
        assert float(err.max()) < 0.3 and float(err.mean()) < 0.1
    assert float((d.psi(pts) - pts).norm(dim=1).mean()) > 3.0  # it does move points
    # warp: the moving image at psi(y) shows what the fixed image shows at y (a smooth test image)
    x, y, z = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij")
    image = np.sin(x / 5) + np.cos(y / 7) + z / 20
    moving = d.warp(image.astype(np.float32), aff)
    t = torch.as_tensor(np.transpose(moving, (2, 1, 0)).copy())[None]
    f = torch.as_tensor(np.transpose(image, (2, 1, 0)).copy())[None]
    t_aff = aff @ np.array([[0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=float)
    inner = pts[((pts > 25) & (pts < 65)).all(1)]
    lhs = sample_world(t, t_aff, d.psi(inner))[:, 0]
    rhs = sample_world(f, t_aff, inner)[:, 0]
    assert float((lhs - rhs).abs().mean()) < 0.03


def test_zero_deformation_is_identity():
    shape, aff = (12, 12, 12), np.eye(4)
    d = random_deformation(shape, aff, np.random.default_rng(0), rotate_deg=0, scale=0, translate_mm=0, max_disp_mm=0)
    pts = grid_world((12, 12, 12), aff)
    assert torch.allclose(d.phi(pts), pts, atol=1e-5)
    image = np.random.default_rng(2).random(shape).astype(np.float32)
    assert np.allclose(d.warp(image, aff), image, atol=1e-5)
