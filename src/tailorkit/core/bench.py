"""The bench registry and runner: `tailorkit bench <name>` and `tailorkit reproduce`.

A subsystem registers its reproduction with `@register_bench("<subsystem>", config=<ConfigClass>)` in its `bench.py`;
the function takes `(config, mode, seed, device)` and returns a BenchOutcome. The runner builds the config from
defaults, an optional YAML/TOML file and `key=value` overrides, times the run (wall and CPU), adds the environment
and writes the contract JSON atomically. Subsystem modules are imported on demand from SUBSYSTEMS so that a
missing optional dependency in one subsystem cannot break the others.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import math
import os
import resource
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tailorkit.core.config import ConfigError, from_dict, load_config, to_dict
from tailorkit.core.progress import status
from tailorkit.core.registry import Registry
from tailorkit.core.results import (
    MODES,
    BenchOutcome,
    finite_or_none,
    outcome_from_json,
    outcome_to_document,
    outcome_to_json,
    write_json_atomic,
)

if TYPE_CHECKING:
    import torch

BenchFn = Callable[[Any, str, int, "torch.device"], BenchOutcome]


@dataclass(frozen=True)
class EvidencePlan:
    """How a bench runs over paired seeds (`--seeds`, `--mode evidence`), budgets (`--budget`) and curves (`--curve`).

    Attributes:
        budget_fields: Settings (dotted for nested ones) that count training steps or iterations of a fit;
            `--budget K` multiplies every one of them by K (rounded, at least 1).
        one_seed: Overrides under which one call of the bench function measures one seed (e.g. `seeds=1` for a
            bench that loops over seeds itself), so that the runner can pair N calls.
        seeds: Paired seeds in evidence mode.
        curve: Budgets of the evidence-mode curve (empty: no curve unless `--curve` asks).
        decisive: Overrides that restrict a run to the decisive pairs (the paper's method, its strongest baseline
            and its key ablation): curve points run only those.
        decisive_claims: Claim ids drawn against budget (empty: every claim of the decisive run).
        base_mode: The mode the bench function runs in for each seed of evidence mode.
    """

    budget_fields: tuple[str, ...] = ()
    one_seed: Mapping[str, Any] = field(default_factory=dict)
    seeds: int = 5
    curve: tuple[float, ...] = ()
    decisive: Mapping[str, Any] = field(default_factory=dict)
    decisive_claims: tuple[str, ...] = ()
    base_mode: str = "quick"


@dataclass(frozen=True)
class Bench:
    """A registered bench: its function, the frozen dataclass of its settings (None when it has none), its plan."""

    fn: BenchFn
    config: type | None = None
    plan: EvidencePlan = field(default_factory=EvidencePlan)


BENCHES: Registry[Bench] = Registry("bench")


def register_bench(
    name: str, config: type | None = None, plan: EvidencePlan | None = None
) -> Callable[[BenchFn], BenchFn]:
    """Decorator: register `fn(config, mode, seed, device) -> BenchOutcome` as the bench `name`."""

    def decorate(fn: BenchFn) -> BenchFn:
        BENCHES.add(name, Bench(fn, config, plan or EvidencePlan()))
        return fn

    return decorate


def with_settings(config: Any, updates: Mapping[str, Any]) -> Any:
    """`config` with dotted-key `updates` applied and validated again (ConfigError on an unknown key)."""
    if not updates:
        return config
    data = to_dict(config)
    for key, value in updates.items():
        node: Any = data
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
            if not isinstance(node, dict):
                raise ConfigError(f"{type(config).__name__}: no nested setting {key!r}")
        if leaf not in node:
            raise ConfigError(f"{type(config).__name__}: unknown setting {key!r}")
        node[leaf] = value
    return from_dict(type(config), data)


def scale_budget(config: Any, fields: Iterable[str], budget: float) -> Any:
    """`config` with every step-count setting in `fields` multiplied by `budget` (whole counts rounded, at least 1)."""
    fields = tuple(fields)
    if budget == 1:
        return config
    if budget <= 0 or not math.isfinite(budget):
        raise ConfigError(f"--budget: expected a positive number, got {budget}")
    if config is None or not fields:
        raise ConfigError("--budget: this bench declares no training-step settings to scale")
    data = to_dict(config)
    updates = {}
    for key in fields:
        node: Any = data
        for part in key.split("."):
            node = node[part]
        # A step count stays a whole number (at least 1); a time budget (a float: films' seconds per run) scales as is.
        updates[key] = node * budget if isinstance(node, float) else max(1, round(node * budget))
    return with_settings(config, updates)


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
    mode: str | None = None,
    seed: int = 0,
    seeds: int | None = None,
    budget: float = 1.0,
    curve: Iterable[float] | None = None,
    device: torch.device | None = None,
    out: str | Path | None = None,
    config: Any = None,
) -> dict[str, Any]:
    """Run the bench registered as `name` and return (and optionally write) its contract document.

    Args:
        mode: quick, evidence or full (default: quick if `quick` else full). Evidence mode runs the bench's
            `EvidencePlan`: `plan.seeds` paired seeds of its base mode, and the plan's budget curve.
        seed: The first seed. Seed s fixes the data draw and every initialisation; N paired seeds are
            s, s+1, ..., s+N-1, the same for every method.
        seeds: Paired seeds (default 1; the plan's in evidence mode). Above 1, each seed is one call of the
            bench function and claims are decided on intervals over seeds (`tailorkit.core.evidence`).
        budget: Multiplies the training steps of every fit (`plan.budget_fields`).
        curve: Budgets at which the decisive pairs run (`plan.decisive`), written as `curve` rows and a PNG.
        config: The bench's settings object (default: `bench_config(name)`, i.e. the dataclass defaults).
    """
    from tailorkit.core.results import merge_outcomes

    import_bench_module(name)
    bench = BENCHES.get(name)
    plan = bench.plan
    mode = mode or ("quick" if quick else "full")
    if mode not in MODES:
        raise ConfigError(f"--mode: expected one of {', '.join(MODES)}, got {mode!r}")
    n_seeds = seeds if seeds is not None else (plan.seeds if mode == "evidence" else 1)
    if n_seeds < 1:
        raise ConfigError(f"--seeds: expected at least 1, got {n_seeds}")
    budgets = tuple(curve) if curve is not None else (plan.curve if mode == "evidence" else ())
    if config is None:
        config = bench_config(name)
    config = scale_budget(config, plan.budget_fields, budget)
    for b in budgets:
        scale_budget(config, plan.budget_fields, b)  # refuse a bad curve before any work
    fn_mode = plan.base_mode if mode == "evidence" else mode
    import torch

    dev = device if device is not None else torch.device("cpu")
    seed_list = [seed + k for k in range(n_seeds)]
    status(f"bench {name} ({mode}, seeds {_span(seed_list)}, budget x{budget:g}, {dev})")
    started = datetime.now(UTC).isoformat(timespec="seconds")
    # A bench whose settings have an int `threads` (> 0) runs with that many torch threads, recorded as such in
    # the document's environment (read after the bench, the caller's restored setting would be reported instead).
    threads = getattr(config, "threads", None)
    caller_threads = torch.get_num_threads()
    if isinstance(threads, int) and threads > 0:
        torch.set_num_threads(threads)
    # Each seed's outcome of a multi-seed run is kept beside `out` (OUT.parts/), keyed by everything that decides
    # it, so an interrupted evidence run resumes where it stopped instead of starting again.
    parts = Path(out).with_name(Path(out).name + ".parts") if out is not None and (n_seeds > 1 or budgets) else None
    wall, cpu = time.perf_counter(), _cpu_seconds()
    curve_rows: list[dict[str, Any]] = []
    seed_timings: list[dict[str, Any] | None] = []
    try:
        bench_threads = torch.get_num_threads()
        if n_seeds == 1:
            outcome = bench.fn(config, fn_mode, seed, dev)
        else:
            per_seed = with_settings(config, plan.one_seed)
            outcome = merge_outcomes(
                _over_seeds(bench, per_seed, fn_mode, seed_list, dev, name, parts, seed_timings), seed_list
            )
        decisive = with_settings(with_settings(config, plan.one_seed), plan.decisive) if budgets else None
        for k, b in enumerate(budgets, 1):
            if b == 1 and n_seeds > 1:  # the main run already measured the decisive pairs at this budget
                curve_rows.extend(_curve_rows(outcome.claims, plan.decisive_claims, budget))
                continue
            status(f"bench {name}: curve point {k}/{len(budgets)}, budget x{b:g}")
            scaled = scale_budget(decisive, plan.budget_fields, b)
            point = merge_outcomes(_over_seeds(bench, scaled, fn_mode, seed_list, dev, name, parts), seed_list)
            curve_rows.extend(_curve_rows(point.claims, plan.decisive_claims, budget * b))
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
    doc["seeds"] = seed_list
    doc["budget"] = budget
    doc["evidence"] = {
        "interval": "t",
        "level": 0.95,
        "indicative": n_seeds == 1,
        "note": "one seed: verdicts are indicative (a single draw)"
        if n_seeds == 1
        else f"claims decided on 95 % t intervals over {n_seeds} paired seeds",
    }
    gates = [c for c in doc["claims"] if c["id"].startswith("gate-")]
    if gates:  # the validity gates' joint verdict: any failed gate fails it; all holding hold it
        verdicts = {c.get("verdict") or ("holds" if c["holds"] else "fails") for c in gates}
        joint = "fails" if "fails" in verdicts else "holds" if verdicts == {"holds"} else "undecided"
        doc["evidence"]["gate"] = {"verdict": joint, "claims": [c["id"] for c in gates]}
    if seed_timings:
        # `seconds` above is this call's; with parts reused from earlier calls, these say what each seed cost
        doc["evidence"]["seed_timings"] = seed_timings
    if curve_rows:
        doc["curve"] = curve_rows
    if config is not None:
        doc["config"] = to_dict(config)
    if out is not None:
        if curve_rows:
            from tailorkit.core.report import curve_plot

            doc["curve_plot"] = curve_plot(doc, Path(out).with_name(Path(out).stem + "-curve.png")).name
        write_json_atomic(out, doc)
        status(f"wrote {out}")
    held = sum(c["holds"] for c in doc["claims"])
    undecided = sum(c.get("verdict") == "undecided" for c in doc["claims"])
    status(
        f"bench {name}: {len(doc['rows'])} rows, {held}/{len(doc['claims'])} claims hold"
        + (f" ({undecided} undecided)" if undecided else "")
        + (" [one seed: indicative]" if n_seeds == 1 else f" over {n_seeds} paired seeds")
        + f", {doc['seconds']:.1f} s"
    )
    return doc


def _over_seeds(
    bench: Bench,
    config: Any,
    mode: str,
    seeds: list[int],
    device: torch.device,
    name: str,
    parts: Path | None = None,
    timings: list[dict[str, Any] | None] | None = None,
) -> list[BenchOutcome]:
    """One call of the bench function per seed, with a count and an ETA; seeds already in `parts` are reused.

    `timings` (if given) receives one entry per seed: wall and CPU seconds of the call that measured it and the load
    average at its start (kept in the part, so a resumed run still reports what each seed cost; None for parts
    written before timings were kept).
    """
    timings = timings if timings is not None else []
    outcomes = []
    start, ran = time.perf_counter(), 0
    for k, s in enumerate(seeds):
        cached = None if parts is None else parts / f"{_part_key(name, config, mode, s, device)}.json"
        if cached is not None and cached.exists():
            saved = json.loads(cached.read_text())
            outcomes.append(outcome_from_json(saved))
            timings.append(saved.get("timing"))
            status(f"bench {name}: seed {s} ({k + 1}/{len(seeds)}) reused from {cached}")
            continue
        if ran:
            eta = (time.perf_counter() - start) / ran * (len(seeds) - k)
            status(f"bench {name}: seed {s} ({k + 1}/{len(seeds)}, about {eta / 60:.1f} min left)")
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        wall, cpu = time.perf_counter(), _cpu_seconds()
        outcomes.append(bench.fn(config, mode, s, device))
        timings.append(
            {
                "seed": s,
                "seconds": time.perf_counter() - wall,
                "cpu_seconds": _cpu_seconds() - cpu,
                "load_at_start": load,
            }
        )
        ran += 1
        if cached is not None:
            write_json_atomic(cached, {**outcome_to_json(outcomes[-1]), "timing": timings[-1]})
    return outcomes


def _part_key(name: str, config: Any, mode: str, seed: int, device: torch.device) -> str:
    plain = to_dict(config) if config is not None else None
    # Settings added to a bench after parts were saved leave the key alone while at their defaults (a config class
    # lists them in `part_key_omit_at_default`), so that the saved parts stay reusable.
    for key in getattr(config, "part_key_omit_at_default", ()):
        if plain is not None and plain.get(key) == to_dict(type(config)()).get(key):
            del plain[key]
    settings = json.dumps(plain, sort_keys=True, default=str)
    digest = hashlib.sha256(f"{name}|{mode}|{seed}|{device.type}|{settings}".encode()).hexdigest()[:16]
    return f"{name}-{mode}-seed{seed}-{digest}"


def _curve_rows(claims: Iterable[Any], wanted: tuple[str, ...], budget: float) -> list[dict[str, Any]]:
    return [
        {
            "budget": budget,
            "claim": c.id,
            "value": finite_or_none(c.value),
            "target": c.target,
            "ci_low": finite_or_none(c.ci_low),
            "ci_high": finite_or_none(c.ci_high),
            "n": c.n,
            "wins": c.wins,
            "verdict": c.verdict,
        }
        for c in claims
        if not wanted or c.id in wanted
    ]


def _span(seeds: list[int]) -> str:
    return str(seeds[0]) if len(seeds) == 1 else f"{seeds[0]}..{seeds[-1]}"


def rerun_document(old: dict[str, Any], *, device: torch.device | None = None, out: str | Path | None = None) -> dict:
    """Run again the bench that wrote `old` with its recorded settings, mode, seeds and budget (no curve).

    The recorded config is the one that ran (already scaled by the budget), so it reruns at budget 1.
    """
    name = old["subsystem"]
    import_bench_module(name)
    bench = BENCHES.get(name)
    config = None
    if bench.config is not None:
        config = from_dict(bench.config, old["config"]) if "config" in old else bench_config(name)
    return run_bench(
        name,
        mode=old["mode"],
        seed=old["seed"],
        seeds=len(old.get("seeds", [old["seed"]])),
        curve=(),
        device=device,
        out=out,
        config=config,
    )
