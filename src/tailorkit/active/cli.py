"""`tailorkit active propose | train | eval` (`tune` is the older name of `train`).

tailorkit active propose --pool DIR --budget N --state STATE.json [--strategy tesla] [KEY=VALUE ...]
    one round of selective labelling on your scans: DIR holds NIfTI volumes (*.nii, *.nii.gz), items are their
    axial slices ("<file stem>:z<k>"). Masks you have drawn go to DIR/labels/<same file name> (lesion > 0); every
    call first reads the masks of the ids proposed last time, then proposes N more (N < 1: a fraction of the pool)
    and saves STATE.json (+ STATE.labels.npz). The first call creates the state, later calls resume it.
tailorkit active train CONFIG.yaml [KEY=VALUE ...] --out RUN_DIR
    a simulated run on LiTS or SynthLiver (the pool's masks act as the annotator): select `budget` labels with
    select.strategy, tune tune.method on them, evaluate on the test split; writes RUN_DIR/config.yaml,
    RUN_DIR/model.safetensors, RUN_DIR/state.json and RUN_DIR/metrics.json.
tailorkit active eval RUN_DIR
    re-evaluates RUN_DIR's model on its test split and prints global and per-case Dice.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tailorkit.cli.bench import PROGRESS_HELP, RESUME_FILE, add_checkpoint_arg, device_arg


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("active", help="selective labelling (TESLA) + prompt tuning of a frozen segmenter (SLPT)")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True, parser_class=type(parser))

    prop = verbs.add_parser("propose", help="propose the next scans' slices to label (resumable state)")
    prop.add_argument("--pool", type=Path, required=True, help="folder of NIfTI volumes; masks in POOL/labels/")
    prop.add_argument("--budget", type=float, required=True, help="items to propose (< 1: fraction of the pool)")
    prop.add_argument("--state", type=Path, required=True, help="loop state JSON (created or resumed)")
    prop.add_argument(
        "--strategy", default=None, help="tesla (default), random, entropy, bald, coreset or usl (new state only)"
    )
    prop.add_argument("--seed", type=int, default=None, help="seed of the loop (default 0; new state only)")
    prop.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="select.* / tune.* / data.* settings")
    prop.set_defaults(func=propose_cmd)

    tune = verbs.add_parser(
        "train", aliases=["tune"], help="simulated selection + tuning + evaluation on LiTS or SynthLiver"
    )
    tune.add_argument("config", type=Path, help="YAML or TOML settings (tailorkit.active.ActiveConfig)")
    tune.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="setting overrides (dotted keys)")
    tune.add_argument("--out", type=Path, default=None, help="run folder (default reports/active/<config name>)")
    tune.add_argument("--device", type=device_arg, default="cpu", help="auto, cpu, cuda or cuda:N (default cpu)")
    tune.add_argument("--progress", action="store_true", default=None, help=PROGRESS_HELP)
    add_checkpoint_arg(tune)
    tune.set_defaults(func=tune_cmd)

    ev = verbs.add_parser("eval", help="evaluate a run folder's model on its test split")
    ev.add_argument("run_dir", type=Path, help="folder written by `tailorkit active tune`")
    ev.add_argument("--device", type=device_arg, default="cpu", help="auto, cpu, cuda or cuda:N (default cpu)")
    ev.set_defaults(func=eval_cmd)


def _config(path: Path | None, overrides: list[str]) -> Any:
    from tailorkit.active.config import ActiveConfig
    from tailorkit.core.config import load_config

    return load_config(ActiveConfig, path, overrides)


def _check_names(config: Any) -> None:
    """Unknown strategy or tuner names fail here, before any data is read or a backbone pretrained."""
    from tailorkit.active.methods import STRATEGIES, TUNERS

    STRATEGIES.get(config.select.strategy)
    TUNERS.get(config.tune.method)


def _stored_settings(state: Path) -> dict[str, Any]:
    """The settings an existing loop state was created with (validated the way ActiveLearner.resume reads them)."""
    import json

    from tailorkit.core.errors import InputError

    try:
        doc = json.loads(state.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(
            f"--state {state}: expected a JSON state file written by `tailorkit active propose` ({err})"
        ) from None
    if not isinstance(doc, dict) or not all(k in doc for k in ("seed", "select", "tune")):
        raise InputError(f"--state {state}: expected a state file written by `tailorkit active propose`")
    return doc


def _refuse_changed_settings(args: argparse.Namespace, doc: dict[str, Any]) -> None:
    """On an existing state, selection / tuning settings and the seed given on the command line must match the
    stored ones: the loop continues with the settings it started with, so a differing value would be ignored."""
    import dataclasses

    from tailorkit.active.config import ActiveConfig
    from tailorkit.cli.main import UsageError
    from tailorkit.core.config import from_dict, merge, parse_overrides

    given = parse_overrides(args.overrides)
    if args.strategy is not None:
        given = merge(given, {"select": {"strategy": args.strategy}})
    if args.seed is not None:
        given = merge(given, {"seed": str(args.seed)})
    stored = {"select": doc["select"], "tune": doc["tune"], "seed": doc["seed"]}
    old, new = from_dict(ActiveConfig, stored), from_dict(ActiveConfig, merge(stored, given))
    diffs = [
        f"{section}.{f.name}={getattr(getattr(new, section), f.name)!r} "
        f"(stored {getattr(getattr(old, section), f.name)!r})"
        for section in ("select", "tune")
        for f in dataclasses.fields(getattr(old, section))
        if getattr(getattr(new, section), f.name) != getattr(getattr(old, section), f.name)
    ]
    if new.seed != old.seed:
        diffs.append(f"seed={new.seed} (stored {old.seed})")
    if diffs:
        raise UsageError(
            f"tailorkit active propose: error: --state {args.state} exists with other settings: {'; '.join(diffs)}; "
            "expected the stored settings (leave them out to continue) or a new --state file"
        )


def propose_cmd(args: argparse.Namespace) -> int:
    import dataclasses

    from tailorkit.active.backbone import pretrained_backbone
    from tailorkit.active.config import budget_count
    from tailorkit.active.data import load_folder, load_split
    from tailorkit.active.loop import ActiveLearner
    from tailorkit.cli.main import UsageError
    from tailorkit.core.errors import check_input_dir, check_output_file

    # everything the user gave is checked before the pool is read or the backbone pretrained
    if not args.budget > 0:
        raise UsageError(f"tailorkit active propose: error: --budget: expected > 0, got {args.budget}")
    strategy = "tesla" if args.strategy is None else args.strategy
    seed = 0 if args.seed is None else args.seed
    config = _config(None, [f"select.strategy={strategy}", f"seed={seed}", *args.overrides])
    _check_names(config)
    check_input_dir(args.pool, "a folder of NIfTI volumes (*.nii, *.nii.gz), masks in labels/", what="--pool")
    check_output_file(args.state, what="--state")
    if args.state.exists():
        _refuse_changed_settings(args, _stored_settings(args.state))
    pool = load_folder(args.pool, config.data.patch, config.data.window)
    # the task-agnostic backbone: the U-Net pretrained on the LiTS liver task (cached; trained once if absent)
    upstream = load_split(dataclasses.replace(config.data, dataset="lits")).upstream
    backbone = pretrained_backbone(upstream, config.backbone)
    if args.state.exists():
        learner = ActiveLearner.resume(args.state, pool, backbone)
    else:
        learner = ActiveLearner(pool, backbone, config.select, config.tune, seed=config.seed, state=args.state)
    if learner.pending:
        have = {p.name.removesuffix(".gz").removesuffix(".nii") for p in (args.pool / "labels").glob("*.nii*")}
        ready = {i: pool.masks[learner.index[i]] for i in learner.pending if i.rsplit(":", 1)[0] in have}
        learner.update(ready)
        if learner.pending:
            missing = sorted({i.rsplit(":", 1)[0] for i in learner.pending})
            raise UsageError(
                f"tailorkit active propose: error: {len(learner.pending)} proposed slices are not labelled yet; "
                f"expected masks {', '.join(str(args.pool / 'labels' / (m + '.nii.gz')) for m in missing[:3])}"
            )
    n = budget_count(args.budget, len(pool))
    ids = learner.propose(min(n, len(pool) - len(learner.labels)))
    print(f"round {learner.round}: {len(ids)} slices to label ({learner.select.strategy}); state {args.state}")
    for item in ids:
        print(item)
    return 0


def tune_cmd(args: argparse.Namespace) -> int:
    import torch

    from tailorkit.active.backbone import pretrained_backbone
    from tailorkit.active.bench import evaluate_model
    from tailorkit.active.config import budget_count
    from tailorkit.active.data import load_split
    from tailorkit.active.loop import ActiveLearner
    from tailorkit.cli.main import UsageError, device_from
    from tailorkit.core.config import save_config
    from tailorkit.core.errors import check_output_dir
    from tailorkit.core.results import write_bytes_atomic, write_json_atomic

    config = _config(args.config, args.overrides)
    if config.data.dataset == "folder":
        raise UsageError(
            "tailorkit active tune: error: data.dataset: expected 'lits' or 'synthliver' (simulated labels)"
        )
    _check_names(config)
    out = check_output_dir(args.out or Path("reports/active") / args.config.stem)
    device = device_from(args.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    split = load_split(config.data)
    out.mkdir(parents=True, exist_ok=True)  # only now: a failed validation leaves no run folder behind
    save_config(config, out / "config.yaml")
    backbone = pretrained_backbone(split.upstream, config.backbone, progress=args.progress).to(device)
    learner = ActiveLearner(
        split.pool, backbone, config.select, config.tune, seed=config.seed, state=out / "state.json"
    )
    n = budget_count(config.budget, len(split.pool))
    n1 = max(1, round(config.select.stage1_fraction * n)) if n > 1 else n
    for size in (n,) if n1 >= n else (n1, n - n1):
        ids = learner.propose(size)
        learner.update({i: split.pool.masks[learner.index[i]] for i in ids})
    model = learner.fit(checkpoint=out / RESUME_FILE, checkpoint_every=args.checkpoint_every)
    metrics = {
        **evaluate_model(model, split.test),
        "tunable_fraction": model.tunable_fraction(),
        "labels": len(learner.labels),
    }
    from safetensors.torch import save

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    write_bytes_atomic(out / "model.safetensors", save(state))
    write_json_atomic(out / "metrics.json", metrics)
    print(
        f"{config.tune.method} on {len(learner.labels)} {config.select.strategy}-selected labels of {len(split.pool)}:"
    )
    print(
        f"  global Dice {metrics['dice_global']:.4f}, per-case Dice {metrics['dice_per_case']:.4f}, "
        f"tunable fraction {metrics['tunable_fraction']:.3f}"
    )
    print(out / "metrics.json")
    return 0


def eval_cmd(args: argparse.Namespace) -> int:
    from safetensors.torch import load_file

    from tailorkit.active.backbone import pretrained_backbone
    from tailorkit.active.bench import evaluate_model
    from tailorkit.active.data import load_split
    from tailorkit.active.methods import make_tuner
    from tailorkit.cli.main import UsageError, device_from
    from tailorkit.core.errors import check_safetensors

    weights, cfg = args.run_dir / "model.safetensors", args.run_dir / "config.yaml"
    if not weights.exists() or not cfg.exists():
        raise UsageError(
            f"tailorkit active eval: error: {args.run_dir}: expected config.yaml and model.safetensors "
            "(run `tailorkit active tune` first)"
        )
    config = _config(cfg, [])
    check_safetensors(weights)
    device = device_from(args.device)
    split = load_split(config.data)
    backbone = pretrained_backbone(split.upstream, config.backbone).to(device)
    model = make_tuner(backbone, config.tune, 0).to(device)
    model.load_state_dict(load_file(str(weights), device=str(device)))
    metrics = evaluate_model(model, split.test)
    print(f"{config.tune.method} ({model.tunable_fraction():.3f} tunable) on {split.name}:")
    print(f"  global Dice {metrics['dice_global']:.4f}, per-case Dice {metrics['dice_per_case']:.4f}")
    return 0
