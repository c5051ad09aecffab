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
import statistics
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from tailorkit.core.evidence import claim_verdict, paired, verdict

if TYPE_CHECKING:
    import torch

MODES = ("quick", "evidence", "full")
VERDICTS = ("holds", "fails", "undecided")


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
    # Over several paired seeds: each metric's value per seed (same seed order as the document's `seeds`).
    metrics_per_seed: dict[str, list[float]] | None = None


@dataclass
class Claim:
    """A paper claim checked against measured numbers; `holds` is computed, never typed in.

    `kind` says how `value` is compared with `target` (at_least, at_most, within, or paired: a mean paired
    difference against a margin), so that claims made on one seed's run can be re-decided over several seeds
    (`tailorkit.core.evidence.merge_claims`). `verdict` is holds / fails / undecided: a single-value claim keeps its
    plain comparison (holds or fails); a claim over seeds is decided by its interval [`ci_low`, `ci_high`] (None when
    there is no interval, n < 2). `holds` is True exactly when the verdict is `holds`. `wins` counts the seeds on which
    the claim held on its own.
    """

    id: str
    text: str
    value: float
    target: float
    holds: bool
    kind: str = "at_least"
    tolerance: float = 0.0
    verdict: str = ""
    ci_low: float | None = None
    ci_high: float | None = None
    n: int = 1
    wins: int | None = None
    values_per_seed: list[float] | None = None

    def __post_init__(self) -> None:
        if not self.verdict:
            self.verdict = "holds" if self.holds else "fails"
        if self.verdict not in VERDICTS:
            raise ValueError(f"claim {self.id!r}: verdict must be one of {VERDICTS}, got {self.verdict!r}")
        if self.holds != (self.verdict == "holds"):
            raise ValueError(f"claim {self.id!r}: holds={self.holds} contradicts verdict {self.verdict!r}")

    @classmethod
    def at_least(cls, id: str, text: str, value: float, target: float) -> Claim:
        return cls(id, text, float(value), float(target), bool(math.isfinite(value) and value >= target))

    @classmethod
    def at_most(cls, id: str, text: str, value: float, target: float) -> Claim:
        ok = bool(math.isfinite(value) and value <= target)
        return cls(id, text, float(value), float(target), ok, kind="at_most")

    @classmethod
    def within(cls, id: str, text: str, value: float, target: float, tolerance: float) -> Claim:
        ok = math.isfinite(value) and abs(value - target) <= tolerance
        return cls(id, text, float(value), float(target), bool(ok), kind="within", tolerance=float(tolerance))

    @classmethod
    def beats(
        cls,
        id: str,
        text: str,
        a: Sequence[float],
        b: Sequence[float] | None = None,
        margin: float = 0.0,
        *,
        higher_is_better: bool = True,
        level: float = 0.95,
    ) -> Claim:
        """ "A beats B by `margin`" over paired seeds: `a`, `b` per seed in the same order (`b=None`: `a` holds the
        differences). With `higher_is_better=False` the improvement is b - a. Decided by the t interval."""
        a = [float(x) for x in a]
        diffs = a if b is None else [x - float(y) for x, y in zip(a, b, strict=True)]
        if not higher_is_better:
            diffs = [-d for d in diffs]
        p = paired(diffs, level=level)
        v = verdict(p.ci_low, p.ci_high, margin)
        return cls(
            id,
            text,
            p.mean,
            float(margin),
            v == "holds",
            kind="paired",
            verdict=v,
            ci_low=p.ci_low,
            ci_high=p.ci_high,
            n=p.n,
            wins=p.wins,
            values_per_seed=diffs,
        )


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


def outcome_to_json(outcome: BenchOutcome) -> dict[str, Any]:
    """A BenchOutcome as plain JSON data (a non-finite number kept as its string, "nan": JSON has no NaN)."""

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)
        return value

    return plain(json.loads(json.dumps(asdict(outcome), default=_json_default)))


def outcome_from_json(data: dict[str, Any]) -> BenchOutcome:
    """The inverse of `outcome_to_json`."""

    def num(value: Any) -> Any:
        return float(value) if value in ("nan", "inf", "-inf") else value

    rows = [Row(**{**r, "metrics": {k: num(v) for k, v in r["metrics"].items()}}) for r in data["rows"]]
    claims = [Claim(**{**c, "value": num(c["value"])}) for c in data["claims"]]
    return BenchOutcome(DataInfo(**data["data"]), rows, claims, data.get("extra", {}))


