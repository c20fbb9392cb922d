"""Issue 15, cases 3, 4 and 6 (inputs): tiny files that declare huge images are refused from their headers, special
files are never opened, pixel values that would give black images are skipped with a reason, and a run that loses
most samples says so."""
from __future__ import annotations

import gzip
import os
import resource
import signal
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.errors import InputFolderError, UnreadableImageError
from core.fingerprint.pipeline import _check_lost_samples
from core.images.dataset import ReadReport, open_dataset
from core.images.readers.dicom import DicomReader
from core.images.readers.nifti import NiftiReader
from tests.hostile_inputs import PYDICOM_FILES, _gradient, _png, _png_bytes, write_anchor


@pytest.fixture
def memory_and_time_guard():
    """At most 2.5 GB of address space beyond what is mapped now and 30 s: a bomb fails the test instead of the
    machine."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as handle:
        mapped = int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    resource.setrlimit(resource.RLIMIT_AS, (mapped + int(2.5 * 1024**3), hard))
    signal.alarm(30)
    yield
    signal.alarm(0)
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def skipped(folder: Path) -> dict[str, str]:
    with open_dataset(folder) as dataset:
        return {s.path: s.reason for s in dataset.report.skipped}


def nifti_header_only(path: Path, shape: tuple[int, ...], payload: bytes = b"", dtype=np.uint8) -> None:
    import nibabel
    header = nibabel.Nifti1Header()
    header.set_data_dtype(dtype)
    header.set_data_shape(shape)
    header["vox_offset"] = 352
    data = header.binaryblock + b"\0" * 4 + payload
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)


def dicom_variant(path: Path, **changes) -> None:
    import pydicom
    dataset = pydicom.dcmread(PYDICOM_FILES / "CT_small.dcm")
    for keyword, value in changes.items():
        setattr(dataset, keyword, value)
    dataset.save_as(path)


# ---------------------------------------------------------------- case 3: tiny files, huge declared sizes
def test_dicom_declaring_ten_million_frames_is_refused_from_its_header(tmp_path, memory_and_time_guard):
    dicom_variant(tmp_path / "frames.dcm", NumberOfFrames=10_000_000)
    assert (tmp_path / "frames.dcm").stat().st_size < 50_000
    with pytest.raises(UnreadableImageError, match="10,000,000 frames"):
        DicomReader().frame_count(tmp_path / "frames.dcm")


def test_nifti_gz_of_1024x1024x600_is_refused_from_its_header(tmp_path, memory_and_time_guard):
    nifti_header_only(tmp_path / "zeros.nii.gz", (1024, 1024, 600), b"\0" * 100_000)
    with pytest.raises(UnreadableImageError, match="1024 x 1024 x 600 voxels .* exceeds"):
        NiftiReader().frame_count(tmp_path / "zeros.nii.gz")


def test_352_byte_nifti_claiming_32767_slices_is_refused_at_scan(tmp_path):
    nifti_header_only(tmp_path / "forged.nii", (64, 64, 32767))
    nifti_header_only(tmp_path / "forged.nii.gz", (64, 64, 32767))
    write_anchor(tmp_path)
    reasons = skipped(tmp_path)
    assert "declares 64 x 64 x 32767 voxels" in reasons["forged.nii"]
    assert "declares 64 x 64 x 32767 voxels" in reasons["forged.nii.gz"]


def test_deflated_dicom_bomb_is_refused_before_inflating(tmp_path, monkeypatch, memory_and_time_guard):
    import pydicom

    import core.images.readers.dicom as dicom
    dataset = pydicom.dcmread(PYDICOM_FILES / "CT_small.dcm")
    dataset.file_meta.TransferSyntaxUID = pydicom.uid.DeflatedExplicitVRLittleEndian
    dataset.PixelData = b"\0" * (4 * 1024**2)  # inflates 4 MB: over a limit lowered to 1 MB for the test
    dataset.Rows, dataset.Columns = 1024, 2048
    dataset.save_as(tmp_path / "deflated.dcm", enforce_file_format=True)
    assert (tmp_path / "deflated.dcm").stat().st_size < 100_000
    monkeypatch.setattr(dicom, "MAX_INFLATED_BYTES", 1024**2)
    with pytest.raises(UnreadableImageError, match="inflates to more than"):
        DicomReader().frame_count(tmp_path / "deflated.dcm")


@pytest.mark.parametrize("kind", ["fifo", "device_link"])
def test_special_files_named_zip_are_never_opened(kind, tmp_path, memory_and_time_guard):
    write_anchor(tmp_path)
    if kind == "fifo":
        os.mkfifo(tmp_path / "x.zip")
        os.mkfifo(tmp_path / "y.png")
    else:
        os.symlink("/dev/zero", tmp_path / "x.zip")
        os.symlink("/dev/zero", tmp_path / "y.png")
    reasons = skipped(tmp_path)
    expected = "not a regular file" if kind == "fifo" else "link to a file outside the folder"
    assert expected in reasons["x.zip"] and expected in reasons["y.png"]
    with pytest.raises(InputFolderError, match="not a regular file"):
        open_dataset(tmp_path / "x.zip")


# ---------------------------------------------------------------- case 4: never silently black
@pytest.mark.parametrize("changes, reason", [
    ({"RescaleSlope": 0}, "RescaleSlope 0"),
    ({"RescaleSlope": "NaN"}, "RescaleSlope nan"),
    ({"WindowCenter": 40, "WindowWidth": 0}, "WindowWidth 0"),
    ({"WindowCenter": 40, "WindowWidth": -400}, "WindowWidth -400"),
    ({"BitsAllocated": 8, "BitsStored": 8, "HighBit": 7}, "inconsistent BitsAllocated"),
    ({"NumberOfFrames": -5}, "NumberOfFrames -5"),
    ({"NumberOfFrames": 0}, "NumberOfFrames 0"),
])
def test_dicom_values_that_would_give_black_images_are_skipped_with_a_reason(changes, reason, tmp_path):
    dicom_variant(tmp_path / "bad.dcm", **changes)
    write_anchor(tmp_path)
    with open_dataset(tmp_path) as dataset:
        assert len(dataset.items) == 1, "only the anchor may be read"
        assert reason in dataset.report.skipped[0].reason
        assert "-4 images" not in dataset.report.to_text()


@pytest.mark.parametrize("values, reason", [
    (np.full((32, 32), np.nan, np.float32), "no finite pixel values"),
    (np.full((32, 32), 1000.5, np.float32), "constant image"),
    (np.full((32, 32), 3000, np.uint16), "constant image"),
])
def test_tiffs_without_contrast_are_skipped_with_a_reason(values, reason, tmp_path):
    Image.fromarray(values).save(tmp_path / "flat.tif")
    write_anchor(tmp_path)
    with open_dataset(tmp_path) as dataset:
        item = next(i for i in dataset.items if i.key == "flat.tif")
        with pytest.raises(UnreadableImageError, match=reason):
            dataset.read(item)


def test_constant_nifti_volume_is_skipped_not_black(tmp_path):
    import nibabel
    nibabel.save(nibabel.Nifti1Image(np.zeros((16, 16, 4), np.int16), np.eye(4)), tmp_path / "zeros.nii.gz")
    reader = NiftiReader()
    assert reader.frame_count(tmp_path / "zeros.nii.gz")[0] == 4
    for index in range(4):  # every slice says why, and the volume is read only once
        with pytest.raises(UnreadableImageError, match="constant"):
            reader.read_frame(tmp_path / "zeros.nii.gz", index)


# ---------------------------------------------------------------- case 5: slices are views of one volume
def test_nifti_volume_is_read_once_and_slices_are_views(tmp_path, monkeypatch):
    import nibabel
    volume = np.random.default_rng(0).normal(size=(32, 24, 10)).astype(np.float32)
    nibabel.save(nibabel.Nifti1Image(volume, np.eye(4)), tmp_path / "v.nii")
    reader = NiftiReader()
    loads = Counter()
    original = NiftiReader._load
    monkeypatch.setattr(NiftiReader, "_load", lambda self, path: loads.update([path]) or original(self, path))
    slices = [reader.read_frame(tmp_path / "v.nii", k) for k in range(10)]
    assert loads[tmp_path / "v.nii"] == 1 and all(s.shape == (24, 32) for s in slices)
    cached = reader._cached.raw
    assert isinstance(cached, np.memmap) or isinstance(cached.base, np.memmap)  # .nii is memory-mapped
    expected = np.rot90(volume[:, :, 3])
    assert np.corrcoef(slices[3].ravel(), expected.ravel())[0, 1] > 0.99


# ---------------------------------------------------------------- case 6 (inputs)
def test_zip_with_a_file_and_a_folder_of_the_same_name_keeps_the_rest(tmp_path):
    with zipfile.ZipFile(tmp_path / "clash.zip", "w") as bundle:
        bundle.writestr("a", b"plain file")
        bundle.writestr("a/b.png", _png_bytes(_gradient()))
        bundle.writestr("c.png", _png_bytes(_gradient()))
    with open_dataset(tmp_path / "clash.zip") as dataset:
        assert [item.key for item in dataset.items] == ["clash.zip!c.png"]
        assert any(s.path == "clash.zip!a/b.png" and "clashes" in s.reason for s in dataset.report.skipped)


def test_1100_nested_folders_are_walked_without_recursion(tmp_path):
    deep = tmp_path
    for _ in range(1100):  # one level at a time: Path.mkdir(parents=True) itself recurses
        deep = deep / "d"
        deep.mkdir()
    _png(deep / "deep.png", _gradient())
    try:
        with open_dataset(tmp_path) as dataset:
            assert len(dataset.items) == 1 and dataset.items[0].key.endswith("/deep.png")
    finally:  # removed bottom-up here: pytest's own clean-up of old temporary folders recurses and would fail
        (deep / "deep.png").unlink()
        while deep != tmp_path:
            deep.rmdir()
            deep = deep.parent


def test_losing_most_samples_to_one_file_fails_unless_partial_is_allowed():
    report = ReadReport()
    report.skip("forged.nii.gz", "cannot read NIfTI voxel data (EOFError)")
    report.dropped_samples.update({"forged.nii.gz": 1987, "a.png": 0})
    with pytest.raises(InputFolderError, match=r"1,987 of 2,000 samples .* forged\.nii\.gz .*--allow-partial"):
        _check_lost_samples(report, 2000, 13, allow_partial=False)
    _check_lost_samples(report, 2000, 13, allow_partial=True)
    assert "holds 13 samples, not 2,000" in report.to_text()


def test_a_few_lost_samples_are_reported_not_fatal():
    report = ReadReport()
    report.dropped_samples["broken.png"] = 7
    _check_lost_samples(report, 2000, 1993, allow_partial=False)
    assert "holds 1,993 samples, not 2,000" in report.to_text() and "broken.png" in report.to_text()
