"""A films worker does not import torch (issue 24, item 4): checked in a fresh interpreter."""

from __future__ import annotations

import os
import subprocess
import sys


def _torch_loaded_after(code: str) -> bool:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    probe = f"import sys\n{code}\nprint('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True, timeout=300
    )
    return out.stdout.strip().splitlines()[-1] == "True"


def test_films_worker_imports_no_torch() -> None:
    # what a sweep worker imports (sweep.run_job -> simulate) and what the films package exports
    assert not _torch_loaded_after(
        "import tailorkit.films, tailorkit.films.sweep, tailorkit.films.simulate, tailorkit.films.speed\n"
        "import tailorkit.core.seeding"
    )


def test_seeding_still_makes_torch_generators() -> None:
    # the probe can see torch, and torch_generator imports it on first use
    assert _torch_loaded_after(
        "from tailorkit.core.seeding import torch_generator\n"
        "assert torch_generator(0, 'x').initial_seed() == torch_generator(0, 'x').initial_seed()"
    )
