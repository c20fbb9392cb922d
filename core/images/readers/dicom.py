"""DICOM through pydicom: modality LUT (rescale slope/intercept), the file's window (else a robust range),
MONOCHROME1 inverted, every frame of a multi-frame file sampled as one image.

Compressed transfer syntaxes are decoded by pydicom's pixel-data plugins from requirements.txt: pylibjpeg with
pylibjpeg-libjpeg (JPEG baseline, 12-bit extended, lossless; JPEG-LS), pylibjpeg-openjpeg (JPEG 2000, HTJ2K),
pylibjpeg-rle (RLE) and pyjpegls (JPEG-LS). A file whose syntax has no installed decoder is skipped when scanning,
naming the missing package; a file whose compressed data is damaged is skipped when sampling, with the decoders'
reasons.

Before any pixel is decoded the header is checked: rows x columns x frames x samples against MAX_VOLUME_PIXELS, a
deflated file's inflated size (streamed, never held), the frame count, BitsAllocated against the stored pixel
bytes, and the rescale and window values. Frames are decoded one at a time from a dataset read once per file.
"""
from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

import numpy as np

from core.errors import UnreadableImageError
from core.images.readers.base import MAX_PIXELS, MAX_VOLUME_PIXELS, ImageReader, robust_range, to_uint8_window

try:  # pydicom is optional at import time so the raster formats work without it
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import apply_modality_lut
    from pydicom.pixels import pixel_array as decode_pixels
except ImportError:  # pragma: no cover - exercised only where pydicom is absent
    pydicom = None

_DEFLATED = "1.2.840.10008.1.2.1.99"
_UNCOMPRESSED = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", _DEFLATED}
#: most bytes a deflated DICOM may inflate to (checked by streaming before pydicom inflates it in memory)
MAX_INFLATED_BYTES = 512 * 1024**2


def _first(value) -> float:
    """Window center/width may be multi-valued; the first pair is the default view."""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        value = value[0]
    return float(value)


def _decoder_missing(dataset) -> str | None:
    """Name the missing decoder when the transfer syntax is compressed and no plugin can decode it."""
    uid = getattr(getattr(dataset, "file_meta", None), "TransferSyntaxUID", None)
    if uid is None or str(uid) in _UNCOMPRESSED:
        return None
    try:
        from pydicom.pixels.decoders.base import get_decoder
        decoder = get_decoder(uid)
    except (ImportError, NotImplementedError, ValueError):
        return f"compressed transfer syntax {uid.name} is not supported by pydicom"
    if not decoder.is_available:
        missing = "; ".join(str(item) for item in decoder.missing_dependencies)
        return (f"compressed transfer syntax '{uid.name}' needs a decoder that is not installed "
                f"({missing or 'see pydicom documentation'})")
    return None


def frame_to_rgb8(frame: np.ndarray, dataset) -> np.ndarray:
    """One decoded frame (H, W) or (H, W, 3) to uint8 (H, W) gray or (H, W, 3) colour, following the dataset's
    display attributes."""
    photometric = str(getattr(dataset, "PhotometricInterpretation", "MONOCHROME2")).upper()
    if frame.ndim == 3:  # colour: pydicom already converted YBR to RGB
        if frame.dtype == np.uint8:
            return np.ascontiguousarray(frame[..., :3])
        return to_uint8_window(frame[..., :3], float(frame.min()), float(frame.max()))
    values = apply_modality_lut(frame, dataset).astype(np.float32)
    lo, hi = display_window(values, dataset)
    gray = to_uint8_window(values, lo, hi)
    if photometric == "MONOCHROME1":
        gray = 255 - gray
    return gray


def _file_window(dataset) -> tuple[float, float] | None:
    """(lo, hi) of the file's own window, or None when it has none or one that is empty in float arithmetic (a
    centre of 1e308 swallows any width)."""
    if "WindowCenter" not in dataset or "WindowWidth" not in dataset:
        return None
    center, width = _number(dataset, "WindowCenter"), _number(dataset, "WindowWidth")
    if center is None or width is None:
        return None
    lo, hi = center - width / 2.0, center + width / 2.0
    return (lo, hi) if math.isfinite(lo) and math.isfinite(hi) and hi > lo else None