def _meets(kind: str, value: float, target: float, tolerance: float | None) -> bool:
    if not math.isfinite(value):
        return False
    if kind == "at_most":
        return value <= target
    if kind == "within":
        return abs(value - target) <= (tolerance or 0.0)
    if kind == "paired":  # A beats B by the margin on this seed: strictly, as `paired` counts wins
        return value > target
    return value >= target


def merge_claims(per_seed: Sequence[Sequence[Claim]], level: float = 0.95) -> list[Claim]:
    """One claim per id, decided on the interval of its per-seed values (claim order: first seed's)."""
    by_id: dict[str, list[Claim]] = {}
    for claims in per_seed:
        for claim in claims:
            by_id.setdefault(claim.id, []).append(claim)
    merged = []
    for claims in by_id.values():
        first = claims[0]
        values = [c.value for c in claims]
        # Each seed's own value (a paired difference, a ratio, ...): its interval decides the claim.
        p = paired(values, level=level, higher_is_better=first.kind != "at_most")
        v = claim_verdict(first.kind, p, first.target, first.tolerance)
        # A seed is won when its own value is on the claim's side of the target (the plain comparison of
        # Claim.at_least / at_most / within), whatever the per-call verdict was: a call that decided on an
        # interval over one inner seed is `undecided` by construction and must not count as a loss.
        wins = sum(_meets(first.kind, c.value, first.target, first.tolerance) for c in claims)
        merged.append(
            replace(
                first,
                value=p.mean,
                holds=v == "holds",
                verdict=v,
                ci_low=p.ci_low,
                ci_high=p.ci_high,
                n=p.n,
                wins=wins,
                values_per_seed=values,
            )
        )
    return merged


def merge_outcomes(outcomes: Sequence[BenchOutcome], seeds: Sequence[int], level: float = 0.95) -> BenchOutcome:
    """N single-seed outcomes -> one: rows averaged with `metrics_per_seed`, claims decided over seeds.

    Rows are matched by method name and their position among rows of that name, so a bench that measures one
    method in several settings (several rows with one name) merges setting by setting.
    """
    if len(outcomes) != len(seeds) or not outcomes:
        raise ValueError(f"merge_outcomes: {len(outcomes)} outcomes for {len(seeds)} seeds")
    keyed: dict[tuple[str, int], list[Row]] = {}
    order: list[tuple[str, int]] = []
    for outcome in outcomes:
        seen: dict[str, int] = {}
        for row in outcome.rows:
            key = (row.method, seen.get(row.method, 0))
            seen[row.method] = key[1] + 1
            if key not in keyed:
                keyed[key] = []
                order.append(key)
            keyed[key].append(row)
    rows = []
    for key in order:
        group = keyed[key]
        names = list(dict.fromkeys(m for row in group for m in row.metrics))
        per_seed = {m: [row.metrics.get(m, math.nan) for row in group] for m in names}
        means = {m: _finite_mean(v) for m, v in per_seed.items()}
        rows.append(
            Row(
                method=key[0],
                metrics=means,
                params={**group[0].params, "seeds": list(seeds)},
                seconds=sum(row.seconds for row in group),
                metrics_per_seed=per_seed,
            )
        )
    extra: dict[str, Any] = {"seeds": list(seeds)}
    if any(o.extra for o in outcomes):
        extra["per_seed"] = {str(s): o.extra for s, o in zip(seeds, outcomes, strict=True)}
    claims = merge_claims([o.claims for o in outcomes], level)
    return BenchOutcome(data=outcomes[0].data, rows=rows, claims=claims, extra=extra)


def _finite_mean(values: Sequence[float]) -> float:
    finite = [v for v in values if isinstance(v, int | float) and math.isfinite(v)]
    return statistics.fmean(finite) if finite else math.nan


def environment(device: torch.device | str = "cpu") -> dict[str, Any]:
    """What decides a run's floating-point path: versions, threads, BLAS, CPU features, determinism settings.

    Bitwise equality across machines is not expected (a different BLAS kernel or thread count changes summation
    order); this record says which path a committed number took, so `tailorkit reproduce --check` can explain a
    difference.
    """
    import torch  # lazily: the CLI's parser and --help should not pay for importing torch

    env: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cpu_features": _cpu_features(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "libraries": _library_versions(),
        "blas": _blas_info(),
        "env": {k: os.environ[k] for k in _FP_ENV if k in os.environ},
    }
    if str(device).startswith("cuda") and torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(torch.device(device))
        env["cuda"] = torch.version.cuda
    return env


