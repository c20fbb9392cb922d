"""Issue 22: a deflated DICOM of a few hundred KB that inflates to hundreds of MB (zeros in a private element after
a small image) is skipped with a reason, and reading the folder stays within a bounded peak memory (measured in a
child process: VmHWM); a real image larger than the slack is still read."""
from __future__ import annotations

import struct
import subprocess
import sys
import zlib
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
    generate_uid,
)

from core.errors import UnreadableImageError
from core.images.readers import dicom
from core.images.readers.dicom import DicomReader
from tests.helpers import ROOT


def _element(tag: int, vr: bytes, value: bytes) -> bytes:
    return struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr + struct.pack("<H", len(value)) + value


def write_deflated(path: Path, side: int, extra_mb: int = 0) -> None:
    """A deflated DICOM of a side x side 16-bit gradient, then ``extra_mb`` MB of zeros in a private OB element,
    compressed in 1 MB steps (never held inflated)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    image = Dataset()
    image.file_meta = meta
    image.SOPClassUID, image.SOPInstanceUID = SecondaryCaptureImageStorage, meta.MediaStorageSOPInstanceUID
    image.Rows = image.Columns = side
    image.SamplesPerPixel, image.PhotometricInterpretation = 1, "MONOCHROME2"
    image.BitsAllocated, image.BitsStored, image.HighBit, image.PixelRepresentation = 16, 16, 15, 0
    image.PixelData = (np.arange(side * side, dtype=np.uint16) % 4096).tobytes()
    buffer = BytesIO()
    image.save_as(buffer, enforce_file_format=True)
    raw = buffer.getvalue()
    meta_end = 144 + struct.unpack("<I", raw[140:144])[0]
    syntax = str(DeflatedExplicitVRLittleEndian).encode()  # 22 characters: even
    old = _element(0x00020010, b"UI", str(ExplicitVRLittleEndian).encode() + b"\0")  # padded to even length
    assert old in raw[:meta_end]
    group = raw[144:meta_end].replace(old, _element(0x00020010, b"UI", syntax))
    header = raw[:140] + struct.pack("<I", len(group)) + group
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    parts = [header, deflate.compress(raw[meta_end:])]
    if extra_mb:
        parts.append(deflate.compress(struct.pack("<HH", 0x7FE1, 0x1010) + b"OB\0\0" +
                                      struct.pack("<I", extra_mb * 1024**2)))
        zeros = bytes(1024**2)
        parts += [deflate.compress(zeros) for _ in range(extra_mb)]
    parts.append(deflate.flush())
    path.write_bytes(b"".join(parts))


PEAK = """
import resource, sys
from core.images.dataset import open_dataset
with open_dataset(sys.argv[1]) as dataset:
    for item in dataset.items:
        dataset.read(item)
    print(len(dataset.items))
    print(dataset.report.skipped[0].reason)
with open("/proc/self/status") as status:
    print(next(line.split()[1] for line in status if line.startswith("VmHWM")))
"""


def test_a_400_mb_deflated_dicom_is_skipped_with_bounded_memory(tmp_path):
    write_deflated(tmp_path / "bomb.dcm", 64, extra_mb=400)
    write_deflated(tmp_path / "fine.dcm", 64)
    assert (tmp_path / "bomb.dcm").stat().st_size < 500_000  # the file: 392 KB
    done = subprocess.run([sys.executable, "-c", PEAK, str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    read, reason, peak_kb = done.stdout.splitlines()
    assert read == "1"  # fine.dcm
    assert reason == "deflated DICOM inflates to 400 MB but its header declares 0.0 MB of pixels (possible " \
                     "decompression bomb)"
    assert int(peak_kb) < 400 * 1024, f"peak resident memory {int(peak_kb) / 1024:.0f} MB"  # was 873 MB


def test_the_slack_is_measured_from_the_declared_pixels(tmp_path, monkeypatch):
    monkeypatch.setattr(dicom, "INFLATED_SLACK_BYTES", 1024**2)  # small, so a 2 MB image exercises the check
    write_deflated(tmp_path / "image.dcm", 1024)  # 2 MB of pixels, declared: read
    write_deflated(tmp_path / "padded.dcm", 1024, extra_mb=3)  # 2 MB declared, 5 MB inflated: refused
    reader = DicomReader()
    assert reader.frame_count(tmp_path / "image.dcm") == (1, None)
    assert reader.read_frame(tmp_path / "image.dcm", 0).shape == (1024, 1024)
    with pytest.raises(UnreadableImageError, match="inflates to 5 MB but its header declares 2.0 MB of pixels"):
        reader.frame_count(tmp_path / "padded.dcm")
