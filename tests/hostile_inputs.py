"""Generator of hostile and broken inputs, as users' hospital exports contain them.

Each kind writes its file(s) into a folder and states what the tool must do with it: ``read`` (with the number of
images it must yield) or ``skip`` (with a pattern the listed reason must match), or ``refuse`` (the whole input is
unusable: a clear InputFolderError). Nothing here may end in a traceback, a hang or a crash.
"""
from __future__ import annotations

import io
import os
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

PYDICOM_FILES = Path(__import__("pydicom").__file__).parent / "data" / "test_files"
NIBABEL_FILES = Path(__import__("nibabel").__file__).parent / "tests" / "data"


@dataclass(frozen=True)
class Kind:
    name: str
    build: Callable[[Path], None]  # writes into the folder (which exists)
    expect: str  # "read", "skip" or "refuse"
    images: int = 0  # for "read": images the kind must yield (besides the anchor image)
    reason: str = ""  # for "skip"/"refuse": regex the message must match
    skipped_at_sampling: bool = False  # the header is fine, only decoding the pixels fails


def _png(path: Path, array: np.ndarray, **kwargs) -> None:
    Image.fromarray(array).save(path, **kwargs)


def _gradient(height: int = 64, width: int = 64) -> np.ndarray:
    return np.tile(np.linspace(0, 255, width, dtype=np.uint8), (height, 1))


def _jpeg_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG")
    return buffer.getvalue()


