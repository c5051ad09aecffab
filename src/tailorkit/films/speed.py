"""Kernel speed: events per CPU second of the rejection-free kernel and of the naive rejection baseline.

The measured system is the one the C++ reference (zhangns/dplm-public) was timed on (issue 24): a 2D periodic L x L
bulk, g uniform on [-0.5, 0.5], phi_v = 0.01, started from the exact equilibrium state, then timed alone after a
warm-up (which also compiles). The equilibrium start's lattice-gas preheat is shortened for L >= 400
(`preheat_sweeps`), which changes the start state slightly, not the per-event cost. Run as
`python -m tailorkit.films.speed` (behind the CPU lock on a shared machine); it prints the load average first.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from typing import Any

from tailorkit.films.config import FilmConfig, LatticeConfig, ModelConfig, RunConfig
from tailorkit.films.state import initial_state

SIZES = ((30, 0.18), (100, 0.18), (400, 0.25), (1000, 0.25))


def speed_config(L: int, T: float, seed: int = 0, preheat_sweeps: int | None = None) -> FilmConfig:
    sweeps = preheat_sweeps if preheat_sweeps is not None else (200 if L <= 150 else 20)
    return FilmConfig(
        LatticeConfig(geometry="bulk", Lx=L, h=L),
        ModelConfig(T=T, phi_v=0.01),
        RunConfig(seed=seed, preheat_sweeps=sweeps),
    )


def kernel_rate(L: int, T: float, events: int, seed: int = 0, warmup: int = 100_000) -> dict[str, Any]:
    """Time `events` events of the rejection-free kernel on the L x L bulk (after `warmup` untimed events)."""
    state = initial_state(speed_config(L, T, seed))
    state.run_until(math.inf, warmup)
    cpu, wall = time.process_time(), time.perf_counter()
    n = state.run_until(math.inf, events)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    table = "dense" if state.dense else "records"
    return {
        "L": L,
        "T": T,
        "events": n,
        "cpu_s": cpu,
        "events_per_s": n / cpu,
        "events_per_wall_s": n / wall,
        "table": table,
    }


def baseline_rate(L: int, T: float, attempts: int, seed: int = 0) -> dict[str, Any]:
    """Naive rejection KMC (films.baseline) on the same system: accepted events per CPU second."""
    from tailorkit.films.baseline import rejection_kmc

    state = initial_state(speed_config(L, T, seed))
    rejection_kmc(state, 10_000)  # compile
    res = rejection_kmc(state, attempts)
    return {"L": L, "T": T, **res, "events_per_s": res["events_per_cpu_s"]}


def peak_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


_RSS_CHILD = """
import math, resource, sys, tempfile
if {torch}:
    import torch
from tailorkit.films.simulate import simulate
from tailorkit.films.speed import speed_config
from dataclasses import replace
cfg = speed_config({L}, 0.18)
cfg = replace(cfg, run=replace(cfg.run, max_events={events}, checkpoint_every_s=1e9))
with tempfile.TemporaryDirectory() as d:
    simulate(cfg, d + "/run.h5", progress=False)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)
"""


def run_peak_rss_mib(L: int = 100, events: int = 2_000_000, import_torch: bool = False) -> float:
    """Peak RSS (MiB) of a fresh process doing one `simulate` run (HDF5 file, observables) of the L x L bulk;
    `import_torch` imports torch first, as every worker did while core.seeding imported it."""
    import subprocess
    import sys

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    code = _RSS_CHILD.format(torch=import_torch, L=L, events=events)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="30,100,400,1000", help="comma-separated L (T = 0.18 for L <= 150, else 0.25)")
    p.add_argument("--events", type=float, default=5e6, help="timed events per size (L >= 400: a fifth)")
    p.add_argument("--baseline", type=float, default=0.0, help="rejection-KMC attempts per size (0: skip)")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument(
        "--rss", action="store_true", help="also the peak RSS of a films run at L = 100 (with and without torch)"
    )
    args = p.parse_args(argv)
    with open("/proc/loadavg") as f:
        print(f"loadavg at start: {f.read().strip()}  pid {os.getpid()}", flush=True)
    for L in (int(x) for x in args.sizes.split(",")):
        T = 0.18 if L <= 150 else 0.25
        n = int(args.events if L < 400 else args.events / 5)
        for _ in range(args.repeat):
            r = kernel_rate(L, T, n)
            print(
                f"L={L:5d} T={T} kernel   {r['events_per_s'] / 1e6:6.3f} M ev/CPU s ({r['events']} ev, "
                f"{r['cpu_s']:.2f} s)",
                flush=True,
            )
        if args.baseline > 0:
            b = baseline_rate(L, T, int(args.baseline))
            print(
                f"L={L:5d} T={T} rejection {b['events_per_s'] / 1e6:6.4f} M ev/CPU s (acceptance "
                f"{b['acceptance']:.2e})",
                flush=True,
            )
    print(f"peak RSS of this process {peak_rss_mib():.0f} MiB", flush=True)
    if args.rss:
        for torch_first in (False, True):
            rss = run_peak_rss_mib(100, import_torch=torch_first)
            print(f"peak RSS of a films run, L=100{' (torch imported first)' if torch_first else ''}: {rss:.0f} MiB")


if __name__ == "__main__":
    main()