def display_window(values: np.ndarray, dataset) -> tuple[float, float]:
    """The window to show ``values`` (modality units) with: the file's own, unless it leaves the image constant
    (every pixel at or below its lower end, or at or above its upper end), then the robust pixel range, as viewers
    do (the read report says so, see :func:`window_note`)."""
    window = _file_window(dataset)
    if window is not None:
        finite = values[np.isfinite(values)]
        if finite.size and finite.max() > window[0] and finite.min() < window[1]:
            return window
    return robust_range(values)


def window_note(header) -> str | None:
    """A read-report note when the file's window lies outside every value its pixels can take (BitsStored,
    PixelRepresentation, rescale) or is empty in float arithmetic: such a window would show a constant image, so
    the pixel range is used instead."""
    if "WindowCenter" not in header or "WindowWidth" not in header:
        return None
    center, width = _number(header, "WindowCenter"), _number(header, "WindowWidth")
    bits = int(_number(header, "BitsStored", None) or _number(header, "BitsAllocated", 16) or 16)
    signed = int(_number(header, "PixelRepresentation", 0) or 0) == 1
    if not 1 <= bits <= 64 or str(getattr(header, "PhotometricInterpretation", "")).upper().startswith(("RGB", "YBR")):
        return None
    low, high = (-(2.0 ** (bits - 1)), 2.0 ** (bits - 1) - 1) if signed else (0.0, 2.0 ** bits - 1)
    slope, intercept = _number(header, "RescaleSlope", 1.0), _number(header, "RescaleIntercept", 0.0)
    low, high = sorted((low * slope + intercept, high * slope + intercept))
    window = _file_window(header)
    if window is not None and window[0] < high and window[1] > low:
        return None
    return (f"WindowCenter {center:g} / WindowWidth {width:g} lies outside the pixel values ({low:g} to {high:g}) "
            "and would show a constant image; the pixel range is used instead")


def patient_and_study(path: Path) -> tuple[str, str]:
    """The PatientID and StudyInstanceUID of a DICOM file, stripped; '' for each that is absent or unreadable.
    Used to recognise the patient and study folders of a DICOM export (see :mod:`core.images.dataset`)."""
    if pydicom is None:
        return "", ""
    try:
        header = pydicom.dcmread(path, stop_before_pixels=True, force=True,
                                 specific_tags=["PatientID", "StudyInstanceUID"])
    except Exception:  # an unreadable header only means "no identity"; the file's own skip reason comes elsewhere
        return "", ""
    return (str(header.get("PatientID", "") or "").strip(),
            str(header.get("StudyInstanceUID", "") or "").strip())


def _inflated_size(path: Path, limit: int) -> int:
    """Bytes the deflated data set after the file meta group inflates to, streamed in 1 MB steps; stops (returning
    more than ``limit``) as soon as ``limit`` is passed."""
    with open(path, "rb") as handle:
        head = handle.read(144)
        if head[128:132] != b"DICM" or head[132:136] != b"\x02\x00\x00\x00":
            return 0  # no standard meta group: pydicom will not inflate it either
        start = 144 + struct.unpack("<I", head[140:144])[0]
        handle.seek(start)
        inflater, total = zlib.decompressobj(-zlib.MAX_WBITS), 0
        while chunk := handle.read(1 << 16):
            while chunk:
                try:
                    total += len(inflater.decompress(chunk, 1 << 20))
                except zlib.error:
                    return total
                if total > limit:
                    return total
                chunk = inflater.unconsumed_tail
            if inflater.eof:
                break
    return total


