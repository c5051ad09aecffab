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
        sections.append(section)
    return write_demo_report(sections, out, failures), failures
