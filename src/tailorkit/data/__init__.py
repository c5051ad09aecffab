"""Readers and writers for dataset file formats: IDX (MNIST, Fashion-MNIST) and MRC (CT and EM volumes)."""

from __future__ import annotations

from tailorkit.data.idx import IdxFormatError, read_idx, write_idx
from tailorkit.data.mrc import MrcFormatError, MrcFormatWarning, MrcHeader, read_mrc, read_mrc_header, write_mrc

__all__ = [
    "IdxFormatError",
    "MrcFormatError",
    "MrcFormatWarning",
    "MrcHeader",
    "read_idx",
    "read_mrc",
    "read_mrc_header",
    "write_idx",
    "write_mrc",
]
