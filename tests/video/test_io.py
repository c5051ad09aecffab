"""Decoding, sampling and folder layout on tiny real clips written with PyAV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tailorkit.video.io import VideoError, VideoFolder, read_video, sample_indices, write_splits_csv, write_video
from tests.video.conftest import moving_square


def test_decode_round_trip(tiny_clip: Path) -> None:
    frames = read_video(tiny_clip)
    original = moving_square()
    assert frames.shape == original.shape and frames.dtype == np.uint8
    # lossy codec, but close: and the frame clock (red level 20 t) survives in order
    assert np.abs(frames.astype(int) - original).mean() < 8
    reds = frames[:, 0, 0, 0].astype(int)
    assert np.all(np.diff(reds) > 5)


def test_decode_resize_stride_and_cap(tiny_clip: Path) -> None:
    assert read_video(tiny_clip, size=16).shape == (12, 16, 16, 3)
    assert read_video(tiny_clip, size=(16, 24)).shape == (12, 16, 24, 3)
    strided = read_video(tiny_clip, stride=3)
    assert len(strided) == 4
    assert abs(int(strided[1, 0, 0, 0]) - 60) < 12  # frame 3's red level
    assert len(read_video(tiny_clip, max_frames=5)) == 5


def test_uniform_sampling() -> None:
    idx = sample_indices(12, 4)
    assert idx.tolist() == [0, 4, 7, 11]
    assert sample_indices(8, 8).tolist() == list(range(8))
    assert sample_indices(9, 1).tolist() == [4]


def test_segment_sampling_one_per_segment() -> None:
    idx = sample_indices(10, 3, "segment")
    assert idx.tolist() == [1, 5, 8]
    rng = np.random.default_rng(0)
    for _ in range(50):
        r = sample_indices(100, 8, "segment", rng)
        assert np.all(r // 12.5 == np.arange(8))  # each index inside its own segment
    assert sample_indices(8, 8, "segment").tolist() == list(range(8))


def test_too_few_frames_and_bad_sampling() -> None:
    with pytest.raises(VideoError, match="too few frames: the clip has 3, sampling needs at least 8"):
        sample_indices(3, 8)
    with pytest.raises(ValueError, match="sampling: expected one of uniform, segment"):
        sample_indices(10, 2, "random")


def test_unreadable_and_missing_video(tmp_path: Path) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"this is not a video" * 10)
    with pytest.raises(VideoError, match="not a readable video"):
        read_video(bad)
    with pytest.raises(VideoError, match="no such video file"):
        read_video(tmp_path / "absent.mp4")


def test_write_video_validates(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="expected uint8"):
        write_video(tmp_path / "a.mp4", np.zeros((2, 8, 8, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="even height and width"):
        write_video(tmp_path / "a.mp4", np.zeros((2, 7, 8, 3), dtype=np.uint8))
    assert not list(tmp_path.iterdir())  # nothing half-written


def _folder(tmp_path: Path) -> Path:
    root = tmp_path / "videos"
    clip = moving_square(frames=6, size=16)
    for name in ("playing_guitar", "walking"):
        for i in range(2):
            write_video(root / name / f"c{i}.mp4", clip)
    return root


def test_video_folder_layout_and_csv(tmp_path: Path) -> None:
    root = _folder(tmp_path)
    folder = VideoFolder(root)
    assert folder.classes == ["playing guitar", "walking"]
    assert len(folder) == 4 and {c.split for c in folder.clips} == {"all"}
    csv = write_splits_csv(
        tmp_path / "splits.csv",
        [
            ("playing_guitar/c0.mp4", "playing_guitar", "train"),
            ("walking/c0.mp4", "walking", "train"),
            ("walking/c1.mp4", "walking", "test"),
        ],
    )
    split = VideoFolder(root, csv)
    assert [c.label for c in split.split("train")] == [0, 1]
    assert split.split("test")[0].class_name == "walking"
    with pytest.raises(VideoError, match="split 'val' is empty"):
        split.split("val")


def test_video_folder_errors(tmp_path: Path) -> None:
    root = _folder(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(VideoError, match="no class folders with videos"):
        VideoFolder(tmp_path / "empty")
    bad = write_splits_csv(tmp_path / "bad.csv", [("walking/c9.mp4", "walking", "train")])
    with pytest.raises(VideoError, match="no such clip"):
        VideoFolder(root, bad)
    bad = write_splits_csv(tmp_path / "bad2.csv", [("walking/c0.mp4", "running", "train")])
    with pytest.raises(VideoError, match="unknown class 'running'"):
        VideoFolder(root, bad)


@pytest.mark.parametrize("written", ["playing guitar", "playing_guitar"])
def test_video_folder_names_with_spaces(tmp_path: Path, written: str) -> None:
    """A class folder named with a space is found whether the CSV writes its label with the space or with `_`."""
    root = tmp_path / "my videos ü"
    clip = moving_square(frames=6, size=16)
    for name in ("playing guitar", "walking"):
        for i in range(2):
            write_video(root / name / f"c{i}.mp4", clip)
    assert VideoFolder(root).classes == ["playing guitar", "walking"]
    csv = write_splits_csv(
        tmp_path / "splits.csv",
        [
            ("playing guitar/c0.mp4", written, "train"),
            ("walking/c0.mp4", "walking", "train"),
            ("playing guitar/c1.mp4", written, "test"),
        ],
    )
    split = VideoFolder(root, csv)
    assert [(c.label, c.class_name) for c in split.split("train")] == [(0, "playing guitar"), (1, "walking")]
    assert split.split("test")[0].path == root / "playing guitar" / "c1.mp4"
