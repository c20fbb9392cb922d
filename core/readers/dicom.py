"""DICOM through pydicom: modality LUT (rescale slope/intercept), the file's window (else a robust range),
MONOCHROME1 inverted, every frame of a multi-frame file sampled as one image.

Compressed transfer syntaxes are decoded by pydicom's pixel-data plugins from requirements.txt: pylibjpeg with
pylibjpeg-libjpeg (JPEG baseline, 12-bit extended, lossless; JPEG-LS), pylibjpeg-openjpeg (JPEG 2000, HTJ2K),
pylibjpeg-rle (RLE) and pyjpegls (JPEG-LS). A file whose syntax has no installed decoder is skipped when scanning,
naming the missing package; a file whose compressed data is damaged is skipped when sampling, with the decoders'
reasons."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from core.errors import UnreadableImageError
from core.readers.base import MAX_PIXELS, ImageReader, robust_range, to_uint8_window

try:  # pydicom is optional at import time so the raster formats work without it
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import apply_modality_lut
except ImportError:  # pragma: no cover - exercised only where pydicom is absent
    pydicom = None

_UNCOMPRESSED = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"}


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
    if "WindowCenter" in dataset and "WindowWidth" in dataset:
        center, width = _first(dataset.WindowCenter), _first(dataset.WindowWidth)
        lo, hi = center - width / 2.0, center + width / 2.0
    else:
        lo, hi = robust_range(values)
    gray = to_uint8_window(values, lo, hi)
    if photometric == "MONOCHROME1":
        gray = 255 - gray
    return gray


def patient_and_study(path: Path) -> tuple[str, str]:
    """The PatientID and StudyInstanceUID of a DICOM file, stripped; '' for each that is absent or unreadable.
    Used to recognise the patient and study folders of a DICOM export (see :mod:`core.dataset`)."""
    if pydicom is None:
        return "", ""
    try:
        header = pydicom.dcmread(path, stop_before_pixels=True, force=True,
                                 specific_tags=["PatientID", "StudyInstanceUID"])
    except Exception:  # an unreadable header only means "no identity"; the file's own skip reason comes elsewhere
        return "", ""
    return (str(header.get("PatientID", "") or "").strip(),
            str(header.get("StudyInstanceUID", "") or "").strip())


class DicomReader(ImageReader):
    format_name = "DICOM"

    def claims(self, path: Path, head: bytes) -> bool:
        return path.suffix.lower() in (".dcm", ".dicom") or head[128:132] == b"DICM"

    def _header(self, path: Path):
        if pydicom is None:
            raise UnreadableImageError("DICOM support needs the pydicom package (pip install pydicom)")
        try:
            return pydicom.dcmread(path, stop_before_pixels=True)
        except InvalidDicomError as err:
            try:  # old files without the 128-byte preamble and meta header are still common in archives
                header = pydicom.dcmread(path, stop_before_pixels=True, force=True)
            except Exception:
                header = None
            if header is not None and len(header) > 0:
                return header
            raise UnreadableImageError(f"not a readable DICOM file ({err})") from None
        except (EOFError, OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            raise UnreadableImageError(f"not a readable DICOM file ({err})") from None

    def frame_count(self, path: Path) -> tuple[int, str | None]:
        header = self._header(path)
        rows, cols = int(header.get("Rows", 0) or 0), int(header.get("Columns", 0) or 0)
        if rows == 0 or cols == 0:
            raise UnreadableImageError("DICOM file has no pixel data (e.g. a report, a presentation state or a "
                                       "DICOMDIR)")
        if rows * cols > MAX_PIXELS:
            raise UnreadableImageError(f"{cols} x {rows} pixels exceeds the limit of {MAX_PIXELS:,}")
        missing = _decoder_missing(header)
        if missing:
            raise UnreadableImageError(missing)
        frames = int(header.get("NumberOfFrames", 1) or 1)
        return frames, (f"multi-frame: {frames} frames sampled as images" if frames > 1 else None)

    def read_frame(self, path: Path, index: int) -> np.ndarray:
        if pydicom is None:
            raise UnreadableImageError("DICOM support needs the pydicom package (pip install pydicom)")
        try:
            try:
                dataset = pydicom.dcmread(path)
            except InvalidDicomError:
                dataset = pydicom.dcmread(path, force=True)
            if "PixelData" not in dataset and "FloatPixelData" not in dataset:
                raise UnreadableImageError("DICOM file has no pixel data")
            frames = int(dataset.get("NumberOfFrames", 1) or 1)
            pixels = dataset.pixel_array
            frame = pixels[index] if frames > 1 else pixels
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
