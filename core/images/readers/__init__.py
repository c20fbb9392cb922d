"""One reader per format behind one interface (:class:`ImageReader`); :func:`default_readers` is the registry."""
from __future__ import annotations

from pathlib import Path

from core.images.readers.base import ImageReader
from core.images.readers.dicom import DicomReader
from core.images.readers.nifti import DEFAULT_SLICE_AXIS, NiftiReader
from core.images.readers.raster import RasterReader


def default_readers(slice_axis: int = DEFAULT_SLICE_AXIS) -> list[ImageReader]:
    """Fresh reader instances (readers keep a small per-instance cache, so do not share them across threads)."""
    return [RasterReader(), NiftiReader(slice_axis), DicomReader()]


def reader_for(path: Path, head: bytes, readers: list[ImageReader]) -> ImageReader | None:
    """The first reader that claims the file, or None when no reader knows it."""
    for reader in readers:
        if reader.claims(path, head):
            return reader
    return None


__all__ = ["ImageReader", "default_readers", "reader_for", "RasterReader", "DicomReader", "NiftiReader"]
