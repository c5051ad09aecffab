"""One HDF5 file per run: config and provenance as attributes, checkpointed state, observables and summary.

Layout: attrs {format, config_json, config_hash, seed, status, provenance...}; /state (every dynamical array of
FilmState, attrs next_obs, wall_s, cpu_s); /init (pos0, layer0, nb0); /obs (t, events, wall, and [n_obs, n_layers]
fs, msd, bond, hops, voids, relaxed, plus ebond[n_obs]); /summary (per-layer tau, beta, ... and scalars as attrs).
Files are written whole to a temporary name and renamed (os.replace): an interrupted write leaves the previous
checkpoint intact, so a run can always resume from its last valid checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import secrets
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from tailorkit.core.config import ConfigError, from_dict
from tailorkit.films.config import FilmConfig, config_hash, config_json
from tailorkit.films.state import DYNAMIC, FilmState, empty_state

FORMAT = "tailorkit.films/1"


class FilmIOError(ValueError):
    """A run file that is missing, corrupt, of another format or of another config."""


def provenance() -> dict[str, str]:
    import h5py as _h5py
    import numba

    from tailorkit import __version__

    commit = "unknown"
    with contextlib.suppress(Exception):
        commit = (
            subprocess.run(
                ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
            ).stdout.strip()
            or "unknown"
        )
    return {
        "tailorkit": __version__,
        "numpy": np.__version__,
        "numba": numba.__version__,
        "h5py": _h5py.__version__,
        "python": platform.python_version(),
        "host": platform.node(),
        "git_commit": commit,
        "written": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def write_run(
    path: str | os.PathLike[str],
    *,
    state: FilmState,
    init: dict[str, np.ndarray],
    obs: dict[str, np.ndarray],
    status: str,
    next_obs: int,
    wall_s: float,
    cpu_s: float,
    summary: dict[str, Any] | None = None,
) -> Path:
    """Write the whole run file atomically (temporary file in the same folder, then os.replace)."""
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["config_json"] = config_json(state.config)
            f.attrs["config_hash"] = config_hash(state.config)
            f.attrs["seed"] = state.config.run.seed
            f.attrs["status"] = status
            for key, value in provenance().items():
                f.attrs[key] = value
            g = f.create_group("state")
            for name, arr in state.arrays().items():
                g.create_dataset(name, data=arr)
            g.attrs["next_obs"] = next_obs
            g.attrs["wall_s"] = wall_s
            g.attrs["cpu_s"] = cpu_s
            gi = f.create_group("init")
            for name, arr in init.items():
                gi.create_dataset(name, data=arr)
            go = f.create_group("obs")
            for name, arr in obs.items():
                go.create_dataset(name, data=np.asarray(arr))
            if summary:
                gs = f.create_group("summary")
                for name, value in summary.items():
                    if isinstance(value, np.ndarray | list | tuple):
                        gs.create_dataset(name, data=np.asarray(value, dtype=float))
                    else:
                        gs.attrs[name] = value
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return dest


def _open(path: str | os.PathLike[str]) -> h5py.File:
    p = Path(path)
    if not p.is_file():
        raise FilmIOError(f"run file {str(p)!r} not found")
    try:
        f = h5py.File(p, "r")
    except OSError as err:
        raise FilmIOError(f"run file {str(p)!r} is not a readable HDF5 file (corrupt or truncated): {err}") from err
    if f.attrs.get("format") != FORMAT:
        f.close()
        raise FilmIOError(f"run file {str(p)!r}: expected format {FORMAT!r}, got {f.attrs.get('format')!r}")
    return f


def read_config(path: str | os.PathLike[str]) -> FilmConfig:
    with _open(path) as f:
        try:
            return from_dict(FilmConfig, json.loads(str(f.attrs["config_json"])))
        except (KeyError, json.JSONDecodeError, ConfigError) as err:
            raise FilmIOError(f"run file {str(path)!r}: stored config unreadable: {err}") from err


def load_run(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Everything in a run file as plain Python/numpy: attrs, config, init, obs, summary, state."""
    config = read_config(path)
    with _open(path) as f:
        try:
            out: dict[str, Any] = {"attrs": {k: _plain(v) for k, v in f.attrs.items()}, "config": config}
            for group in ("init", "obs", "state"):
                out[group] = {k: np.asarray(v) for k, v in f[group].items()}
            out["state_attrs"] = {k: _plain(v) for k, v in f["state"].attrs.items()}
            summary: dict[str, Any] = {}
            if "summary" in f:
                summary = {k: np.asarray(v) for k, v in f["summary"].items()}
                summary.update({k: _plain(v) for k, v in f["summary"].attrs.items()})
            out["summary"] = summary
        except (KeyError, OSError) as err:
            raise FilmIOError(f"run file {str(path)!r} is incomplete or corrupt: {err}") from err
    return out


def restore_state(path: str | os.PathLike[str], config: FilmConfig | None = None) -> tuple[FilmState, dict[str, Any]]:
    """The checkpointed FilmState (and the loaded file); `config`, if given, must match the stored one exactly."""
    run = load_run(path)
    stored: FilmConfig = run["config"]
    if config is not None and config_hash(config) != config_hash(stored):
        raise FilmIOError(
            f"checkpoint {str(path)!r} belongs to another config (hash {config_hash(stored)}, this config "
            f"{config_hash(config)}); resume with the stored config or start a new file"
        )
    state = empty_state(stored)
    for name in DYNAMIC:
        saved = run["state"].get(name)
        current = getattr(state, name)
        if saved is None or saved.shape != current.shape or saved.dtype != current.dtype:
            got = None if saved is None else (saved.shape, str(saved.dtype))
            raise FilmIOError(
                f"checkpoint {str(path)!r}: state/{name} expected {current.shape} {current.dtype}, got {got}"
            )
        current[...] = saved
    return state, run


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value
