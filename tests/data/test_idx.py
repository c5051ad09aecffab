"""Tests for the IDX reader and writer (tailorkit.data.idx)."""

from __future__ import annotations

import gzip
import os
import struct
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tailorkit.data import IdxFormatError, read_idx, write_idx

DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]
CODES: dict[type, int] = {
    np.uint8: 0x08,
    np.int8: 0x09,
    np.int16: 0x0B,
    np.int32: 0x0C,
    np.float32: 0x0D,
    np.float64: 0x0E,
}
SHAPES = [(0,), (7,), (3, 4), (2, 3, 4), (2, 1, 3, 2), (0, 28, 28)]
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _extreme_values(dtype: type, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Random values of `dtype` that include the type's extremes (and NaN/inf for floats) when there is room."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        flat = rng.integers(info.min, info.max, size=n, endpoint=True, dtype=dtype)
        specials: np.ndarray = np.array([info.min, info.max, 0, -1 if info.min < 0 else 1], dtype=dtype)
    else:
        flat = rng.standard_normal(n).astype(dtype) * 1000
        finfo = np.finfo(dtype)
        specials = np.array([finfo.min, finfo.max, finfo.tiny, -0.0, np.inf, -np.inf, np.nan], dtype=dtype)
    k = min(n, specials.size)
    flat[:k] = specials[:k]
    return flat.reshape(shape)


def _idx_bytes(code: int, dims: tuple[int, ...], data: bytes = b"", magic: bytes = b"\x00\x00") -> bytes:
    return magic + bytes([code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + data


def _assert_same(a: np.ndarray, b: np.ndarray) -> None:
    """Bit-exact equality (NaN payloads and the sign of zero included), same dtype and shape."""
    assert a.dtype == b.dtype
    assert a.shape == b.shape
    assert a.tobytes() == b.tobytes()


# --- round trips ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("suffix", [".idx", ".idx.gz"])
def test_round_trip_every_dtype_and_shape(tmp_path: Path, dtype: type, shape: tuple[int, ...], suffix: str) -> None:
    arr = _extreme_values(dtype, shape)
    path = tmp_path / f"a{suffix}"
    write_idx(path, arr)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == suffix.endswith(".gz")
    out = read_idx(path)
    _assert_same(out, arr)
    assert out.dtype.isnative
    assert out.flags.writeable
    _assert_same(read_idx(path.read_bytes()), arr)
    _assert_same(read_idx(str(path)), arr)


def test_written_bytes_follow_the_spec(tmp_path: Path) -> None:
    # Checked against hand-assembled bytes so that reader and writer cannot agree on a wrong layout.
    write_idx(tmp_path / "a.idx", np.array([[1, -2, 256]], dtype=np.int16))
    assert (tmp_path / "a.idx").read_bytes() == b"\x00\x00\x0b\x02" + b"\x00\x00\x00\x01\x00\x00\x00\x03" + (
        b"\x00\x01\xff\xfe\x01\x00"
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_reads_hand_built_big_endian_file(dtype: type) -> None:
    values: np.ndarray = np.array([[0, 1, 2], [3, 4, 5]], dtype=dtype)
    raw = _idx_bytes(CODES[dtype], (2, 3), values.astype(np.dtype(dtype).newbyteorder(">")).tobytes())
    out = read_idx(raw)
    np.testing.assert_array_equal(out, values)
    assert out.dtype == np.dtype(dtype)
    assert out.dtype.isnative


def test_input_byte_order_does_not_matter(tmp_path: Path) -> None:
    arr = np.arange(12, dtype=">i4").reshape(3, 4)
    write_idx(tmp_path / "be.idx", arr)
    write_idx(tmp_path / "le.idx", arr.astype("<i4"))
    assert (tmp_path / "be.idx").read_bytes() == (tmp_path / "le.idx").read_bytes()


def test_gzip_detected_by_magic_not_extension(tmp_path: Path) -> None:
    arr = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    write_idx(tmp_path / "no_extension", arr, compress=True)
    write_idx(tmp_path / "misleading.gz", arr, compress=False)
    assert (tmp_path / "no_extension").read_bytes()[:2] == b"\x1f\x8b"
    assert (tmp_path / "misleading.gz").read_bytes()[:2] == b"\x00\x00"
    _assert_same(read_idx(tmp_path / "no_extension"), arr)
    _assert_same(read_idx(tmp_path / "misleading.gz"), arr)


def test_gzip_output_is_reproducible(tmp_path: Path) -> None:
    write_idx(tmp_path / "a.gz", np.arange(100, dtype=np.uint8))
    # Bytes 4-7 of a gzip member hold the modification time; zero keeps the output a function of the data alone.
    assert (tmp_path / "a.gz").read_bytes()[4:8] == b"\x00\x00\x00\x00"


def test_accepts_bytearray_and_memoryview() -> None:
    raw = _idx_bytes(0x08, (3,), b"\x01\x02\x03")
    np.testing.assert_array_equal(read_idx(bytearray(raw)), [1, 2, 3])
    np.testing.assert_array_equal(read_idx(memoryview(raw)), [1, 2, 3])


def test_missing_file_is_not_a_format_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "absent.idx")


# --- malformed input ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "fragments"),
    [
        pytest.param(b"", ["only 0 bytes", "00 00 <dtype code> <ndim>"], id="empty"),
        pytest.param(b"\x00\x00\x08", ["only 3 bytes"], id="short-magic"),
        pytest.param(_idx_bytes(0x08, (3,), b"abc", magic=b"\x01\x00"), ["bad magic bytes 01 00 08 01"], id="magic"),
        pytest.param(b"PK\x03\x04" + bytes(20), ["bad magic bytes 50 4b 03 04", "1f 8b"], id="zip-file"),
        pytest.param(_idx_bytes(0x0A, (3,), b"abc"), ["unknown IDX dtype code 0x0A", "0x08 (uint8)"], id="dtype"),
        pytest.param(b"\x00\x00\x08\x00", ["ndim is 0", "at least 1 dimension"], id="ndim-0"),
        pytest.param(
            b"\x00\x00\x08\x03" + bytes(8), ["declares 3 dimensions", "16 header bytes", "found 12"], id="dims"
        ),
        pytest.param(
            _idx_bytes(0x08, (60000, 28, 28), bytes(1200)),
            ["expected 47040000 data bytes for shape (60000, 28, 28) uint8, found 1200", "truncated"],
            id="truncated",
        ),
        pytest.param(
            _idx_bytes(0x0B, (2, 2), bytes(8 + 3)),
            ["expected 8 data bytes for shape (2, 2) int16, found 11", "3 trailing bytes"],
            id="trailing",
        ),
        pytest.param(
            _idx_bytes(0x0E, (0, 2**32 - 1, 2**32 - 1), b""),
            ["shape (0, 4294967295, 4294967295) float64 has no elements", "numpy's limit"],
            id="empty-but-unrepresentable",
        ),
        pytest.param(
            _idx_bytes(0x0E, (2**32 - 1,) * 4, bytes(16)),
            [f"expected {(2**32 - 1) ** 4 * 8} data bytes", "float64, found 16"],
            id="huge-dims",
        ),
    ],
)
def test_malformed_input_names_file_problem_and_form(tmp_path: Path, raw: bytes, fragments: list[str]) -> None:
    path = tmp_path / "fashion.idx"
    path.write_bytes(raw)
    for source, name in ((path, str(path)), (raw, "<bytes>")):
        with pytest.raises(IdxFormatError) as info:
            read_idx(source)
        message = str(info.value)
        assert message.startswith(f"{name}: ")
        for fragment in fragments:
            assert fragment in message
    # The same content, gzip-compressed, fails the same way and says the counts are of decompressed bytes.
    with pytest.raises(IdxFormatError, match=r"\(gzip-decompressed\)") as info:
        read_idx(gzip.compress(raw))
    for fragment in fragments:
        assert fragment in str(info.value)


def test_format_error_is_a_value_error() -> None:
    assert issubclass(IdxFormatError, ValueError)


def test_huge_header_fails_fast_without_allocating() -> None:
    # A header promising ~1.3e77 elements must be rejected from the sizes alone (an allocation would raise
    # MemoryError or take the machine down), for plain and gzip input alike.
    raw = _idx_bytes(0x08, (2**32 - 1,) * 8, bytes(64))
    for source in (raw, gzip.compress(raw)):
        start = time.perf_counter()
        with pytest.raises(IdxFormatError, match="the file is truncated"):
            read_idx(source)
        assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        pytest.param(lambda gz: gz[: len(gz) // 2], "corrupt gzip stream", id="truncated-stream"),
        pytest.param(lambda gz: gz[:-8] + bytes(8), "corrupt gzip stream", id="bad-crc"),
        pytest.param(lambda gz: gz[:3] + b"\xff" + gz[4:], "corrupt gzip stream", id="bad-flags"),
        pytest.param(lambda gz: gz[:10] + b"\xff" * 20 + gz[30:], "corrupt gzip stream", id="bad-deflate"),
        pytest.param(lambda gz: gz[:2], "corrupt gzip stream", id="magic-only"),
    ],
)
def test_corrupt_gzip_stream(tmp_path: Path, mutate: Callable[[bytes], bytes], fragment: str) -> None:
    arr = np.random.default_rng(0).integers(0, 255, size=(50, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "train.gz", arr)
    path = tmp_path / "bad.gz"
    path.write_bytes(mutate((tmp_path / "train.gz").read_bytes()))
    with pytest.raises(IdxFormatError, match=fragment) as info:
        read_idx(path)
    assert str(info.value).startswith(f"{path}: ")
    assert "expected a valid gzip-compressed IDX file" in str(info.value)


@pytest.mark.parametrize(
    ("array", "fragment"),
    [
        pytest.param(np.zeros(3, dtype=bool), "cannot write dtype bool", id="bool"),
        pytest.param(np.zeros(3, dtype=np.uint16), "cannot write dtype uint16", id="uint16"),
        pytest.param(np.zeros(3, dtype=np.complex64), "cannot write dtype complex64", id="complex"),
        pytest.param(np.array(5, dtype=np.uint8), "cannot write a 0-d array", id="0-d"),
    ],
)
def test_write_refuses_what_idx_cannot_hold(tmp_path: Path, array: np.ndarray, fragment: str) -> None:
    path = tmp_path / "out.idx"
    with pytest.raises(IdxFormatError, match=fragment):
        write_idx(path, array)
    assert list(tmp_path.iterdir()) == []  # nothing, not even a temporary file


def test_failed_write_leaves_old_file_and_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "keep.idx"
    write_idx(path, np.arange(5, dtype=np.uint8))
    before = path.read_bytes()

    def fail(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="disk full"):
        write_idx(path, np.arange(1000, dtype=np.float64))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.idx"]


# --- fuzzing ------------------------------------------------------------------------------------------------------


def _read_or_format_error(source: bytes) -> np.ndarray | None:
    """Read `source`; a format error is an acceptable outcome, any other exception fails the test."""
    try:
        out = read_idx(source)
    except IdxFormatError:
        return None
    assert out.dtype.isnative
    return out


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_arbitrary_bytes(raw: bytes) -> None:
    _read_or_format_error(raw)
    _read_or_format_error(gzip.compress(raw, mtime=0))


@FUZZ
@given(
    code=st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x00, 0x0A, 0xFF]),
    dims=st.lists(st.one_of(st.integers(0, 6), st.integers(0, 2**32 - 1)), min_size=0, max_size=5),
    tail=st.binary(max_size=200),
)
def test_fuzz_plausible_headers(code: int, dims: list[int], tail: bytes) -> None:
    # Random bytes almost never get past the magic number; these reach the size and data checks.
    raw = _idx_bytes(code, tuple(dims), tail)
    out = _read_or_format_error(raw)
    if out is not None:
        assert out.shape == tuple(dims)
        assert out.nbytes == len(tail)
    _read_or_format_error(gzip.compress(raw, mtime=0))


@FUZZ
@given(data=st.data(), compressed=st.booleans())
def test_fuzz_mutated_valid_files(data: st.DataObject, compressed: bool) -> None:
    arr = np.arange(60, dtype=np.int16).reshape(3, 4, 5)
    raw = _idx_bytes(0x0B, arr.shape, arr.astype(">i2").tobytes())
    if compressed:
        raw = gzip.compress(raw, mtime=0)
    mutated = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 4))):
        mutated[data.draw(st.integers(0, len(mutated) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(mutated) + 8))
    mutated = mutated[:cut] + bytes(max(0, cut - len(mutated)))
    _read_or_format_error(bytes(mutated))


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("idx_fuzz")


@FUZZ
@given(
    arr=hnp.arrays(
        dtype=st.sampled_from(DTYPES).map(np.dtype),
        shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=6),
    ),
    compress=st.booleans(),
)
def test_fuzz_random_arrays_round_trip(fuzz_dir: Path, arr: np.ndarray, compress: bool) -> None:
    path = fuzz_dir / "rt.idx"
    write_idx(path, arr, compress=compress)
    _assert_same(read_idx(path), arr)
