from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from tailorkit.active import DataConfig, dice_global, dice_per_case, load_folder, synthliver
from tailorkit.active.data import SUBTYPES, _quadrants


def test_dice_on_hand_made_masks() -> None:
    a = np.zeros((2, 4, 4), bool)
    b = np.zeros((2, 4, 4), bool)
    a[0, :2, :2] = True  # 4 pixels
    b[0, :2, :] = True  # 8 pixels, 4 shared
    assert dice_global(a, b) == pytest.approx(2 * 4 / 12)
    b[1, 0, 0] = True  # a lesion the prediction misses entirely
    assert dice_global(a, b) == pytest.approx(2 * 4 / 13)
    assert dice_per_case(a, b) == pytest.approx((2 * 4 / 12 + 0.0) / 2)
    assert dice_global(np.zeros((1, 2, 2)), np.zeros((1, 2, 2))) == 1.0
    assert np.isnan(dice_per_case(a, np.zeros_like(a)))
    with pytest.raises(ValueError, match="differ"):
        dice_global(a, b[:1])


def test_quadrants_tile_the_slice() -> None:
    x = np.arange(2 * 4 * 4).reshape(2, 4, 4)
    q = _quadrants(x, 2)
    assert q.shape == (8, 2, 2)
    assert np.array_equal(q[1], x[0, :2, 2:]) and np.array_equal(q[6], x[1, 2:, :2])


def test_synthliver_is_seeded_exact_and_skewed() -> None:
    a = synthliver(40, 32, seed=3)
    b = synthliver(40, 32, seed=3)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.masks, b.masks)
    assert a.images.shape == (40, 1, 32, 32) and a.images.min() >= 0 and a.images.max() <= 1
    kinds = [k for t in a.tags if t != "-" for k in t.split(",")]
    assert set(kinds) <= set(SUBTYPES) and kinds.count("large") > kinds.count("rim")
    for mask, tag in zip(a.masks, a.tags, strict=True):
        assert bool(mask.any()) == (tag != "-") or tag != "-"  # no mask without a lesion
    up = synthliver(10, 32, seed=4, lesions=False)
    assert all(t == "-" for t in up.tags) and up.masks.reshape(10, -1).any(axis=1).all()  # liver masks


def test_synthliver_rare_mode_is_rare_in_the_pool_and_common_in_the_test() -> None:
    from tailorkit.active.data import load_split

    cfg = DataConfig(dataset="synthliver_rare", patch=32, synth_pool=100, synth_test=40, synth_upstream=8)
    split = load_split(cfg)
    pool_rim = [i for i, t in enumerate(split.pool.tags) if "rim" in t]
    test_rim = [i for i, t in enumerate(split.test.tags) if "rim" in t]
    assert len(pool_rim) == 3 and len(test_rim) == 12  # 3 % and 30 %, exactly
    assert all(split.pool.masks[i].any() for i in pool_rim)
    # the plain SynthLiver draws rim lesions at its usual rate, and draw 0 is unchanged by the new options
    plain = load_split(dataclasses.replace(cfg, dataset="synthliver"))
    assert sum("rim" in t for t in plain.pool.tags) > 5
    assert np.array_equal(plain.pool.images, synthliver(100, 32, 1234).images)
    # another draw: new pool and test, the same upstream (so the same pretrained backbone)
    other = load_split(dataclasses.replace(cfg, draw=1))
    assert not np.array_equal(other.pool.images, split.pool.images)
    assert np.array_equal(other.upstream.images, split.upstream.images)


def test_set_agreement_is_pairwise_dice_of_the_sets() -> None:
    from tailorkit.active.tuning import set_agreement

    probs = np.zeros((2, 3, 4, 4), np.float32)
    probs[:, :, :2] = 0.9  # all three sets: the top half
    assert set_agreement(probs) == 1.0
    probs[:, 2] = 0.0
    probs[:, 2, :1] = 0.9  # set 2: only the top row -> Dice with the others 2*4/(8+4) = 2/3
    assert set_agreement(probs) == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)
    assert np.isnan(set_agreement(probs[:, :1]))


def test_lits_split_has_a_gap_and_no_tumour_in_upstream(lits_or_skip) -> None:
    split = lits_or_skip
    z_pool = {int(i.split(":")[1][1:]) for i in split.pool.ids}
    z_test = {int(i.split(":")[1][1:]) for i in split.test.ids}
    assert max(z_pool) + 8 <= min(z_test)
    assert len(split.pool) == 4 * 88 and split.pool.images.shape[1:] == (1, 48, 48)
    assert split.pool.masks.sum() < split.upstream.masks.sum()  # tumour inside the (bigger) liver
    assert (split.pool.masks <= split.upstream.masks).all()


@pytest.fixture(scope="module")
def lits_or_skip():
    from tailorkit.active.data import lits_split
    from tests.conftest import load_or_skip

    return load_or_skip(lits_split, DataConfig())


def test_folder_reader_and_malformed_files(tmp_path: Path) -> None:
    import nibabel as nib

    from tailorkit.data.volumes import VolumeError

    vol = np.random.default_rng(0).normal(40, 20, (20, 20, 5)).astype(np.float32)
    mask = np.zeros((20, 20, 5), np.uint8)
    mask[5:15, 5:15, 2] = 1
    nib.save(nib.Nifti1Image(vol, np.eye(4)), tmp_path / "case1.nii.gz")
    (tmp_path / "labels").mkdir()
    nib.save(nib.Nifti1Image(mask, np.eye(4)), tmp_path / "labels" / "case1.nii.gz")
    seg = load_folder(tmp_path, 16, (-200.0, 250.0), need_masks=True)
    assert seg.ids[2] == "case1:z002" and len(seg) == 5
    assert seg.masks[2].sum() > 0 and seg.masks[0].sum() == 0
    (tmp_path / "bad.nii.gz").write_bytes(b"not a nifti file")
    with pytest.raises(VolumeError):
        load_folder(tmp_path, 16, (-200.0, 250.0))
    with pytest.raises(VolumeError, match="expected a folder"):
        load_folder(tmp_path / "missing", 16, (0.0, 1.0))
    (tmp_path / "empty").mkdir()
    with pytest.raises(VolumeError, match=r"no \*\.nii"):
        load_folder(tmp_path / "empty", 16, (0.0, 1.0))


def test_mrc_reader_rejects_malformed_files(tmp_path: Path) -> None:
    from tailorkit.data.mrc import MrcFormatError, read_mrc, write_mrc

    good = tmp_path / "x.mrc"
    write_mrc(good, np.zeros((2, 3, 4), np.float32))
    assert read_mrc(good).shape == (2, 3, 4)
    truncated = tmp_path / "t.mrc"
    truncated.write_bytes(good.read_bytes()[:-5])
    with pytest.raises(MrcFormatError):
        read_mrc(truncated)
    (tmp_path / "short.mrc").write_bytes(b"\x00" * 100)
    with pytest.raises(MrcFormatError):
        read_mrc(tmp_path / "short.mrc")


def test_config_errors_name_the_expected_form() -> None:
    with pytest.raises(ValueError, match="patch: expected a multiple of 8"):
        DataConfig(patch=50)
    with pytest.raises(ValueError, match="root: expected a folder"):
        DataConfig(dataset="folder")
