"""Demo part: motion-defined classes on MotionShapes, mean pooling vs the motion block (about a minute).

Two shapes x 8 motions (16 classes), 4 training clips per class; CoOp + mean pooling and SiF (dynamic prompts in
the cheap ``after`` mode) train on the same cached frame features for the same steps. One picture: the frames of a
test clip and of its time reversal (the opposite class), with each arm's top-3 classes for both.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tailorkit.core.demo import DEMOS
from tailorkit.core.report import DemoSection

SHAPES = ("square", "star")


def motion_crop(clip: np.ndarray, margin: int = 4) -> tuple[slice, slice]:
    """The rectangle of a flat-background clip that the moving shape covers in any frame, plus a margin.

    Shapes:
        clip: (T, H, W, 3) uint8 -> (rows, cols) slices of the frame
    """
    background = np.median(clip[:, 0, 0].astype(np.int16), axis=0)  # each frame's top-left pixel: the background
    moved = (np.abs(clip.astype(np.int16) - background) > 12).any(axis=(0, -1))
    height, width = moved.shape
    if not moved.any():
        return slice(0, height), slice(0, width)
    ys, xs = np.nonzero(moved)
    return (
        slice(max(0, int(ys.min()) - margin), min(height, int(ys.max()) + 1 + margin)),
        slice(max(0, int(xs.min()) - margin), min(width, int(xs.max()) + 1 + margin)),
    )


@DEMOS.register("video")
def video_demo(out_dir: Path, seed: int, device: torch.device) -> DemoSection:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tailorkit.nets.dual_encoder import load_dual_encoder
    from tailorkit.video.features import encode_frames
    from tailorkit.video.methods import make_model
    from tailorkit.video.shapes import MotionShapes, make_dataset
    from tailorkit.video.train import OptimSettings, evaluate, fit, predict

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        encoder, _ = load_dual_encoder(device=device)
        gen = MotionShapes(frames=8, size=64, speed=0.05, spin=0.25, growth=0.09)
        train_frames, ytr, names = make_dataset(gen, SHAPES, 4, "train", seed)
        test_frames, yte, _ = make_dataset(gen, SHAPES, 3, "test", seed)
        train = encode_frames(encoder, train_frames, 64)
        test = encode_frames(encoder, test_frames, 64)
        ytr_t, yte_t = torch.as_tensor(ytr), torch.as_tensor(yte)
        settings = OptimSettings(steps=50, batch=64, lr=3e-3)
        models, accuracy = {}, {}
        for name, options in (("coop_mean", {}), ("sif", {"dynamic": "after"})):
            torch.manual_seed(seed)
            model = make_model(name, encoder, 8, **options)
            fit(model, train, ytr_t, names, settings, seed=seed)
            models[name] = model
            accuracy[name] = evaluate(model, test, yte_t, names)
        pick = int(np.nonzero(yte == 1)[0][0])  # a "square moving right" test clip
        clip = test_frames[pick]
        pair = {"clip": {k: v[pick : pick + 1] for k, v in test.items()}}
        pair["reversed"] = {k: v[pick : pick + 1].flip(1) for k, v in test.items()}
        tops = {
            (arm, which): predict(models[arm], feats, names, 3)[0] for arm in models for which, feats in pair.items()
        }
    finally:
        torch.set_num_threads(threads)

    # the shape is small and moves a few pixels per frame: show the region it sweeps, not the empty background
    crop_rows, crop_cols = motion_crop(clip)
    fig, axes = plt.subplots(2, 8, figsize=(12, 4.4))
    for t in range(8):
        axes[0, t].imshow(clip[t][crop_rows, crop_cols], interpolation="nearest")
        axes[1, t].imshow(clip[7 - t][crop_rows, crop_cols], interpolation="nearest")
        axes[0, t].set_title(f"frame {t + 1}", fontsize=7)
        for r in (0, 1):
            axes[r, t].set_xticks([])
            axes[r, t].set_yticks([])
    axes[0, 0].set_ylabel(f"{names[1]}\n(true)", fontsize=8)
    axes[1, 0].set_ylabel(f"reversed =\n{names[0]}", fontsize=8)
    lines = []
    for arm in models:
        for which in pair:
            top = ", ".join(f"{n} {p:.2f}" for n, p in tops[(arm, which)])
            lines.append(f"{arm:9s} {which:8s}: {top}")
    fig.suptitle(
        f"Motion-defined classes: test accuracy (16 classes) CoOp + mean pooling {accuracy['coop_mean']:.2f}, "
        f"SiF {accuracy['sif']:.2f}; mean pooling scores a clip and its reversal identically",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0.22, 1, 1))
    fig.text(0.01, 0.2, "top-3 classes\n" + "\n".join(lines), fontsize=8, family="monospace", va="top")
    image = out_dir / "video.png"
    fig.savefig(image, dpi=80)
    plt.close(fig)
    rows = [
        [
            arm,
            f"{accuracy[arm]:.3f}",
            models[arm].trainable_count(),
            tops[(arm, "clip")][0][0],
            tops[(arm, "reversed")][0][0],
        ]
        for arm in models
    ]
    return DemoSection(
        title="video: motion prompts (SiF) on a frozen CLIP-like dual encoder",
        text=(
            "MotionShapes clips (2 shapes x 8 motions, real photo textures); opposite motions are exact time "
            "reversals, so mean pooling of frame features cannot tell them apart. CoOp + mean pooling and SiF "
            "train for 50 steps on 4 clips per class. One seed, tiny budget: a tour, not evidence "
            "(see `tailorkit bench video`)."
        ),
        image=image,
        table_header=["arm", "test accuracy (16 classes)", "trainable parameters", "top-1 (clip)", "top-1 (reversed)"],
        table_rows=rows,
    )
