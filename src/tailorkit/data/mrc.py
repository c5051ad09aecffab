"""Reader and writer for MRC volumes (CCP-EM MRC2014), as used for the LiTS CT in liver-ct-segmentation-package.

Format (Cheng et al., "MRC2014: Extensions to the MRC format header for electron cryo-microscopy and
tomography", J. Struct. Biol. 192 (2015); https://www.ccpem.ac.uk/mrc_format/mrc2014.php): a 1024-byte main
header of 4-byte words, then `nsymbt` bytes of extended header, then the data with x (columns) fastest. The
fields this module uses:

```
bytes   0-15   nx, ny, nz, mode (int32)        28-39  mx, my, mz (int32, sampling along each cell edge)
bytes  40-51   cella x, y, z (float32, Å)      64-75  mapc, mapr, maps (int32, axis order)
bytes  76-87   dmin, dmax, dmean (float32)     88-95  ispg, nsymbt (int32)
bytes 152-159  IMOD stamp and flags            196-207 origin x, y, z (float32)
bytes 208-211  "MAP "                          212-215 machine stamp: 44 44 00 00 little / 11 11 00 00 big endian
bytes 216-223  rms (float32), nlabl (int32)    224-1023 ten 80-character text labels
```

Modes read and written: 0 int8, 1 int16, 2 float32, 6 uint16, 12 float16. Complex modes 3 and 4 and packed
4-bit mode 101 are refused with a clear error rather than misread.

Decisions (deliberate, and tested):

- Arrays are returned in file order, shaped (nz, ny, nx) = (sections, rows, columns), native-endian, exactly like
  the `mrcfile` package. mapc/mapr/maps are reported in `MrcHeader.axis_order` but not applied: every writer in
  practice uses (1, 2, 3), and silently transposing would surprise users comparing against mrcfile.
- The machine stamp decides byte order. When it is zero or unrecognised (many old writers leave it blank), the
  byte order under which the header predicts the file's exact size wins; failing that, the one giving a known
  mode; failing that, little-endian.
- A missing "MAP " identifier (files from before MRC2000) is accepted, because every other field is still
  validated and the data length must match exactly, but a `MrcFormatWarning` is issued so users can tell.
- Mode 0 is signed int8 as MRC2014 says, except when the IMOD stamp is present without IMOD's "signed bytes"
  flag, where IMOD's convention (unsigned bytes) is honoured, so IMOD-written uint8 volumes are not mangled.
- `voxel_size` is cella / mx per axis; 0.0 where the file records no cell (cella = 0, as mrcfile writes by
  default and as in the LiTS files) or mx is not positive.
- The data length must equal nx*ny*nz*itemsize exactly after the extended header: truncated files and trailing
  bytes are both errors. The size check precedes any allocation, so a corrupt header cannot exhaust memory.
"""

from __future__ import annotations

import math
import os
import struct
import warnings
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from tailorkit.core.results import atomic_open
from tailorkit.data.idx import readinto_fully, to_native_inplace

__all__ = ["MrcFormatError", "MrcFormatWarning", "MrcHeader", "read_mrc", "read_mrc_header", "write_mrc"]

HEADER_BYTES = 1024
_MODES: dict[int, np.dtype[Any]] = {
    0: np.dtype(np.int8),
    1: np.dtype(np.int16),
    2: np.dtype(np.float32),
    6: np.dtype(np.uint16),
    12: np.dtype(np.float16),
}
_MODE_OF: dict[np.dtype[Any], int] = {dt: mode for mode, dt in _MODES.items()}
_UNSUPPORTED_MODES = {3: "complex int16", 4: "complex float32", 101: "4-bit packed"}
_EXPECTED_MODES = ", ".join(f"{mode} ({dt.name})" for mode, dt in _MODES.items())
_IMOD_STAMP = 1146047817  # "IMOD" read as a little-endian int32
_IMOD_SIGNED_BYTES = 1
_STAMPS: dict[int, Literal["<", ">"]] = {0x44: "<", 0x11: ">"}  # first byte of the machine stamp decides
_MAX_SIZE = 2**31 - 1


class MrcFormatError(ValueError):
    """An MRC file that does not follow the format; the message names file, problem and expected form."""


class MrcFormatWarning(UserWarning):
    """A readable MRC file that departs from MRC2014 in a tolerated way (e.g. no "MAP " identifier)."""


