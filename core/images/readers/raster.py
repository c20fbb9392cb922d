"""PNG, JPEG, BMP, TIFF and GIF through Pillow."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from core.errors import UnreadableImageError
from core.images.readers.base import MAX_PIXELS, ImageReader, robust_range, to_uint8_window

_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF",
            ".gif": "GIF"}
#: shorter side the pipeline needs; JPEG decoding may use DCT scaling down to this size
_DRAFT_SIZE = 256


def _open(path: Path) -> Image.Image:
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(path)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            raise UnreadableImageError(f"declared size is too large to decode safely ({err})") from None
        except UnidentifiedImageError:
            raise UnreadableImageError("not an image Pillow recognises (wrong extension or corrupt header)") from None
        except OSError as err:
            raise UnreadableImageError(f"cannot open: truncated or corrupt file ({err})") from None
    width, height = image.size
    if width * height > MAX_PIXELS:
        image.close()
        raise UnreadableImageError(
            f"{width} x {height} pixels exceeds the limit of {MAX_PIXELS:,} pixels (possible decompression bomb); "
            "downscale the image first")
    if width < 1 or height < 1:
        image.close()
        raise UnreadableImageError(f"image has no pixels ({width} x {height})")
    return image


def pil_to_rgb8(image: Image.Image) -> np.ndarray:
    """Any Pillow image to uint8, (H, W) for grayscale or (H, W, 3) for colour: EXIF orientation applied, alpha
    composited on black, 16-bit and float data windowed to their 0.5-99.5 % range, CMYK and palette converted."""
    image = ImageOps.exif_transpose(image)
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(image)
        if values.dtype.kind in "ui" and values.size and values.max() <= 255 and values.min() >= 0:
            gray = values.astype(np.uint8)
        else:
            gray = to_uint8_window(values, *robust_range(values))
        return gray
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info)
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))
    if mode == "L":
        return np.asarray(image)
    return np.asarray(image.convert("RGB"))


class RasterReader(ImageReader):
    """Pillow-backed reader for the common 2-D raster formats. Animated GIFs and multi-page TIFFs use their first
    frame (noted in the report)."""

    format_name = "raster"

    def claims(self, path: Path, head: bytes) -> bool:
        return path.suffix.lower() in _FORMATS

    def format_of(self, path: Path) -> str:
        return _FORMATS[path.suffix.lower()]

    def frame_count(self, path: Path) -> tuple[int, str | None]:
        with _open(path) as image:
            frames = getattr(image, "n_frames", 1)
            actual = image.format
        note = None
        expected = self.format_of(path)
        if actual and actual.upper() not in (expected, "MPO") and not (expected == "JPEG" and actual == "JPEG"):
            note = f"content is {actual} although the name says {expected}; read as {actual}"
        if frames > 1:
            note = f"{frames} frames; only the first is used"
        return 1, note

    def read_frame(self, path: Path, index: int) -> np.ndarray:
        image = _open(path)
        try:
            if image.format == "JPEG":
                image.draft("RGB", (_DRAFT_SIZE, _DRAFT_SIZE))
            image.load()
            return pil_to_rgb8(image)
        except UnreadableImageError:
            raise
        except (OSError, ValueError, SyntaxError) as err:
            raise UnreadableImageError(f"corrupt or truncated image data ({err})") from None
        finally:
            image.close()