def _png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def build_bomb_png(path: Path, width: int = 100_000, height: int = 100_000) -> None:
    """A tiny PNG whose header declares width x height pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
                     + chunk(b"IEND", b""))


def _png16(folder: Path) -> None:
    values = np.tile(np.linspace(0, 4095, 64), (64, 1)).astype(np.uint16)  # 12-bit data in 16-bit PNG
    Image.fromarray(values).save(folder / "gray16.png")


def _tiff16(folder: Path) -> None:
    values = np.tile(np.linspace(100, 60000, 64), (48, 1)).astype(np.uint16)
    Image.fromarray(values).save(folder / "gray16.tif")


def _cmyk(folder: Path) -> None:
    Image.new("CMYK", (40, 30), (0, 255, 255, 0)).save(folder / "cmyk.jpg")


def _palette_transparent(folder: Path) -> None:
    image = Image.new("P", (32, 32), 1)
    image.putpalette([255, 255, 255, 255, 0, 0] + [0] * 762)
    image.paste(0, (0, 0, 16, 32))
    image.save(folder / "palette.png", transparency=0)


def _animated_gif(folder: Path) -> None:
    frames = [Image.fromarray(np.full((20, 20), v, np.uint8)) for v in (0, 128, 255)]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:], duration=100)


def _exif_rotated(folder: Path) -> None:
    image = Image.fromarray(np.zeros((20, 60, 3), np.uint8))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees when displayed
    image.save(folder / "rotated.jpg", exif=exif)


def _dicom_copy(name: str, target: str) -> Callable[[Path], None]:
    def build(folder: Path) -> None:
        (folder / target).write_bytes((PYDICOM_FILES / name).read_bytes())
    return build


def _dicom_video(folder: Path) -> None:
    """A DICOM file in an MPEG-4 video transfer syntax (endoscopy and ultrasound exports hold them): no pydicom
    decoder exists for video, so it must be skipped with that reason."""
    import pydicom
    from pydicom.encaps import encapsulate
    from pydicom.uid import MPEG4HP41
    dataset = pydicom.dcmread(PYDICOM_FILES / "CT_small.dcm")
    dataset.PixelData = encapsulate([b"\x00\x00\x01\xb3" + b"\x00" * 60])  # an MPEG sequence header, then nothing
    dataset["PixelData"].VR = "OB"
    dataset.file_meta.TransferSyntaxUID = MPEG4HP41
    dataset.save_as(folder / "video.dcm", enforce_file_format=True)


def _nifti(shape: tuple[int, ...], name: str) -> Callable[[Path], None]:
    def build(folder: Path) -> None:
        import nibabel
        data = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
        nibabel.save(nibabel.Nifti1Image(data, np.eye(4)), folder / name)
    return build


def _corrupt_nifti(folder: Path) -> None:
    import gzip
    good = io.BytesIO()
    import nibabel
    noise = np.random.default_rng(0).random((32, 32, 8)).astype(np.float32)
    good.write(nibabel.Nifti1Image(noise, np.eye(4)).to_bytes())
    compressed = gzip.compress(good.getvalue())
    (folder / "corrupt.nii.gz").write_bytes(compressed[: len(compressed) // 2])


def _zip_traversal(folder: Path) -> None:
    with zipfile.ZipFile(folder / "traversal.zip", "w") as bundle:
        bundle.writestr("../escaped.png", _png_bytes(_gradient()))
        bundle.writestr("/etc/absolute.png", _png_bytes(_gradient()))
        bundle.writestr("inside/ok.png", _png_bytes(_gradient()))


def _zip_bomb(folder: Path) -> None:
    with zipfile.ZipFile(folder / "bomb.zip", "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("zeros.png", b"\x00" * (64 * 1024 * 1024))


def _zip_encrypted(folder: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("secret.png", _png_bytes(_gradient()))
    data = bytearray(buffer.getvalue())
    # set the "encrypted" flag in the local and the central header (what a password-protected export carries)
    local = data.find(b"PK\x03\x04")
    central = data.find(b"PK\x01\x02")
    data[local + 6] |= 0x1
    data[central + 8] |= 0x1
    (folder / "encrypted.zip").write_bytes(bytes(data))


def _zip_in_zip(folder: Path) -> None:
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as bundle:
        bundle.writestr("deep.png", _png_bytes(_gradient()))
    with zipfile.ZipFile(folder / "outer.zip", "w") as bundle:
        bundle.writestr("inner.zip", inner.getvalue())
        bundle.writestr("top.png", _png_bytes(_gradient()))


def _symlink_loop(folder: Path) -> None:
    (folder / "loop").mkdir()
    os.symlink(folder / "loop", folder / "loop" / "again")
    os.symlink(folder / "missing-target.png", folder / "dangling.png")


def _unicode_names(folder: Path) -> None:
    _png(folder / "Röntgen Bild ü 01 – ñ.png", _gradient())
    _png(folder / "脑部 扫描.png", _gradient())


KINDS: list[Kind] = [
    Kind("zero_byte", lambda f: (f / "empty.png").write_bytes(b""), "skip", reason="empty file"),
    Kind("truncated_jpeg", lambda f: (f / "cut.jpg").write_bytes(_jpeg_bytes(np.random.default_rng(0).integers(
        0, 255, (64, 64, 3), dtype=np.uint8))[:600]), "skip", reason="truncated|corrupt", skipped_at_sampling=True),
    Kind("truncated_png", lambda f: (f / "cut.png").write_bytes(_png_bytes(np.random.default_rng(0).integers(
        0, 255, (64, 64, 3), dtype=np.uint8))[:400]), "skip", reason="truncated|corrupt", skipped_at_sampling=True),
    Kind("text_named_png", lambda f: (f / "notes.png").write_text("patient list, not an image"), "skip",
         reason="not an image"),
    Kind("decompression_bomb", lambda f: build_bomb_png(f / "bomb.png"), "skip", reason="too large|exceeds"),
    Kind("png_16bit", _png16, "read", images=1),
    Kind("tiff_16bit", _tiff16, "read", images=1),
    Kind("cmyk_jpeg", _cmyk, "read", images=1),
    Kind("palette_png_transparency", _palette_transparent, "read", images=1),
    Kind("animated_gif", _animated_gif, "read", images=1),
    Kind("exif_rotation", _exif_rotated, "read", images=1),
    Kind("tiny_1x1", lambda f: _png(f / "one.png", np.full((1, 1), 200, np.uint8)), "read", images=1),
    Kind("wide_20000x300", lambda f: _png(f / "wide.png", np.tile(np.arange(20_000, dtype=np.uint16) % 256,
                                                                  (300, 1)).astype(np.uint8)), "read", images=1),
    Kind("dicom_no_pixel_data", _dicom_copy("rtstruct.dcm", "structure.dcm"), "skip", reason="no pixel data"),
    Kind("dicom_jpeg_ls_near_lossless", _dicom_copy("JPEGLSNearLossless_08.dcm", "jpegls.dcm"), "read", images=1),
    Kind("dicom_malformed_jpeg", _dicom_copy("JPEG-lossy.dcm", "lossy12.dcm"), "skip",
         reason="cannot decode DICOM pixel data.*libjpeg", skipped_at_sampling=True),
    Kind("dicom_video_syntax", _dicom_video, "skip", reason="MPEG-4.*not supported by pydicom"),
    Kind("dicom_multiframe", _dicom_copy("SC_rgb_rle_2frame.dcm", "twoframes.dcm"), "read", images=2),
    Kind("dicom_ct_rescale", _dicom_copy("CT_small.dcm", "ct.dcm"), "read", images=1),
    Kind("nifti_2d", _nifti((16, 12), "flat.nii"), "read", images=1),
    Kind("nifti_3d", _nifti((16, 12, 5), "volume.nii.gz"), "read", images=5),
    Kind("nifti_4d", _nifti((16, 12, 5, 3), "series.nii.gz"), "read", images=5),
    Kind("nifti_corrupt", _corrupt_nifti, "skip", reason="NIfTI", skipped_at_sampling=True),
    Kind("zip_traversal", _zip_traversal, "read", images=1, reason=r"\.\.|absolute"),
    Kind("zip_bomb", _zip_bomb, "skip", reason="zip bomb"),
    Kind("zip_encrypted", _zip_encrypted, "skip", reason="encrypted"),
    Kind("zip_in_zip", _zip_in_zip, "read", images=1, reason="archive inside an archive"),
    Kind("unicode_and_spaces", _unicode_names, "read", images=2),
    Kind("symlink_loop_and_dangling", _symlink_loop, "skip", reason="symbolic link"),
    Kind("non_image_files", lambda f: ((f / "report.csv").write_text("a,b\n1,2\n"),
                                       (f / "README").write_text("export")), "skip", reason="not an image format"),
]


def write_anchor(folder: Path) -> None:
    """One good image, so a folder with a single broken kind still fingerprints."""
    _png(folder / "anchor.png", np.stack([_gradient()] * 3, axis=2))
