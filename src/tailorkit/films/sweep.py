"""Parameter sweeps (temperatures x thicknesses x seeds ...) on Dask distributed.

A LocalCluster (processes, one thread each: a trajectory is serial) by default, or any running scheduler by
address. Each job is one `simulate` call writing its own HDF5 file; the job returns a small JSON-able summary.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from tailorkit.core.config import from_dict, to_dict
from tailorkit.core.progress import status
from tailorkit.films.config import FilmConfig, LatticeConfig, ModelConfig, RunConfig


@dataclass(frozen=True)
class SweepConfig:
    """A grid over a base run: every (geometry/h, T, seed) combination becomes one job."""

    base: FilmConfig = field(default_factory=FilmConfig)
    temperatures: tuple[float, ...] = (0.30, 0.22, 0.18)
    thicknesses: tuple[int, ...] = (6, 16)
    seeds: tuple[int, ...] = (0,)
    include_bulk: bool = True
    bulk_L: int = 48
    workers: int = 2

    def __post_init__(self) -> None:
        if not self.temperatures or any(t <= 0 for t in self.temperatures):
            raise ValueError(f"temperatures: expected positive values, got {self.temperatures}")
        if any(h < 2 for h in self.thicknesses):
            raise ValueError(f"thicknesses: expected h >= 2, got {self.thicknesses}")
        if self.workers < 1:
            raise ValueError(f"workers: expected >= 1, got {self.workers}")


def job_name(config: FilmConfig) -> str:
    lat, m = config.lattice, config.model
    geo = "bulk" if lat.geometry == "bulk" else f"film-h{lat.h}-{lat.substrate}"
    return f"{geo}_L{lat.Lx}_T{m.T:g}_phi{m.phi_v:g}_s{config.run.seed}"


def expand(sweep: SweepConfig) -> list[FilmConfig]:
    """The job configs of a sweep (bulk first, then films by h), each with its own seed."""
    jobs = []
    b = sweep.base
    for seed in sweep.seeds:
        for T in sweep.temperatures:
            model = replace(b.model, T=T)
            run = replace(b.run, seed=seed)
            if sweep.include_bulk:
                lat = replace(b.lattice, geometry="bulk", Lx=sweep.bulk_L, h=sweep.bulk_L)
                jobs.append(FilmConfig(lat, model, run))
            for h in sweep.thicknesses:
                jobs.append(FilmConfig(replace(b.lattice, geometry="film", h=h), model, run))
    return jobs


UNFINISHED = ("running", "interrupted")


def run_job(config_dict: dict[str, Any], out: str | None, reuse: bool = False) -> dict[str, Any]:
    """One job (module-level so Dask can ship it): simulate and return config + JSON-able summary.

    With `reuse`, a run file already at `out` for the same config is used: a finished one (any final status,
    `budget` included) is read back without simulating, an interrupted one is resumed bit for bit. A file for
    another config is overwritten.
    """
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")
    from tailorkit.films.io import FilmIOError, load_run, read_config
    from tailorkit.films.simulate import simulate

    config = from_dict(FilmConfig, config_dict)
    resume = False
    if reuse and out is not None and Path(out).is_file():
        try:
            same = read_config(out) == config
            run = load_run(out) if same else None
        except FilmIOError:
            run = None  # unreadable (e.g. killed while first written): simulate again
        if run is not None and run["attrs"].get("status") not in UNFINISHED and "tau" in run["summary"]:
            summary = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in run["summary"].items()}
            return {
                "config": config_dict,
                "status": run["attrs"]["status"],
                "summary": summary,
                "path": out,
                "t_relax": None,
                "reused": True,
            }
        resume = run is not None
    result = simulate(config, out, resume=resume, force=not resume, progress=False)
    summary = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in result.summary.items()}
    return {"config": config_dict, "status": result.status, "summary": summary, "path": out, "t_relax": None}


def run_sweep(
    configs: Sequence[FilmConfig],
    out_dir: str | os.PathLike[str] | None = None,
    *,
    scheduler: str | None = None,
    workers: int = 2,
    processes: bool = True,
    timeout_s: float | None = None,
    on_result: Callable[[dict[str, Any]], None] | None = None,
    reuse: bool = False,
) -> list[dict[str, Any]]:
    """Run every config on Dask (LocalCluster unless `scheduler` names one); results in the order of `configs`.

    The cluster this function starts is always shut down, also on error or Ctrl-C. With `reuse` (and `out_dir`)
    an interrupted sweep goes on where it stopped: see `run_job`.
    """
    from distributed import Client, LocalCluster, as_completed

    outs = [None if out_dir is None else str(Path(out_dir) / f"{job_name(c)}.h5") for c in configs]
    cluster = None
    if scheduler:
        client = Client(scheduler, timeout=30)
    else:
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=processes, dashboard_address=":0", silence_logs=40
        )
        client = Client(cluster)
    try:
        futures = [client.submit(run_job, to_dict(c), o, reuse, pure=False) for c, o in zip(configs, outs, strict=True)]
        index = {f.key: i for i, f in enumerate(futures)}
        results: list[dict[str, Any] | None] = [None] * len(futures)
        for done, future in enumerate(as_completed(futures, timeout=timeout_s), 1):
            res = future.result()
            results[index[future.key]] = res
            status(f"sweep {done}/{len(futures)}: {job_name(from_dict(FilmConfig, res['config']))} {res['status']}")
            if on_result:
                on_result(res)
        return [r for r in results if r is not None]
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def run_serial(
    configs: Iterable[FilmConfig], out_dir: str | os.PathLike[str] | None = None, reuse: bool = False
) -> list[dict[str, Any]]:
    """The same jobs in this process (no Dask), e.g. for tiny sweeps and tests."""
    outs = [(c, None if out_dir is None else str(Path(out_dir) / f"{job_name(c)}.h5")) for c in configs]
    return [run_job(to_dict(c), out, reuse) for c, out in outs]


__all__ = [
    "LatticeConfig",
    "ModelConfig",
    "RunConfig",
    "SweepConfig",
    "expand",
    "job_name",
    "run_job",
    "run_serial",
    "run_sweep",
]
