"""SAME++ steps on toy data, the deformation network, the CLI on NIfTI files, ITK compatibility, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from tailorkit.registration import transforms as T
from tailorkit.registration.config import AffineConfig, DeformNetConfig, FeatureConfig, RegistrationConfig
from tailorkit.registration.deform_net import DeformNet, correlation, lncc_loss, train_deform
from tailorkit.registration.features import FeatureMap, mind_features
from tailorkit.registration.pipeline import deform_pair, prepare, register_arrays
from tailorkit.registration.same import fit_affine, sam_affine


def _blobs(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """A smooth random image with distinct structure everywhere (matching works on it)."""
    g = torch.Generator().manual_seed(seed)
    n = len(shape)
    small = torch.rand(1, 1, *[max(3, s // 4) for s in shape], generator=g)
    mode = "bilinear" if n == 2 else "trilinear"
    return torch.nn.functional.interpolate(small, size=shape, mode=mode, align_corners=True)[0, 0]


@pytest.mark.parametrize("n", [2, 3])
def test_known_affine_recovered_from_exact_correspondences(n: int) -> None:
    rng = np.random.default_rng(0)
    a = np.eye(n + 1)
    a[:n, :n] += rng.normal(0, 0.1, (n, n))
    a[:n, n] = rng.normal(0, 5, n)
    src = torch.as_tensor(rng.uniform(-50, 50, (40, n)))
    dst = src @ torch.as_tensor(a[:n, :n]).T + torch.as_tensor(a[:n, n])
    assert np.allclose(fit_affine(src, dst, "lstsq"), a, atol=1e-8)
    assert np.allclose(fit_affine(src, dst, "huber"), a, atol=1e-3)
    # the robust fit ignores a few gross outliers; least squares does not
    bad = dst.clone()
    bad[:4] += 80.0
    assert np.abs(fit_affine(src, bad, "huber") - a).max() < 0.05
    assert np.abs(fit_affine(src, bad, "lstsq") - a).max() > 0.5


def test_sam_affine_recovers_a_translation_from_matched_features() -> None:
    """Features that are one-hot voxel codes match exactly: the cycle test passes and the shift comes out."""
    aff = np.diag([2.0, 2.0, 2.0, 1.0])
    big = torch.eye(11 * 13 * 11).reshape(-1, 11, 13, 11)  # a unique unit code per voxel
    fixed = FeatureMap(big[:, 1:10, 2:12, :], aff, "test")
    moving = FeatureMap(big[:, 0:9, 0:10, :], aff, "test")  # moving[i + 1, j + 2] = fixed[i, j]
    res = sam_affine(fixed, moving, AffineConfig(query_stride_mm=4.0, min_matches=4))
    expected = np.eye(4)
    expected[:3, 3] = [2.0, 4.0, 0.0]  # one and two voxels of 2 mm
    # queries without a counterpart score 0 and are dropped; every kept match is exact
    assert len(res.score) >= 8 and bool((res.score > 0.99).all())
    assert np.allclose(res.matrix, expected, atol=1e-6)


def _head(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Random smooth texture inside a ball on a zero background (a toy "head")."""
    idx = torch.stack(torch.meshgrid(*[torch.linspace(-1, 1, s) for s in shape], indexing="ij"))
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(1, 1, *[max(3, s // 3) for s in shape], generator=g)
    img = torch.nn.functional.interpolate(small, size=shape, mode="trilinear", align_corners=True)[0, 0]
    return img * ((idx**2).sum(0) < 0.7).float()


def test_pipeline_on_mind_features_beats_identity_and_is_diffeomorphic() -> None:
    shape = (24, 28, 26)
    aff = np.diag([3.0, 3.0, 3.0, 1.0])
    aff[:3, 3] = [-30, -40, -35]
    fixed = _head(shape, 1)
    a = np.eye(4)
    a[:3, 3] = [4.0, -3.0, 2.0]  # moving = fixed shifted: psi(y) = y + t
    disp_true = T.affine_displacement(a, shape, aff)
    moving = T.warp_image(fixed, aff, -disp_true, aff)  # M(y) = F(y - t)  ->  M(psi(y)) = F(y)
    cfg = RegistrationConfig(
        steps=("affine", "io"), spacing_mm=3.0, features=FeatureConfig(kind="mind"), affine=AffineConfig(fit="huber")
    )
    res = register_arrays(fixed, aff, moving, aff, cfg)
    assert res.features == "mind" and any("MIND" in note for note in res.notes)
    assert list(res.stages) == ["affine", "io"]
    inner = (slice(None),) + (slice(6, -6),) * 3
    err0 = float(disp_true[inner].norm(dim=0).mean())
    err = {k: float((d[inner] - disp_true[inner]).norm(dim=0).mean()) for k, d in res.stages.items()}
    assert err["affine"] < 0.6 * err0 and err["io"] < err["affine"]
    for disp in res.stages.values():
        assert T.folding_percent(T.jacobian_determinant(disp, aff)) == 0.0


def test_sam_coarse_fits_matches_of_a_known_smooth_map() -> None:
    from tailorkit.registration.config import CoarseConfig
    from tailorkit.registration.same import AffineResult, sam_coarse

    shape = (30, 30, 30)
    aff = np.diag([2.0, 2.0, 2.0, 1.0])
    g = torch.Generator().manual_seed(4)
    ctrl = torch.randn(1, 3, 3, 3, 3, generator=g)
    smooth = torch.nn.functional.interpolate(ctrl, size=shape, mode="trilinear", align_corners=True)[0] * 3.0
    q = torch.rand(200, 3, generator=g) * 50 + 4
    m = T.map_points(smooth, aff, q)
    start = AffineResult(np.eye(4), q, m, torch.ones(200), 200, 200)
    disp = sam_coarse(start, shape, aff, CoarseConfig(stride=5, iterations=200))
    before = (m - q).norm(dim=1).mean()
    after = (T.map_points(disp, aff, q) - m).norm(dim=1).mean()
    assert after < 0.5 * before
    assert T.folding_percent(T.jacobian_determinant(disp, aff)) == 0.0


def test_deformation_network_forward_and_training_steps() -> None:
    shape = (12, 16, 14)
    aff = np.diag([3.0, 3.0, 3.0, 1.0])
    cfg = DeformNetConfig(channels=(4, 8), steps=6, lr=1e-2, train_pairs=1)
    net = DeformNet(cfg, 3)
    corr = correlation(torch.randn(5, *shape), torch.randn(5, *shape))
    assert corr.shape == (27, *shape)
    v = net(corr, torch.rand(2, *shape))
    assert v.shape == (3, *shape) and v.abs().max() < 1e-2  # head initialised N(0, 1e-5)
    # a few training steps at toy size lower the loss on a shifted pair
    fixed = _blobs((24, 32, 28), 2)
    a = np.eye(4)
    a[:3, 3] = [3.0, 0.0, 0.0]
    moving = T.warp_image(fixed, aff, -T.affine_displacement(a, (24, 32, 28), aff), aff)
    rc = RegistrationConfig(spacing_mm=3.0, features=FeatureConfig(kind="mind"))
    prep = prepare(fixed, aff, moving, aff, rc)
    pair = deform_pair(prep, torch.zeros(3, 24, 32, 28))
    _, losses = train_deform([pair], cfg, progress=False)
    assert len(losses) == 6 and all(np.isfinite(losses))
    assert losses[-1] < losses[0]
    assert lncc_loss(fixed, fixed, 5) < 1e-3 < lncc_loss(fixed, torch.rand_like(fixed), 5)


def _write(path: Path, array: np.ndarray, affine: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(array, affine), str(path))
    return path


def test_cli_writes_outputs_with_the_fixed_affine(tmp_path: Path) -> None:
    from tailorkit.cli.main import main

    vol = _blobs((26, 30, 24), 3).numpy() * 100
    f_aff = np.diag([3.0, 3.0, 3.0, 1.0])
    f_aff[:3, 3] = [-39, -45, -36]
    m_aff = np.diag([2.5, 3.0, 3.0, 1.0])  # different spacing and origin
    m_aff[:3, 3] = [-30, -40, -30]
    fixed = _write(tmp_path / "fixed.nii.gz", vol, f_aff)
    labels = (vol > 50).astype(np.int16) * 3
    moving = _write(tmp_path / "moving.nii.gz", vol, m_aff)
    mlab = _write(tmp_path / "labels.nii.gz", labels, m_aff)
    out = tmp_path / "out"
    argv = [str(fixed), str(moving), "io.iterations=5", "--out", str(out), "--labels", str(mlab)]
    code = main(["register", *argv, "--steps", "affine,io", "--threads", "1"])
    assert code == 0
    for name in ("warped.nii.gz", "warped_labels.nii.gz", "displacement.nii.gz"):
        img = nib.load(str(out / name))
        assert np.allclose(img.affine, f_aff), name
        assert img.shape[:3] == vol.shape
    assert set(np.unique(np.asarray(nib.load(str(out / "warped_labels.nii.gz")).dataobj))) <= {0, 3}
    assert (out / "overlay.png").stat().st_size > 1000
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["features"] == "mind" and metrics["steps"] == ["affine", "io"]
    assert {"prepare", "affine", "io", "total"} <= set(metrics["seconds"])


def test_displacement_file_is_read_by_simpleitk_as_the_same_map(tmp_path: Path) -> None:
    sitk = pytest.importorskip("SimpleITK")
    from tailorkit.anatomy.geometry import tensor_affine
    from tailorkit.registration.io import load_displacement, save_displacement

    arr_aff = np.array([[0, -2.0, 0, 20], [2.5, 0, 0, -10], [0, 0, 3.0, 5], [0, 0, 0, 1]])  # oblique-free, permuted
    shape_t = (6, 7, 8)  # tensor (z, y, x) order
    taff = tensor_affine(arr_aff)
    disp = T.exp_svf(torch.randn(3, *shape_t) * 0.5, taff, 3)
    path = save_displacement(tmp_path / "d.nii.gz", disp, arr_aff)
    back, aff_back = load_displacement(path)
    assert torch.allclose(back, disp) and np.allclose(aff_back, arr_aff)
    field = sitk.ReadImage(str(path))
    tx = sitk.DisplacementFieldTransform(sitk.Cast(field, sitk.sitkVectorFloat64))
    pts = T.grid_points(shape_t, taff).reshape(3, -1).T[::37]
    ours = T.map_points(disp, taff, pts)
    lps = np.diag([-1.0, -1.0, 1.0])
    for p, q in zip(pts.numpy(), ours.numpy(), strict=True):
        got = np.asarray(tx.TransformPoint(tuple(float(v) for v in lps @ p)))
        assert np.allclose(lps @ got, q, atol=1e-3)


def test_bad_input_gives_clear_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tailorkit.cli.main import main

    aff = np.eye(4)
    img = _blobs((10, 10, 10)).numpy()
    with pytest.raises(ValueError, match="same number of dimensions"):
        register_arrays(torch.as_tensor(img), aff, torch.as_tensor(img[0]), np.eye(3))
    with pytest.raises(ValueError, match="empty"):
        register_arrays(torch.zeros(10, 10, 10), aff, torch.as_tensor(img), aff)
    with pytest.raises(ValueError, match="at least 4 voxels"):
        register_arrays(torch.rand(10, 10, 2), aff, torch.as_tensor(img), aff)
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"not a nifti")
    good = _write(tmp_path / "good.nii.gz", img, aff)
    assert main(["register", str(good), str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "bad.nii.gz" in capsys.readouterr().err
    far = np.eye(4)
    far[:3, 3] = 500.0  # a label map elsewhere in the world: nothing to carry over
    lab = _write(tmp_path / "lab.nii.gz", np.zeros((5, 5, 5), np.int16), far)
    assert main(["register", str(good), str(good), "--labels", str(lab), "--out", str(tmp_path / "o")]) == 2
    assert "overlapping the moving image" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    with pytest.raises(ValueError, match="steps"):
        RegistrationConfig(steps=("affine", "warp"))
    with pytest.raises(ValueError, match=r"features\.kind=sam"):
        register_arrays(
            torch.as_tensor(img), aff, torch.as_tensor(img), aff, RegistrationConfig(features=FeatureConfig(kind="sam"))
        )


def test_mind_features_are_unit_vectors_on_the_half_grid() -> None:
    img = _blobs((20, 22, 18))
    fm = mind_features(img, np.eye(4))
    assert fm.shape == (10, 11, 9)
    norms = fm.data.norm(dim=0)
    assert torch.allclose(norms[norms > 0], torch.ones_like(norms[norms > 0]), atol=1e-5)
    # the feature grid's voxel n is the centre of input voxels 2n, 2n+1
    assert np.allclose(fm.affine[:3, 3], [0.5, 0.5, 0.5]) and np.allclose(np.diag(fm.affine)[:3], 2.0)


def test_register_train_writes_a_network_that_the_cli_uses(tmp_path: Path) -> None:
    from tailorkit.cli.main import main
    from tailorkit.registration.models import load_deform_net

    vol = _head((26, 30, 24), 6).numpy() * 100
    aff = np.diag([3.0, 3.0, 3.0, 1.0])
    atlas = _write(tmp_path / "atlas.nii.gz", vol, aff)
    cfg = tmp_path / "train.yaml"
    cfg.write_text(
        f"atlas: {atlas}\n"
        "registration:\n  deform: {channels: [4, 8], steps: 3, train_pairs: 1}\n  coarse: {iterations: 5}\n"
    )
    out = tmp_path / "run"
    assert main(["register", "train", str(cfg), "--out", str(out)]) == 0
    net, extra = load_deform_net(out / "deform_net.pt")
    assert extra["features"] == "mind" and net.config.channels == (4, 8)
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml", "deform_net.pt"]  # no resume point left behind
    res_dir = tmp_path / "reg"
    argv = [str(atlas), str(atlas), "--out", str(res_dir), "--deform-net", str(out / "deform_net.pt")]
    assert main(["register", *argv, "--steps", "affine,deform"]) == 0
    metrics = json.loads((res_dir / "metrics.json").read_text())
    assert metrics["steps"] == ["affine", "deform"] and not any("skipped" in n for n in metrics["notes"])
