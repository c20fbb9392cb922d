"""NIfTI (.nii, .nii.gz) through nibabel: a volume is sampled as 2-D slices along a stated axis.

Intensities are windowed per volume (0.5-99.5 % of the volume), so slices of one volume share one window.
A 4-D file uses its first volume; the report says so.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from core.errors import UnreadableImageError
from core.readers.base import MAX_PIXELS, ImageReader, robust_range, to_uint8_window

try:
    import nibabel
except ImportError:  # pragma: no cover
    nibabel = None

#: default slicing axis: 2 = the third voxel axis, axial for the usual RAS-oriented scans
DEFAULT_SLICE_AXIS = 2


def _is_nifti(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith(".nii") or name.endswith(".nii.gz")


class NiftiReader(ImageReader):
    format_name = "NIfTI"

    def __init__(self, slice_axis: int = DEFAULT_SLICE_AXIS) -> None:
        if slice_axis not in (0, 1, 2):
            raise ValueError(f"slice_axis must be 0, 1 or 2, got {slice_axis!r}")
        self.slice_axis = slice_axis
        self._cached: tuple[Path, np.ndarray, float, float] | None = None  # last volume: reads come grouped by file

    def claims(self, path: Path, head: bytes) -> bool:
        return _is_nifti(path)

    def _image(self, path: Path):
        if nibabel is None:
            raise UnreadableImageError("NIfTI support needs the nibabel package (pip install nibabel)")
        try:
            return nibabel.load(path)
        except Exception as err:  # nibabel raises ImageFileError, OSError, EOFError, zlib/gzip errors ...
            raise UnreadableImageError(f"not a readable NIfTI file ({type(err).__name__}: {err})") from None

    def _shape(self, path: Path) -> tuple[int, ...]:
        shape = tuple(int(s) for s in self._image(path).shape)
        while len(shape) > 3 and shape[-1] == 1:
            shape = shape[:-1]
        if len(shape) < 2 or min(shape) < 1:
            raise UnreadableImageError(f"NIfTI image of shape {shape} has no 2-D slices")
        return shape

    def frame_count(self, path: Path) -> tuple[int, str | None]:
        shape = self._shape(path)
        if len(shape) == 2 or (len(shape) == 3 and shape[2] == 1):
            return 1, None
        plane = [s for axis, s in enumerate(shape[:3]) if axis != self.slice_axis]
        if plane[0] * plane[1] > MAX_PIXELS:
            raise UnreadableImageError(f"slices of {plane[0]} x {plane[1]} pixels exceed the limit")
        note = f"{shape[self.slice_axis]} slices along axis {self.slice_axis}"
        if len(shape) > 3:
            note += f"; {len(shape)}-D image, only the first of {int(np.prod(shape[3:]))} volumes is used"
        return shape[self.slice_axis], note

    def _volume(self, path: Path) -> tuple[np.ndarray, float, float]:
        if self._cached is not None and self._cached[0] == path:
            return self._cached[1:]
        image = self._image(path)
        try:
            proxy = image.dataobj
            index = (slice(None),) * 3 + (0,) * (len(image.shape) - 3) if len(image.shape) > 3 else ...
            volume = np.asarray(proxy[index], dtype=np.float32)
        except Exception as err:
            raise UnreadableImageError(f"cannot read NIfTI voxel data ({type(err).__name__}: {err})") from None
        if volume.ndim == 2:
            volume = volume[:, :, None]
        lo, hi = robust_range(volume)
        self._cached = (path, volume, lo, hi)
        return volume, lo, hi

    def read_frame(self, path: Path, index: int) -> np.ndarray:
        volume, lo, hi = self._volume(path)
        axis = self.slice_axis if volume.shape[2] > 1 else 2
        plane = np.take(volume, index, axis=axis)
        # voxel axes run left-right / posterior-anterior; rotate so anterior is up, as viewers show it
        return np.ascontiguousarray(to_uint8_window(np.rot90(plane), lo, hi))
