"""Transforms: identity, affine, SVF round trip, Jacobians, warping of coordinate images and labels, metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tailorkit.registration import transforms as T


def _grid(n: int) -> tuple[tuple[int, ...], np.ndarray]:
    shape = (12, 14, 10)[:n]
    aff = np.eye(n + 1)
    aff[:n, :n] = (
        np.diag([2.0, 1.5, 3.0][:n]) @ np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1]])[:n, :n]
        if n == 3
        else np.diag([2.0, 1.5])
    )
    aff[:n, n] = [-10.0, 4.0, 7.0][:n]
    return shape, aff


def _smooth_velocity(shape: tuple[int, ...], scale: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    n = len(shape)
    ctrl = torch.randn(1, n, *([3] * n), generator=g)
    v = torch.nn.functional.interpolate(
        ctrl, size=shape, mode="bilinear" if n == 2 else "trilinear", align_corners=True
    )[0]
    return v / v.norm(dim=0).max() * scale


@pytest.mark.parametrize("n", [2, 3])
def test_zero_field_warps_to_identity(n: int) -> None:
    shape, aff = _grid(n)
    img = torch.rand(shape)
    out = T.warp_image(img, aff, torch.zeros(n, *shape), aff)
    assert torch.allclose(out, img, atol=1e-5)
    lab = (img * 5).long()
    assert torch.equal(T.warp_labels(lab, aff, torch.zeros(n, *shape), aff), lab)


@pytest.mark.parametrize("n", [2, 3])
def test_coordinate_images_warp_to_the_analytic_map(n: int) -> None:
    shape, aff = _grid(n)
    rng = np.random.default_rng(1)
    a = np.eye(n + 1)
    a[:n, :n] += rng.normal(0, 0.05, (n, n))
    a[:n, n] = rng.normal(0, 1.0, n)
    disp = T.affine_displacement(a, shape, aff)
    coords = T.grid_points(shape, aff)  # the moving image's own world coordinates
    warped = T.warp_image(coords, aff, disp, aff)
    y = T.grid_points(shape, aff).reshape(n, -1).double()
    expected = (torch.as_tensor(a[:n, :n]) @ y + torch.as_tensor(a[:n, n:])).reshape(n, *shape).float()
    # inside the moving grid the linear interpolation of coordinate images is exact
    idx = T.displacement_to_index(expected - T.grid_points(shape, aff), aff) + torch.stack(
        torch.meshgrid(*[torch.arange(s, dtype=torch.float32) for s in shape], indexing="ij")
    )
    inside = torch.stack([(idx[i] >= 0) & (idx[i] <= shape[i] - 1) for i in range(n)]).all(0)
    assert inside.float().mean() > 0.5
    assert torch.allclose(warped[:, inside], expected[:, inside], atol=1e-3)
    # compose_affine is exact everywhere
    assert torch.allclose(T.compose_affine(a, torch.zeros(n, *shape), aff), disp, atol=1e-4)


@pytest.mark.parametrize("n", [2, 3])
def test_svf_exponential_and_inverse_round_trip(n: int) -> None:
    shape, aff = _grid(n)
    v = _smooth_velocity(shape, 2.5)
    fwd, inv = T.exp_svf(v, aff), T.invert_svf(v, aff)
    both = T.compose(fwd, inv, aff)
    assert fwd.abs().max() > 1.5
    # discretisation only: a small fraction of the displacement (largest at the border, where sampling clamps)
    inner = both[(slice(None), *[slice(2, -2)] * n)]
    assert inner.abs().max() < 0.1 * fwd.abs().max()
    assert both.abs().mean() < 0.02 * fwd.abs().max()
    # a zero velocity is the identity, and exp of a constant field is the translation
    assert torch.equal(T.exp_svf(torch.zeros(n, *shape), aff), torch.zeros(n, *shape))
    const = torch.ones(n, *shape) * 1.3
    assert torch.allclose(T.exp_svf(const, aff), const, atol=1e-5)


@pytest.mark.parametrize("n", [2, 3])
def test_jacobian_of_a_known_affine(n: int) -> None:
    shape, aff = _grid(n)
    a = np.eye(n + 1)
    a[:n, :n] = np.diag([1.2, 0.9, 1.1][:n])
    a[0, 1] = 0.1
    det = T.jacobian_determinant(T.affine_displacement(a, shape, aff), aff)
    assert torch.allclose(det, torch.full(shape, float(np.linalg.det(a[:n, :n]))), atol=1e-4)
    assert T.folding_percent(det) == 0.0
    assert T.sdlogj(det) < 1e-4
    flip = np.eye(n + 1)
    flip[0, 0] = -1
    det_flip = T.jacobian_determinant(T.affine_displacement(flip, shape, aff), aff)
    assert T.folding_percent(det_flip) == 100.0


def test_label_warping_keeps_label_values() -> None:
    shape, aff = _grid(3)
    g = torch.Generator().manual_seed(3)
    lab = torch.randint(0, 4, shape, generator=g) * 7  # values 0, 7, 14, 21
    v = _smooth_velocity(shape, 3.0, seed=2)
    disp = T.exp_svf(v, aff)
    for mode in ("nearest", "onehot"):
        out = T.warp_labels(lab, aff, disp, aff, mode=mode)
        assert set(torch.unique(out).tolist()) <= {0, 7, 14, 21}
    with pytest.raises(ValueError, match="nearest"):
        T.warp_labels(lab, aff, disp, aff, mode="linear")


def test_dice_tre_and_conversions() -> None:
    a = np.array([[1, 1, 2], [0, 2, 2]])
    assert T.dice(a, a) == 1.0
    b = np.array([[1, 0, 2], [0, 2, 0]])
    # label 1: 2*1/(2+1); label 2: 2*2/(3+2)
    assert T.dice(b, a) == pytest.approx((2 / 3 + 4 / 5) / 2)
    assert np.allclose(T.tre(np.zeros((2, 3)), np.array([[3.0, 4.0, 0.0], [0.0, 0.0, 1.0]])), [5.0, 1.0])
    shape, aff = _grid(3)
    d = torch.randn(3, *shape)
    assert torch.allclose(T.index_to_displacement(T.displacement_to_index(d, aff), aff), d, atol=1e-5)
    # normalised units: one voxel along the first tensor axis = 2 / (size - 1), reported in the last channel
    one = T.index_to_displacement(torch.tensor([1.0, 0.0, 0.0]).reshape(3, 1, 1, 1).expand(3, *shape), aff)
    norm = T.displacement_to_normalized(one.contiguous(), aff)
    assert torch.allclose(norm[2], torch.full(shape, 2 / (shape[0] - 1)), atol=1e-6)
    assert torch.allclose(norm[:2], torch.zeros(2, *shape), atol=1e-6)


def test_bad_input_names_the_expected_form() -> None:
    with pytest.raises(ValueError, match="2 or 3 spatial"):
        T.grid_points((4,), np.eye(2))
    with pytest.raises(ValueError, match=r"\(4, 4\)"):
        T.grid_points((4, 4, 4), np.eye(3))
    with pytest.raises(ValueError, match="equal shape"):
        T.compose(torch.zeros(3, 4, 4, 4), torch.zeros(3, 4, 4, 5), np.eye(4))
