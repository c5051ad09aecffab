"""The bench JSON contract (DESIGN.md section 4) and atomic file writes.

A bench produces `Row`s (one per method measured in the same run) and `Claim`s computed from those rows; the runner
adds timing and environment and writes one JSON document atomically. `validate_bench` checks a document against
the contract so that `reproduce` and the tests can refuse a malformed one.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import secrets
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

MODES = ("quick", "full")


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """Yield a binary file that replaces `path` only once the block finishes without error.

    Readers never see a half-written file, and a failure leaves the old file (if any) untouched. The temporary file
    is created with `os.open(..., 0o666)` rather than `tempfile.mkstemp` so the usual umask applies: mkstemp's 0600
    would leave results unreadable to other users after the rename.
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write `data` to `path` atomically (see `atomic_open`)."""
    with atomic_open(path) as handle:
        handle.write(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    return write_bytes_atomic(path, text.encode())


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> Path:
    """JSON with NaN/inf refused (they are not JSON); indent 2 for diffs."""
    return write_text_atomic(path, json.dumps(obj, indent=2, allow_nan=False, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


@dataclass
class Row:
    """One method measured in a bench run."""

    method: str
    metrics: dict[str, float]
    params: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class Claim:
    """A paper claim checked against measured numbers; `holds` is computed, never typed in."""

    id: str
    text: str
    value: float
    target: float
    holds: bool

    @classmethod
    def at_least(cls, id: str, text: str, value: float, target: float) -> Claim:
        return cls(id, text, float(value), float(target), bool(math.isfinite(value) and value >= target))

    @classmethod
    def at_most(cls, id: str, text: str, value: float, target: float) -> Claim:
        return cls(id, text, float(value), float(target), bool(math.isfinite(value) and value <= target))

    @classmethod
    def within(cls, id: str, text: str, value: float, target: float, tolerance: float) -> Claim:
        ok = math.isfinite(value) and abs(value - target) <= tolerance
        return cls(id, text, float(value), float(target), bool(ok))


@dataclass
class DataInfo:
    name: str
    source: str
    n_train: int = 0
    n_test: int = 0


@dataclass
class BenchOutcome:
    """What a bench function returns; the runner (`tailorkit.core.bench.run_bench`) adds time and environment."""

    data: DataInfo
    rows: list[Row]
    claims: list[Claim]
    extra: dict[str, Any] = field(default_factory=dict)


def environment(device: torch.device | str = "cpu") -> dict[str, Any]:
    import torch  # lazily: the CLI's parser and --help should not pay for importing torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "platform": platform.platform(),
    }


def outcome_to_document(
    outcome: BenchOutcome,
    *,
    subsystem: str,
    mode: str,
    seed: int,
    started: str,
    seconds: float,
    cpu_seconds: float,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "subsystem": subsystem,
        "mode": mode,
        "seed": seed,
        "started": started,
        "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu_seconds, 3),
        "environment": environment(device),
        "data": asdict(outcome.data),
        "rows": [asdict(r) for r in outcome.rows],
        "claims": [asdict(c) for c in outcome.claims],
    }
    if outcome.extra:
        doc["extra"] = outcome.extra
    validate_bench(doc)
    return doc


def validate_bench(doc: Any) -> None:
    """Raise ValueError listing every way `doc` departs from the bench contract."""
    problems: list[str] = []

    def need(obj: Any, key: str, types: type | tuple[type, ...], where: str) -> Any:
        if not isinstance(obj, dict) or key not in obj:
            problems.append(f"{where}: missing key {key!r}")
            return None
        if not isinstance(obj[key], types) or (isinstance(obj[key], bool) and bool not in _as_tuple(types)):
            problems.append(f"{where}.{key}: expected {_names(types)}, got {type(obj[key]).__name__}")
            return None
        return obj[key]

    if not isinstance(doc, dict):
        raise ValueError(f"bench document: expected a JSON object, got {type(doc).__name__}")
    need(doc, "subsystem", str, "bench")
    mode = need(doc, "mode", str, "bench")
    if mode is not None and mode not in MODES:
        problems.append(f"bench.mode: expected one of {MODES}, got {mode!r}")
    need(doc, "seed", int, "bench")
    need(doc, "started", str, "bench")
    need(doc, "seconds", (int, float), "bench")
    need(doc, "cpu_seconds", (int, float), "bench")
    env = need(doc, "environment", dict, "bench")
    if env is not None:
        for key in ("python", "torch", "device"):
            need(env, key, str, "environment")
        need(env, "threads", int, "environment")
    data = need(doc, "data", dict, "bench")
    if data is not None:
        need(data, "name", str, "data")
        need(data, "source", str, "data")
        need(data, "n_train", int, "data")
        need(data, "n_test", int, "data")
    rows = need(doc, "rows", list, "bench")
    methods: list[str] = []
    for i, row in enumerate(rows or []):
        where = f"rows[{i}]"
        method = need(row, "method", str, where)
        if method:
            methods.append(method)
        need(row, "params", dict, where)
        need(row, "seconds", (int, float), where)
        metrics = need(row, "metrics", dict, where)
        for name, value in (metrics or {}).items():
            if not isinstance(value, int | float) or isinstance(value, bool):
                problems.append(f"{where}.metrics.{name}: expected a number, got {type(value).__name__}")
    if rows is not None and not rows:
        problems.append("bench.rows: expected at least one measured row")
    claims = need(doc, "claims", list, "bench")
    for i, claim in enumerate(claims or []):
        where = f"claims[{i}]"
        need(claim, "id", str, where)
        need(claim, "text", str, where)
        need(claim, "value", (int, float), where)
        need(claim, "target", (int, float), where)
        need(claim, "holds", bool, where)
    if problems:
        raise ValueError("bench document does not follow the contract: " + "; ".join(problems))


def _as_tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


def _names(types: type | tuple[type, ...]) -> str:
    return " or ".join(t.__name__ for t in _as_tuple(types))


def load_bench(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a bench JSON file."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{p}: not valid JSON ({err})") from err
    validate_bench(doc)
    return doc
