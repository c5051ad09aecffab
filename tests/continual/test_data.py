from __future__ import annotations

import numpy as np
import pytest
import torch

from tailorkit.continual.config import DataConfig
from tailorkit.continual.data import GLYPHS, class_order, load_image_folder, make_benchmark, phase_split


def test_class_orders_are_seeded_permutations() -> None:
    a, b = class_order(40, 0, 0), class_order(40, 0, 1)
    assert sorted(a) == list(range(40)) and sorted(b) == list(range(40))
    assert a != b and a != tuple(range(40))
    assert class_order(40, 0, 0) == a
    assert class_order(40, 1, 0) != a


def test_phase_split() -> None:
    assert phase_split((3, 1, 0, 2), 2) == ((3, 1), (0, 2))
    with pytest.raises(ValueError, match="divisor"):
        phase_split((0, 1, 2), 2)


def test_glyphs_are_distinct_and_exactly_labelled() -> None:
    assert len(GLYPHS) == len(set(GLYPHS)) == 100
    config = DataConfig(n_classes=8, phases=4, train_per_class=5, test_per_class=3, image_size=16, probe_per_class=5)
    bench = make_benchmark(config, seed=0, order=0)
    assert bench.train.images.shape == (40, 1, 16, 16) and bench.train.images.dtype == torch.uint8
    assert torch.bincount(bench.train.labels).tolist() == [5] * 8
    assert torch.bincount(bench.test.labels).tolist() == [3] * 8
    assert sorted(c for p in bench.phases for c in p) == list(range(8))
    again = make_benchmark(config, seed=0, order=0)
    assert torch.equal(bench.train.images, again.train.images)
    other = make_benchmark(config, seed=1, order=0)
    assert not torch.equal(bench.train.images, other.train.images)
    # a glyph is visible: ink differs from background
    assert float(bench.train.images.float().std(dim=(1, 2, 3)).min()) > 5


def test_phase_styles_change_polarity_between_phases() -> None:
    config = DataConfig(n_classes=8, phases=2, train_per_class=20, test_per_class=2, image_size=16, probe_per_class=5)
    bench = make_benchmark(config, seed=0, order=0)
    # phase 0 is dark on light (bright mean), phase 1 light on dark
    mean0 = bench.train.subset(bench.phases[0]).images.float().mean()
    mean1 = bench.train.subset(bench.phases[1]).images.float().mean()
    assert mean0 > mean1 + 40


def test_unlabelled_holds_only_the_requested_classes() -> None:
    config = DataConfig(n_classes=6, phases=3, train_per_class=4, test_per_class=2, image_size=16, probe_per_class=4)
    bench = make_benchmark(config, seed=0, order=0)
    images = bench.unlabelled(bench.phases[1])
    assert isinstance(images, torch.Tensor) and images.shape[0] == 8
    expected = bench.train.subset(bench.phases[1]).images
    assert torch.equal(images, expected)
    assert bench.seen(1) == bench.phases[0] + bench.phases[1]


def test_image_folder_loader_on_a_tiny_fixture(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 3), ("test", 2)):
        for name in ("apple", "bee", "cat"):
            folder = tmp_path / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    (tmp_path / "train" / "apple" / "notes.txt").write_text("not an image")
    train, names = load_image_folder(tmp_path, "train", 16)
    assert names == ("apple", "bee", "cat")
    assert train.images.shape == (9, 3, 16, 16) and train.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    config = DataConfig(
        dataset="folder",
        root=str(tmp_path),
        n_classes=2,
        phases=1,
        train_per_class=2,
        test_per_class=2,
        image_size=16,
        probe_per_class=2,
    )
    bench = make_benchmark(config, seed=0)
    assert bench.channels == 3 and len(bench.train) == 4 and len(bench.test) == 4
    with pytest.raises(FileNotFoundError, match="root/val"):
        load_image_folder(tmp_path, "val", 16)


def test_config_rejects_bad_splits() -> None:
    with pytest.raises(ValueError, match="multiple of phases"):
        DataConfig(n_classes=10, phases=4)
    with pytest.raises(ValueError, match="root"):
        DataConfig(dataset="folder")


def test_fashion_mnist_benchmark() -> None:
    from tests.conftest import load_or_skip

    config = DataConfig(
        dataset="fashion_mnist",
        n_classes=4,
        phases=2,
        train_per_class=10,
        test_per_class=5,
        image_size=20,
        probe_per_class=10,
    )
    bench = load_or_skip(make_benchmark, config, 0)
    assert bench.train.images.shape == (40, 1, 20, 20)
    assert bench.class_names[0] == "T-shirt/top" or len(bench.class_names) == 4


def test_domains_give_one_domain_per_phase_in_a_seeded_order() -> None:
    config = DataConfig(
        dataset="domains", n_classes=8, phases=4, train_per_class=6, test_per_class=3, image_size=16, probe_per_class=6
    )
    bench = make_benchmark(config, seed=0, order=0)
    assert bench.train.images.shape == (48, 1, 16, 16) and torch.bincount(bench.test.labels).tolist() == [3] * 8
    # domain d holds class ids 2d, 2d+1; every phase is exactly one domain, each domain once
    assert sorted({c // 2 for c in p} == {p[0] // 2} for p in bench.phases) == [True] * 4
    assert sorted(p[0] // 2 for p in bench.phases) == [0, 1, 2, 3]
    orders = {tuple(p[0] // 2 for p in make_benchmark(config, seed=0, order=k).phases) for k in range(4)}
    assert len(orders) > 1  # the class order permutes which domain comes when
    again = make_benchmark(config, seed=0, order=0)
    assert torch.equal(bench.train.images, again.train.images) and bench.phases == again.phases
    # the domains differ in style: glyphs are dark on light, the digit and clothing images light on dark
    means = [float(bench.train.images[bench.train.labels // 2 == d].float().mean()) for d in range(4)]
    assert means[0] > 128 > max(means[1:])
    assert "glyph" in bench.class_names[0] and "fashion" in bench.class_names[2]
    with pytest.raises(Exception, match="phases"):
        DataConfig(dataset="domains", n_classes=8, phases=2)
    with pytest.raises(Exception, match="domains"):
        DataConfig(dataset="domains", n_classes=8, phases=4, domains=("glyphs", "glyphs", "mnist_5k", "x"))
