"""The real assets load with the shapes, counts and values docs/assets.md records."""

from __future__ import annotations

import numpy as np
import pytest

import tailorkit.assets as A
from tests.conftest import load_or_skip


def test_fashion_mnist_is_complete_and_balanced() -> None:
    images, labels = load_or_skip(A.fashion_mnist, "train")
    assert images.shape == (60000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [6000] * 10
    test_images, test_labels = A.fashion_mnist("test")
    assert test_images.shape == (10000, 28, 28) and np.bincount(test_labels).tolist() == [1000] * 10
    # Class 1 (trousers) is tall and narrow: more ink in the centre columns than at the sides.
    trousers = images[labels == 1].mean(axis=0)
    assert trousers[:, 12:16].mean() > 2 * trousers[:, :4].mean()
    with pytest.raises(ValueError, match="'train' or 'test'"):
        A.fashion_mnist("val")  # type: ignore[arg-type]


def test_mnist_5k_and_opencv_digits_agree_on_what_a_digit_is() -> None:
    mnist, mnist_labels = load_or_skip(A.mnist_5k)
    digits, digit_labels = load_or_skip(A.opencv_digits)
    assert mnist.shape == (5000, 28, 28) and np.bincount(mnist_labels).tolist() == [500] * 10
    assert digits.shape == (5000, 20, 20) and np.bincount(digit_labels).tolist() == [500] * 10
    # Nearest class mean on flattened pixels is far above chance on both (labels line up with the pixels).
    for x, y in ((mnist, mnist_labels), (digits, digit_labels)):
        flat = x.reshape(len(x), -1).astype(np.float32)
        means = np.stack([flat[y == c][:250].mean(0) for c in range(10)])
        held = np.concatenate([np.flatnonzero(y == c)[250:] for c in range(10)])
        pred = ((flat[held, None, :] - means[None]) ** 2).sum(-1).argmin(1)
        assert (pred == y[held]).mean() > 0.6


def test_photos_and_class_names() -> None:
    photo = load_or_skip(A.opencv_photo, "messi5.jpg")
    assert photo.shape == (342, 548, 3) and photo.dtype == np.uint8
    imagenet = A.class_names("imagenet")
    assert len(imagenet) == 1000 and imagenet[0].startswith("tench") and "Granny Smith" in imagenet
    assert len(A.class_names("kinetics400")) == 400 and A.class_names("kinetics400")[0] == "abseiling"
    assert len(A.class_names("voc")) == 20
    with pytest.raises(ValueError, match="expected one of imagenet"):
        A.class_names("cifar")
    with pytest.raises(ValueError, match="expected a file name"):
        A.opencv_data_path("../../etc/passwd")
    with pytest.raises(A.AssetMissing, match="not found"):
        A.opencv_photo("no-such-photo.jpg")


def test_videos_exist() -> None:
    assert load_or_skip(A.video_path, "vtest.avi").stat().st_size == 8131690
    assert load_or_skip(A.video_path, "bikes.mp4").suffix == ".mp4"
    with pytest.raises(ValueError, match="expected one of"):
        A.video_path("movie.mkv")


def test_text_corpora() -> None:
    docs, sims = load_or_skip(A.lee_corpus)
    assert len(docs) == 50 and np.allclose(sims, sims.T) and np.allclose(np.diag(sims), 1.0)
    assert np.triu_indices(50, 1)[0].size == 1225 and sims.min() >= 0.0 and sims.max() <= 1.0
    assert len(A.word_similarity("wordsim353")) == 353 and len(A.word_similarity("simlex999")) == 999
    texts, labels = A.polarity()
    assert len(texts) == 200 and labels.sum() == 100


def test_wordnet_matches_published_counts() -> None:
    synsets = load_or_skip(A.wordnet_synsets)
    assert len(synsets) == 117659
    assert sum(bool(s.examples) for s in synsets) == 32923
    assert len({s.lexname for s in synsets}) == 45
    lexnames = A.wordnet_lexnames()
    assert lexnames[5] == "noun.animal" and lexnames[18] == "noun.person" and lexnames[38] == "verb.motion"
    dogs = [s for s in A.wordnet_synsets("noun") if "dog" in s.lemmas and s.lexname == "noun.animal"]
    assert dogs and any("domesticated" in s.definition for s in dogs)


def test_fortunes() -> None:
    by_category = load_or_skip(A.fortunes, 0)
    assert len(by_category) == 40
    assert sum(map(len, by_category.values())) == pytest.approx(14397, abs=5)
    assert 1100 < len(by_category["people"]) < 1300 and len(A.fortunes(20)) < 40


def test_medical_volumes() -> None:
    mni = load_or_skip(A.mni152)
    assert mni.t1.shape == (197, 233, 189)
    mask = np.asarray(mni.brain_mask.dataobj).astype(bool)
    gm = mni.gm.get_fdata()
    assert mask.sum() > 1.0e6 and mask.sum() < 3.0e6 and gm[mask].mean() > 5 * gm[~mask].mean()
    atlas, names = load_or_skip(A.aal_atlas)
    labels = np.unique(np.asarray(atlas.dataobj))
    assert atlas.shape == (181, 217, 181) and len(names) == 116 and set(labels[1:]) <= set(names)
    assert names[1] == "Precentral_L"
    ct, seg = load_or_skip(A.lits_case117)
    assert ct.shape == (128, 128, 128) and ct.min() == pytest.approx(-1063.25) and ct.max() == pytest.approx(1877.25)
    assert np.bincount(seg.ravel()).tolist() == [1481801, 485268, 130083]
    # Liver is soft tissue: its median HU sits well above the air-dominated background.
    assert 0 < np.median(ct[seg == 1]) < 200 and np.median(ct[seg == 0]) < np.median(ct[seg == 1])
    head, face = load_or_skip(A.pydeface_head)
    assert head.shape == (176, 256, 256) and set(np.unique(np.asarray(face.dataobj))) <= {0, 1}
    itk = load_or_skip(A.itk_t1)
    assert itk["t1"].shape == (128, 128, 62) and A.itk_slice().shape == (217, 181)