def _number(dataset, keyword: str, default: float | None = None) -> float | None:
    """A numeric attribute (first value when multi-valued) as float; None when absent; raise when not a number."""
    if keyword not in dataset:
        return default
    try:
        value = dataset.get(keyword)
        return default if value is None or value == "" else _first(value)
    except (TypeError, ValueError, IndexError) as err:
        raise UnreadableImageError(f"{keyword} is not a number ({err})") from None


def check_header(header, file_size: int) -> tuple[int, str | None]:
    """Validate a DICOM header before decoding; return (frames, note). Every refusal names the attribute."""
    rows, cols = int(_number(header, "Rows", 0) or 0), int(_number(header, "Columns", 0) or 0)
    if rows <= 0 or cols <= 0:
        raise UnreadableImageError("DICOM file has no pixel data (e.g. a report, a presentation state or a "
                                   "DICOMDIR)")
    if rows * cols > MAX_PIXELS:
        raise UnreadableImageError(f"{cols} x {rows} pixels exceeds the limit of {MAX_PIXELS:,}")
    frames_value = _number(header, "NumberOfFrames", 1.0)
    if frames_value is None or not math.isfinite(frames_value) or frames_value != int(frames_value) or \
            frames_value < 1:
        raise UnreadableImageError(f"NumberOfFrames {header.get('NumberOfFrames')} is not a positive frame count")
    frames = int(frames_value)
    samples = int(_number(header, "SamplesPerPixel", 1) or 1)
    bits = int(_number(header, "BitsAllocated", 16) or 0)
    if bits not in (1, 8, 16, 32, 64) or samples not in (1, 3, 4):
        raise UnreadableImageError(f"BitsAllocated {bits} / SamplesPerPixel {samples} is not a valid pixel format")
    stored = _number(header, "BitsStored", bits)
    if stored is None or not 1 <= stored <= bits:
        raise UnreadableImageError(f"BitsStored {stored} does not fit BitsAllocated {bits}")
    pixels = rows * cols * frames * samples
    if pixels > MAX_VOLUME_PIXELS:
        raise UnreadableImageError(f"{frames:,} frames of {cols} x {rows} pixels ({pixels:,} pixels) exceed the "
                                   f"limit of {MAX_VOLUME_PIXELS:,} per file (possible decompression bomb)")
    uid = str(getattr(getattr(header, "file_meta", None), "TransferSyntaxUID", "") or "")
    if uid in _UNCOMPRESSED - {_DEFLATED} or not uid:
        needed = (pixels * bits + 7) // 8
        if str(header.get("PhotometricInterpretation", "")).upper() == "YBR_FULL_422":
            needed = needed * 2 // 3  # chroma stored at half horizontal resolution
        if needed > file_size:
            raise UnreadableImageError(f"header declares {frames:,} frames of {cols} x {rows} x {bits} bits "
                                       f"({needed:,} bytes) but the file has {file_size:,} bytes")
        pixel_data = header.get("PixelData")  # at most the file's size, which was checked above
        length = len(pixel_data) if isinstance(pixel_data, bytes) else None
        if length is not None and (length < needed or length >= 2 * needed):  # trailing padding is tolerated
            raise UnreadableImageError(f"pixel data holds {length:,} bytes but Rows {rows} x Columns {cols} x "
                                       f"{frames} frames x {samples} samples x BitsAllocated {bits} needs {needed:,} "
                                       "(inconsistent BitsAllocated or image size)")
    for keyword in ("RescaleSlope", "RescaleIntercept"):
        value = _number(header, keyword)
        if value is not None and (not math.isfinite(value) or (keyword == "RescaleSlope" and value == 0)):
            raise UnreadableImageError(f"{keyword} {value:g} is not usable (every pixel would be the same)")
    if "WindowCenter" in header and "WindowWidth" in header:
        center, width = _number(header, "WindowCenter"), _number(header, "WindowWidth")
        if center is None or width is None or not math.isfinite(center) or not math.isfinite(width) or width <= 0:
            raise UnreadableImageError(f"WindowCenter {center} / WindowWidth {width} is not a usable window "
                                       "(width must be a positive number)")
    notes = [f"multi-frame: {frames} frames sampled as images" if frames > 1 else None, window_note(header)]
    return frames, "; ".join(note for note in notes if note) or None


