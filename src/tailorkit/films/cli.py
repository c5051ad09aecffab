"""`tailorkit film run|resume|sweep|analyze|plot|bench`.

tailorkit film run CONFIG.toml [--set key=value ...] [key=value ...] [--out RUN.h5] [--resume] [--force]
tailorkit film resume RUN.h5                       (continue an interrupted run with its stored config)
tailorkit film sweep SWEEP.toml [--scheduler ADDRESS] [--workers N] [--out DIR] [key=value ...]
tailorkit film analyze RUN.h5|DIR ... [--out results.json]
tailorkit film plot results.json|RUN.h5 [--out FILE.png]
tailorkit film bench [--quick] [--seed N] [--out FILE] [key=value ...]     (= tailorkit bench films)
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    film = sub.add_parser("film", help="glassy polymer films: the DPLM lattice model with rejection-free KMC")
    verbs = film.add_subparsers(dest="verb", metavar="VERB", required=True)

    run = verbs.add_parser("run", help="one run from the exact equilibrium start; writes one HDF5 file")
    run.add_argument("config", type=Path, help="TOML or YAML file (sections lattice, model, run)")
    _overrides(run)
    run.add_argument("--out", type=Path, default=None, help="HDF5 file (default reports/films/<name>.h5)")
    run.add_argument("--resume", action="store_true", help="continue the checkpoint in --out (same config)")
    run.add_argument("--force", action="store_true", help="overwrite an existing --out")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.set_defaults(func=cmd_run)

    resume = verbs.add_parser("resume", help="continue an interrupted run with the config stored in its file")
    resume.add_argument("file", type=Path)
    resume.add_argument("--no-progress", action="store_true")
    resume.set_defaults(func=cmd_resume)

    sweep = verbs.add_parser("sweep", help="temperatures x thicknesses x seeds on Dask (LocalCluster by default)")
    sweep.add_argument("config", type=Path, help="TOML/YAML: temperatures, thicknesses, seeds, base.{lattice,...}")
    _overrides(sweep)
    sweep.add_argument("--scheduler", default=None, help="Dask scheduler address (default: a LocalCluster)")
    sweep.add_argument("--workers", type=int, default=None, help="LocalCluster workers (default from config)")
    sweep.add_argument("--out", type=Path, default=Path("reports/films/sweep"), help="folder for the run files")
    sweep.set_defaults(func=cmd_sweep)

    analyze = verbs.add_parser("analyze", help="tau(z), eta_eff/eta_bulk, S, fits from run files")
    analyze.add_argument("runs", nargs="+", type=Path, help="run files or folders of them")
    analyze.add_argument("--out", type=Path, default=Path("reports/films/results.json"))
    analyze.set_defaults(func=cmd_analyze)

    plot = verbs.add_parser("plot", help="figures from analyze results (JSON) or from one run file (HDF5)")
    plot.add_argument("source", type=Path)
    plot.add_argument("--out", type=Path, default=None, help="PNG file (default next to the source)")
    plot.set_defaults(func=cmd_plot)

    bench = verbs.add_parser("bench", help="the reproduction benchmark (same as `tailorkit bench films`)")
    bench.add_argument("--quick", action="store_true")
    bench.add_argument("--seed", type=int, default=0)
    bench.add_argument("--out", type=Path, default=Path("reports/bench/films.json"))
    bench.add_argument("--config", type=Path, default=None)
    bench.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    bench.set_defaults(func=cmd_bench)


def _overrides(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="settings overrides, dotted keys")
    parser.add_argument(
        "--set",
        dest="set_",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a settings override (repeatable), e.g. --set model.T=0.2",
    )


def _usage(message: str) -> Exception:
    from tailorkit.cli.main import UsageError

    return UsageError(f"tailorkit film: error: {message}")


def _load(cls: type, args: argparse.Namespace) -> Any:
    from tailorkit.core.config import load_config

    return load_config(cls, args.config, [*args.set_, *args.overrides])


def _simulate(fn: Any, *a: Any, **kw: Any) -> Any:
    """Call fn, turning FilmIOError into a usage error, and SIGTERM into KeyboardInterrupt (the run then writes an
    `interrupted` checkpoint before exiting, as on Ctrl-C)."""
    import signal

    from tailorkit.films.io import FilmIOError

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        return fn(*a, **kw)
    except FilmIOError as err:
        raise _usage(str(err)) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


def _report(result: Any) -> None:
    from tailorkit.core.progress import status

    s = result.summary
    status(
        f"{result.path}: {result.status}, t={s.get('t_end', 0):.4g}, {result.events} events, "
        f"{s.get('events_per_cpu_s', 0) / 1e6:.2f} M events per CPU second, tau={s.get('tau', math.nan):.4g}"
    )


def cmd_run(args: argparse.Namespace) -> int:
    from tailorkit.films.config import FilmConfig
    from tailorkit.films.simulate import simulate
    from tailorkit.films.sweep import job_name

    config = _load(FilmConfig, args)
    from tailorkit.core.errors import check_output_file

    out = args.out or Path("reports/films") / f"{job_name(config)}.h5"
    check_output_file(out)  # a folder, or a path under a file or unwritable: refused before the simulation compiles
    progress = False if args.no_progress else None
    result = _simulate(simulate, config, out, resume=args.resume, force=args.force, progress=progress)
    _report(result)
    print(out)
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    from tailorkit.films.io import read_config
    from tailorkit.films.simulate import simulate

    config = _simulate(read_config, args.file)
    result = _simulate(simulate, config, args.file, resume=True, progress=False if args.no_progress else None)
    _report(result)
    print(args.file)
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from tailorkit.films.study import analyze_results
    from tailorkit.films.sweep import SweepConfig, expand, run_sweep

    sweep = _load(SweepConfig, args)
    jobs = expand(sweep)
    results = run_sweep(jobs, args.out, scheduler=args.scheduler, workers=args.workers or sweep.workers)
    rows, extra = analyze_results(results)
    out = args.out / "results.json"
    _write_results(out, rows, extra)
    print(out)
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    from tailorkit.films.study import analyze_results, results_from_files

    results = _simulate(results_from_files, args.runs)
    if not results:
        raise _usage(f"no finished runs found in {[str(p) for p in args.runs]}")
    rows, extra = analyze_results(results)
    _write_results(args.out, rows, extra)
    print(args.out)
    return 0


def _write_results(path: Path, rows: list[Any], extra: dict[str, Any]) -> None:
    from dataclasses import asdict

    from tailorkit.core.results import write_json_atomic

    write_json_atomic(path, _json_safe({"rows": [asdict(r) for r in rows], "extra": extra}))


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if hasattr(obj, "item"):
        return _json_safe(obj.item())
    return obj


def cmd_plot(args: argparse.Namespace) -> int:
    from tailorkit.films.plots import plot_run, plot_study

    src: Path = args.source
    if not src.is_file():
        raise _usage(f"{str(src)!r} not found")
    out = args.out or src.with_suffix(".png")
    if src.suffix == ".json":
        try:
            results = json.loads(src.read_text())
            rows = results["rows"]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise _usage(f"{str(src)!r} is not a results file from `tailorkit film analyze`: {err}") from None
        if not rows:
            raise _usage(f"{str(src)!r} holds no rows")
        plot_study(results, out)
    else:
        from tailorkit.films.io import load_run

        plot_run(_simulate(load_run, src), out)
    print(out)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from tailorkit.core.bench import bench_config, run_bench

    config = bench_config("films", args.config, args.overrides)
    run_bench("films", quick=args.quick, seed=args.seed, out=args.out, config=config)
    print(args.out)
    return 0
