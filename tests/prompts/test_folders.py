"""Prompt learning on the user's own image folders: `task/<class>/<image>.png`, one folder per task."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tailorkit.cli.main import main
from tailorkit.core.errors import InputError
from tailorkit.prompts.data import folder_task

# a class's images are a flat colour plus noise; the colour identifies the class in the loaded arrays
COLOURS = {"red_apple": (220, 30, 30), "blue-sky": (30, 30, 220), "green leaf": (30, 200, 30)}


def make_task(root: Path, classes: dict[str, tuple[int, int, int]], per_class: int, seed: int = 0) -> Path:
    from PIL import Image

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    for name, colour in classes.items():
        (root / name).mkdir()
        for i in range(per_class):
            size = int(rng.integers(20, 40))  # images of different sizes, as a user's would be
            noise = rng.integers(-20, 21, size=(size, size, 3))
            pixels = np.clip(np.array(colour)[None, None, :] + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"img {i}.png")
        (root / name / "notes.txt").write_text("not an image: ignored")
    return root


def test_folder_task_reads_classes_splits_and_labels(tmp_path: Path) -> None:
    root = make_task(tmp_path / "my fruit ü", COLOURS, per_class=5)
    task = folder_task(root, shots=2, seed=3, size=32)
    assert task.name == "my fruit ü"
    # sorted folder names, read with _ and - as spaces
    assert task.class_names == ("blue sky", "green leaf", "red apple")
    assert task.meta["folders"] == ["blue-sky", "green leaf", "red_apple"]
    assert task.train_x.shape == (6, 32, 32, 3) and task.test_x.shape == (9, 32, 32, 3)
    assert task.train_x.dtype == np.uint8
    assert np.bincount(task.train_y).tolist() == [2, 2, 2] and np.bincount(task.test_y).tolist() == [3, 3, 3]
    # every image's dominant channel is its label's colour: labels follow the folders
    dominant = {0: 2, 1: 1, 2: 0}
    for x, y in ((task.train_x, task.train_y), (task.test_x, task.test_y)):
        assert [int(im.reshape(-1, 3).mean(0).argmax()) for im in x] == [dominant[int(c)] for c in y]
    # train and test never share an image; the draw depends on the seed and only on it
    train = {im.tobytes() for im in task.train_x}
    assert not train & {im.tobytes() for im in task.test_x}
    again = folder_task(root, shots=2, seed=3, size=32)
    assert np.array_equal(again.train_x, task.train_x)
    other = folder_task(root, shots=2, seed=4, size=32)
    assert not np.array_equal(other.train_x, task.train_x)
    # tasks with the same class names share a label set (one text forward), others do not
    twin = folder_task(make_task(tmp_path / "twin", COLOURS, per_class=3), shots=1, size=32)
    assert twin.label_set == task.label_set
    pair = folder_task(make_task(tmp_path / "pair", {"cat": (1, 2, 3), "dog": (3, 2, 1)}, 2), shots=1, size=32)
    assert pair.label_set != task.label_set


@pytest.mark.parametrize(
    ("layout", "says"),
    [
        ("missing", "not found"),
        ("one class", "at least 2 class sub-folders, found only 'a'"),
        ("no classes", "found none"),
        ("too few", "expected at least 3"),
        ("broken image", "b/img 1.png: not a readable image"),
    ],
)
def test_folder_task_refuses_bad_folders(tmp_path: Path, layout: str, says: str) -> None:
    root = tmp_path / "task"
    if layout == "one class":
        make_task(root, {"a": (1, 1, 1)}, 3)
    elif layout == "no classes":
        root.mkdir()
        (root / "x.png").write_bytes(b"")
    elif layout == "too few":
        make_task(root, {"a": (1, 1, 1), "b": (2, 2, 2)}, 2)
    elif layout == "broken image":
        make_task(root, {"a": (1, 1, 1), "b": (2, 2, 2)}, 3)
        (root / "b" / "img 1.png").write_text("not a png")
    with pytest.raises(InputError, match=says):
        folder_task(root, shots=2)


def test_prompts_train_on_own_folders_from_the_cli(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    encoder,  # type: ignore[no-untyped-def]  # the cached encoder (skips when its assets are missing)
) -> None:
    fruit = make_task(tmp_path / "data" / "fruit", COLOURS, per_class=3)
    pets = make_task(tmp_path / "data" / "pets", {"cat": (200, 200, 200), "dog": (90, 60, 20)}, per_class=3, seed=1)
    out = tmp_path / "prompts.safetensors"
    argv = ["prompts", "train", "coop", "--form", "mt", "--task-folder", str(fruit), "--task-folder", str(pets),
            "--shots", "1", "--steps", "2", "--save", str(out)]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "task fruit: 3 classes (blue sky, green leaf, red apple)" in text
    assert "task pets: 2 classes (cat, dog)" in text and "2 training / 4 test images" in text
    accuracies = {
        line.split()[2]: float(line.split()[3]) for line in text.splitlines() if line.startswith("test accuracy")
    }
    assert set(accuracies) >= {"fruit", "pets"} and all(0.0 <= a <= 1.0 for a in accuracies.values())
    assert out.is_file()
