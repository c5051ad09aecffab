"""Demo part: EfficientNet-Lite0 names what is in real photos; MiniLM says which sentences mean the same."""

from __future__ import annotations

from pathlib import Path

import torch

from tailorkit.core.demo import DEMOS
from tailorkit.core.report import DemoSection
from tailorkit.selfcheck.checks import REFERENCE_PHOTOS, classify_photos, sentence_similarity

DEMO_PHOTOS = (*REFERENCE_PHOTOS, "messi5.jpg")
DEMO_SENTENCES = (
    ("A man is playing a guitar.", "Someone plays an instrument."),
    ("The stock market fell sharply today.", "Shares dropped on Wall Street."),
    ("A cat sleeps on the sofa.", "The committee approved the budget."),
)


@DEMOS.register("selfcheck")
def selfcheck_demo(out_dir: Path, seed: int, device: torch.device) -> DemoSection:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tailorkit.nets import load_minilm_l3, load_minilm_l6

    result = classify_photos(DEMO_PHOTOS, device)
    fig, axes = plt.subplots(2, 3, figsize=(10, 6.5))
    for ax, name, image, label, conf in zip(
        axes.ravel(), DEMO_PHOTOS, result["images"], result["labels"], result["confidences"], strict=True
    ):
        ax.imshow(image)
        ax.set_title(f"{label} ({conf:.2f})", fontsize=10)
        ax.set_xlabel(name, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("EfficientNet-Lite0 (real ImageNet weights, plain torch): top-1 on OpenCV sample photos")
    fig.tight_layout()
    image_path = out_dir / "selfcheck.png"
    fig.savefig(image_path, dpi=90)
    plt.close(fig)

    encoders = {"MiniLM-L6": load_minilm_l6(device=device), "MiniLM-L3": load_minilm_l3(device=device)}
    rows = [[a, b, *(sentence_similarity(enc, a, b) for enc in encoders.values())] for a, b in DEMO_SENTENCES]
    return DemoSection(
        title="Shared networks and assets (self-check)",
        text=(
            "The offline assets at work: our plain-torch EfficientNet-Lite0 loads the packaged ImageNet weights and "
            "labels OpenCV's sample photos; the MiniLM sentence encoders (L3 converted exactly from ONNX) give high "
            "cosine similarity to paraphrases and low to unrelated sentences. `tailorkit bench selfcheck` checks "
            "these numbers against the recorded references."
        ),
        image=image_path,
        table_header=["sentence A", "sentence B", *(f"cosine {name}" for name in encoders)],
        table_rows=rows,
    )
