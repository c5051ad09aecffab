"""`tailorkit prompts align|train|group` (`run` is the older name of `train`).

tailorkit prompts align [--refresh] [--encoder imagenet|pairs]
    aligns (or loads the cached) dual encoder and prints its retrieval report and zero-shot accuracy on real
    labelled images (digits, Fashion-MNIST, the sample photos) next to chance.
tailorkit prompts train METHOD [--form st|mt|group+task] [--tasks a,b] [--task-folder DIR ...] [--steps N]
                        [--save FILE]
    trains one method on the cross-domain tasks and prints per-task test accuracy; MmAP in group+task form
    first discovers the task groups (prints the affinity matrix).
tailorkit prompts group [--tasks a,b] [--task-folder DIR ...] [--steps N] [--affinity cosine|lookahead]
                        [--wrt params|prompts] [--seed S] [--seeds N] [--out FILE.json]
    prints the gradient affinity matrix and the partition for seeds S..S+N-1 (data and warm-up both seeded as
    the bench's grouping: training splits only), whether each partition is the planted pairs (prompts/data.py;
    "n/a" when the tasks carry none) and the count over the seeds; --out writes the same as JSON.

Your own images: `--task-folder DIR` (repeat it, one per task) reads DIR/<class>/<image>.png; class names come from
the sub-folder names, and per class --shots images train and the rest test. With --task-folder, the built-in tasks
are used only if --tasks names them. Every folder and image is checked before the encoder loads.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tailorkit.cli.bench import device_arg


def _tasks(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


_TASK_FOLDER_HELP = (
    "a task from your own images: DIR/<class>/<image>.png, class names from the sub-folder names; repeat for "
    "several tasks (per class --shots images train, the rest test)"
)


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("prompts", help="multi-task prompt learning on a CLIP-like dual encoder (MmAP, baselines)")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True, parser_class=type(parser))

    align = verbs.add_parser("align", help="align (or load) the dual encoder and report zero-shot accuracy")
    align.add_argument("--refresh", action="store_true", help="re-align even if the cache is valid")
    align.add_argument(
        "--encoder",
        default="imagenet",
        choices=("imagenet", "pairs"),
        help="imagenet (default: names -> ImageNet classifier rows only) or pairs (+ an image head trained on "
        "font-rendered digits and Fashion-MNIST's train split); docs/prompts.md",
    )
    align.add_argument("--device", type=device_arg, default="cpu", help="auto, cpu, cuda or cuda:N (default cpu)")
    align.set_defaults(func=align_cmd)

    run = verbs.add_parser(
        "train", aliases=["run"], help="train one method on the cross-domain tasks and print test accuracy"
    )
    run.add_argument(
        "method", help="mmap, coop, vpt, ivlp, maple, clip_adapter, bitfit, full_ft, linear_probe, zero_shot"
    )
    run.add_argument("--form", default="group+task", choices=("st", "mt", "group", "group+task"))
    run.add_argument("--tasks", type=_tasks, default=None, help="comma-separated task names (default: the six)")
    run.add_argument("--task-folder", type=Path, action="append", default=None, help=_TASK_FOLDER_HELP)
    run.add_argument("--shots", type=int, default=8)
    run.add_argument("--steps", type=int, default=40)
    run.add_argument("--lr", type=float, default=1e-2)
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--save", type=Path, default=None, help="write the learned prompts (safetensors + manifest)")
    run.add_argument("--device", type=device_arg, default="cpu", help="auto, cpu, cuda or cuda:N (default cpu)")
    run.set_defaults(func=run_cmd)

    group = verbs.add_parser("group", help="gradient affinity matrix and task partition (MmAP warm-up)")
    group.add_argument("--tasks", type=_tasks, default=None)
    group.add_argument("--task-folder", type=Path, action="append", default=None, help=_TASK_FOLDER_HELP)
    group.add_argument("--shots", type=int, default=8, help="training images per class (the rest test)")
    group.add_argument("--steps", type=int, default=15)
    group.add_argument("--affinity", default="cosine", choices=("cosine", "lookahead"))
    group.add_argument(
        "--wrt",
        default="params",
        choices=("params", "prompts"),
        help="gradients on the MmAP's raw parameters (default) or on the prompts it generates",
    )
    group.add_argument("--seed", type=int, default=0, help="the first seed")
    group.add_argument("--seeds", type=int, default=1, help="number of seeds: --seed .. --seed + N - 1 (default 1)")
    group.add_argument("--out", type=Path, default=None, help="write per-seed groups, matrices and flags (JSON)")
    group.add_argument("--device", type=device_arg, default="cpu", help="auto, cpu, cuda or cuda:N (default cpu)")
    group.set_defaults(func=group_cmd)


def _engine(args: argparse.Namespace, shots: int = 8, seed: int | None = None, encoder: Any = None) -> Any:
    """The Engine on the chosen tasks drawn with ``seed`` (default --seed); ``encoder`` reuses a loaded one."""
    from tailorkit.cli.main import UsageError, device_from
    from tailorkit.nets.dual_encoder import load_dual_encoder
    from tailorkit.prompts.data import DEFAULT_TASKS, DOMAINS, make_tasks
    from tailorkit.prompts.engine import Engine

    folders = list(getattr(args, "task_folder", None) or [])
    tasks = args.tasks or (() if folders else DEFAULT_TASKS)
    bad = [t for t in tasks if t not in DOMAINS]
    if bad:
        raise UsageError(f"tailorkit prompts: error: --tasks: unknown {bad}; expected names from {sorted(DOMAINS)}")
    if shots < 1:
        raise UsageError("tailorkit prompts: error: --shots: expected >= 1")
    seed = args.seed if seed is None else seed
    own = _folder_tasks(folders, tuple(tasks), shots, seed)  # every folder and image checked before any loading
    if encoder is None:
        encoder, _ = load_dual_encoder(device=device_from(args.device))
    data = [*make_tasks(tuple(tasks), shots=shots, seed=seed), *own] if tasks else own
    return Engine(encoder, data, 64), tuple(t.name for t in data)


def _folder_tasks(folders: list[Path], builtin: tuple[str, ...], shots: int, seed: int) -> list[Any]:
    """The --task-folder tasks, read and checked (InputError names the folder or image), with one line each."""
    from tailorkit.core.errors import InputError
    from tailorkit.prompts.data import check_folder_task, folder_task

    for folder in folders:  # the cheap checks of every folder first, then decoding
        check_folder_task(folder, shots)
    names = [f.name for f in folders]
    for folder in folders:
        if names.count(folder.name) > 1 or folder.name in builtin:
            raise InputError(f"--task-folder {folder}: a second task named {folder.name!r}; expected distinct names")
    out = [folder_task(folder, shots=shots, seed=seed) for folder in folders]
    for folder, task in zip(folders, out, strict=True):  # printed once all are read: a bad input prints nothing
        print(f"task {task.name}: {len(task.class_names)} classes ({', '.join(task.class_names)}) from {folder}; "
              f"{len(task.train_y)} training / {len(task.test_y)} test images")  # fmt: skip
    return out


def _print_matrix(names: tuple[str, ...], matrix: Any) -> None:
    print("gradient affinity (row: source task, column: target task):")
    print(" " * 18 + " ".join(f"{n[:8]:>8s}" for n in names))
    for n, row in zip(names, matrix, strict=True):
        print(f"{n:18s}" + " ".join(f"{v:8.3f}" for v in row))


def align_cmd(args: argparse.Namespace) -> int:
    import torch

    from tailorkit.assets import fashion_mnist, mnist_5k, opencv_photo
    from tailorkit.cli.main import device_from
    from tailorkit.nets import preprocess
    from tailorkit.nets.dual_encoder import imagenet_names, load_dual_encoder, to_model_input, zero_shot_accuracy
    from tailorkit.prompts.data import DIGIT_NAMES, FASHION_NAMES

    model, manifest = load_dual_encoder(args.encoder, device=device_from(args.device), refresh=args.refresh)
    r = manifest["align_report"]
    print(f"towers: {manifest['image_tower']} + {manifest['text_tower']}; shared space {manifest['dim']}-d")
    print(
        f"text -> prototype retrieval: training classes top-1 {r['train_top1']:.3f} (n={r['n_train']}); "
        f"held-out classes top-1 {r['heldout_top1']:.3f}, top-5 {r['heldout_top5']:.3f} among all 1000 "
        f"(chance 0.001 / 0.005), top-1 among the {r['n_heldout']} held-out {r['heldout_top1_among_heldout']:.3f} "
        f"(chance {1 / r['n_heldout']:.3f})"
    )
    x, y = mnist_5k()
    acc = zero_shot_accuracy(model, to_model_input(x[:1000], 64), torch.as_tensor(y[:1000]), DIGIT_NAMES)
    print(f"zero-shot top-1, MNIST-5k (first 1000, 'a photo of a number zero.' ...): {acc:.3f} (chance 0.100)")
    xf, yf = fashion_mnist("test")
    acc = zero_shot_accuracy(model, to_model_input(xf[:1000], 64), torch.as_tensor(yf[:1000]), FASHION_NAMES)
    print(f"zero-shot top-1, Fashion-MNIST test (first 1000): {acc:.3f} (chance 0.100)")
    photos = ("squirrel_cls.jpg", "baboon.jpg", "orange.jpg", "apple.jpg", "butterfly.jpg", "messi5.jpg")
    px = preprocess([opencv_photo(p) for p in photos]).to(model.device)
    names = [n[0] for n in imagenet_names()]
    with torch.no_grad():
        head = model.image_tower(px).argmax(1)
        zs = (model.encode_image(px) @ model.encode_text(names).T).argmax(1)
    for p, h, z in zip(photos, head.tolist(), zs.tolist(), strict=True):
        print(f"  {p:18s} ImageNet head: {names[h]:22s} zero-shot through text: {names[z]}")
    print(
        f"photos where zero-shot equals the ImageNet head: {int((head == zs).sum())}/{len(photos)} (chance ~0.001 each)"
    )
    return 0


def run_cmd(args: argparse.Namespace) -> int:
    from tailorkit.cli.main import UsageError
    from tailorkit.core.errors import check_output_file
    from tailorkit.prompts.api import discover_groups, fit_method
    from tailorkit.prompts.engine import TrainConfig
    from tailorkit.prompts.io import save_learner
    from tailorkit.prompts.methods import METHODS

    if args.method not in METHODS:
        raise UsageError(f"tailorkit prompts run: error: unknown method {args.method!r}; expected {METHODS.names()}")
    if args.steps < 0 or not args.lr > 0:
        raise UsageError("tailorkit prompts run: error: expected --steps >= 0 and --lr > 0")
    if args.save is not None:
        check_output_file(args.save, what="--save")
    engine, names = _engine(args, args.shots)
    form = args.form
    if form in ("group", "group+task") and args.method != "mmap":
        form = "mt"
        print(f"{args.method}: group forms are MmAP's; using the multi-task form (mt)")
    groups = None
    if form in ("group", "group+task"):
        grouping = discover_groups(engine, seed=args.seed)
        _print_matrix(names, grouping.matrix())
        groups = grouping.groups
        print("groups:", [[names[t] for t in g] for g in groups])
    fit = fit_method(
        engine, args.method, form, TrainConfig(steps=args.steps, lr=args.lr), groups=groups, seed=args.seed
    )
    for k, v in fit.accuracy.items():
        print(f"test accuracy {k:18s} {v:.4f}")
    total = engine.encoder.parameter_count()
    print(f"trainable parameters: {fit.trainable} ({100 * fit.trainable / total:.4f} % of the dual encoder's {total})")
    if args.save is not None and fit.learner is not None:
        options = {"depth": 4} if args.method in ("vpt", "ivlp", "maple", "mmap") else {}
        path = save_learner(fit.learner, engine.encoder, args.save, method=args.method, options=options)
        print(f"saved prompts to {path}")
    return 0


def group_cmd(args: argparse.Namespace) -> int:
    import os
    import time

    import torch

    from tailorkit.cli.main import UsageError
    from tailorkit.core.errors import check_output_file
    from tailorkit.core.results import write_json_atomic
    from tailorkit.prompts.api import discover_groups
    from tailorkit.prompts.data import planted_partition, recovers_planted

    if args.steps < 1 or args.seeds < 1:
        raise UsageError(
            f"tailorkit prompts group: error: --steps and --seeds: expected integers >= 1, got {args.steps}, "
            f"{args.seeds}"
        )
    if args.out is not None:
        check_output_file(args.out, what="--out")
    load = os.getloadavg()[0]
    began = time.perf_counter()
    engine, names = _engine(args, args.shots)
    runs = []
    for seed in range(args.seed, args.seed + args.seeds):
        if seed != args.seed:
            engine, _ = _engine(args, args.shots, seed=seed, encoder=engine.encoder)
        with torch.random.fork_rng(devices=[]):  # seeded as the bench's grouping job (prompts/bench.py)
            torch.manual_seed(seed)
            grouping = discover_groups(engine, steps=args.steps, affinity=args.affinity, seed=seed, wrt=args.wrt)
        recovered = recovers_planted(names, grouping.groups)
        print(f"seed {seed}:")
        _print_matrix(names, grouping.matrix())
        flag = "n/a" if recovered is None else "yes" if recovered else "no"
        print(f"groups: {[[names[t] for t in g] for g in grouping.groups]}  planted pairs recovered: {flag}")
        runs.append(
            {
                "seed": seed,
                "groups": [[names[t] for t in g] for g in grouping.groups],
                "recovered": recovered,
                "affinity_cosine": grouping.affinity.cosine.tolist(),
                "affinity_lookahead": None
                if grouping.affinity.lookahead is None
                else grouping.affinity.lookahead.tolist(),
                "seconds": round(grouping.seconds, 2),
            }
        )
    planted = planted_partition(names)
    hits = sum(bool(r["recovered"]) for r in runs)
    if planted is not None:
        print(f"planted pairs recovered on {hits}/{len(runs)} seeds (wrt={args.wrt}, affinity={args.affinity})")
    if args.out is not None:
        doc = {
            "tasks": list(names),
            "planted": None if planted is None else [[names[t] for t in g] for g in planted],
            "settings": {
                "wrt": args.wrt,
                "affinity": args.affinity,
                "steps": args.steps,
                "shots": args.shots,
                "seeds": [r["seed"] for r in runs],
                "torch_threads": torch.get_num_threads(),
            },
            "recovered": None if planted is None else hits,
            "runs": runs,
            "load_average_start": round(load, 2),
            "wall_seconds": round(time.perf_counter() - began, 1),
        }
        print(f"wrote {write_json_atomic(args.out, doc)}")
    return 0
