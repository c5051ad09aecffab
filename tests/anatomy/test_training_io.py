"""Toy-sized training (better than random, resume = uninterrupted), volume orientation, bad input, CLI."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import yaml

from tailorkit.anatomy import EmbedConfig, MatchConfig, NetConfig, SAMTrainConfig, embed, match_fixed_point, train_sam
from tailorkit.anatomy.embed import prepare_volume
from tailorkit.anatomy.train import TrainSource, load_model, save_model
from tailorkit.cli.main import main
from tailorkit.data.volumes import Volume, VolumeError, load_volume, save_volume


def _phantom(shape=(40, 44, 36), seed=0) -> np.ndarray:
    """A smooth, asymmetric 'head': an ellipsoid with random interior blobs (distinct structure everywhere)."""
    rng = np.random.default_rng(seed)
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    image = ((x / 0.9) ** 2 + (y / 0.85) ** 2 + (z / 0.8) ** 2 < 1).astype(np.float32) * 0.3
    for _ in range(25):
        c = rng.uniform(-0.6, 0.6, 3)
        r = rng.uniform(0.08, 0.25)
        image += rng.uniform(0.2, 0.7) * np.exp(-((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2) / r**2)
    return image.astype(np.float32)


TOY = SAMTrainConfig(
    net=NetConfig(width=8, emb_dim=16),
    embed=EmbedConfig(spacing_mm=4.0),
    steps=3,
    warmup_steps=1,
    patch_size=(8, 32, 32),
    pre_select_neg=400,
    after_select_neg=100,
    after_select_pos=50,
    checkpoint_every=1,
)


def _source(spacing=4.0):
    image = _phantom()
    aff = np.diag([spacing, spacing, spacing, 1.0])
    from tailorkit.anatomy.geometry import tensor_affine, to_tensor_order

    return TrainSource(to_tensor_order(image / image.max()), tensor_affine(aff)), image, aff


def test_resume_equals_uninterrupted_and_model_round_trip(tmp_path):
    src, _, _ = _source()
    short = dataclasses.replace(TOY, steps=2)
    a = train_sam(short, out_dir=tmp_path / "run", sources=[src], progress=False)
    assert len(a.losses) == 2 and (tmp_path / "run" / "train_state.pt").exists()
    resumed = train_sam(TOY, out_dir=tmp_path / "run", sources=[src], progress=False)
    full = train_sam(TOY, out_dir=tmp_path / "full", sources=[src], progress=False)
    # equal up to float summation order (BatchNorm / conv reductions); a wrong resume differs by O(1)
    assert resumed.losses == pytest.approx(full.losses, rel=1e-3)
    assert resumed.losses[:2] == pytest.approx(a.losses, rel=1e-6)
    loaded = load_model(tmp_path / "full" / "model.pt")
    for (k, v), w in zip(full.net.state_dict().items(), loaded.net.state_dict().values(), strict=True):
        assert torch.equal(v, w), k
    with pytest.raises(ValueError, match=r"not a tailorkit\.anatomy/1 file"):
        torch.save({"x": 1}, tmp_path / "bad.pt")
        load_model(tmp_path / "bad.pt")


def test_toy_training_matches_better_than_random(tmp_path):
    """Pipeline check train -> embed -> match on a deformed phantom: far better than chance (random locations).

    It does not isolate what training adds (a convolutional network is nearly equivariant, so even an untrained one
    beats chance); the bench measures the trained embeddings against identity and each other.
    """
    from tailorkit.anatomy import random_deformation

    src, image, aff = _source()
    model = train_sam(dataclasses.replace(TOY, steps=25, checkpoint_every=0), sources=[src], progress=False)
    deform = random_deformation(
        image.shape, aff, np.random.default_rng(3), rotate_deg=20, scale=0.1, translate_mm=8, max_disp_mm=6
    )
    moving = deform.warp(image, aff)
    atlas = embed(Volume(image, aff), model.net, model.embed)
    target = embed(Volume(moving, aff), model.net, model.embed)
    rng = np.random.default_rng(0)
    inside = np.argwhere(image > 0.5)
    pts = torch.tensor(inside[rng.choice(len(inside), 60, replace=False)] * 4.0, dtype=torch.float32)
    truth = deform.psi(pts).numpy()
    found = match_fixed_point(atlas, target, pts, MatchConfig(fp_margin=1)).points.numpy()
    err = np.linalg.norm(found - truth, axis=1).mean()
    chance = np.linalg.norm(inside[rng.choice(len(inside), 60)] * 4.0 - truth, axis=1).mean()
    assert err < 0.4 * chance, (err, chance)


def test_orientation_round_trip_keeps_world_positions(tmp_path):
    image = np.zeros((20, 24, 16), dtype=np.float32)
    image[3:6, 15:18, 10:13] = 1.0  # blob near +x low, +y high
    aff = np.diag([2.0, 2.0, 2.0, 1.0])
    aff[:3, 3] = [-20.0, -24.0, -16.0]
    blob_world = Volume(image, aff).voxel_to_world(np.array([[4.0, 16.0, 11.0]]))[0]
    # store it LAS (x axis flipped on disk): the loader must bring it back to RAS+ with the same world positions
    las = aff.copy()
    las[:3, 0] *= -1
    las[:3, 3] = aff[:3, 3] + aff[:3, 0] * 19
    save_volume(tmp_path / "las.nii.gz", image[::-1].copy(), las)
    vol = load_volume(tmp_path / "las.nii.gz")
    assert np.allclose(vol.affine, aff)
    idx = np.argwhere(vol.array == vol.array.max()).mean(0)
    assert np.allclose(vol.voxel_to_world(idx[None])[0], blob_world, atol=1e-6)
    tensor, t_aff = prepare_volume(vol, EmbedConfig(spacing_mm=2.0))
    top = np.argwhere(tensor == tensor.max()).mean(0)  # (d, h, w)
    assert np.allclose(top @ t_aff[:3, :3].T + t_aff[:3, 3], blob_world, atol=1e-6)


def test_bad_input_gives_clear_errors(tmp_path):
    net = TOY.net
    from tailorkit.anatomy import SAMNet

    with pytest.raises(VolumeError, match="expected a 3D volume"):
        embed(Volume(np.zeros((4, 4)), np.eye(4)), SAMNet(net))  # type: ignore[arg-type]
    with pytest.raises(VolumeError, match=r"expected a tailorkit\.data\.volumes\.Volume"):
        embed(np.zeros((4, 4, 4)), SAMNet(net))  # type: ignore[arg-type]
    (tmp_path / "scan.txt").write_text("not a scan")
    with pytest.raises(VolumeError):
        load_volume(tmp_path / "scan.txt")
    with pytest.raises(ValueError, match="patch_size"):
        SAMTrainConfig(patch_size=(2, 32, 32))


def test_cli_train_embed_locate(tmp_path, capsys):
    image = _phantom((28, 32, 24))
    aff = np.diag([4.0, 4.0, 4.0, 1.0])
    save_volume(tmp_path / "atlas.nii.gz", image, aff)
    cfg = tmp_path / "toy.yaml"
    from tailorkit.core.config import to_dict

    settings = to_dict(dataclasses.replace(TOY, steps=2, volumes=(tmp_path / "atlas.nii.gz",)))
    cfg.write_text(yaml.safe_dump(settings))
    run = tmp_path / "run"
    assert main(["anatomy", "train", str(cfg), "--out", str(run)]) == 0
    assert (run / "model.pt").exists()
    assert main(["anatomy", "embed", str(tmp_path / "atlas.nii.gz"), "--model", str(run / "model.pt")]) == 0
    emb = np.load(tmp_path / "atlas_emb.npz")
    assert emb["fine"].shape[0] == 16 and emb["fine_affine"].shape == (4, 4)
    (tmp_path / "points.csv").write_text("name,x,y,z\ncentre,56,64,48\nfront,56,100,48\n")
    out = tmp_path / "found"
    args = ["anatomy", "locate", "--model", str(run / "model.pt"), "--atlas", str(tmp_path / "atlas.nii.gz")]
    args += ["--points", str(tmp_path / "points.csv"), "--target", str(tmp_path / "atlas.nii.gz"), "--out", str(out)]
    assert main([*args, "--method", "cycle"]) == 0
    lines = (out / "points.csv").read_text().splitlines()
    assert lines[0] == "name,x,y,z,confidence,consistent" and len(lines) == 3
    assert (out / "centre.png").stat().st_size > 1000
    # --confidence margin: the same points, another confidence column (a margin, not the similarity)
    margin_out = tmp_path / "found_margin"
    margin_args = [*args[:-1], str(margin_out), "--method", "cycle", "--confidence", "margin"]
    assert main(margin_args) == 0
    rows = [line.split(",") for line in (margin_out / "points.csv").read_text().splitlines()[1:]]
    assert [r[:4] for r in rows] == [line.split(",")[:4] for line in lines[1:]]
    assert [r[4] for r in rows] != [line.split(",")[4] for line in lines[1:]]
    cross = ["anatomy", "cross", "--model", str(run / "model.pt"), "--fixed", str(tmp_path / "atlas.nii.gz")]
    cross += ["--moving", str(tmp_path / "atlas.nii.gz"), "--steps", "1", "--out", str(tmp_path / "cross")]
    assert main(cross) == 0
    assert (tmp_path / "cross" / "model.pt").exists() and (tmp_path / "cross" / "affine.txt").exists()
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    bad = args.copy()
    bad[bad.index(str(tmp_path / "points.csv"))] = str(tmp_path / "bad.csv")
    assert main(bad) == 2
    assert "header name,x,y,z" in capsys.readouterr().err


def test_saved_model_rebuilds_the_same_embedding(tmp_path):
    from tailorkit.anatomy import SAMNet
    from tailorkit.anatomy.train import TrainedModel

    torch.manual_seed(0)
    model = TrainedModel(SAMNet(TOY.net).eval(), TOY.embed)
    save_model(model, tmp_path / "m.pt")
    vol = Volume(_phantom((20, 20, 20)), np.diag([4.0, 4.0, 4.0, 1.0]))
    a = embed(vol, model.net, model.embed)
    b = embed(vol, load_model(tmp_path / "m.pt").net, TOY.embed)
    assert torch.allclose(a.fine, b.fine) and np.allclose(a.fine_affine, b.fine_affine)


def test_cross_pairs_put_corresponding_voxels_at_the_same_world_position():
    from tailorkit.anatomy.crossmodal import sample_cross_pair
    from tailorkit.anatomy.geometry import grid_world, sample_world, tensor_affine, to_tensor_order, world_to_index

    image = _phantom()
    aff = np.diag([4.0, 4.0, 4.0, 1.0])
    shift = np.array([6.0, -5.0, 3.0])  # the moving scan is the fixed anatomy translated by `shift` (world mm)
    moved = aff.copy()
    moved[:3, 3] += shift
    fixed = TrainSource(to_tensor_order(image / image.max()), tensor_affine(aff))
    moving = TrainSource(to_tensor_order(image / image.max()), tensor_affine(moved))
    to_fixed = np.eye(4)
    to_fixed[:3, 3] = -shift  # moving world -> fixed world
    config = dataclasses.replace(TOY, remap_prob=0.0, blur_prob=0.0, noise_std=0.0, rotate_deg=10.0)
    pair = sample_cross_pair(fixed, moving, to_fixed, config, np.random.default_rng(0))
    a0, a1 = pair["affines"]
    img1 = torch.as_tensor(pair["images"][1])[None]
    world0 = grid_world(config.patch_size, a0)
    v0 = torch.as_tensor(pair["images"][0]).reshape(-1)
    v1 = sample_world(img1, a1, world0, padding="zeros")[:, 0]
    idx1 = world_to_index(world0.double(), a1)
    inside = ((idx1 >= 1) & (idx1 <= torch.tensor(config.patch_size, dtype=idx1.dtype) - 2)).all(dim=1)
    assert inside.sum() > 1000
    assert float((v0[inside] - v1[inside]).abs().mean()) < 5.0  # on the 0-255 scale: same anatomy at the same place


def test_cross_modality_round_runs_and_registers(tmp_path):
    from tailorkit.anatomy.crossmodal import train_cross_modality
    from tailorkit.anatomy.geometry import tensor_affine, to_tensor_order

    src, image, aff = _source()
    model = train_sam(dataclasses.replace(TOY, steps=2, checkpoint_every=0), sources=[src], progress=False)
    moving = TrainSource(to_tensor_order(1.0 - image / image.max()) * (image > 0.05).T, tensor_affine(aff))
    out, affine = train_cross_modality(model, src, moving, TOY, steps=2, out_dir=tmp_path, progress=False)
    assert affine.shape == (4, 4) and np.isfinite(affine).all()
    assert len(out.losses) == 4 and (tmp_path / "model.pt").exists()
