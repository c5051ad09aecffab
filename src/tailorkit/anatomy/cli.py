"""`tailorkit anatomy train | embed | locate`.

tailorkit anatomy train CONFIG.yaml [key=value ...] --out RUN_DIR
    self-supervised SAM / SAMv2 training (method=samv2 for SAMv2, or net.semantic=true); RUN_DIR/train_state.pt is
    the resume point (rerun the same command to continue), RUN_DIR/model.pt the trained network with its settings.
tailorkit anatomy embed SCAN --model RUN_DIR/model.pt --out EMB.npz
    per-voxel embeddings of a scan (NIfTI, DICOM series directory, MetaImage, NRRD): fine / coarse (/ semantic)
    maps in (C, z, y, x) order with their index -> world RAS+ mm affines.
tailorkit anatomy cross --model M --fixed A --moving B --steps N --out DIR
    one round of UAE-M's cross-modality iteration (reduced): match, affine registration, retraining with
    inter-modality pairs; writes DIR/model.pt and DIR/affine.txt (moving -> fixed world).
tailorkit anatomy locate --model M --atlas ATLAS --points POINTS.csv --target SCAN --out DIR [--method fixed_point]
    finds each atlas point (CSV: name,x,y,z in world RAS+ mm) in the target; writes DIR/points.csv (name, x, y, z,
    confidence, consistent) and DIR/<name>.png (three orthogonal target slices through the found point).
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path
from typing import Any

from tailorkit.cli.bench import PROGRESS_HELP, device_arg


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("anatomy", help="SAM / SAMv2 anatomical embeddings: train, embed, locate landmarks")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True, parser_class=type(parser))

    tr = verbs.add_parser("train", help="self-supervised training (checkpoint + resume)")
    tr.add_argument("config", type=Path, help="YAML or TOML settings (SAMTrainConfig; docs/anatomy.md)")
    tr.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="setting overrides (dotted keys)")
    tr.add_argument("--out", type=Path, default=None, help="run folder (default reports/anatomy/<config name>)")
    tr.add_argument("--device", type=device_arg, default="cpu", help="auto, cpu, cuda or cuda:N (default cpu)")
    tr.add_argument("--progress", action="store_true", default=None, help=PROGRESS_HELP)
    tr.set_defaults(func=train_cmd)

    em = verbs.add_parser("embed", help="embed a scan; write the maps and their world affines as .npz")
    em.add_argument("scan", type=Path, help="NIfTI / MetaImage / NRRD file or DICOM series directory")
    em.add_argument("--model", type=Path, required=True, help="model.pt written by `anatomy train`")
    em.add_argument("--out", type=Path, default=None, help="output .npz (default SCAN name + _emb.npz)")
    em.add_argument("--device", type=device_arg, default="cpu", help="auto, cpu, cuda or cuda:N (default cpu)")
    em.set_defaults(func=embed_cmd)

    cr = verbs.add_parser("cross", help="cross-modality round: match, register, retrain with inter-modality pairs")
    cr.add_argument("--model", type=Path, required=True, help="model.pt written by `anatomy train`")
    cr.add_argument("--fixed", type=Path, required=True, help="scan in the first modality")
    cr.add_argument("--moving", type=Path, required=True, help="scan of the same anatomy in the second modality")
    cr.add_argument("--steps", type=int, default=100, help="training steps of this round (default 100)")
    cr.add_argument("--out", type=Path, required=True, help="output folder (model.pt, cross_state.pt, affine.txt)")
    cr.add_argument("--device", type=device_arg, default="cpu", help="auto, cpu, cuda or cuda:N (default cpu)")
    cr.add_argument("--progress", action="store_true", default=None, help=PROGRESS_HELP)
    cr.set_defaults(func=cross_cmd)

    lo = verbs.add_parser("locate", help="find atlas landmarks in a target scan (one-shot)")
    lo.add_argument("--model", type=Path, required=True, help="model.pt written by `anatomy train`")
    lo.add_argument("--atlas", type=Path, required=True, help="the atlas scan the points are marked on")
    lo.add_argument("--points", type=Path, required=True, help="CSV with header name,x,y,z (world RAS+ mm)")
    lo.add_argument("--target", type=Path, required=True, help="the scan to search")
    lo.add_argument("--out", type=Path, required=True, help="output folder (points.csv and one PNG per point)")
    lo.add_argument("--method", choices=("nn", "fixed_point", "cycle"), default="fixed_point")
    lo.add_argument(
        "--confidence",
        choices=("score", "margin", "cycle"),
        default="score",
        help="what the confidence column holds: the match's similarity (default), its margin over the best match "
        "farther than 15 mm, or forward-backward consistency (anatomy/calibration.py; docs/registration.md)",
    )
    lo.add_argument("--device", type=device_arg, default="cpu", help="auto, cpu, cuda or cuda:N (default cpu)")
    lo.set_defaults(func=locate_cmd)


def load_model_arg(path: Path, device: Any) -> Any:
    """`anatomy.train.load_model` for a --model argument (also `register --model`): a damaged or foreign file is an
    input error naming it."""
    import pickle

    from tailorkit.anatomy.train import load_model as _load
    from tailorkit.core.errors import InputError, check_input_file

    expected = "a model.pt written by `tailorkit anatomy train`"
    check_input_file(path, expected, what="--model")
    try:
        return _load(path, device)
    except (pickle.UnpicklingError, RuntimeError, EOFError, KeyError, TypeError, ValueError) as err:  # foreign file
        raise InputError(f"--model {path}: cannot be read ({type(err).__name__}: {err}); expected {expected}") from None


def train_cmd(args: argparse.Namespace) -> int:
    from tailorkit.anatomy.config import SAMTrainConfig
    from tailorkit.anatomy.train import make_sources, train_sam
    from tailorkit.cli.main import device_from
    from tailorkit.core.config import load_config, save_config
    from tailorkit.core.errors import InputError, check_output_dir, is_input_error

    config = load_config(SAMTrainConfig, args.config, args.overrides)
    out = check_output_dir(args.out or Path("reports/anatomy") / args.config.stem)
    device = device_from(args.device)
    try:
        sources = make_sources(config)  # reads (and so validates) the training scans before the run folder exists
    except ValueError as err:
        if config.volumes and not is_input_error(err):  # make_sources names the scan and its label map
            raise InputError(str(err)) from None
        raise
    out.mkdir(parents=True, exist_ok=True)
    save_config(config, out / "config.yaml")
    model = train_sam(config, out_dir=out, sources=sources, device=device, progress=args.progress)
    tail = model.losses[-10:]
    print(f"trained {len(model.losses)} steps; mean loss of the last {len(tail)}: {sum(tail) / max(1, len(tail)):.4f}")
    print(out / "model.pt")
    return 0


def embed_cmd(args: argparse.Namespace) -> int:
    import io

    import numpy as np

    from tailorkit.anatomy.embed import embed
    from tailorkit.cli.main import device_from
    from tailorkit.core.errors import check_output_file
    from tailorkit.core.results import write_bytes_atomic
    from tailorkit.data.volumes import load_volume

    name = args.scan.name.removesuffix(".gz").removesuffix(".nii")
    out = check_output_file(args.out or args.scan.with_name(f"{name}_emb.npz"))
    volume = load_volume(args.scan)  # a bad scan fails before the model loads
    model = load_model_arg(args.model, device_from(args.device))
    emb = embed(volume, model.net, model.embed)
    arrays = {
        "fine": emb.fine.cpu().numpy(),
        "fine_affine": emb.fine_affine,
        "coarse": emb.coarse.cpu().numpy(),
        "coarse_affine": emb.coarse_affine,
    }
    if emb.semantic is not None:
        arrays["semantic"] = emb.semantic.cpu().numpy()
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]
    write_bytes_atomic(out, buffer.getvalue())
    print(
        f"fine {tuple(emb.fine.shape)}, coarse {tuple(emb.coarse.shape)}"
        + (", semantic" if emb.semantic is not None else "")
    )
    print(out)
    return 0


def cross_cmd(args: argparse.Namespace) -> int:
    import numpy as np

    from tailorkit.anatomy.config import SAMTrainConfig
    from tailorkit.anatomy.crossmodal import train_cross_modality
    from tailorkit.anatomy.train import source_from_volume
    from tailorkit.cli.main import UsageError, device_from
    from tailorkit.core.errors import check_output_dir
    from tailorkit.core.results import write_text_atomic
    from tailorkit.data.volumes import load_volume

    if args.steps < 1:
        raise UsageError(f"tailorkit anatomy cross: error: --steps: expected an integer >= 1, got {args.steps}")
    check_output_dir(args.out)
    fixed_volume, moving_volume = load_volume(args.fixed), load_volume(args.moving)
    model = load_model_arg(args.model, device_from(args.device))
    config = SAMTrainConfig(net=model.net.config, embed=model.embed, steps=args.steps, warmup_steps=0)
    fixed = source_from_volume(fixed_volume, model.embed)
    moving = source_from_volume(moving_volume, model.embed)
    _, affine = train_cross_modality(
        model, fixed, moving, config, steps=args.steps, out_dir=args.out, device=device_from(args.device),
        progress=args.progress,
    )  # fmt: skip
    write_text_atomic(args.out / "affine.txt", np.array2string(affine, precision=4) + "\n")
    print("moving -> fixed world affine (from embedding matches):")
    print(np.array2string(affine, precision=3))
    print(args.out / "model.pt")
    return 0


def read_points(path: Path) -> tuple[list[str], list[list[float]]]:
    """Read a landmark CSV (header name,x,y,z; world RAS+ mm); ValueError naming the expected form otherwise."""
    expected = "a CSV file with header name,x,y,z and one landmark per row (world RAS+ millimetres)"
    if not path.is_file():
        raise ValueError(f"points {path}: not found; expected {expected}")
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or any(k not in rows[0] for k in ("name", "x", "y", "z")):
        raise ValueError(f"points {path}: expected {expected}")
    names, coords = [], []
    for i, row in enumerate(rows, start=2):
        try:
            xyz = [float(row["x"]), float(row["y"]), float(row["z"])]
        except (TypeError, ValueError):
            raise ValueError(f"points {path}, line {i}: x, y, z must be numbers; expected {expected}") from None
        if not all(math.isfinite(v) for v in xyz):
            raise ValueError(f"points {path}, line {i}: x, y, z must be finite; expected {expected}")
        coords.append(xyz)
        names.append(str(row["name"]).strip() or f"point{i - 1}")
    return names, coords


def locate_cmd(args: argparse.Namespace) -> int:
    import torch

    from tailorkit.anatomy.calibration import confidence
    from tailorkit.anatomy.config import MatchConfig
    from tailorkit.anatomy.embed import embed
    from tailorkit.anatomy.matching import MATCHERS
    from tailorkit.anatomy.plots import save_point_views
    from tailorkit.cli.main import UsageError, device_from
    from tailorkit.core.errors import check_output_dir
    from tailorkit.core.results import write_text_atomic
    from tailorkit.data.volumes import load_volume

    try:
        names, coords = read_points(args.points)
    except (ValueError, UnicodeDecodeError) as err:
        raise UsageError(f"tailorkit anatomy locate: error: {err}") from None
    check_output_dir(args.out)
    atlas_vol, target_vol = load_volume(args.atlas), load_volume(args.target)
    device = device_from(args.device)
    model = load_model_arg(args.model, device)
    heads = ("fine", "coarse", "semantic") if model.net.config.semantic else ("fine", "coarse")
    atlas, target = embed(atlas_vol, model.net, model.embed), embed(target_vol, model.net, model.embed)
    points = torch.tensor(coords, dtype=torch.float32, device=device)
    result = MATCHERS.get(args.method)(atlas, target, points, MatchConfig(heads=heads))
    conf = confidence(args.confidence, atlas, target, points, result, heads)
    found = result.points.cpu().numpy()
    lines = ["name,x,y,z,confidence,consistent"]
    args.out.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        ok = "" if result.consistent is None else str(bool(result.consistent[i])).lower()
        x, y, z = found[i]
        lines.append(f"{name},{x:.2f},{y:.2f},{z:.2f},{float(conf[i]):.4f},{ok}")
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
        save_point_views(target_vol, found[i], args.out / f"{safe}.png", title=f"{name} ({args.method})")
    write_text_atomic(args.out / "points.csv", "\n".join(lines) + "\n")
    print(f"located {len(names)} points with {args.method}")
    print(args.out / "points.csv")
    return 0
