"""`tailorkit active propose | tune | eval`.

tailorkit active propose --pool DIR --budget N --state STATE.json [--strategy tesla] [KEY=VALUE ...]
    one round of selective labelling on your scans: DIR holds NIfTI volumes (*.nii, *.nii.gz), items are their
    axial slices ("<file stem>:z<k>"). Masks you have drawn go to DIR/labels/<same file name> (lesion > 0); every
    call first reads the masks of the ids proposed last time, then proposes N more (N < 1: a fraction of the pool)
    and saves STATE.json (+ STATE.labels.npz). The first call creates the state, later calls resume it.
tailorkit active tune CONFIG.yaml [KEY=VALUE ...] --out RUN_DIR
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

from tailorkit.cli.bench import device_arg


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("active", help="selective labelling (TESLA) + prompt tuning of a frozen segmenter (SLPT)")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True, parser_class=type(parser))

    prop = verbs.add_parser("propose", help="propose the next scans' slices to label (resumable state)")
    prop.add_argument("--pool", type=Path, required=True, help="folder of NIfTI volumes; masks in POOL/labels/")
    prop.add_argument("--budget", type=float, required=True, help="items to propose (< 1: fraction of the pool)")
    prop.add_argument("--state", type=Path, required=True, help="loop state JSON (created or resumed)")
    prop.add_argument("--strategy", default="tesla", help="tesla, random, entropy, bald, coreset or usl")
    prop.add_argument("--seed", type=int, default=0, help="seed of the loop (only for a new state)")
    prop.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="select.* / tune.* / data.* settings")
    prop.set_defaults(func=propose_cmd)

    tune = verbs.add_parser("tune", help="simulated selection + tuning + evaluation on LiTS or SynthLiver")
    tune.add_argument("config", type=Path, help="YAML or TOML settings (tailorkit.active.ActiveConfig)")
    tune.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="setting overrides (dotted keys)")
    tune.add_argument("--out", type=Path, default=None, help="run folder (default reports/active/<config name>)")
    tune.add_argument("--device", type=device_arg, default="cpu", help="auto, cpu, cuda or cuda:N (default cpu)")
    tune.add_argument("--progress", action="store_true", help="show training progress bars")
    tune.set_defaults(func=tune_cmd)

    ev = verbs.add_parser("eval", help="evaluate a run folder's model on its test split")
    ev.add_argument("run_dir", type=Path, help="folder written by `tailorkit active tune`")
    ev.add_argument("--device", type=device_arg, default="cpu", help="auto, cpu, cuda or cuda:N (default cpu)")
    ev.set_defaults(func=eval_cmd)


def _config(path: Path | None, overrides: list[str]) -> Any:
    from tailorkit.active.config import ActiveConfig
    from tailorkit.core.config import load_config

    return load_config(ActiveConfig, path, overrides)


def propose_cmd(args: argparse.Namespace) -> int:
    import dataclasses

    from tailorkit.active.backbone import pretrained_backbone
    from tailorkit.active.config import budget_count
    from tailorkit.active.data import load_folder, load_split
    from tailorkit.active.loop import ActiveLearner
    from tailorkit.cli.main import UsageError

    config = _config(None, [f"select.strategy={args.strategy}", f"seed={args.seed}", *args.overrides])
    if args.budget <= 0:
        raise UsageError(f"tailorkit active propose: error: --budget: expected > 0, got {args.budget}")
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
    from tailorkit.active.bench import _evaluate
    from tailorkit.active.config import budget_count
    from tailorkit.active.data import load_split
    from tailorkit.active.loop import ActiveLearner
    from tailorkit.cli.main import UsageError, device_from
    from tailorkit.core.config import save_config
    from tailorkit.core.results import write_bytes_atomic, write_json_atomic

    config = _config(args.config, args.overrides)
    if config.data.dataset == "folder":
        raise UsageError(
            "tailorkit active tune: error: data.dataset: expected 'lits' or 'synthliver' (simulated labels)"
        )
    if config.threads:
        torch.set_num_threads(config.threads)
    out = args.out or Path("reports/active") / args.config.stem
    out.mkdir(parents=True, exist_ok=True)
    save_config(config, out / "config.yaml")
    split = load_split(config.data)
    device = device_from(args.device)
    backbone = pretrained_backbone(split.upstream, config.backbone, progress=args.progress).to(device)
    learner = ActiveLearner(
        split.pool, backbone, config.select, config.tune, seed=config.seed, state=out / "state.json"
    )
    n = budget_count(config.budget, len(split.pool))
    n1 = max(1, round(config.select.stage1_fraction * n)) if n > 1 else n
    for size in (n,) if n1 >= n else (n1, n - n1):
        ids = learner.propose(size)
        learner.update({i: split.pool.masks[learner.index[i]] for i in ids})
    model = learner.fit()
    metrics = {
        **_evaluate(model, split.test),
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
    from tailorkit.active.bench import _evaluate
    from tailorkit.active.data import load_split
    from tailorkit.active.methods import make_tuner
    from tailorkit.cli.main import UsageError, device_from

    weights, cfg = args.run_dir / "model.safetensors", args.run_dir / "config.yaml"
    if not weights.exists() or not cfg.exists():
        raise UsageError(
            f"tailorkit active eval: error: {args.run_dir}: expected config.yaml and model.safetensors "
            "(run `tailorkit active tune` first)"
        )
    config = _config(cfg, [])
    split = load_split(config.data)
    device = device_from(args.device)
    backbone = pretrained_backbone(split.upstream, config.backbone).to(device)
    model = make_tuner(backbone, config.tune, 0).to(device)
    model.load_state_dict(load_file(str(weights), device=str(device)))
    metrics = _evaluate(model, split.test)
    print(f"{config.tune.method} ({model.tunable_fraction():.3f} tunable) on {split.name}:")
    print(f"  global Dice {metrics['dice_global']:.4f}, per-case Dice {metrics['dice_per_case']:.4f}")
    return 0
