"""Readers and writers for dataset file formats: IDX (MNIST, Fashion-MNIST), MRC (CT and EM volumes) and 3D scans
(NIfTI, DICOM series, MetaImage/NRRD) in RAS+."""

from __future__ import annotations

from tailorkit.data.idx import IdxFormatError, read_idx, write_idx
from tailorkit.data.mrc import MrcFormatError, MrcFormatWarning, MrcHeader, read_mrc, read_mrc_header, write_mrc
from tailorkit.data.volumes import Volume, VolumeError, load_volume, save_volume

__all__ = [
    "IdxFormatError",
    "MrcFormatError",
    "MrcFormatWarning",
    "MrcHeader",
    "Volume",
    "VolumeError",
    "load_volume",
    "read_idx",
    "read_mrc",
    "read_mrc_header",
    "save_volume",
    "write_idx",
    "write_mrc",
]