@dataclass(frozen=True)
class MrcHeader:
    """The main-header fields of an MRC file that matter for reading its data.

    Attributes:
        nx: Columns (fastest-varying axis).
        ny: Rows.
        nz: Sections (slowest-varying axis).
        mode: MRC data mode (0, 1, 2, 6 or 12).
        dtype: Native-endian numpy dtype of the data.
        voxel_size: Voxel size along (x, y, z) in Å (or whatever unit the writer used): cella / (mx, my, mz);
            0.0 where the file records no cell.
        origin: Origin (x, y, z) from bytes 196-207.
        nsymbt: Length in bytes of the extended header that follows the 1024-byte main header.
        endianness: "<" little or ">" big, from the machine stamp (or inferred when the stamp is blank).
        axis_order: (mapc, mapr, maps): which axis (1=x, 2=y, 3=z) runs along columns, rows, sections.
        dmin: Minimum density recorded in the header (not recomputed).
        dmax: Maximum density recorded in the header.
        dmean: Mean density recorded in the header.
        has_map_id: Whether bytes 208-211 hold "MAP " (absent in pre-MRC2000 files).
        labels: The non-empty text labels.
    """

    nx: int
    ny: int
    nz: int
    mode: int
    dtype: np.dtype[Any]
    voxel_size: tuple[float, float, float]
    origin: tuple[float, float, float]
    nsymbt: int
    endianness: Literal["<", ">"]
    axis_order: tuple[int, int, int]
    dmin: float
    dmax: float
    dmean: float
    has_map_id: bool
    labels: tuple[str, ...]

    @property
    def shape(self) -> tuple[int, int, int]:
        """Shape of the array `read_mrc` returns: (nz, ny, nx)."""
        return (self.nz, self.ny, self.nx)

    @property
    def data_offset(self) -> int:
        """Byte offset of the first data value."""
        return HEADER_BYTES + self.nsymbt

    @property
    def data_nbytes(self) -> int:
        """Length of the data block in bytes."""
        return self.nx * self.ny * self.nz * self.dtype.itemsize


def read_mrc_header(path: str | os.PathLike[str]) -> MrcHeader:
    """Read and validate an MRC file's main header, without reading its data.

    Validation is the same as `read_mrc`'s, including the check that the file holds exactly the data the header
    describes, so a header returned here means `read_mrc` will succeed on the same file.

    Args:
        path: The MRC file.

    Returns:
        The parsed header.

    Raises:
        MrcFormatError: Short or malformed header, unsupported mode, negative sizes, or a data length that
            does not match the header.
        FileNotFoundError: The path does not exist.
    """
    name = os.fspath(path)
    with open(name, "rb") as f:
        return _parse_header(f.read(HEADER_BYTES), name, os.fstat(f.fileno()).st_size)


def read_mrc(path: str | os.PathLike[str]) -> np.ndarray:
    """Read the data of an MRC file as a native-endian array.

    Args:
        path: The MRC file.

    Returns:
        A new, writable array in the dtype of the file's mode (see `MrcHeader.dtype`).

    Raises:
        MrcFormatError: See `read_mrc_header`.
        FileNotFoundError: The path does not exist.

    Shapes:
        (nz, ny, nx), in file order (sections, rows, columns); a 2-d image comes back as (1, ny, nx).
    """
    name = os.fspath(path)
    with open(name, "rb") as f:
        header = _parse_header(f.read(HEADER_BYTES), name, os.fstat(f.fileno()).st_size)
        f.seek(header.data_offset)
        arr = np.empty(header.nx * header.ny * header.nz, dtype=header.dtype.newbyteorder(header.endianness))
        got = readinto_fully(f, arr.view(np.uint8).data)
    if got != header.data_nbytes:  # the file changed between stat and read
        raise MrcFormatError(_length_message(name, header, got))
    return to_native_inplace(arr).reshape(header.shape)


