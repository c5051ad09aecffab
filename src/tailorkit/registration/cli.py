"""`tailorkit register [run] FIXED MOVING --out DIR ...` and `tailorkit register train CONFIG.yaml --out DIR`.

tailorkit register run FIXED MOVING --out DIR [--method auto|same|mind|ants|ants_affine|elastix|demons|convexadam]
        [--labels MOVING_LABELS] [--fixed-labels FIXED_LABELS] [--labels-threshold T] [--accept-poor]
        [--steps affine,coarse,deform,io] [--threads N] [--model SAM.pt] [--deform-net NET.pt] [--multimodal]
        [--iterations N] [KEY=VALUE ...]
    registers MOVING to FIXED (NIfTI, MGH, MetaImage, NRRD or a DICOM series directory) and writes DIR/warped.nii.gz
    (the moving image on the fixed grid, with the fixed image's affine), DIR/warped_labels.nii.gz (with --labels;
    resampled through the label map's own affine, nearest neighbour or label_mode=onehot), DIR/displacement.nii.gz
    (the fixed -> moving field, ITK-compatible: ANTs / SimpleITK / transformix read it), DIR/metrics.json (method,
    initialisation, timings per step, features used, folding, SDlogJ, the quality verdict, Dice with
    --fixed-labels) and DIR/overlay.png. `tailorkit register FIXED MOVING ...` (without `run`) is the same command.
    Methods: same (SAME++ on a trained SAM embedding, needs --model), mind (the SAME++ steps on MIND-like features),
    auto (same with --model, else mind; the default), and the peers ants (ANTs SyN), ants_affine, elastix, demons
    (SimpleITK, mono-modal), convexadam; every method starts from the same initialisation (init.kind).
    Exit status: 0 done; 2 bad input (nothing written); 3 a poor result (folding above quality.max_folding_pct, a
    negative or degenerate median Jacobian, or a similarity below the initialisation's): the files are written and
    marked poor in metrics.json, the problems are printed on stderr; --accept-poor exits 0 instead.
tailorkit register train CONFIG.yaml [KEY=VALUE ...] --out DIR
    trains the SAM-Deform network (DeformTrainConfig) on random deformations of a scan; writes DIR/deform_net.pt.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from tailorkit.cli.bench import PROGRESS_HELP

POOR_RESULT = 3  # exit status of a result refused by the quality checks (docs/registration.md#exit-status)
PIPELINE_METHODS = ("auto", "same", "mind")
PEER_METHODS = {
    "ants": "ants_syn",
    "ants_affine": "ants_affine",
    "elastix": "elastix",
    "demons": "sitk_demons",
    "convexadam": "convexadam",
}
METHODS = PIPELINE_METHODS + tuple(PEER_METHODS)


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "register",
        help="SAME++ registration of 3D scans (affine, coarse, deform, instance optimisation) and its peers",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="ARG",
        help="[run] FIXED MOVING [KEY=VALUE ...] or train CONFIG.yaml [KEY=VALUE ...]",
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--method", default="auto", help=f"one of {', '.join(METHODS)} (default auto)")
    parser.add_argument(
        "--labels", type=Path, default=None, help="label map of the moving image (warped without blending)"
    )
    parser.add_argument("--fixed-labels", type=Path, default=None, help="label map of the fixed image (for Dice)")
    parser.add_argument(
        "--labels-threshold",
        type=float,
        default=None,
        help="binarise non-integer label maps (e.g. probabilities) as value >= T; without it they are refused",
    )
    parser.add_argument(
        "--accept-poor", action="store_true", help="exit 0 even when the quality checks refuse the result"
    )
    parser.add_argument("--multimodal", action="store_true", help="peers: the images have different contrasts")
    parser.add_argument(
        "--iterations", type=int, default=None, help="elastix: MaximumNumberOfIterations per resolution (default 256)"
    )
    parser.add_argument("--steps", default=None, help="comma-separated subset of affine,coarse,deform,io (default all)")
    parser.add_argument("--threads", type=int, default=0, help="torch / ITK threads (default: leave as is; peers 1)")
    parser.add_argument("--model", type=Path, default=None, help="SAM model.pt (`tailorkit anatomy train`)")
    parser.add_argument(
        "--deform-net", type=Path, default=None, help="deformation network (`tailorkit register train`)"
    )
    parser.add_argument("--config", type=Path, default=None, help="YAML/TOML RegistrationConfig settings")
    parser.add_argument("--progress", action="store_true", default=None, help=PROGRESS_HELP)
    parser.set_defaults(func=run_cmd)


def run_cmd(args: argparse.Namespace) -> int:
    from tailorkit.cli.main import UsageError

    inputs = list(args.inputs)
    if inputs[0] == "train":
        if len(inputs) < 2:
            raise UsageError("tailorkit register train: expected CONFIG.yaml [KEY=VALUE ...]")
        return train_cmd(Path(inputs[1]), inputs[2:], args)
    if inputs[0] == "run":
        inputs = inputs[1:]
    paths = [a for a in inputs if "=" not in a]
    overrides = [a for a in inputs if "=" in a] + list(getattr(args, "overrides", []) or [])
    if len(paths) != 2:
        raise UsageError(f"tailorkit register: expected FIXED MOVING [KEY=VALUE ...], got {len(paths)} paths: {paths}")
    if args.method not in METHODS:
        raise UsageError(f"tailorkit register: --method: expected one of {', '.join(METHODS)}, got {args.method!r}")
    if args.method == "same" and args.model is None:
        raise UsageError(
            "tailorkit register: --method same needs a trained SAM embedding: --model MODEL.pt "
            "(train one with `tailorkit anatomy train`, docs/anatomy.md), or use --method mind"
        )
    if args.method in PEER_METHODS:
        from tailorkit.registration.peers import peer_missing

        reason = peer_missing(PEER_METHODS[args.method])
        if reason:
            raise UsageError(f"tailorkit register: --method {args.method}: {reason}")
    if args.iterations is not None and (args.method != "elastix" or args.iterations < 1):
        raise UsageError(f"tailorkit register: --iterations: expected an int >= 1 with --method elastix, got "
                         f"{args.iterations} with --method {args.method}")  # fmt: skip
    if args.method == "demons" and args.multimodal:
        raise UsageError("tailorkit register: --method demons compares intensities directly; not with --multimodal")
    if args.steps:
        overrides.append(f"steps={args.steps}")
    if args.threads:
        overrides.append(f"threads={args.threads}")
    return register_cmd(Path(paths[0]), Path(paths[1]), overrides, args)


def load_labels(path: Path, threshold: float | None, notes: list[str]) -> Any:
    """A label map as a Volume of integers: integer-valued maps as they are; a non-integer map (a probability map)
    is refused unless `threshold` is given, then binarised as value >= threshold."""
    import numpy as np

    from tailorkit.data.volumes import VolumeError, load_volume

    vol = load_volume(path)
    arr = np.asarray(vol.array)
    if not np.isfinite(arr).all():
        raise VolumeError(f"{path}: expected a label map of integers, got non-finite values")
    off = np.abs(arr - np.rint(arr))
    if float(off.max()) > 1e-3:
        example = float(arr.reshape(-1)[int(off.argmax())])
        if threshold is None:
            raise VolumeError(
                f"{path}: expected an integer label map, got non-integer values (e.g. {example:.4g}); "
                "for a probability map give --labels-threshold T (label = value >= T)"
            )
        notes.append(f"{path.name}: non-integer values binarised as value >= {threshold:g}")
        return type(vol)((arr >= threshold).astype(np.int32), vol.affine)
    return type(vol)(np.rint(arr).astype(np.int32), vol.affine)


def _overlaps(a: Any, b: Any) -> bool:
    """Whether the world bounding boxes of two volumes intersect."""
    import numpy as np

    def box(v: Any) -> tuple[Any, Any]:
        corners = np.array(np.meshgrid(*[[0, s - 1] for s in v.shape], indexing="ij")).reshape(3, -1).T
        world = v.voxel_to_world(corners)
        return world.min(0), world.max(0)

    (alo, ahi), (blo, bhi) = box(a), box(b)
    return bool(np.all(alo <= bhi) and np.all(blo <= ahi))


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

    config = load_config(RegistrationConfig, args.config, overrides)
    if args.method == "mind":
        from dataclasses import replace

        config = replace(config, features=replace(config.features, kind="mind"))
    # every input is read and checked before any work; a bad one is a usage error (one line, exit 2)
    from tailorkit.cli.main import UsageError
    from tailorkit.core.errors import check_output_dir

    check_output_dir(args.out)
    try:
        fixed, moving = load_volume(fixed_path), load_volume(moving_path)
        for path, vol in ((fixed_path, fixed), (moving_path, moving)):
            if float(np.max(vol.array)) == float(np.min(vol.array)):
                raise VolumeError(f"{path}: expected an image with contrast, got constant intensity "
                                  f"{float(np.min(vol.array)):g}")  # fmt: skip
        label_notes: list[str] = []
        labels = load_labels(args.labels, args.labels_threshold, label_notes) if args.labels else None
        if labels is not None and not _overlaps(labels, moving):
            raise VolumeError(f"{args.labels}: expected a label map overlapping the moving image, got a disjoint grid")
        if labels is not None and (labels.shape != moving.shape or not np.allclose(labels.affine, moving.affine)):
            label_notes.append(f"{args.labels.name}: its grid differs from the moving image's; resampled through its "
                               "own affine (nearest neighbour)")  # fmt: skip
        fixed_labels = load_labels(args.fixed_labels, args.labels_threshold, label_notes) if args.fixed_labels else None
        if fixed_labels is not None and not _overlaps(fixed_labels, fixed):
            raise VolumeError(
                f"{args.fixed_labels}: expected a label map overlapping the fixed image, got a disjoint grid"
            )
    except (VolumeError, FileNotFoundError) as err:
        raise UsageError(f"tailorkit register: {err}") from None
    model = net = None
    if args.model:
        from tailorkit.anatomy.cli import load_model_arg

        model = load_model_arg(args.model, "cpu")
    if args.deform_net:
        import pickle

        from tailorkit.core.errors import InputError, check_input_file
        from tailorkit.registration.models import load_deform_net

        expected = "a file written by `tailorkit register train`"
        check_input_file(args.deform_net, expected, what="--deform-net")
        try:
            net, _ = load_deform_net(args.deform_net)
        except (pickle.UnpicklingError, RuntimeError, EOFError, KeyError, TypeError, ValueError) as err:
            raise InputError(f"--deform-net {args.deform_net}: cannot be read ({type(err).__name__}: {err}); "
                             f"expected {expected}") from None  # fmt: skip
    faff, maff = tensor_affine(fixed.affine), tensor_affine(moving.affine)
    fixed_t = torch.as_tensor(to_tensor_order(fixed.array), dtype=torch.float32)
    moving_t = torch.as_tensor(to_tensor_order(moving.array), dtype=torch.float32)
    start = time.perf_counter()
    run = _run_peer if args.method in PEER_METHODS else _run_pipeline
    outcome = run(fixed_t, faff, moving_t, maff, config, args, model, net)
    total = time.perf_counter() - start
    disp = outcome["displacement"]
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    warped = T.warp_image(moving_t, maff, disp, faff)
    warped_np = warped.numpy().transpose(2, 1, 0)
    save_volume(out / "warped.nii.gz", np.ascontiguousarray(warped_np), fixed.affine)
    save_displacement(out / "displacement.nii.gz", disp, fixed.affine)
    det = T.jacobian_determinant(disp, faff)
    fg = fixed_t > float(np.percentile(fixed.array, config.affine.mask_percentile))
    quality = dict(outcome["quality"])
    folding = T.folding_percent(det, fg)
    if folding > config.quality.max_folding_pct and not any("folding" in p for p in quality["problems"]):
        quality["problems"] = [*quality["problems"], f"folding {folding:.2f} % of the fixed foreground on the fixed "
                               f"grid > {config.quality.max_folding_pct:g} %"]  # fmt: skip
        quality["passed"] = False
    quality["accepted_poor"] = bool(args.accept_poor and not quality["passed"])
    metrics: dict[str, Any] = {
        "fixed": str(fixed_path),
        "moving": str(moving_path),
        "method": outcome["method"],
        "features": outcome.get("features"),
        "steps": outcome.get("steps", []),
        "notes": [*outcome.get("notes", []), *label_notes],
        "seconds": {**{k: round(v, 3) for k, v in outcome["seconds"].items()}, "total": round(total, 3)},
        "threads": torch.get_num_threads() if not config.threads else config.threads,
        "init": outcome["init_info"],
        "init_fixed_to_moving_world": np.asarray(outcome["init"]).tolist(),
        "affine_fixed_to_moving_world": np.asarray(outcome["affine"]).tolist() if "affine" in outcome else None,
        "folding_pct": folding,
        "sdlogj": T.sdlogj(det, fg),
        "quality": quality,
        "info": outcome.get("info", {}),
    }
    if labels is not None:
        lab = torch.as_tensor(to_tensor_order(labels.array)).long()
        laff = tensor_affine(labels.affine)
        wl = T.warp_labels(lab, laff, disp, faff, mode=config.label_mode).numpy().transpose(2, 1, 0)
        save_volume(out / "warped_labels.nii.gz", np.ascontiguousarray(wl.astype(np.int32)), fixed.affine)
        if fixed_labels is not None:
            flab = torch.as_tensor(to_tensor_order(fixed_labels.array)).long()
            zero = torch.zeros(3, *fixed_t.shape)
            fl = T.warp_labels(flab, tensor_affine(fixed_labels.affine), zero, faff).numpy().transpose(2, 1, 0)
            metrics["dice"] = T.dice(wl, fl)
    write_json_atomic(out / "metrics.json", metrics)
    _overlay(out / "overlay.png", fixed.array, warped_np, moving_path.name)
    print(
        json.dumps({k: metrics[k] for k in ("method", "features", "steps", "seconds", "folding_pct") if k in metrics})
    )
    print(out)
    if not quality["passed"]:
        for problem in quality["problems"]:
            print(f"tailorkit register: poor result: {problem}", file=sys.stderr)
        if args.accept_poor:
            print("tailorkit register: --accept-poor given: exit 0 (metrics.json says quality.accepted_poor)",
                  file=sys.stderr)  # fmt: skip
            return 0
        print(f"tailorkit register: results written to {out} and marked poor in metrics.json; "
              f"exit {POOR_RESULT} (--accept-poor accepts them)", file=sys.stderr)  # fmt: skip
        return POOR_RESULT
    return 0


def _run_pipeline(
    fixed: Any, faff: Any, moving: Any, maff: Any, config: Any, args: argparse.Namespace, model: Any, net: Any
) -> dict[str, Any]:
    from tailorkit.registration.pipeline import register_arrays

    result = register_arrays(fixed, faff, moving, maff, config, model=model, net=net)
    return {
        "method": "same" if result.features == "sam" else "mind",
        "displacement": result.displacement,
        "features": result.features,
        "steps": list(result.stages),
        "notes": result.notes,
        "seconds": result.seconds,
        "init": result.init,
        "init_info": result.info.get("init", {}),
        "affine": result.affine,
        "quality": result.quality,
        "info": {k: v for k, v in result.info.items() if k != "init"},
    }


def _run_peer(
    fixed: Any, faff: Any, moving: Any, maff: Any, config: Any, args: argparse.Namespace, model: Any, net: Any
) -> dict[str, Any]:
    from tailorkit.registration.peers import run_peer
    from tailorkit.registration.pipeline import assess_result, initialise

    t0 = time.perf_counter()
    init, init_info = initialise(fixed, faff, moving, maff, config)
    t1 = time.perf_counter()
    name = PEER_METHODS[args.method]
    options = {"iterations": args.iterations} if args.iterations is not None else {}
    disp = run_peer(
        name, fixed.numpy(), faff, moving.numpy(), maff, threads=max(1, args.threads), multimodal=args.multimodal,
        init=init, init_margin_mm=config.init.margin_mm, **options,
    )  # fmt: skip
    t2 = time.perf_counter()
    quality = assess_result(fixed, faff, moving, maff, disp, init, config)
    notes = [f"poor result: {p}" for p in quality["problems"]]
    return {
        "method": name,
        "displacement": disp,
        "features": None,
        "steps": [name],
        "notes": notes,
        "seconds": {"init": t1 - t0, name: t2 - t1, "checks": time.perf_counter() - t2},
        "init": init,
        "init_info": init_info,
        "quality": quality,
    }


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
