"""The demo registry and runner: `tailorkit demo`, the newcomer's tour.

Each subsystem registers one short demonstration of its main verb with `@DEMOS.register("<subsystem>")` in its
`demo.py`: a function `(out_dir, seed, device) -> DemoSection` that writes at most one picture into out_dir. The
runner keeps going when one part fails and lists the failure in the report, so one broken asset does not hide the
rest of the tour.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from tailorkit.core.bench import SUBSYSTEMS, load_subsystems
from tailorkit.core.progress import parts, status
from tailorkit.core.registry import Registry
from tailorkit.core.report import DemoSection, write_demo_report

if TYPE_CHECKING:
    import torch

DemoFn = Callable[[Path, int, "torch.device"], DemoSection]
DEMOS: Registry[DemoFn] = Registry("demo")

# What each part runs on the user's own files, shown at the end of the part (the README's "On your own data" list;
# tests/core/test_demo_report.py parses every command with the CLI). CONFIG.yaml holds settings (empty = defaults).
OWN_DATA: dict[str, str] = {
    "patching": "tailorkit patching --base bert-base/ --finetuned bert-sst2/ --calibration sst2.jsonl "
    "--density 0.1 --out patched/",
    "films": "tailorkit films run my_film.toml --out run.h5",
    "anatomy": "tailorkit anatomy train CONFIG.yaml volumes=ct1.nii.gz,ct2.nii.gz --out runs/sam",
    "registration": "tailorkit registration fixed.nii.gz moving.nii.gz --labels moving_seg.nii.gz "
    "--model runs/sam/model.pt --out reg/",
    "adapters": "tailorkit adapters train CONFIG.yaml data.source=pascal_context data.root=PASCAL_MT/ --out runs/vmt",
    "prompts": "tailorkit prompts train mmap --task-folder shop_photos/ --task-folder sketches/",
    "video": "tailorkit video train CONFIG.yaml data.kind=folder data.root=clips/ data.splits_csv=splits.csv "
    "--out runs/sif",
    "active": "tailorkit active propose --pool scans/ --budget 10 --state loop.json",
    "continual": "tailorkit continual train CONFIG.yaml data.dataset=folder data.root=images/ --out runs/cppf",
    "hoi": "tailorkit hoi predict photo.jpg --model runs/hodn/model.pt --out photo.hoi.png",
}


def run_demo(
    out_dir: str | Path, *, seed: int = 0, device: torch.device | None = None, only: list[str] | None = None
) -> tuple[Path, dict[str, str]]:
    """Run every registered demo part (or `only` those) and write out_dir/index.html; return it and the failures."""
    load_subsystems("demo")
    names = [n for n in SUBSYSTEMS if n in DEMOS and (not only or n in only)]
    for name in only or []:
        DEMOS.get(name)  # unknown names raise with the valid list
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    import torch

    dev = device if device is not None else torch.device("cpu")
    sections, failures = [], {}
    for name in parts(names, "demo"):  # "demo 3/10: registration (about 2.5 min left)"
        start = time.perf_counter()
        try:
            section = DEMOS.get(name)(out, seed, dev)
        except Exception as err:  # a failed part is reported, the tour goes on
            failures[name] = f"{type(err).__name__}: {err}"
            status(f"demo {name} failed: {failures[name]}")
            traceback.print_exc()
            continue
        section.seconds = time.perf_counter() - start
        section.own_data = section.own_data or OWN_DATA.get(name, "")
        section.docs = section.docs or (f"docs/{name}.md" if name in OWN_DATA else "")
        sections.append(section)
    return write_demo_report(sections, out, failures), failures