def write_mrc(
    path: str | os.PathLike[str],
    array: np.ndarray,
    voxel_size: float | tuple[float, float, float] = 1.0,
    *,
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> None:
    """Write an array as an MRC2014 file, atomically (a temporary file in the same folder, then `os.replace`).

    The file is little-endian with a complete header: sizes, mode, cell (voxel_size times the sizes), axis order
    (1, 2, 3), dmin/dmax/dmean/rms computed from the data, "MAP ", machine stamp, and one label.

    Args:
        path: Destination file; replaced if it exists. Readers never see a half-written file.
        array: (nz, ny, nx) volume, or a (ny, nx) image written with nz = 1, of dtype int8, int16, float32,
            uint16 or float16 (any byte order). Each size must fit an int32.
        voxel_size: One voxel size for all axes, or (x, y, z); finite and >= 0 (0 records "no cell").
        origin: Origin (x, y, z) stored at bytes 196-207.

    Raises:
        MrcFormatError: The array's dtype or shape has no MRC mode, or voxel_size is invalid (nothing written).
    """
    dest = os.fspath(path)
    arr = np.asarray(array)
    is_image = arr.ndim == 2
    if is_image:
        arr = arr[np.newaxis]
    if arr.ndim != 3:
        raise MrcFormatError(
            f"{dest}: cannot write a {np.asarray(array).ndim}-d array as MRC; expected a (nz, ny, nx) volume "
            f"or a (ny, nx) image"
        )
    mode = _MODE_OF.get(arr.dtype.newbyteorder("="))
    if mode is None:
        raise MrcFormatError(
            f"{dest}: cannot write dtype {arr.dtype} as MRC; expected one of modes {_EXPECTED_MODES} "
            f"(convert first, e.g. array.astype(np.float32))"
        )
    if any(size > _MAX_SIZE for size in arr.shape):
        raise MrcFormatError(f"{dest}: shape {arr.shape} has a size above 2**31 - 1; MRC stores sizes as int32")
    try:
        sizes = np.asarray(voxel_size, dtype=np.float64)
    except (TypeError, ValueError):
        sizes = np.empty(0)
    if sizes.shape == ():
        sizes = np.repeat(sizes, 3)
    if sizes.shape != (3,) or not np.all(np.isfinite(sizes)) or np.any(sizes < 0):
        raise MrcFormatError(f"{dest}: voxel_size {voxel_size!r} is invalid; expected one finite value >= 0 or three")
    nz, ny, nx = arr.shape
    header = _build_header(arr, mode, (nx, ny, nz), tuple(float(v) for v in sizes), origin, ispg=0 if is_image else 1)
    data = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).reshape(-1).view(np.uint8)
    with atomic_open(dest) as f:
        f.write(header)
        f.write(data.data)


def _build_header(
    arr: np.ndarray,
    mode: int,
    nxyz: tuple[int, int, int],
    voxel_size: tuple[float, ...],
    origin: tuple[float, float, float],
    ispg: int,
) -> bytes:
    """The 1024-byte little-endian main header for `arr` (already shaped (nz, ny, nx))."""
    if arr.size:
        with np.errstate(all="ignore"):
            dmin, dmax = float(arr.min()), float(arr.max())
            dmean, rms = float(arr.mean(dtype=np.float64)), float(arr.std(dtype=np.float64))
    else:
        # MRC2014's convention for "not determined": dmax < dmin, dmean < both, rms < 0.
        dmin, dmax, dmean, rms = 0.0, -1.0, -2.0, -1.0
    h = bytearray(HEADER_BYTES)
    struct.pack_into("<4i", h, 0, *nxyz, mode)
    struct.pack_into("<3i", h, 28, *nxyz)  # mx, my, mz: one sample per voxel
    struct.pack_into("<3f", h, 40, *(v * n for v, n in zip(voxel_size, nxyz, strict=True)))
    struct.pack_into("<3f", h, 52, 90.0, 90.0, 90.0)
    struct.pack_into("<3i", h, 64, 1, 2, 3)
    struct.pack_into("<3f", h, 76, dmin, dmax, dmean)
    struct.pack_into("<2i", h, 88, ispg, 0)
    struct.pack_into("<i", h, 108, 20140)  # nversion: MRC2014, format revision 0
    struct.pack_into("<3f", h, 196, *origin)
    h[208:216] = b"MAP \x44\x44\x00\x00"
    struct.pack_into("<f", h, 216, rms)
    struct.pack_into("<i", h, 220, 1)
    h[224:304] = b"tailorkit write_mrc".ljust(80)
    return bytes(h)


def _guess_endianness(raw: bytes, file_size: int) -> Literal["<", ">"]:
    """Byte order for a file whose machine stamp is blank or unrecognised (see the module docstring)."""
    orders: tuple[Literal["<", ">"], ...] = ("<", ">")
    for order in orders:
        nx, ny, nz, mode = struct.unpack_from(f"{order}4i", raw, 0)
        (nsymbt,) = struct.unpack_from(f"{order}i", raw, 92)
        fits = mode in _MODES and min(nx, ny, nz, nsymbt) >= 0
        if fits and HEADER_BYTES + nsymbt + nx * ny * nz * _MODES[mode].itemsize == file_size:
            return order
    for order in orders:
        nx, ny, nz, mode = struct.unpack_from(f"{order}4i", raw, 0)
        if (mode in _MODES or mode in _UNSUPPORTED_MODES) and min(nx, ny, nz) >= 0:
            return order
    return "<"


