"""The interface every image reader implements, and the shared conversion to 8-bit RGB."""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from core.errors import UnreadableImageError

#: Largest image (in pixels) any reader will decode; larger files are skipped with a message.
MAX_PIXELS = 80_000_000
#: Largest multi-image file (DICOM rows x columns x frames x samples, a NIfTI volume's voxels), checked from the
#: header before anything is decoded, like Pillow's decompression-bomb limit for single images
MAX_VOLUME_PIXELS = 2**28
#: Largest decoded volume kept in memory (bytes)
MAX_VOLUME_BYTES = 1024**3


class ImageReader(ABC):
    """Reads one file format into 8-bit frames: (H, W) grayscale or (H, W, 3) RGB. Grayscale stays one channel
    until the crop (3x less resizing work); the model always receives 3 channels, gray replicated, as in the paper.

    A file may hold several frames (multi-frame DICOM, NIfTI slices); each frame is sampled like one image.
    Readers raise :class:`core.errors.UnreadableImageError` with a reason a user understands.
    """

    #: short, user-facing format name ("PNG", "DICOM", ...)
    format_name: str = ""

    @abstractmethod
    def claims(self, path: Path, head: bytes) -> bool:
        """Whether this reader handles ``path``; ``head`` holds the file's first 132 bytes."""

    @abstractmethod
    def frame_count(self, path: Path) -> tuple[int, str | None]:
        """Validate the file cheaply and return (number of frames, optional note for the report)."""

    @abstractmethod
    def read_frame(self, path: Path, index: int) -> np.ndarray:
        """Decode frame ``index`` as uint8, shape (height, width) for gray or (height, width, 3) for RGB."""

    def format_of(self, path: Path) -> str:
        """Format name for the report (a reader may handle several, e.g. PNG and JPEG)."""
        return self.format_name


def to_uint8_window(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Map ``values`` linearly from [lo, hi] to [0, 255] (clipped) and return uint8 of the same shape. An empty or
    non-finite window raises :class:`UnreadableImageError` (it would give an all-black image)."""
    if not np.isfinite(lo) or not np.isfinite(hi):
        raise UnreadableImageError(f"display window {lo:g} to {hi:g} is not finite; nothing to show")
    if hi <= lo:
        raise UnreadableImageError(f"no contrast: every pixel value is {lo:g} (constant image) or the display "
                                   f"window {lo:g} to {hi:g} is empty")
    values = np.asarray(values, dtype=np.float32)
    scaled = (np.nan_to_num(values, nan=lo, posinf=hi, neginf=lo) - lo) * (255.0 / (hi - lo))
    return np.clip(scaled + 0.5, 0, 255).astype(np.uint8)


def robust_range(values: np.ndarray) -> tuple[float, float]:
    """The 0.5 % and 99.5 % percentiles of the finite values: the display window used when a file gives none.
    Large arrays (and memory maps) are subsampled by a stride without copying them first. No finite value at all
    raises :class:`UnreadableImageError`."""
    flat = np.ravel(values, order="K")
    if flat.size > 1_000_000:  # percentiles of a strided subsample are as good and much faster
        flat = flat[:: flat.size // 1_000_000]
    finite = np.asarray(flat, dtype=np.float32)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        raise UnreadableImageError("no finite pixel values (all NaN or infinite); nothing to show")
    lo, hi = np.percentile(finite, [0.5, 99.5])
    if hi <= lo:
        lo, hi = float(finite.min()), float(finite.max())
    return float(lo), float(hi)
