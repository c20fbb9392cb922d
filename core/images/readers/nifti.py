"""NIfTI (.nii, .nii.gz) through nibabel: a volume is sampled as 2-D slices along a stated axis.

Intensities are windowed per volume (0.5-99.5 % of the volume), so slices of one volume share one window.
A 4-D file uses its first volume; the report says so. The header is checked before any voxel is read: the first
volume's size against MAX_VOLUME_PIXELS / MAX_VOLUME_BYTES, and the bytes it declares against what the file holds.
The first volume is then read once (memory-mapped for .nii, decompressed once for .nii.gz, in its stored data type)
and each slice is a view into it: reading a slice never copies the volume.
"""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from core.errors import UnreadableImageError
from core.images.readers.base import (
    MAX_PIXELS,
    MAX_VOLUME_BYTES,
    MAX_VOLUME_PIXELS,
    ImageReader,
    robust_range,
    to_uint8_window,
)

try:
    import nibabel
except ImportError:  # pragma: no cover
    nibabel = None

#: default slicing axis: 2 = the third voxel axis, axial for the usual RAS-oriented scans
DEFAULT_SLICE_AXIS = 2


def _is_nifti(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith(".nii") or name.endswith(".nii.gz")


def _gzip_size(path: Path) -> int:
    """Uncompressed size modulo 2**32 stated in a gzip file's trailer (the last 4 bytes)."""
    with open(path, "rb") as handle:
        handle.seek(-4, 2)
        return struct.unpack("<I", handle.read(4))[0]


#: the colour channels of NIfTI's RGB24 (and RGBA32) data types, stored as one structured voxel
RGB_FIELDS = ("R", "G", "B")


def is_rgb(dtype: np.dtype) -> bool:
    """Whether voxels of ``dtype`` are NIfTI colour (fields R, G, B of uint8, as nibabel reads RGB24/RGBA32)."""
    names = dtype.names or ()
    return all(name in names and dtype.fields[name][0] == np.uint8 for name in RGB_FIELDS)


class _Volume:
    """The first volume of one file in its stored type (a memory map or one decompressed array), its scaling and
    its display window in scaled units. Colour volumes (RGB24) are shown as stored: no scaling, no window."""

    def __init__(self, path: Path, raw: np.ndarray, slope: float, inter: float) -> None:
        self.path, self.raw, self.slope, self.inter = path, raw, slope, inter
        self.rgb = is_rgb(raw.dtype)
        if self.rgb:
            self.lo, self.hi = 0.0, 255.0
            return
        lo, hi = robust_range(raw)
        lo, hi = lo * slope + inter, hi * slope + inter
        self.lo, self.hi = (lo, hi) if slope >= 0 else (hi, lo)

    def plane(self, axis: int, index: int) -> np.ndarray:
        """Slice ``index`` along ``axis``: float32 (H, W) in scaled units, or uint8 (H, W, 3) for colour; only that
        slice is converted."""
        slicer = [slice(None)] * 3
        slicer[axis] = index
        voxels = self.raw[tuple(slicer)]
        if self.rgb:
            return np.stack([voxels[name] for name in RGB_FIELDS], axis=-1)
        return voxels.astype(np.float32) * np.float32(self.slope) + np.float32(self.inter)


class NiftiReader(ImageReader):
    format_name = "NIfTI"

    def __init__(self, slice_axis: int = DEFAULT_SLICE_AXIS) -> None:
        if slice_axis not in (0, 1, 2):
            raise ValueError(f"slice_axis must be 0, 1 or 2, got {slice_axis!r}")
        self.slice_axis = slice_axis
        self._cached: _Volume | None = None  # last volume: reads come grouped by file
        self._failed: tuple[Path, str] | None = None  # last file that failed: its other slices fail at once

    def claims(self, path: Path, head: bytes) -> bool:
        return _is_nifti(path)

    def _image(self, path: Path):
        if nibabel is None:
            raise UnreadableImageError("NIfTI support needs the nibabel package (pip install nibabel)")
        try:
            return nibabel.load(path)
        except Exception as err:  # nibabel raises ImageFileError, OSError, EOFError, zlib/gzip errors ...
            raise UnreadableImageError(f"not a readable NIfTI file ({type(err).__name__}: {err})") from None

    def _shape(self, image) -> tuple[int, ...]:
        shape = tuple(int(s) for s in image.shape)
        while len(shape) > 3 and shape[-1] == 1:
            shape = shape[:-1]
        if len(shape) < 2 or min(shape) < 1:
            raise UnreadableImageError(f"NIfTI image of shape {shape} has no 2-D slices")
        return shape

    def _check_budget(self, path: Path, image, shape: tuple[int, ...]) -> None:
        """Refuse from the header alone: a first volume over the budget, or more bytes declared than stored."""
        first = shape[:3]
        voxels = int(np.prod(first, dtype=np.float64))
        try:
            itemsize = int(image.get_data_dtype().itemsize)
            offset = int(image.dataobj.offset)
        except Exception as err:
            raise UnreadableImageError(f"NIfTI header has no usable data type ({type(err).__name__})") from None
        dtype = image.get_data_dtype()
        if (dtype.names and not is_rgb(dtype)) or dtype.kind not in "biufV":
            raise UnreadableImageError(f"NIfTI voxel type {dtype} is not an image type this tool reads")
        size = " x ".join(str(s) for s in first)
        if voxels > MAX_VOLUME_PIXELS or voxels * itemsize > MAX_VOLUME_BYTES:
            raise UnreadableImageError(f"volume of {size} voxels ({voxels * itemsize / 1024**2:,.0f} MB) exceeds the "
                                       f"limit of {MAX_VOLUME_PIXELS:,} voxels / {MAX_VOLUME_BYTES / 1024**2:,.0f} MB "
                                       "(possible decompression bomb); crop or split the volume")
        needed = offset + voxels * itemsize
        if path.name.lower().endswith(".gz"):
            stored = _gzip_size(path)
            if needed < 2**32 and stored < needed:
                raise UnreadableImageError(f"header declares {size} voxels ({needed:,} bytes) but the file holds "
                                           f"{stored:,} bytes when decompressed (truncated or forged header)")
        elif path.stat().st_size < needed:
            raise UnreadableImageError(f"header declares {size} voxels ({needed:,} bytes) but the file holds "
                                       f"{path.stat().st_size:,} bytes (truncated or forged header)")

    def frame_count(self, path: Path) -> tuple[int, str | None]:
        image = self._image(path)
        shape = self._shape(image)
        self._check_budget(path, image, shape)
        if len(shape) == 2 or (len(shape) == 3 and shape[2] == 1):
            return 1, None
        plane = [s for axis, s in enumerate(shape[:3]) if axis != self.slice_axis]
        if plane[0] * plane[1] > MAX_PIXELS:
            raise UnreadableImageError(f"slices of {plane[0]} x {plane[1]} pixels exceed the limit")
        note = f"{shape[self.slice_axis]} slices along axis {self.slice_axis}"
        if len(shape) > 3:
            note += f"; {len(shape)}-D image, only the first of {int(np.prod(shape[3:]))} volumes is used"
        return shape[self.slice_axis], note

    def _load(self, path: Path) -> _Volume:
        image = self._image(path)
        shape = self._shape(image)
        self._check_budget(path, image, shape)
        proxy = image.dataobj
        try:
            slope, inter = float(getattr(proxy, "slope", 1.0)), float(getattr(proxy, "inter", 0.0))
            if len(image.shape) > 3:
                index = (slice(None),) * 3 + (0,) * (len(image.shape) - 3)
                raw = proxy._get_unscaled(index) if hasattr(proxy, "_get_unscaled") else np.asarray(proxy[index])
                if not hasattr(proxy, "_get_unscaled"):
                    slope, inter = 1.0, 0.0
            else:
                raw = np.asanyarray(proxy.get_unscaled())
        except Exception as err:
            raise UnreadableImageError(f"cannot read NIfTI voxel data ({type(err).__name__}: {err})") from None
        if is_rgb(raw.dtype):
            slope, inter = 1.0, 0.0  # colour is stored as shown; scl_slope does not apply
        if not (np.isfinite(slope) and np.isfinite(inter)) or slope == 0:
            raise UnreadableImageError(f"intensity scaling scl_slope {slope:g}, scl_inter {inter:g} is not usable")
        if raw.ndim == 2:
            raw = raw[:, :, None]
        return _Volume(path, raw, slope, inter)

    def _volume(self, path: Path) -> _Volume:
        if self._cached is not None and self._cached.path == path:
            return self._cached
        if self._failed is not None and self._failed[0] == path:
            raise UnreadableImageError(self._failed[1])
        self._cached = None  # release the previous volume before reading the next one
        try:
            self._cached = self._load(path)
        except UnreadableImageError as err:
            self._failed = (path, str(err))
            raise
        except Exception as err:  # a volume nibabel reads but numpy cannot window: one reason for every slice
            self._failed = (path, f"cannot read NIfTI volume ({type(err).__name__}: {err})")
            raise UnreadableImageError(self._failed[1]) from None
        return self._cached

    def read_frame(self, path: Path, index: int) -> np.ndarray:
        volume = self._volume(path)
        axis = self.slice_axis if volume.raw.shape[2] > 1 else 2
        try:
            plane = volume.plane(axis, index)
        except (OSError, ValueError, IndexError) as err:  # a memory map over a file that changed under us
            raise UnreadableImageError(f"cannot read NIfTI slice {index} ({type(err).__name__}: {err})") from None
        # voxel axes run left-right / posterior-anterior; rotate so anterior is up, as viewers show it
        if volume.rgb:
            return np.ascontiguousarray(np.rot90(plane))
        return np.ascontiguousarray(to_uint8_window(np.rot90(plane), volume.lo, volume.hi))
