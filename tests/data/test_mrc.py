"""Tests for the MRC reader and writer (tailorkit.data.mrc), including the real LiTS CT volume."""

from __future__ import annotations

import importlib.resources
import importlib.util
import os
import struct
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tailorkit.data import MrcFormatError, MrcFormatWarning, MrcHeader, read_mrc, read_mrc_header, write_mrc

DTYPES = [np.int8, np.int16, np.float32, np.uint16, np.float16]
MODES: dict[type, int] = {np.int8: 0, np.int16: 1, np.float32: 2, np.uint16: 6, np.float16: 12}
SHAPES = [(1, 1, 1), (2, 3, 4), (5, 1, 7), (0, 2, 3)]
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LITS_PACKAGE = "liver_ct_segmentation_package"


def _mrc_bytes(
    nx: int,
    ny: int,
    nz: int,
    mode: int,
    data: bytes = b"",
    *,
    order: str = "<",
    stamp: bytes | None = None,
    nsymbt: int = 0,
    ext: bytes | None = None,
    map_id: bytes = b"MAP ",
    cella: tuple[float, float, float] = (0.0, 0.0, 0.0),
    mxyz: tuple[int, int, int] | None = None,
    imod: tuple[int, int] | None = None,
) -> bytes:
    """Assemble an MRC file by hand, independently of the writer under test."""
    h = bytearray(1024)
    struct.pack_into(f"{order}4i", h, 0, nx, ny, nz, mode)
    struct.pack_into(f"{order}3i", h, 28, *(mxyz or (nx, ny, nz)))
    struct.pack_into(f"{order}3f", h, 40, *cella)
    struct.pack_into(f"{order}3i", h, 64, 1, 2, 3)
    struct.pack_into(f"{order}i", h, 92, nsymbt)
    if imod is not None:
        struct.pack_into(f"{order}2i", h, 152, *imod)
    h[208:212] = map_id
    h[212:216] = stamp if stamp is not None else (b"\x44\x44\x00\x00" if order == "<" else b"\x11\x11\x00\x00")
    return bytes(h) + (ext if ext is not None else bytes(max(nsymbt, 0))) + data


