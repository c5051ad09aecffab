"""The bench registry and runner: `tailorkit bench <name>` and `tailorkit reproduce`.

A subsystem registers its reproduction with `@register_bench("<subsystem>", config=<ConfigClass>)` in its `bench.py`;
the function takes `(config, mode, seed, device)` and returns a BenchOutcome. The runner builds the config from
defaults, an optional YAML/TOML file and `key=value` overrides, times the run (wall and CPU), adds the environment
and writes the contract JSON atomically. Subsystem modules are imported on demand from SUBSYSTEMS so that a
missing optional dependency in one subsystem cannot break the others.
"""

from __future__ import annotations

import importlib
import importlib.util
import resource
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tailorkit.core.config import ConfigError, load_config, to_dict
from tailorkit.core.progress import status
from tailorkit.core.registry import Registry
from tailorkit.core.results import BenchOutcome, outcome_to_document, write_json_atomic

if TYPE_CHECKING:
    import torch

BenchFn = Callable[[Any, str, int, "torch.device"], BenchOutcome]


@dataclass(frozen=True)
class Bench:
    """A registered bench: its function and the frozen dataclass of its settings (None when it has none)."""

    fn: BenchFn
    config: type | None = None


BENCHES: Registry[Bench] = Registry("bench")


def register_bench(name: str, config: type | None = None) -> Callable[[BenchFn], BenchFn]:
    """Decorator: register `fn(config, mode, seed, device) -> BenchOutcome` as the bench `name`."""

    def decorate(fn: BenchFn) -> BenchFn:
        BENCHES.add(name, Bench(fn, config))
        return fn

    return decorate


def bench_config(name: str, path: str | Path | None = None, overrides: Iterable[str] = ()) -> Any:
    """The settings of bench `name` from defaults <- file <- overrides (ConfigError on unknown keys)."""
    bench = BENCHES.get(name)
    overrides = list(overrides)
    if bench.config is None:
        if path is not None or overrides:
            raise ConfigError(f"bench {name!r} takes no settings, got {[*([str(path)] if path else []), *overrides]}")
        return None
    return load_config(bench.config, path, overrides)


# Every package that may register a bench or a demo part, in report order. Only those that exist are imported.
SUBSYSTEMS = (
    "selfcheck",
    "patching",
    "films",
    "anatomy",
    "registration",
    "adapters",
    "prompts",
    "video",
    "active",
    "continual",
    "hoi",
)


def load_subsystems(part: str, only: Iterable[str] | None = None) -> list[str]:
    """Import `tailorkit.<subsystem>.<part>` for every subsystem (of `only`, if given) that has it; return the names."""
    found = []
    for name in SUBSYSTEMS if only is None else [n for n in SUBSYSTEMS if n in set(only)]:
        module = f"tailorkit.{name}.{part}"
        if importlib.util.find_spec(f"tailorkit.{name}") is None or importlib.util.find_spec(module) is None:
            continue
        importlib.import_module(module)
        found.append(name)
    return found


def _cpu_seconds() -> float:
    """CPU time of this process plus its joined child processes (benches that fan out to worker processes)."""
    child = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + child.ru_utime + child.ru_stime


def available_benches() -> list[str]:
    load_subsystems("bench")
    return [name for name in SUBSYSTEMS if name in BENCHES]


def import_bench_module(name: str) -> None:
    """Import the bench module of subsystem `name` only (every one when `name` is not a subsystem, so that the
    registry's unknown-name error can list the valid names). Importing all ten would cost seconds per call."""
    load_subsystems("bench", only=[name] if name in SUBSYSTEMS else None)


def run_bench(
    name: str,
    *,
    quick: bool = True,
    seed: int = 0,
    device: torch.device | None = None,
    out: str | Path | None = None,
    config: Any = None,
) -> dict[str, Any]:
    """Run the bench registered as `name` and return (and optionally write) its contract document.

    `config` is the bench's settings object (default: `bench_config(name)`, i.e. the dataclass defaults).
    """
    import_bench_module(name)
    bench = BENCHES.get(name)
    if config is None:
        config = bench_config(name)
    mode = "quick" if quick else "full"
    import torch

    dev = device if device is not None else torch.device("cpu")
    status(f"bench {name} ({mode}, seed {seed}, {dev})")
    started = datetime.now(UTC).isoformat(timespec="seconds")
    # A bench whose settings have an int `threads` (> 0) runs with that many torch threads, recorded as such in
    # the document's environment (read after the bench, the caller's restored setting would be reported instead).
    threads = getattr(config, "threads", None)
    caller_threads = torch.get_num_threads()
    if isinstance(threads, int) and threads > 0:
        torch.set_num_threads(threads)
    wall, cpu = time.perf_counter(), _cpu_seconds()
    try:
        bench_threads = torch.get_num_threads()
        outcome = bench.fn(config, mode, seed, dev)
    finally:
        torch.set_num_threads(caller_threads)
    doc = outcome_to_document(
        outcome,
        subsystem=name,
        mode=mode,
        seed=seed,
        started=started,
        seconds=time.perf_counter() - wall,
        cpu_seconds=_cpu_seconds() - cpu,
        device=dev,
    )
    doc["environment"]["threads"] = bench_threads
    if config is not None:
        doc["config"] = to_dict(config)
    if out is not None:
        write_json_atomic(out, doc)
        status(f"wrote {out}")
    held = sum(c["holds"] for c in doc["claims"])
    status(f"bench {name}: {len(doc['rows'])} rows, {held}/{len(doc['claims'])} claims hold, {doc['seconds']:.1f} s")
    return doc
