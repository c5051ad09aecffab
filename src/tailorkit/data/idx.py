"""Reader and writer for the IDX format (MNIST, Fashion-MNIST, EMNIST, ...).

The format (LeCun et al., "THE MNIST DATABASE of handwritten digits", file format section):

```
bytes 0-1   0x00 0x00
byte  2     dtype code: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64
byte  3     ndim (>= 1)
then        ndim big-endian uint32 sizes, outermost first
then        the data, big-endian, C order
```

Gzip-compressed files (how the datasets are distributed: ``train-images-idx3-ubyte.gz``) are recognised by the
gzip magic bytes ``1f 8b``, never by the file name, so a renamed or extension-less file still reads.

Every malformed input raises `IdxFormatError` (a `ValueError`) naming the file, the problem and the expected form;
no `struct`, `gzip`, `zlib`, `EOFError` or numpy exception escapes for bad content. A missing file still raises
`FileNotFoundError`: that is not a format problem. The data length must match the header exactly: a truncated
file and a file with trailing bytes are both errors, because either means the header and the data disagree.
The data size a header implies is checked against the bytes actually present before anything is allocated, so a
corrupt header claiming petabytes fails at once instead of exhausting memory.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import struct
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np

from tailorkit.core.results import atomic_open

__all__ = ["IdxFormatError", "read_idx", "readinto_fully", "to_native_inplace", "write_idx"]

_GZIP_MAGIC = b"\x1f\x8b"
# Decompressed data is read in pieces of this size, so memory grows with the bytes that really exist rather than
# with what a (possibly corrupt) header claims.
_CHUNK = 1 << 24

# Big-endian on-disk dtypes, keyed by the IDX type code.
_DTYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES: dict[np.dtype[Any], int] = {dt.newbyteorder("="): code for code, dt in _DTYPES.items()}
_EXPECTED_CODES = ", ".join(f"0x{code:02X} ({dt.newbyteorder('=').name})" for code, dt in _DTYPES.items())
_GZIP_ERRORS = (gzip.BadGzipFile, EOFError, zlib.error)


class IdxFormatError(ValueError):
    """An IDX file (or byte string) that does not follow the format; the message names file, problem and form."""


def read_idx(source: str | os.PathLike[str] | bytes) -> np.ndarray:
    """Read an IDX array from a file or from the file's bytes, gzip-compressed or not.

    Args:
        source: A path to an IDX file, or the file's content as bytes. Compression is detected from the gzip
            magic bytes, not from the name.

    Returns:
        A new, writable, native-endian array with the header's shape and dtype.

    Raises:
        IdxFormatError: The content is not a well-formed IDX file: bad magic, unknown dtype code, zero ndim,
            truncated header, data length not exactly the header's, or a corrupt gzip stream.
        FileNotFoundError: The path does not exist.

    Shapes:
        Whatever the header declares, e.g. (60000, 28, 28) for Fashion-MNIST training images.
    """
    if isinstance(source, bytes | bytearray | memoryview):
        raw = bytes(source)
        with io.BytesIO(raw) as stream:
            return _read_stream(stream, "<bytes>", len(raw))
    name = os.fspath(source)
    with open(name, "rb") as f:
        return _read_stream(f, name, os.fstat(f.fileno()).st_size)


def write_idx(path: str | os.PathLike[str], array: np.ndarray, *, compress: bool | None = None) -> None:
    """Write an array as an IDX file, atomically (a temporary file in the same folder, then `os.replace`).

    Args:
        path: Destination file; replaced if it exists. Readers never see a half-written file.
        array: Array of dtype uint8, int8, int16, int32, float32 or float64 (any byte order), 1 to 255 dims,
            each size below 2**32.
        compress: Gzip the file. None (default) compresses exactly when the name ends in ``.gz``.

    Raises:
        IdxFormatError: The array's dtype or shape cannot be expressed in IDX (nothing is written).
    """
    arr = np.asarray(array)
    dest = os.fspath(path)
    code = _CODES.get(arr.dtype.newbyteorder("="))
    if code is None:
        raise IdxFormatError(
            f"{dest}: cannot write dtype {arr.dtype} as IDX; expected one of {_EXPECTED_CODES} "
            f"(convert first, e.g. array.astype(np.uint8))"
        )
    if not 1 <= arr.ndim <= 255:
        raise IdxFormatError(f"{dest}: cannot write a {arr.ndim}-d array as IDX; expected 1 to 255 dimensions")
    if any(size >= 2**32 for size in arr.shape):
        raise IdxFormatError(f"{dest}: shape {arr.shape} has a size >= 2**32; IDX stores sizes as uint32")
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    data = np.ascontiguousarray(arr, dtype=_DTYPES[code]).reshape(-1).view(np.uint8)
    if compress is None:
        compress = dest.endswith(".gz")
    with atomic_open(dest) as f:
        if compress:
            # mtime=0 keeps the bytes a function of the array alone, so rewriting identical data is reproducible.
            with gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0) as gz:
                gz.write(header)
                gz.write(data.data)
        else:
            f.write(header)
            f.write(data.data)


def _read_stream(stream: io.BufferedIOBase, name: str, total: int) -> np.ndarray:
    """Dispatch on the first two bytes: gzip stream or plain IDX."""
    head = stream.read(2)
    stream.seek(0)
    if head == _GZIP_MAGIC:
        return _read_gzip(stream, name)
    return _read_plain(stream, name, total)


def _read_plain(stream: io.BufferedIOBase, name: str, total: int) -> np.ndarray:
    """Read an uncompressed IDX stream of known total length."""
    dtype, shape, header_len = _parse_header(lambda n: _read_upto(stream.read, n), name)
    expected = math.prod(shape) * dtype.itemsize
    # Compared before allocating: `expected` may be astronomically large for a corrupt header.
    _check_length(name, shape, dtype, expected, total - header_len)
    _check_representable(name, shape, dtype)
    arr = np.empty(math.prod(shape), dtype=dtype)
    got = readinto_fully(stream, arr.view(np.uint8).data)
    if got != expected:  # the file changed under us between stat and read
        _check_length(name, shape, dtype, expected, got)
    return to_native_inplace(arr).reshape(shape)


def _read_gzip(stream: io.BufferedIOBase, name: str) -> np.ndarray:
    """Read a gzip-compressed IDX stream; its decompressed length is unknown until it has been read."""
    label = f"{name} (gzip-decompressed)"
    with gzip.GzipFile(fileobj=stream, mode="rb") as gz:

        def read(n: int) -> bytes:
            try:
                return _read_upto(gz.read, n)
            except _GZIP_ERRORS as exc:
                raise IdxFormatError(
                    f"{name}: corrupt gzip stream ({exc}); expected a valid gzip-compressed IDX file"
                ) from exc

        dtype, shape, _ = _parse_header(read, label)
        expected = math.prod(shape) * dtype.itemsize
        chunks: list[bytes] = []
        got = 0
        while got < expected:
            chunk = read(min(_CHUNK, expected - got))
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        # Read on to the end even when the data is complete: trailing bytes are an error, and gzip only verifies
        # its CRC once the end of the stream is reached.
        extra = 0
        while chunk := read(_CHUNK):
            extra += len(chunk)
    _check_length(label, shape, dtype, expected, got + extra)
    _check_representable(label, shape, dtype)
    flat = np.frombuffer(b"".join(chunks), dtype=dtype)
    # astype copies, which also makes the result writable (frombuffer over bytes is read-only).
    return flat.astype(dtype.newbyteorder("=")).reshape(shape)


def _parse_header(read: Callable[[int], bytes], label: str) -> tuple[np.dtype[Any], tuple[int, ...], int]:
    """Parse magic and sizes; return (on-disk dtype, shape, header length in bytes)."""
    magic = read(4)
    if len(magic) < 4:
        raise IdxFormatError(
            f"{label}: only {len(magic)} bytes; expected an IDX file starting with the 4-byte magic number "
            f"00 00 <dtype code> <ndim>"
        )
    if magic[:2] != b"\x00\x00":
        raise IdxFormatError(
            f"{label}: bad magic bytes {magic.hex(' ')}; expected an IDX file starting 00 00 <dtype code> <ndim> "
            f"(or a gzip stream starting 1f 8b)"
        )
    code, ndim = magic[2], magic[3]
    dtype = _DTYPES.get(code)
    if dtype is None:
        raise IdxFormatError(f"{label}: unknown IDX dtype code 0x{code:02X}; expected one of {_EXPECTED_CODES}")
    if ndim == 0:
        raise IdxFormatError(f"{label}: ndim is 0; expected at least 1 dimension (byte 3 of the magic number)")
    header_len = 4 + 4 * ndim
    dims = read(4 * ndim)
    if len(dims) < 4 * ndim:
        raise IdxFormatError(
            f"{label}: header declares {ndim} dimensions, needing {header_len} header bytes; found {4 + len(dims)}"
        )
    return dtype, struct.unpack(f">{ndim}I", dims), header_len


def _check_length(label: str, shape: tuple[int, ...], dtype: np.dtype[Any], expected: int, found: int) -> None:
    if found == expected:
        return
    problem = "the file is truncated" if found < expected else f"{found - expected} trailing bytes"
    raise IdxFormatError(
        f"{label}: expected {expected} data bytes for shape {shape} {dtype.newbyteorder('=').name}, "
        f"found {found} ({problem})"
    )


def _check_representable(label: str, shape: tuple[int, ...], dtype: np.dtype[Any]) -> None:
    """Refuse an empty shape whose other sizes overflow numpy's limit (numpy checks the product without the zeros)."""
    if math.prod(size for size in shape if size) * dtype.itemsize > np.iinfo(np.intp).max:
        raise IdxFormatError(
            f"{label}: shape {shape} {dtype.newbyteorder('=').name} has no elements, but its nonzero sizes multiply "
            f"past numpy's limit of {np.iinfo(np.intp).max} bytes; expected sizes numpy can represent"
        )


def _read_upto(read: Callable[[int], bytes], n: int) -> bytes:
    """Read exactly `n` bytes, or fewer only at end of stream (one `read` call may legally return less)."""
    parts: list[bytes] = []
    remaining = n
    while remaining > 0:
        part = read(remaining)
        if not part:
            break
        parts.append(part)
        remaining -= len(part)
    return b"".join(parts)


def readinto_fully(stream: io.BufferedIOBase, buf: memoryview) -> int:
    """Fill `buf` from `stream`; return the number of bytes read (less than len(buf) only at end of stream)."""
    filled = 0
    while filled < len(buf):
        n = stream.readinto(buf[filled:])
        if not n:
            break
        filled += n
    return filled


def to_native_inplace(arr: np.ndarray) -> np.ndarray:
    """Return `arr` in native byte order, swapping in place so no second copy of the data is made."""
    if arr.dtype.isnative:
        return arr
    arr.byteswap(inplace=True)
    return arr.view(arr.dtype.newbyteorder("="))
