"""The self-check measurements, shared by the bench and the demo.

Reference values are those recorded when the assets were chosen (docs/assets.md#reference-values-of-the-self-check):
EfficientNet-Lite0's top-1 labels and confidences on OpenCV's sample photos, MiniLM cosine similarities, and MiniLM-L3's
Pearson correlation with the Lee et al. (2005) human document similarities.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

# photo -> (ImageNet top-1 label as the class list spells its first name, confidence), as recorded (docs/assets.md)
REFERENCE_PHOTOS: dict[str, tuple[str, float]] = {
    "squirrel_cls.jpg": ("fox squirrel", 0.61),
    "baboon.jpg": ("baboon", 0.38),
    "orange.jpg": ("orange", 0.70),
    "apple.jpg": ("Granny Smith", 0.76),
    "butterfly.jpg": ("monarch", 0.52),
}
GUITAR_PAIR = ("A man is playing a guitar.", "Someone plays an instrument.")
REFERENCE_GUITAR = {"minilm-l6": 0.667, "minilm-l3": 0.49}
PARTS = ("vision", "text")


@dataclass(frozen=True)
class SelfcheckConfig:
    """Settings of the self-check bench.

    Attributes:
        parts: which checks to run: "vision" (EfficientNet-Lite0 on photos) and/or "text" (MiniLM encoders).
        photos: OpenCV sample photos to classify (those in REFERENCE_PHOTOS are compared with the record).
        photo_tolerance: allowed |confidence - reference| for a photo to count as reproduced.
        similarity_tolerance: allowed |cosine - reference| for the guitar sentence pair.
        batch_size: images or sentences per forward pass.
    """

    parts: tuple[str, ...] = PARTS
    photos: tuple[str, ...] = tuple(REFERENCE_PHOTOS)
    photo_tolerance: float = 0.05
    similarity_tolerance: float = 0.01
    batch_size: int = 16

    def __post_init__(self) -> None:
        unknown = [p for p in self.parts if p not in PARTS]
        if unknown or not self.parts:
            raise ValueError(f"parts: expected a non-empty subset of {', '.join(PARTS)}, got {list(self.parts)}")
        if not self.photos:
            raise ValueError("photos: expected at least one photo name")
        if not (0 < self.photo_tolerance < 1 and 0 < self.similarity_tolerance < 1):
            raise ValueError("photo_tolerance, similarity_tolerance: expected numbers in (0, 1)")
        if self.batch_size < 1:
            raise ValueError(f"batch_size: expected a positive integer, got {self.batch_size}")


def classify_photos(photos: tuple[str, ...], device: torch.device, batch_size: int = 16) -> dict[str, Any]:
    """Top-1 ImageNet label and confidence for each photo, with throughput."""
    from tailorkit.assets import class_names, opencv_photo
    from tailorkit.nets import load_efficientnet_lite0, preprocess

    names = [n.split(",")[0].strip() for n in class_names("imagenet")]
    model = load_efficientnet_lite0(device=device)
    images = [opencv_photo(p) for p in photos]
    start = time.perf_counter()
    probs = []
    with torch.inference_mode():
        for i in range(0, len(images), batch_size):
            batch = preprocess(images[i : i + batch_size]).to(device)
            probs.append(model(batch).softmax(-1).cpu())
    seconds = time.perf_counter() - start
    prob = torch.cat(probs)
    conf, index = prob.max(-1)
    return {
        "labels": [names[int(i)] for i in index],
        "confidences": [float(c) for c in conf],
        "images": images,
        "seconds": seconds,
        "images_per_s": len(images) / seconds,
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def sentence_similarity(encoder: Any, first: str, second: str) -> float:
    emb = encoder.encode([first, second])
    return float(emb[0] @ emb[1])


def lee_correlation(similarities: np.ndarray, human: np.ndarray) -> tuple[float, float]:
    """Pearson and Spearman correlation over the 1,225 distinct document pairs."""
    from scipy.stats import pearsonr, spearmanr

    upper = np.triu_indices(human.shape[0], 1)
    return float(pearsonr(similarities[upper], human[upper])[0]), float(spearmanr(similarities[upper], human[upper])[0])


def tfidf_similarities(docs: list[str], background: list[str]) -> np.ndarray:
    """The classic baseline: TF-IDF (fitted on the Lee background corpus plus the docs) cosine similarities."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(stop_words="english", sublinear_tf=True).fit(background + docs)
    matrix = vectorizer.transform(docs)
    return np.asarray((matrix @ matrix.T).todense())