class DicomReader(ImageReader):
    format_name = "DICOM"

    def __init__(self) -> None:
        self._cached: tuple[Path, object] | None = None  # last data set read: frames of a file come together

    def claims(self, path: Path, head: bytes) -> bool:
        return path.suffix.lower() in (".dcm", ".dicom") or head[128:132] == b"DICM"

    def _check_deflate(self, path: Path) -> None:
        if _inflated_size(path, MAX_INFLATED_BYTES) > MAX_INFLATED_BYTES:
            raise UnreadableImageError(f"deflated DICOM inflates to more than {MAX_INFLATED_BYTES / 1024**2:,.0f} MB "
                                       "(possible decompression bomb)")

    def _header(self, path: Path):
        if pydicom is None:
            raise UnreadableImageError("DICOM support needs the pydicom package (pip install pydicom)")
        self._check_deflate(path)
        try:  # pixel data is deferred, not read: its length is still known
            return pydicom.dcmread(path, defer_size=1024)
        except InvalidDicomError as err:
            try:  # old files without the 128-byte preamble and meta header are still common in archives
                header = pydicom.dcmread(path, defer_size=1024, force=True)
            except Exception:
                header = None
            if header is not None and len(header) > 0:
                return header
            raise UnreadableImageError(f"not a readable DICOM file ({err})") from None
        except (EOFError, OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            raise UnreadableImageError(f"not a readable DICOM file ({err})") from None

    def frame_count(self, path: Path) -> tuple[int, str | None]:
        header = self._header(path)
        try:
            frames, note = check_header(header, path.stat().st_size)
        except UnreadableImageError:
            raise
        except Exception as err:  # damaged attributes raise many types in pydicom
            raise UnreadableImageError(f"damaged DICOM header ({type(err).__name__}: {err})") from None
        missing = _decoder_missing(header)
        if missing:
            raise UnreadableImageError(missing)
        return frames, note

    def _dataset(self, path: Path):
        if self._cached is not None and self._cached[0] == path:
            return self._cached[1]
        self._cached = None
        self._check_deflate(path)
        try:
            dataset = pydicom.dcmread(path)
        except InvalidDicomError:
            dataset = pydicom.dcmread(path, force=True)
        check_header(dataset, path.stat().st_size)
        if "PixelData" not in dataset and "FloatPixelData" not in dataset:
            raise UnreadableImageError("DICOM file has no pixel data")
        self._cached = (path, dataset)
        return dataset

    def read_frame(self, path: Path, index: int) -> np.ndarray:
        if pydicom is None:
            raise UnreadableImageError("DICOM support needs the pydicom package (pip install pydicom)")
        try:
            dataset = self._dataset(path)
            frames = int(_number(dataset, "NumberOfFrames", 1.0))
            frame = decode_pixels(dataset, index=index if frames > 1 else None)
            if frames > 1 and frame.ndim == 4 or (frames == 1 and frame.ndim == 3 and frame.shape[-1] not in (3, 4)):
                frame = frame[0]
            return frame_to_rgb8(frame, dataset)
        except UnreadableImageError:
            raise
        except Exception as err:  # pydicom raises many types for damaged pixel data; all mean "cannot decode"
            raise UnreadableImageError(f"cannot decode DICOM pixel data ({type(err).__name__}: "
                                       f"{_one_line(str(err))})") from None


def _one_line(message: str) -> str:
    """pydicom lists each plugin's failure on its own line; the report shows one line per file, so join them:
    'Unable to decode ...: pylibjpeg: <reason>; pillow: <reason>'."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    if len(lines) <= 1:
        return lines[0] if lines else ""
    return f"{lines[0]} {'; '.join(lines[1:])}"
