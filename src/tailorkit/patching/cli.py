"""`tailorkit patch`: Model Tailor (or a baseline) on Hugging Face model folders.

    tailorkit patch --base DIR --finetuned DIR [--finetuned DIR ...] --calibration FILE.jsonl [--calibration ...]
                    --density 0.1 --out DIR [--method model_tailor] [--layers REGEX] [--overwrite] [--config FILE]
                    [key=value ...]

`--finetuned` may be a PEFT LoRA adapter folder; several fine-tuned folders are the multi-task case (`combine=...`),
with one calibration file for all of them or one per fine-tune. Any PatchConfig field can be set with key=value
(or --key=value), and the method's options as `options.NAME=value` or, as before options were per method, plainly
`NAME=value`, e.g. `compensation_sign=1 alpha=0.5 scope=layer` for model_tailor; an option the method does not have
is refused. Bad input prints one line and exits with status 2; nothing is written then.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "patch",
        help="patch a fine-tuned model so it keeps the pretrained model's abilities (Model Tailor and baselines)",
        description="Model Tailor (arXiv 2402.12048) and baselines on Hugging Face model folders (safetensors).",
    )
    parser.add_argument("--base", type=Path, required=True, help="pretrained model folder")
    parser.add_argument(
        "--finetuned",
        type=Path,
        action="append",
        required=True,
        help="fine-tuned model folder or PEFT LoRA adapter folder; repeat it for several fine-tunes (multi-task)",
    )
    parser.add_argument(
        "--calibration",
        type=Path,
        action="append",
        default=None,
        help='JSONL of new-task texts ({"text": ...} per line); once for all fine-tunes, or one per fine-tune',
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="output model folder (must not exist unless --overwrite)"
    )
    parser.add_argument("--density", type=float, default=None, help="patch density rho in [0, 1] (default 0.1)")
    parser.add_argument(
        "--method", default=None, help="model_tailor (default), mask_only, magnitude, random, dare, ties, wise_ft"
    )
    parser.add_argument("--layers", default=None, help="regex on module names to tailor (default: all eligible)")
    parser.add_argument("--config", type=Path, default=None, help="YAML or TOML file with PatchConfig settings")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="PatchConfig overrides and method options (also --key=value)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tailorkit.cli.main import UsageError
    from tailorkit.core.config import load_config
    from tailorkit.patching.checkpoints import tailor_checkpoint
    from tailorkit.patching.config import PatchConfig
    from tailorkit.patching.engine import PatchError

    overrides = list(args.overrides)
    for key in ("density", "method", "layers"):
        value = getattr(args, key)
        if value is not None:
            overrides.append(f"{key}={value}")
    config = load_config(PatchConfig, args.config, overrides)  # ConfigError -> exit 2
    try:
        calibration = args.calibration[0] if args.calibration and len(args.calibration) == 1 else args.calibration
        manifest = tailor_checkpoint(
            args.base,
            args.finetuned if len(args.finetuned) > 1 else args.finetuned[0],
            calibration,
            args.out,
            config,
            overwrite=args.overwrite,
            progress=not args.no_progress,
        )
    except PatchError as err:
        raise UsageError(f"tailorkit patch: error: {err}") from None
    keys = (
        "method",
        "tailored_layers",
        "patch_entries",
        "patch_fraction",
        "patch_fraction_model",
        "patch_fraction_of_tailored_weights",
    )
    summary = {k: manifest[k] for k in keys}
    summary["out"] = str(args.out)
    print(json.dumps(summary))
    return 0