def _parse_header(raw: bytes, name: str, file_size: int) -> MrcHeader:
    """Parse and validate the main header `raw` of a file of `file_size` bytes."""
    if len(raw) < HEADER_BYTES:
        raise MrcFormatError(
            f"{name}: file is {len(raw)} bytes; expected at least the {HEADER_BYTES}-byte MRC main header"
        )
    order = _STAMPS.get(raw[212]) or _guess_endianness(raw, file_size)
    nx, ny, nz, mode = struct.unpack_from(f"{order}4i", raw, 0)
    if min(nx, ny, nz) < 0:
        raise MrcFormatError(
            f"{name}: negative size (nx, ny, nz) = ({nx}, {ny}, {nz}); expected sizes >= 0 (int32 at bytes 0-11)"
        )
    if mode in _UNSUPPORTED_MODES:
        raise MrcFormatError(
            f"{name}: mode {mode} ({_UNSUPPORTED_MODES[mode]}) is not supported; expected one of modes "
            f"{_EXPECTED_MODES}"
        )
    if mode not in _MODES:
        raise MrcFormatError(f"{name}: unknown mode {mode} (int32 at bytes 12-15); expected one of {_EXPECTED_MODES}")
    (nsymbt,) = struct.unpack_from(f"{order}i", raw, 92)
    if nsymbt < 0:
        raise MrcFormatError(f"{name}: negative extended header length nsymbt = {nsymbt}; expected >= 0 (bytes 92-95)")
    dtype = _MODES[mode]
    imod_stamp, imod_flags = struct.unpack_from(f"{order}2i", raw, 152)
    if mode == 0 and imod_stamp == _IMOD_STAMP and not imod_flags & _IMOD_SIGNED_BYTES:
        dtype = np.dtype(np.uint8)
    mxyz = struct.unpack_from(f"{order}3i", raw, 28)
    cella = struct.unpack_from(f"{order}3f", raw, 40)
    voxel_size = tuple(float(c) / m if m > 0 else 0.0 for c, m in zip(cella, mxyz, strict=True))
    nlabl = min(max(struct.unpack_from(f"{order}i", raw, 220)[0], 0), 10)
    labels = tuple(
        text
        for i in range(nlabl)
        if (text := raw[224 + 80 * i : 304 + 80 * i].decode("ascii", errors="replace").rstrip(" \x00"))
    )
    header = MrcHeader(
        nx=nx,
        ny=ny,
        nz=nz,
        mode=mode,
        dtype=dtype,
        voxel_size=(voxel_size[0], voxel_size[1], voxel_size[2]),
        origin=struct.unpack_from(f"{order}3f", raw, 196),
        nsymbt=nsymbt,
        endianness=order,
        axis_order=struct.unpack_from(f"{order}3i", raw, 64),
        dmin=struct.unpack_from(f"{order}f", raw, 76)[0],
        dmax=struct.unpack_from(f"{order}f", raw, 80)[0],
        dmean=struct.unpack_from(f"{order}f", raw, 84)[0],
        has_map_id=raw[208:212] == b"MAP ",
        labels=labels,
    )
    if file_size - header.data_offset != header.data_nbytes:
        raise MrcFormatError(_length_message(name, header, file_size - header.data_offset))
    if math.prod(size for size in header.shape if size) * dtype.itemsize > np.iinfo(np.intp).max:
        # numpy refuses such a shape even with zero elements, since it multiplies the sizes without the zeros.
        raise MrcFormatError(
            f"{name}: shape (nz, ny, nx) = {header.shape} {dtype.name} has no elements, but its nonzero sizes "
            f"multiply past numpy's limit of {np.iinfo(np.intp).max} bytes; expected sizes numpy can represent"
        )
    if not header.has_map_id:
        warnings.warn(
            f'{name}: no "MAP " identifier at bytes 208-211 (a pre-MRC2000 file?); read it anyway because the '
            f"header is otherwise consistent",
            MrcFormatWarning,
            stacklevel=3,
        )
    return header


def _length_message(name: str, header: MrcHeader, found: int) -> str:
    """Describe a data length that does not match the header (found < 0: even the extended header is cut)."""
    if found < 0:
        return (
            f"{name}: extended header of nsymbt = {header.nsymbt} bytes runs past the end of the file "
            f"({HEADER_BYTES + header.nsymbt + found} bytes); expected {HEADER_BYTES} + {header.nsymbt} + "
            f"{header.data_nbytes} bytes"
        )
    problem = "the file is truncated" if found < header.data_nbytes else f"{found - header.data_nbytes} trailing bytes"
    return (
        f"{name}: expected {header.data_nbytes} data bytes for shape (nz, ny, nx) = {header.shape} "
        f"{header.dtype.name} (mode {header.mode}) after the {HEADER_BYTES}-byte header and {header.nsymbt}-byte "
        f"extended header, found {found} ({problem})"
    )
