"""`tailorkit register FIXED MOVING --out DIR ...` and `tailorkit register train CONFIG.yaml --out DIR`.

tailorkit register FIXED MOVING --out DIR [--labels MOVING_LABELS] [--fixed-labels FIXED_LABELS]
        [--steps affine,coarse,deform,io] [--threads N] [--model SAM.pt] [--deform-net NET.pt] [KEY=VALUE ...]
    registers MOVING to FIXED (NIfTI, MGH, MetaImage, NRRD or a DICOM series directory) and writes DIR/warped.nii.gz
    (the moving image on the fixed grid, with the fixed image's affine), DIR/warped_labels.nii.gz (with --labels;
    nearest neighbour, or label_mode=onehot), DIR/displacement.nii.gz (the fixed -> moving field, ITK-compatible:
    ANTs / SimpleITK / transformix read it), DIR/metrics.json (timings per step, features used, folding, SDlogJ,
    Dice with --fixed-labels) and DIR/overlay.png. Without --model the matching steps use MIND-like features and
    the deform step needs --deform-net.
tailorkit register train CONFIG.yaml [KEY=VALUE ...] --out DIR
    trains the SAM-Deform network (DeformTrainConfig) on random deformations of a scan; writes DIR/deform_net.pt.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "register",
        help="SAME++ registration of 3D scans (affine, coarse, deform, instance optimisation); `register train`",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "inputs", nargs="+", metavar="ARG", help="FIXED MOVING [KEY=VALUE ...] or train CONFIG.yaml [KEY=VALUE ...]"
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--labels", type=Path, default=None, help="label map of the moving image (warped without blending)"
    )
    parser.add_argument("--fixed-labels", type=Path, default=None, help="label map of the fixed image (for Dice)")
    parser.add_argument("--steps", default=None, help="comma-separated subset of affine,coarse,deform,io (default all)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: leave as is)")
    parser.add_argument("--model", type=Path, default=None, help="SAM model.pt (`tailorkit anatomy train`)")
    parser.add_argument(
        "--deform-net", type=Path, default=None, help="deformation network (`tailorkit register train`)"
    )
    parser.add_argument("--config", type=Path, default=None, help="YAML/TOML RegistrationConfig settings")
    parser.add_argument("--progress", action="store_true", help="show a progress bar (train)")
    parser.set_defaults(func=run_cmd)


def run_cmd(args: argparse.Namespace) -> int:
    from tailorkit.cli.main import UsageError

    inputs = list(args.inputs)
    if inputs[0] == "train":
        if len(inputs) < 2:
            raise UsageError("tailorkit register train: expected CONFIG.yaml [KEY=VALUE ...]")
        return train_cmd(Path(inputs[1]), inputs[2:], args)
    paths = [a for a in inputs if "=" not in a]
    overrides = [a for a in inputs if "=" in a]
    if len(paths) != 2:
        raise UsageError(f"tailorkit register: expected FIXED MOVING [KEY=VALUE ...], got {len(paths)} paths: {paths}")
    if args.steps:
        overrides.append(f"steps={args.steps}")
    if args.threads:
        overrides.append(f"threads={args.threads}")
    return register_cmd(Path(paths[0]), Path(paths[1]), overrides, args)


def register_cmd(fixed_path: Path, moving_path: Path, overrides: list[str], args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from tailorkit.anatomy.geometry import tensor_affine, to_tensor_order
    from tailorkit.core.config import load_config
    from tailorkit.core.results import write_json_atomic
    from tailorkit.data.volumes import VolumeError, load_volume, save_volume
    from tailorkit.registration import transforms as T
    from tailorkit.registration.config import RegistrationConfig
    from tailorkit.registration.io import save_displacement
    from tailorkit.registration.pipeline import register

    config = load_config(RegistrationConfig, args.config, overrides)
    fixed, moving = load_volume(fixed_path), load_volume(moving_path)
    labels = load_volume(args.labels) if args.labels else None
    if labels is not None and labels.shape != moving.shape:
        raise VolumeError(
            f"{args.labels}: expected a label map of the moving image's shape {moving.shape}, got {labels.shape}"
        )
    fixed_labels = load_volume(args.fixed_labels) if args.fixed_labels else None
    if fixed_labels is not None and fixed_labels.shape != fixed.shape:
        raise VolumeError(
            f"{args.fixed_labels}: expected the fixed image's shape {fixed.shape}, got {fixed_labels.shape}"
        )
    model = net = None
    if args.model:
        from tailorkit.anatomy.train import load_model

        model = load_model(args.model)
    if args.deform_net:
        from tailorkit.registration.models import load_deform_net

        net, _ = load_deform_net(args.deform_net)
    start = time.perf_counter()
    result = register(fixed, moving, config, model=model, net=net)
    total = time.perf_counter() - start
    faff, maff = tensor_affine(fixed.affine), tensor_affine(moving.affine)
    disp = result.displacement
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    warped = T.warp_image(torch.as_tensor(to_tensor_order(moving.array)), maff, disp, faff)
    warped_np = warped.numpy().transpose(2, 1, 0)
    save_volume(out / "warped.nii.gz", np.ascontiguousarray(warped_np), fixed.affine)
    save_displacement(out / "displacement.nii.gz", disp, fixed.affine)
    det = T.jacobian_determinant(disp, faff)
    fg = torch.as_tensor(to_tensor_order(fixed.array)) > float(
        np.percentile(fixed.array, config.affine.mask_percentile)
    )
    metrics: dict[str, Any] = {
        "fixed": str(fixed_path),
        "moving": str(moving_path),
        "features": result.features,
        "steps": list(result.stages),
        "notes": result.notes,
        "seconds": {**{k: round(v, 3) for k, v in result.seconds.items()}, "total": round(total, 3)},
        "threads": torch.get_num_threads() if not config.threads else config.threads,
        "affine_fixed_to_moving_world": np.asarray(result.affine).tolist(),
        "folding_pct": T.folding_percent(det, fg),
        "sdlogj": T.sdlogj(det, fg),
        "info": result.info,
    }
    if labels is not None:
        lab = torch.as_tensor(to_tensor_order(np.rint(labels.array))).long()
        wl = T.warp_labels(lab, maff, disp, faff, mode=config.label_mode).numpy().transpose(2, 1, 0)
        save_volume(out / "warped_labels.nii.gz", np.ascontiguousarray(wl.astype(np.int32)), fixed.affine)
        if fixed_labels is not None:
            metrics["dice"] = T.dice(wl, np.rint(fixed_labels.array).astype(np.int64))
    write_json_atomic(out / "metrics.json", metrics)
    _overlay(out / "overlay.png", fixed.array, warped_np, moving_path.name)
    print(json.dumps({k: metrics[k] for k in ("features", "steps", "seconds", "folding_pct") if k in metrics}))
    print(out)
    return 0


def _overlay(path: Path, fixed: Any, warped: Any, title: str) -> None:
    """Fixed (grey) with the warped moving image's edges (red), one mid slice per axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from tailorkit.core.results import atomic_open

    fig, axes = plt.subplots(1, 3, figsize=(10, 3.6))
    for axis, ax in enumerate(axes):
        k = fixed.shape[axis] // 2
        f, w = np.take(fixed, k, axis=axis).T, np.take(warped, k, axis=axis).T
        ax.imshow(f, cmap="gray", origin="lower")
        gy, gx = np.gradient(w.astype(np.float64))
        edge = np.hypot(gx, gy)
        ax.imshow(np.ma.masked_less(edge, np.percentile(edge, 90)), cmap="autumn", origin="lower", alpha=0.7)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"fixed (grey) + edges of the registered {title} (red)", fontsize=9)
    fig.tight_layout()
    with atomic_open(path) as handle:
        fig.savefig(handle, format="png", dpi=80)
    plt.close(fig)


def train_cmd(config_path: Path, overrides: list[str], args: argparse.Namespace) -> int:
    from tailorkit.core.config import load_config, save_config
    from tailorkit.registration.config import DeformTrainConfig
    from tailorkit.registration.train import train_deform_network

    config = load_config(DeformTrainConfig, config_path, overrides)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    save_config(config, out / "config.yaml")
    path, losses = train_deform_network(config, out / "deform_net.pt", progress=args.progress)
    tail = losses[-10:]
    print(f"trained {len(losses)} steps; mean loss of the last {len(tail)}: {sum(tail) / max(1, len(tail)):.4f}")
    print(path)
    return 0