# Environment variables that change which kernels run or how many threads sum a reduction.
_FP_ENV = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
    "NUMBA_NUM_THREADS",
    "CUBLAS_WORKSPACE_CONFIG",
    "ATEN_CPU_CAPABILITY",
)
_FEATURES = ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "amx_tile", "asimd", "sve")


def _cpu_info() -> dict[str, str]:
    info: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    return info


def _cpu_model() -> str:
    info = _cpu_info()
    return info.get("model name") or info.get("CPU part") or platform.processor() or "unknown"


def _cpu_features() -> list[str]:
    info = _cpu_info()
    flags = set((info.get("flags") or info.get("Features") or "").split())
    return [f for f in _FEATURES if f in flags]


def _library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("numpy", "scipy", "numba", "transformers"):
        with contextlib.suppress(PackageNotFoundError):
            out[name] = version(name)
    return out


def _blas_info() -> list[dict[str, Any]]:
    """threadpoolctl's view of the BLAS / OpenMP pools loaded so far (kernel family and thread count)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keys = ("internal_api", "version", "num_threads", "architecture", "threading_layer")
    return [{k: pool[k] for k in keys if pool.get(k) is not None} for pool in threadpool_info()]


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
        "rows": [_row_document(r) for r in outcome.rows],
        "claims": [_claim_document(c) for c in outcome.claims],
    }
    if outcome.extra:
        doc["extra"] = outcome.extra
    validate_bench(doc)
    return doc


def finite_or_none(value: Any) -> Any:
    """JSON has no NaN: an undefined per-seed value (a metric a seed could not measure) becomes null."""
    return value if value is None or math.isfinite(value) else None


def _row_document(row: Row) -> dict[str, Any]:
    doc = asdict(row)
    if row.metrics_per_seed is None:
        del doc["metrics_per_seed"]
    else:
        doc["metrics_per_seed"] = {k: [finite_or_none(x) for x in v] for k, v in row.metrics_per_seed.items()}
    return doc


def _claim_document(claim: Claim) -> dict[str, Any]:
    doc = asdict(claim)
    if claim.values_per_seed is None:
        del doc["values_per_seed"]
    else:
        doc["values_per_seed"] = [finite_or_none(x) for x in claim.values_per_seed]
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
        if "metrics_per_seed" in row:  # optional (documents from several paired seeds)
            per_seed = need(row, "metrics_per_seed", dict, where)
            for name, values in (per_seed or {}).items():
                if not isinstance(values, list) or not all(_number_or_null(v) for v in values):
                    problems.append(f"{where}.metrics_per_seed.{name}: expected a list of numbers or nulls")
    if rows is not None and not rows:
        problems.append("bench.rows: expected at least one measured row")
    claims = need(doc, "claims", list, "bench")
    for i, claim in enumerate(claims or []):
        where = f"claims[{i}]"
        need(claim, "id", str, where)
        need(claim, "text", str, where)
        need(claim, "value", (int, float), where)
        need(claim, "target", (int, float), where)
        holds = need(claim, "holds", bool, where)
        # The evidence fields are optional: documents written before them carry `holds` alone.
        if "verdict" in claim:
            verdict = need(claim, "verdict", str, where)
            if verdict is not None and verdict not in VERDICTS:
                problems.append(f"{where}.verdict: expected one of {VERDICTS}, got {verdict!r}")
            elif verdict is not None and holds is not None and holds != (verdict == "holds"):
                problems.append(f"{where}: holds={holds} contradicts verdict {verdict!r}")
        for key in ("ci_low", "ci_high"):
            if key in claim and not _number_or_null(claim[key]):
                problems.append(f"{where}.{key}: expected a number or null, got {type(claim[key]).__name__}")
        for key in ("n", "wins"):
            if key in claim and claim[key] is not None:
                need(claim, key, int, where)
    if problems:
        raise ValueError("bench document does not follow the contract: " + "; ".join(problems))


def _number_or_null(value: Any) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


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