def _values(dtype: type, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Random values of `dtype` with the type's extremes first where there is room."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        flat = rng.integers(info.min, info.max, size=n, endpoint=True, dtype=dtype)
        specials: np.ndarray = np.array([info.min, info.max, 0], dtype=dtype)
    else:
        flat = (rng.standard_normal(n) * 100).astype(dtype)
        finfo = np.finfo(dtype)
        specials = np.array([finfo.min, finfo.max, -0.0, finfo.tiny], dtype=dtype)
    k = min(n, specials.size)
    flat[:k] = specials[:k]
    return flat.reshape(shape)


def _assert_same(a: np.ndarray, b: np.ndarray) -> None:
    assert a.dtype == b.dtype
    assert a.shape == b.shape
    assert a.tobytes() == b.tobytes()


# --- round trips ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_round_trip_every_mode_and_shape(tmp_path: Path, dtype: type, shape: tuple[int, int, int]) -> None:
    arr = _values(dtype, shape)
    path = tmp_path / "vol.mrc"
    write_mrc(path, arr, voxel_size=(0.5, 0.75, 2.0), origin=(1.0, -2.0, 3.5))
    out = read_mrc(path)
    _assert_same(out, arr)
    assert out.dtype.isnative
    assert out.flags.writeable
    header = read_mrc_header(str(path))
    nz, ny, nx = shape
    assert (header.nx, header.ny, header.nz, header.shape) == (nx, ny, nz, shape)
    assert header.mode == MODES[dtype]
    assert header.dtype == np.dtype(dtype)
    assert header.endianness == "<"
    assert header.nsymbt == 0
    assert header.origin == (1.0, -2.0, 3.5)
    assert header.axis_order == (1, 2, 3)
    assert header.has_map_id
    # An empty axis stores a zero cell edge, from which no voxel size can be recovered.
    assert header.voxel_size == tuple(v if n else 0.0 for v, n in zip((0.5, 0.75, 2.0), (nx, ny, nz), strict=True))


def test_scalar_voxel_size_applies_to_all_axes(tmp_path: Path) -> None:
    write_mrc(tmp_path / "v.mrc", np.zeros((2, 3, 4), dtype=np.float32), voxel_size=1.25)
    assert read_mrc_header(tmp_path / "v.mrc").voxel_size == (1.25, 1.25, 1.25)


def test_image_is_written_as_one_section(tmp_path: Path) -> None:
    image = np.arange(12, dtype=np.int16).reshape(3, 4)
    write_mrc(tmp_path / "img.mrc", image)
    _assert_same(read_mrc(tmp_path / "img.mrc"), image[np.newaxis])
    assert struct.unpack_from("<i", (tmp_path / "img.mrc").read_bytes(), 88) == (0,)  # ispg 0: image, not volume


def test_written_header_follows_mrc2014(tmp_path: Path) -> None:
    # Read back with struct rather than the reader under test, so the two cannot share a layout mistake.
    arr = np.array([[[1.0, -3.0, 2.0], [4.0, 0.0, 2.0]]], dtype=">f4")  # big-endian input is converted
    write_mrc(tmp_path / "h.mrc", arr, voxel_size=(1.5, 2.0, 3.0))
    raw = (tmp_path / "h.mrc").read_bytes()
    assert len(raw) == 1024 + 6 * 4
    assert struct.unpack_from("<4i", raw, 0) == (3, 2, 1, 2)
    assert struct.unpack_from("<3i", raw, 28) == (3, 2, 1)
    assert struct.unpack_from("<3f", raw, 40) == (4.5, 4.0, 3.0)
    assert struct.unpack_from("<3f", raw, 52) == (90.0, 90.0, 90.0)
    assert struct.unpack_from("<3i", raw, 64) == (1, 2, 3)
    assert struct.unpack_from("<3f", raw, 76) == (-3.0, 4.0, 1.0)
    assert struct.unpack_from("<2i", raw, 88) == (1, 0)
    assert struct.unpack_from("<i", raw, 108) == (20140,)
    assert raw[208:216] == b"MAP \x44\x44\x00\x00"
    assert struct.unpack_from("<f", raw, 216)[0] == pytest.approx(np.std([1.0, -3.0, 2.0, 4.0, 0.0, 2.0]))
    assert struct.unpack_from("<i", raw, 220) == (1,)
    assert np.array_equal(np.frombuffer(raw, dtype="<f4", offset=1024), arr.ravel())


def test_empty_volume_marks_statistics_undetermined(tmp_path: Path) -> None:
    write_mrc(tmp_path / "e.mrc", np.zeros((0, 4, 4), dtype=np.float32))
    header = read_mrc_header(tmp_path / "e.mrc")
    assert header.dmax < header.dmin
    assert header.dmean < min(header.dmin, header.dmax)


def test_reads_big_endian_file(tmp_path: Path) -> None:
    values = np.arange(24, dtype=np.int16).reshape(2, 3, 4) - 12
    path = tmp_path / "be.mrc"
    path.write_bytes(_mrc_bytes(4, 3, 2, 1, values.astype(">i2").tobytes(), order=">"))
    out = read_mrc(path)
    np.testing.assert_array_equal(out, values)
    assert out.dtype == np.dtype(np.int16)
    assert out.dtype.isnative
    assert read_mrc_header(path).endianness == ">"


@pytest.mark.parametrize("order", ["<", ">"])
def test_blank_machine_stamp_infers_byte_order(tmp_path: Path, order: Literal["<", ">"]) -> None:
    values = np.linspace(-5, 5, 60, dtype=np.float32).reshape(3, 4, 5)
    path = tmp_path / "blank.mrc"
    data = values.astype(np.dtype(np.float32).newbyteorder(order)).tobytes()
    path.write_bytes(_mrc_bytes(5, 4, 3, 2, data, order=order, stamp=bytes(4)))
    np.testing.assert_array_equal(read_mrc(path), values)
    assert read_mrc_header(path).endianness == order


def test_extended_header_is_skipped(tmp_path: Path) -> None:
    values = np.arange(8, dtype=np.uint16).reshape(2, 2, 2)
    path = tmp_path / "ext.mrc"
    path.write_bytes(_mrc_bytes(2, 2, 2, 6, values.tobytes(), nsymbt=40, ext=b"\xab" * 40))
    np.testing.assert_array_equal(read_mrc(path), values)
    header = read_mrc_header(path)
    assert (header.nsymbt, header.data_offset, header.data_nbytes) == (40, 1064, 16)


@pytest.mark.parametrize(
    ("imod", "dtype", "value"),
    [
        pytest.param(None, np.int8, -56, id="mrc2014-signed"),
        pytest.param((1146047817, 0), np.uint8, 200, id="imod-unsigned"),
        pytest.param((1146047817, 1), np.int8, -56, id="imod-signed-flag"),
    ],
)
def test_mode_0_signedness(tmp_path: Path, imod: tuple[int, int] | None, dtype: type, value: int) -> None:
    path = tmp_path / "m0.mrc"
    path.write_bytes(_mrc_bytes(1, 1, 1, 0, b"\xc8", imod=imod))
    out = read_mrc(path)
    assert out.dtype == np.dtype(dtype)
    assert int(out[0, 0, 0]) == value


def test_voxel_size_is_cell_over_sampling(tmp_path: Path) -> None:
    path = tmp_path / "cell.mrc"
    path.write_bytes(_mrc_bytes(2, 2, 2, 1, bytes(16), cella=(10.0, 20.0, 60.0), mxyz=(5, 5, 5)))
    assert read_mrc_header(path).voxel_size == (2.0, 4.0, 12.0)


def test_missing_map_id_warns_but_reads(tmp_path: Path) -> None:
    path = tmp_path / "old.mrc"
    path.write_bytes(_mrc_bytes(2, 1, 1, 1, b"\x01\x00\x02\x00", map_id=bytes(4)))
    with pytest.warns(MrcFormatWarning, match=r'old\.mrc: no "MAP " identifier') as record:
        out = read_mrc(path)
    assert record[0].filename == __file__  # the warning points at the caller, not at library internals
    np.testing.assert_array_equal(out, [[[1, 2]]])
    with pytest.warns(MrcFormatWarning):
        assert not read_mrc_header(path).has_map_id


def test_valid_file_raises_no_warning(tmp_path: Path) -> None:
    write_mrc(tmp_path / "ok.mrc", np.ones((2, 2, 2), dtype=np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_mrc(tmp_path / "ok.mrc")


def test_missing_file_is_not_a_format_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_mrc(tmp_path / "absent.mrc")


# --- the real LiTS volume ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lits_dir() -> Iterator[Path]:
    if importlib.util.find_spec(LITS_PACKAGE) is None:
        pytest.skip(
            "liver-ct-segmentation-package is not installed; `pip install liver-ct-segmentation-package` "
            "provides the LiTS CT volume data/img_117.mrc and its labels data/lab_117.mrc"
        )
    # An installed package without its data files is a broken install: the tests below then fail, not skip.
    with importlib.resources.as_file(importlib.resources.files(LITS_PACKAGE) / "data") as folder:
        yield Path(folder)


def test_lits_ct_header(lits_dir: Path) -> None:
    header = read_mrc_header(lits_dir / "img_117.mrc")
    assert header == MrcHeader(
        nx=128,
        ny=128,
        nz=128,
        mode=2,
        dtype=np.dtype(np.float32),
        voxel_size=(0.0, 0.0, 0.0),  # mrcfile's default header: cella = 0, no physical spacing recorded
        origin=(0.0, 0.0, 0.0),
        nsymbt=0,
        endianness="<",
        axis_order=(1, 2, 3),
        dmin=-1063.25,
        dmax=1877.25,
        dmean=header.dmean,
        has_map_id=True,
        labels=header.labels,
    )
    assert header.dmean == pytest.approx(-21.3117, abs=1e-3)
    assert header.labels[0].startswith("Created by mrcfile.py")


def test_lits_ct_volume(lits_dir: Path) -> None:
    ct = read_mrc(lits_dir / "img_117.mrc")
    assert ct.shape == (128, 128, 128)
    assert ct.dtype == np.float32
    assert (float(ct.min()), float(ct.max())) == (-1063.25, 1877.25)  # Hounsfield units, as the header says
    assert float(ct.mean(dtype=np.float64)) == pytest.approx(-21.3117, abs=1e-3)


def test_lits_labels(lits_dir: Path) -> None:
    labels = read_mrc(lits_dir / "lab_117.mrc")
    assert labels.shape == (128, 128, 128)
    assert labels.dtype == np.uint16
    assert read_mrc_header(lits_dir / "lab_117.mrc").mode == 6
    values, counts = np.unique(labels, return_counts=True)
    assert dict(zip(values.tolist(), counts.tolist(), strict=True)) == {0: 1_481_801, 1: 485_268, 2: 130_083}


def test_lits_round_trips_byte_for_byte_in_data(lits_dir: Path, tmp_path: Path) -> None:
    ct = read_mrc(lits_dir / "img_117.mrc")
    write_mrc(tmp_path / "ct.mrc", ct, voxel_size=0.0)
    _assert_same(read_mrc(tmp_path / "ct.mrc"), ct)
    assert (tmp_path / "ct.mrc").read_bytes()[1024:] == (lits_dir / "img_117.mrc").read_bytes()[1024:]


# --- malformed input ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "fragments"),
    [
        pytest.param(b"", ["file is 0 bytes", "1024-byte MRC main header"], id="empty"),
        pytest.param(bytes(1023), ["file is 1023 bytes"], id="short-header"),
        pytest.param(_mrc_bytes(-4, 2, 2, 2), ["negative size (nx, ny, nz) = (-4, 2, 2)", "sizes >= 0"], id="neg-nx"),
        pytest.param(_mrc_bytes(4, 2, -1, 2), ["negative size", "(4, 2, -1)"], id="neg-nz"),
        pytest.param(_mrc_bytes(2, 2, 2, 3, bytes(32)), ["mode 3 (complex int16) is not supported"], id="mode-3"),
        pytest.param(_mrc_bytes(2, 2, 2, 4, bytes(64)), ["mode 4 (complex float32) is not supported"], id="mode-4"),
        pytest.param(_mrc_bytes(2, 2, 2, 101, bytes(4)), ["mode 101 (4-bit packed) is not supported"], id="mode-101"),
        pytest.param(
            _mrc_bytes(2, 2, 2, 7, bytes(8)), ["unknown mode 7", "0 (int8), 1 (int16), 2 (float32)"], id="mode-7"
        ),
        pytest.param(_mrc_bytes(1, 1, 1, 0, b"\x00", nsymbt=-8), ["nsymbt = -8", "expected >= 0"], id="neg-nsymbt"),
        pytest.param(
            _mrc_bytes(128, 128, 128, 2, bytes(1200)),
            ["expected 8388608 data bytes for shape (nz, ny, nx) = (128, 128, 128) float32", "found 1200", "truncated"],
            id="truncated",
        ),
        pytest.param(
            _mrc_bytes(2, 2, 2, 6, bytes(16 + 5)),
            ["expected 16 data bytes", "found 21", "5 trailing bytes"],
            id="trailing",
        ),
        pytest.param(
            _mrc_bytes(1, 1, 1, 0, b"", nsymbt=100, ext=bytes(10)),
            ["extended header of nsymbt = 100 bytes runs past the end of the file (1034 bytes)"],
            id="extended-header-cut",
        ),
        pytest.param(
            _mrc_bytes(2**31 - 1, 2**31 - 1, 2**31 - 1, 2, bytes(16)),
            [f"expected {(2**31 - 1) ** 3 * 4} data bytes", "found 16"],
            id="huge-sizes",
        ),
        pytest.param(
            _mrc_bytes(0, 2**31 - 1, 2**31 - 1, 2),
            ["has no elements", "numpy's limit"],
            id="empty-but-unrepresentable",
        ),
    ],
)
def test_malformed_file_names_file_problem_and_form(tmp_path: Path, raw: bytes, fragments: list[str]) -> None:
    path = tmp_path / "ct.mrc"
    path.write_bytes(raw)
    for reader in (read_mrc, read_mrc_header):
        start = time.perf_counter()
        with pytest.raises(MrcFormatError) as info:
            reader(path)
        assert time.perf_counter() - start < 1.0  # absurd sizes fail from the header, before any allocation
        message = str(info.value)
        assert message.startswith(f"{path}: ")
        for fragment in fragments:
            assert fragment in message


def test_format_error_is_a_value_error() -> None:
    assert issubclass(MrcFormatError, ValueError)


@pytest.mark.parametrize(
    ("array", "kwargs", "fragment"),
    [
        pytest.param(np.zeros((2, 2, 2)), {}, "cannot write dtype float64", id="float64"),
        pytest.param(np.zeros((2, 2, 2), dtype=np.uint8), {}, "cannot write dtype uint8", id="uint8"),
        pytest.param(np.zeros((2, 2, 2), dtype=bool), {}, "cannot write dtype bool", id="bool"),
        pytest.param(np.zeros((2, 2, 2), dtype=np.complex64), {}, "cannot write dtype complex64", id="complex"),
        pytest.param(np.zeros(4, dtype=np.float32), {}, "cannot write a 1-d array", id="1-d"),
        pytest.param(np.zeros((1, 2, 2, 2), dtype=np.float32), {}, "cannot write a 4-d array", id="4-d"),
        pytest.param(np.zeros((2, 2, 2), dtype=np.float32), {"voxel_size": -1.0}, "voxel_size -1.0", id="neg-voxel"),
        pytest.param(np.zeros((2, 2, 2), dtype=np.float32), {"voxel_size": float("nan")}, "is invalid", id="nan-voxel"),
        pytest.param(np.zeros((2, 2, 2), dtype=np.float32), {"voxel_size": (1.0, 2.0)}, "is invalid", id="2-voxel"),
    ],
)
def test_write_refuses_what_mrc_cannot_hold(
    tmp_path: Path, array: np.ndarray, kwargs: dict[str, object], fragment: str
) -> None:
    with pytest.raises(MrcFormatError, match=fragment):
        write_mrc(tmp_path / "out.mrc", array, **kwargs)
    assert list(tmp_path.iterdir()) == []  # nothing, not even a temporary file


def test_failed_write_leaves_old_file_and_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "keep.mrc"
    write_mrc(path, np.ones((2, 2, 2), dtype=np.float32))
    before = path.read_bytes()

    def fail(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="disk full"):
        write_mrc(path, np.zeros((3, 3, 3), dtype=np.int16))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.mrc"]


# --- fuzzing ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mrc_fuzz")


def _read_or_format_error(path: Path, raw: bytes) -> np.ndarray | None:
    """Read `raw` from a file; a format error is an acceptable outcome, any other exception fails the test."""
    path.write_bytes(raw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MrcFormatWarning)
        try:
            header = read_mrc_header(path)
            out = read_mrc(path)
        except MrcFormatError:
            return None
    assert out.shape == header.shape
    assert out.dtype == header.dtype
    assert out.dtype.isnative
    return out


@FUZZ
@given(st.binary(max_size=1200))
def test_fuzz_arbitrary_bytes(fuzz_dir: Path, raw: bytes) -> None:
    _read_or_format_error(fuzz_dir / "any.mrc", raw)


@FUZZ
@given(
    sizes=st.lists(st.one_of(st.integers(-2, 4), st.integers(-(2**31), 2**31 - 1)), min_size=3, max_size=3),
    mode=st.sampled_from([0, 1, 2, 3, 4, 6, 12, 101, 7, -1]),
    nsymbt=st.one_of(st.integers(-2, 16), st.integers(-(2**31), 2**31 - 1)),
    order=st.sampled_from(["<", ">"]),
    stamp=st.sampled_from([None, bytes(4), b"\x44\x41\x00\x00", b"\x11\x11\x00\x00", b"\xff\xff\xff\xff"]),
    map_id=st.sampled_from([b"MAP ", bytes(4)]),
    imod=st.sampled_from([None, (1146047817, 0), (1146047817, 1)]),
    tail=st.binary(max_size=300),
)
def test_fuzz_plausible_headers(
    fuzz_dir: Path,
    sizes: list[int],
    mode: int,
    nsymbt: int,
    order: str,
    stamp: bytes | None,
    map_id: bytes,
    imod: tuple[int, int] | None,
    tail: bytes,
) -> None:
    # Random bytes rarely form a plausible header; these reach the mode, size and length checks.
    raw = (
        _mrc_bytes(
            sizes[0],
            sizes[1],
            sizes[2],
            mode,
            order=order,
            stamp=stamp,
            nsymbt=nsymbt,
            ext=b"",
            map_id=map_id,
            imod=imod,
        )
        + tail
    )
    out = _read_or_format_error(fuzz_dir / "plausible.mrc", raw)
    if out is not None:
        assert out.nbytes <= len(tail)


@FUZZ
@given(data=st.data())
def test_fuzz_mutated_valid_files(fuzz_dir: Path, data: st.DataObject) -> None:
    raw = bytearray(_mrc_bytes(4, 3, 2, 1, np.arange(24, dtype="<i2").tobytes(), nsymbt=8))
    for _ in range(data.draw(st.integers(1, 6))):
        # Mostly the words the reader interprets, sometimes anywhere.
        where = data.draw(st.one_of(st.integers(0, 16), st.integers(88, 96), st.integers(0, len(raw) - 1)))
        raw[where] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1000, len(raw) + 8))
    _read_or_format_error(fuzz_dir / "mutated.mrc", bytes(raw[:cut]) + bytes(max(0, cut - len(raw))))


@FUZZ
@given(
    arr=hnp.arrays(
        dtype=st.sampled_from(DTYPES).map(np.dtype),
        shape=hnp.array_shapes(min_dims=3, max_dims=3, min_side=0, max_side=5),
    ),
    voxel=st.floats(0.0, 1e3, width=32),
)
def test_fuzz_random_arrays_round_trip(fuzz_dir: Path, arr: np.ndarray, voxel: float) -> None:
    path = fuzz_dir / "rt.mrc"
    write_mrc(path, arr, voxel_size=voxel)
    _assert_same(read_mrc(path), arr)
