"""Errors caused by the user's input or environment, told apart from bugs.

The policy (docs/architecture.md, "Errors"): an error caused by what the user gave or where they run (a file that
is missing, unreadable, truncated or of the wrong format; a bad value; NaN data; the wrong dimensionality; an output
location that exists or cannot be written; an empty pool; a missing folder) is an *input error*. The command line
prints it as one line naming the file or value and the expected form, and exits with status 2. Anything else is a
bug: the traceback is printed with a request to report it.

- Library code raises `InputError` (a ValueError, so callers that catch ValueError keep working) or a subclass.
- The older per-subsystem classes (VolumeError, FilmIOError, PatchError, ...) are input errors too: they are listed
  in `INPUT_ERROR_NAMES` and recognised without importing their subsystem.
- An `OSError` on a path (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError,
  FileExistsError, a full disk) is an input error; `describe` turns it into one line that names the path.
- `check_output_file` / `check_output_dir` validate an output location before any work, without creating
  anything, so a command fails in a second rather than after an hour of training.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from pathlib import Path

__all__ = [
    "INPUT_ERROR_NAMES",
    "InputError",
    "check_input_dir",
    "check_input_file",
    "check_output_dir",
    "check_output_file",
    "check_safetensors",
    "describe",
    "is_input_error",
]


class InputError(ValueError):
    """Bad input or environment; the message names the file or value and the expected form (one line)."""


# "module:Class" of the error classes that predate InputError and mean the same; a class is looked up only if its
# module is already imported (an exception of that class cannot exist otherwise), so nothing heavy loads here.
INPUT_ERROR_NAMES = (
    "tailorkit.core.config:ConfigError",
    "tailorkit.core.registry:RegistryError",
    "tailorkit.data.volumes:VolumeError",
    "tailorkit.data.idx:IdxFormatError",
    "tailorkit.data.mrc:MrcFormatError",
    "tailorkit.films.io:FilmIOError",
    "tailorkit.patching.engine:PatchError",
    "tailorkit.video.io:VideoError",
    "tailorkit.active.loop:LoopStateError",
)

# OSError numbers that come from the user's paths or machine (not from a bug in the code).
_PATH_ERRNOS = {
    errno.ENOENT: "not found",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EEXIST: "already exists",
    errno.EISDIR: "is a folder; expected a file",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EROFS: "read-only file system",
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.ENAMETOOLONG: "file name too long",
    errno.ELOOP: "too many symbolic links",
}
_PATH_OSERRORS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError)


def _classes() -> tuple[type[BaseException], ...]:
    found: list[type[BaseException]] = [InputError]
    for name in INPUT_ERROR_NAMES:
        module, _, attr = name.partition(":")
        cls = getattr(sys.modules.get(module), attr, None)
        if isinstance(cls, type) and issubclass(cls, BaseException):
            found.append(cls)
    return tuple(found)


def is_input_error(err: BaseException) -> bool:
    """True for an error caused by the user's input or environment (see the module docstring)."""
    if isinstance(err, _PATH_OSERRORS):  # raised by our own checks with a message, or by the OS on a path
        return True
    if isinstance(err, OSError):
        return err.errno in _PATH_ERRNOS or err.filename is not None
    return isinstance(err, _classes())


def describe(err: BaseException) -> str:
    """One line for an input error: the path (for OSError) and what went wrong, whitespace collapsed."""
    if isinstance(err, OSError) and not isinstance(err, InputError):
        what = _PATH_ERRNOS.get(err.errno or 0) or err.strerror or str(err)
        where = err.filename if err.filename is not None else ""
        extra = f" -> {err.filename2}" if getattr(err, "filename2", None) else ""
        text = f"{where}{extra}: {what}" if where else what
    else:
        text = str(err)
        if isinstance(err, KeyError) and len(err.args) == 1 and isinstance(err.args[0], str):
            text = err.args[0]  # KeyError's str() quotes its message
    return " ".join(text.split())


def _nearest_existing(path: Path) -> Path:
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _probe_writable(folder: Path) -> bool:
    """True if a file can be created in `folder` (tried for real: os.access says yes to root on /proc or /sys)."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    probe = folder / f".tailorkit-write-probe-{os.getpid()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError:
        return False
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    return True


def _check_parent(path: Path, what: str, expected: str) -> None:
    base = _nearest_existing(path.parent)
    if not base.is_dir():
        raise InputError(f"{what} {path}: {base} is a file, not a folder; expected {expected}")
    if not _probe_writable(base):
        raise InputError(f"{what} {path}: cannot write into {base}; expected {expected} in a writable folder")


def check_output_file(path: str | os.PathLike[str], *, what: str = "--out", overwrite: bool = True) -> Path:
    """Validate that `path` can be written as a file; create nothing.

    Raises:
        InputError: `path` is a folder, exists while `overwrite` is False, sits under a file, or its nearest existing
            folder is not writable.
    """
    p = Path(path)
    expected = "a file path"
    if p.is_dir():
        raise InputError(f"{what} {p}: is a folder; expected {expected}")
    if p.exists() and not overwrite:
        raise InputError(f"{what} {p}: already exists; expected a new file (remove it or choose another name)")
    _check_parent(p, what, expected)
    return p


def check_output_dir(path: str | os.PathLike[str], *, what: str = "--out", must_be_new: bool = False) -> Path:
    """Validate that `path` can be (or already is) a writable output folder; create nothing.

    Raises:
        InputError: `path` is an existing file, exists while `must_be_new`, sits under a file, or cannot be written.
    """
    p = Path(path)
    expected = "a folder path"
    if p.exists() and not p.is_dir():
        raise InputError(f"{what} {p}: is an existing file; expected {expected}")
    if p.is_dir():
        if must_be_new:
            raise InputError(f"{what} {p}: already exists; expected a new folder")
        if not _probe_writable(p):
            raise InputError(f"{what} {p}: the folder is not writable; expected a writable folder")
        return p
    _check_parent(p, what, expected)
    return p


def check_input_file(path: str | os.PathLike[str], expected: str, *, what: str = "") -> Path:
    """`path` must be an existing, readable, non-empty file; `expected` says what it should be."""
    p = Path(path)
    label = f"{what} {p}" if what else str(p)
    if not p.exists():
        raise InputError(f"{label}: not found; expected {expected}")
    if p.is_dir():
        raise InputError(f"{label}: is a folder; expected {expected}")
    if not os.access(p, os.R_OK):
        raise InputError(f"{label}: not readable; expected {expected}")
    if p.stat().st_size == 0:
        raise InputError(f"{label}: the file is empty; expected {expected}")
    return p


def check_input_dir(path: str | os.PathLike[str], expected: str, *, what: str = "") -> Path:
    """`path` must be an existing folder; `expected` says what it should hold."""
    p = Path(path)
    label = f"{what} {p}" if what else str(p)
    if not p.exists():
        raise InputError(f"{label}: not found; expected {expected}")
    if not p.is_dir():
        raise InputError(f"{label}: is a file; expected {expected}")
    return p


def check_safetensors(path: str | os.PathLike[str], *, what: str = "") -> Path:
    """`path` must be a complete safetensors file (header and data sizes agree); reads only the header."""
    expected = "a complete .safetensors file"
    p = check_input_file(path, expected, what=what)
    from safetensors import safe_open

    try:
        with safe_open(str(p), framework="pt") as handle:
            handle.keys()
    except Exception as err:  # safetensors raises its own SafetensorError (and OSError) for damaged files
        label = f"{what} {p}" if what else str(p)
        raise InputError(f"{label}: not a readable safetensors file ({err}); expected {expected}") from None
    return p
