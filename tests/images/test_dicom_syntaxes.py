"""Every standard DICOM transfer syntax decodes (issue 14), and a DICOM export's patient or study folders are not
taken as class labels.

One of pydicom's shipped test files per transfer syntax. Pixels are compared with a reference wherever one exists:
the uncompressed twin (``MR_small.dcm``, read straight from its bytes; ``SC_rgb_rle.dcm``, decoded by pydicom's own
pure-Python RLE decoder), with ``np.array_equal`` for lossless syntaxes and a stated tolerance for lossy ones, or the
pixel values pydicom's own test suite asserts (``tests/pixels/pixels_reference.py``) where pydicom ships no twin.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.encaps import generate_frames
from pydicom.pixels.decoders.base import get_decoder
from pydicom.uid import (
    HTJ2K,
    JPEG2000,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
    generate_uid,
)

from core.cli import EXIT_OK
from core.errors import UnreadableImageError
from core.images.dataset import NO_CLASS, open_dataset
from core.images.readers.dicom import DicomReader
from tests.helpers import ROOT
from tests.hostile_inputs import PYDICOM_FILES, _gradient, _png

EXPORT_NOTE = "no class labels: the first-level folders look like patients/studies of a DICOM export ("


def decoded(name: str, plugin: str = "") -> np.ndarray:
    """The stored pixel values of a pydicom test file, decoded by ``plugin`` (the first available one if '')."""
    dataset = pydicom.dcmread(PYDICOM_FILES / name)
    if plugin:
        dataset.pixel_array_options(decoding_plugin=plugin)
    return dataset.pixel_array


def mr_small_reference() -> np.ndarray:
    """MR_small's stored values (64 x 64, int16) read straight from the uncompressed file's bytes: no decoder."""
    dataset = pydicom.dcmread(PYDICOM_FILES / "MR_small.dcm")
    assert dataset.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert (dataset.BitsAllocated, dataset.PixelRepresentation, dataset.SamplesPerPixel) == (16, 1, 1)
    reference = np.frombuffer(dataset.PixelData, dtype="<i2").reshape(dataset.Rows, dataset.Columns)
    # the values pydicom's test suite asserts for MR_small, so the reference itself is right
    assert tuple(reference[0, 31:34]) == (422, 319, 361) and tuple(reference[31, :3]) == (366, 363, 322)
    assert tuple(reference[-1, -3:]) == (1369, 1129, 862)
    return reference


def sc_rgb_reference() -> np.ndarray:
    """The SC_rgb colour bars (100 x 100 x 3, uint8), decoded from the RLE copy by pydicom's pure-Python RLE decoder
    (not a plugin under test); checked against the bar colours pydicom's test suite asserts."""
    reference = decoded("SC_rgb_rle.dcm", "pydicom")
    bars = {5: (255, 0, 0), 15: (255, 128, 128), 25: (0, 255, 0), 35: (128, 255, 128), 45: (0, 0, 255),
            55: (128, 128, 255), 65: (0, 0, 0), 75: (64, 64, 64), 85: (192, 192, 192), 95: (255, 255, 255)}
    assert reference.shape == (100, 100, 3) and reference.dtype == np.uint8
    for row, colour in bars.items():
        assert tuple(reference[row, 50]) == colour
    return reference


def jpeg_ls_near(name: str) -> int:
    """The NEAR parameter of a JPEG-LS file's first scan (0 = lossless; otherwise the largest allowed error per
    sample), read from the start-of-scan marker: FF DA, length (2 bytes), Ns, Ns x (Ci, Tmi), NEAR."""
    dataset = pydicom.dcmread(PYDICOM_FILES / name)
    frame = next(generate_frames(dataset.PixelData, number_of_frames=int(dataset.get("NumberOfFrames", 1) or 1)))
    start = frame.index(b"\xff\xda")
    components = frame[start + 4]
    return frame[start + 5 + 2 * components]


def _equals_mr_small(pixels: np.ndarray) -> None:
    assert pixels.dtype.kind == "i" and pixels.dtype.itemsize == 2  # signed 16-bit, big endian for big endian
    assert np.array_equal(pixels, mr_small_reference())


def _equals_sc_rgb(pixels: np.ndarray) -> None:
    assert np.array_equal(pixels, sc_rgb_reference())


def _deflated(pixels: np.ndarray) -> None:
    assert pixels.shape == (512, 512) and pixels.dtype == np.uint8  # pydicom's asserted values for image_dfl.dcm
    assert (pixels[10].min(), pixels[10].max(), pixels[500].min(), pixels[500].max()) == (41, 255, 65, 219)
    assert tuple(pixels[300, 255:263]) == (138, 65, 65, 65, 65, 35, 35, 35)


def _jpeg_baseline(pixels: np.ndarray) -> None:
    """Lossy YCbCr 4:2:2 JPEG of the colour bars, converted to RGB: measured max error 6, mean 0.57 grey levels."""
    error = np.abs(pixels.astype(int) - sc_rgb_reference())
    assert pixels.shape == (100, 100, 3) and error.max() <= 8 and error.mean() <= 1.0, (error.max(), error.mean())


def _jpeg_extended_12bit(pixels: np.ndarray) -> None:
    assert pixels.shape == (1024, 256) and pixels.dtype == np.uint16 and pixels.max() < 4096  # 12-bit samples
    assert (pixels[420, 140], pixels[230, 120]) == (244, 95)  # pydicom's asserted values for JPGExtended.dcm


# JPEGLSNearLossless_16.dcm: ten bands of 5 rows. pydicom ships no uncompressed twin; the bands decode to values
# within NEAR = 2 of 2**k - 1, the evident source (an inference from the pattern, not a shipped reference).
NEAR_LOSSLESS_16_BANDS = (65535, 32767, 16383, 4095, 1023, 255, 63, 15, 3, 0)


def _jpeg_ls_near_lossless_16(pixels: np.ndarray) -> None:
    near = jpeg_ls_near("JPEGLSNearLossless_16.dcm")
    assert near == 2 and pixels.shape == (50, 10) and pixels.dtype == np.uint16
    expected = np.repeat(np.array(NEAR_LOSSLESS_16_BANDS, dtype=int), 5)[:, None]
    assert np.abs(pixels.astype(int) - expected).max() <= near
    # two independent JPEG-LS implementations agree exactly: CharLS (pyjpegls) and libjpeg (pylibjpeg)
    assert np.array_equal(decoded("JPEGLSNearLossless_16.dcm", "pyjpegls"),
                          decoded("JPEGLSNearLossless_16.dcm", "pylibjpeg"))


def _jpeg_ls_near_lossless_rgb(pixels: np.ndarray) -> None:
    near = jpeg_ls_near("SC_rgb_jls_lossy_line.dcm")
    assert near > 0, "the file should be near-lossless"
    assert pixels.shape == (100, 100, 3) and np.abs(pixels.astype(int) - sc_rgb_reference()).max() <= near


def _jpeg_2000_lossy(pixels: np.ndarray) -> None:
    """pydicom's reference JPEG2000_UNC.dcm is not in the wheel (download only). Instead: OpenJPEG through
    pylibjpeg-openjpeg and Pillow agree exactly, and the image matches the 12-bit JPEG of the same scan
    (JPGExtended.dcm, NEMA's NM1 image) within lossy-codec error (measured: median 2, correlation 0.954)."""
    assert pixels.shape == (1024, 256)
    assert np.array_equal(decoded("JPEG2000.dcm", "pylibjpeg"), decoded("JPEG2000.dcm", "pillow"))
    other = decoded("JPGExtended.dcm").astype(float)
    assert np.median(np.abs(pixels - other)) <= 3 and np.corrcoef(pixels.ravel(), other.ravel())[0, 1] > 0.9


@dataclass(frozen=True)
class SyntaxCase:
    label: str
    file: str
    uid: str
    check: Callable[[np.ndarray], None]  # raises AssertionError unless the decoded pixels match the reference
    twin: str = ""  # an uncompressed or lossless file of the same image: the reader's 8-bit output must be equal


CASES = [
    SyntaxCase("explicit little endian", "MR_small.dcm", ExplicitVRLittleEndian, _equals_mr_small),
    SyntaxCase("implicit little endian", "MR_small_implicit.dcm", ImplicitVRLittleEndian, _equals_mr_small,
               "MR_small.dcm"),
    SyntaxCase("explicit big endian", "MR_small_bigendian.dcm", ExplicitVRBigEndian, _equals_mr_small,
               "MR_small.dcm"),
    SyntaxCase("deflated", "image_dfl.dcm", DeflatedExplicitVRLittleEndian, _deflated),
    SyntaxCase("RLE lossless", "MR_small_RLE.dcm", RLELossless, _equals_mr_small, "MR_small.dcm"),
    SyntaxCase("JPEG baseline", "SC_rgb_jpeg_dcmtk.dcm", JPEGBaseline8Bit, _jpeg_baseline),
    SyntaxCase("JPEG extended 12-bit", "JPGExtended.dcm", JPEGExtended12Bit, _jpeg_extended_12bit),
    SyntaxCase("JPEG lossless P14 SV1", "SC_rgb_jpeg_gdcm.dcm", JPEGLosslessSV1, _equals_sc_rgb, "SC_rgb_rle.dcm"),
    SyntaxCase("JPEG-LS lossless", "MR_small_jpeg_ls_lossless.dcm", JPEGLSLossless, _equals_mr_small,
               "MR_small.dcm"),
    SyntaxCase("JPEG-LS near-lossless 16-bit", "JPEGLSNearLossless_16.dcm", JPEGLSNearLossless,
               _jpeg_ls_near_lossless_16),
    SyntaxCase("JPEG-LS near-lossless RGB", "SC_rgb_jls_lossy_line.dcm", JPEGLSNearLossless,
               _jpeg_ls_near_lossless_rgb),
    SyntaxCase("JPEG 2000 lossless", "MR_small_jp2klossless.dcm", JPEG2000Lossless, _equals_mr_small,
               "MR_small.dcm"),
    SyntaxCase("JPEG 2000", "JPEG2000.dcm", JPEG2000, _jpeg_2000_lossy),
]
MALFORMED = "JPEG-lossy.dcm"  # pydicom's deliberately broken 12-bit JPEG (invalid scan stop): no decoder reads it


@pytest.mark.parametrize("case", CASES, ids=[case.label for case in CASES])
def test_each_syntax_decodes_to_its_reference(case):
    dataset = pydicom.dcmread(PYDICOM_FILES / case.file, stop_before_pixels=True)
    assert dataset.file_meta.TransferSyntaxUID == case.uid, f"{case.file} is not {UID(case.uid).name}"
    case.check(decoded(case.file))


@pytest.mark.parametrize("case", CASES, ids=[case.label for case in CASES])
def test_the_reader_reads_each_syntax(case):
    reader, path = DicomReader(), PYDICOM_FILES / case.file
    assert reader.frame_count(path) == (1, None)  # no "needs a decoder" refusal
    image = reader.read_frame(path, 0)
    header = pydicom.dcmread(path, stop_before_pixels=True)
    colour = (3,) if header.SamplesPerPixel == 3 else ()
    assert image.dtype == np.uint8 and image.shape == (header.Rows, header.Columns, *colour)
    assert image.max() > image.min(), f"{case.file}: the 8-bit image is flat"
    if case.twin:
        assert np.array_equal(image, reader.read_frame(PYDICOM_FILES / case.twin, 0))


def test_every_standard_compressed_syntax_has_an_installed_decoder():
    plugins = {JPEGBaseline8Bit: "pylibjpeg", JPEGExtended12Bit: "pylibjpeg", JPEGLossless: "pylibjpeg",
               JPEGLosslessSV1: "pylibjpeg", JPEGLSLossless: "pyjpegls", JPEGLSNearLossless: "pyjpegls",
               JPEG2000Lossless: "pylibjpeg", JPEG2000: "pylibjpeg", HTJ2KLossless: "pylibjpeg",
               HTJ2KLosslessRPCL: "pylibjpeg", HTJ2K: "pylibjpeg", RLELossless: "pylibjpeg"}
    missing = {UID(uid).name: get_decoder(uid).missing_dependencies for uid, plugin in plugins.items()
               if plugin not in get_decoder(uid).available_plugins}
    assert not missing, missing


def test_a_missing_decoder_is_named_when_scanning(monkeypatch, tmp_path):
    decoder = get_decoder(JPEGLSNearLossless)
    monkeypatch.setattr(decoder, "_available", {})  # as on a machine without pyjpegls and pylibjpeg-libjpeg
    monkeypatch.setattr(decoder, "_unavailable", {"pyjpegls": ("pyjpegls",)})
    shutil.copy(PYDICOM_FILES / "JPEGLSNearLossless_16.dcm", tmp_path / "jls.dcm")
    shutil.copy(PYDICOM_FILES / "MR_small.dcm", tmp_path / "mr.dcm")
    with open_dataset(tmp_path) as dataset:
        assert [item.key for item in dataset.items] == ["mr.dcm"]
        assert [(s.path, s.reason) for s in dataset.report.skipped] == [
            ("jls.dcm", "compressed transfer syntax 'JPEG-LS Lossy (Near-Lossless) Image Compression' needs a "
                        "decoder that is not installed (pyjpegls - requires pyjpegls)")]


def test_an_undecodable_file_is_listed_with_the_decoders_reason(backbone, edges, tmp_path):
    from core.features.sampling import SamplingProtocol
    from core.fingerprint.pipeline import fingerprint_dataset
    shutil.copy(PYDICOM_FILES / MALFORMED, tmp_path / MALFORMED)
    shutil.copy(PYDICOM_FILES / "MR_small.dcm", tmp_path / "MR_small.dcm")
    with open_dataset(tmp_path) as dataset:
        assert len(dataset.items) == 2  # the header is fine; only decoding the pixels fails
        with pytest.raises(UnreadableImageError) as caught:
            dataset.read(next(item for item in dataset.items if item.key == MALFORMED))
        reason = str(caught.value)
        assert reason.startswith("cannot decode DICOM pixel data (RuntimeError: ") and "\n" not in reason
        assert "pylibjpeg: libjpeg error" in reason and "scan stop must be 63" in reason
        fingerprint = fingerprint_dataset(dataset, backbone, edges, SamplingProtocol(n=16, seed=0))
        skipped = [(s.path, s.reason) for s in dataset.report.skipped]
    assert len(skipped) == 1 and skipped[0][0] == MALFORMED
    assert reason in skipped[0][1] and "found while sampling" in skipped[0][1]
    assert 0 < fingerprint.meta.n_samples < 16


@pytest.mark.slow
def test_the_command_line_reads_a_folder_of_every_syntax_completely(tmp_path):
    folder = tmp_path / "syntaxes"
    folder.mkdir()
    for case in CASES:
        shutil.copy(PYDICOM_FILES / case.file, folder / case.file)
    output = tmp_path / "out.npz"
    done = subprocess.run([sys.executable, "-m", "core", "fingerprint", str(folder), "-o", str(output), "--n", "50"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == EXIT_OK, done.stderr
    assert f"read {len(CASES)} files ({len(CASES)} images) in 1 classes" in done.stderr, done.stderr
    assert "skipped" not in done.stderr and "decoder" not in done.stderr, done.stderr
    assert output.is_file() and "(50 samples)" in done.stderr


# A DICOM export: PATIENT/STUDY/SERIES/IMAGE folders. Files are copies of pydicom's test files with new identities.
EXPORT_FILES = ("MR_small.dcm", "CT_small.dcm", "MR_small_jpeg_ls_lossless.dcm")


def _identified(name: str, patient: str, study: str) -> pydicom.Dataset:
    dataset = pydicom.dcmread(PYDICOM_FILES / name)
    dataset.PatientID, dataset.StudyInstanceUID = patient, study
    dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    return dataset


def _write_export(root: Path, folder_name: Callable[[str, str], str]) -> None:
    """Two patients, one study each, files without extension as PACS exports write them; the first-level folder
    is named by ``folder_name(patient_id, study_uid)``."""
    for number, patient in enumerate(("PAT0001", "PAT0002")):
        study = generate_uid()
        for index, name in enumerate(EXPORT_FILES):
            target = root / folder_name(patient, study) / "STUDY1" / f"SERIES{index}" / f"IM{number}{index:03d}"
            target.parent.mkdir(parents=True, exist_ok=True)
            _identified(name, patient, study).save_as(target, enforce_file_format=True)


@pytest.mark.parametrize("named_by", ["PatientID", "StudyInstanceUID"])
def test_patient_or_study_folders_are_not_class_labels(named_by, tmp_path):
    _write_export(tmp_path, lambda patient, study: patient if named_by == "PatientID" else study)
    with open_dataset(tmp_path) as dataset:
        report = dataset.report
        assert report.class_counts() == {NO_CLASS: 6} and {item.label for item in dataset.items} == {NO_CLASS}
        assert report.files == {("DICOM", NO_CLASS): 6} and report.skipped == []
        assert report.labels_note == (EXPORT_NOTE + f"every folder name (2 folders) equals the {named_by} of the "
                                                    "DICOM files inside)")
        assert report.to_text().splitlines()[:2] == ["read 6 files (6 images) in 1 classes", report.labels_note]


def test_a_dicomdir_marks_an_export(tmp_path):
    from pydicom.fileset import FileSet
    file_set = FileSet()  # pydicom writes a real export: DICOMDIR + PT000000/ST000000/SE000000/IM000000
    for number, patient in enumerate(("PAT0001", "PAT0002")):
        for name in EXPORT_FILES[number:]:
            file_set.add(_identified(name, patient, f"1.2.826.0.1.3680043.8.498.{number + 1}"))
    file_set.write(tmp_path)
    assert (tmp_path / "DICOMDIR").is_file() and (tmp_path / "PT000001").is_dir()
    with open_dataset(tmp_path) as dataset:
        report = dataset.report
        assert report.class_counts() == {NO_CLASS: 5}
        assert report.labels_note == EXPORT_NOTE + "a DICOMDIR file lies beside them)"
        assert [s.path for s in report.skipped] == ["DICOMDIR"]  # listed, with its reason: no pixel data
        assert report.labels_note in report.to_text()


def test_class_folders_of_dicom_files_stay_class_labels(tmp_path):
    # class folders holding DICOM files (not named after their patients or studies), each even with its own export
    # and DICOMDIR inside: a DICOMDIR one level down makes the class folder an export, not the input
    from pydicom.fileset import FileSet
    for label, patient in (("benign", "PAT0001"), ("malignant", "PAT0002")):
        file_set = FileSet()
        file_set.add(_identified("CT_small.dcm", patient, generate_uid()))
        file_set.write(tmp_path / label)  # benign/DICOMDIR, benign/PT000000/ST000000/SE000000/IM000000
        _identified("MR_small.dcm", patient, generate_uid()).save_as(tmp_path / label / "loose.dcm",
                                                                     enforce_file_format=True)
    with open_dataset(tmp_path) as dataset:
        assert dataset.report.class_counts() == {"benign": 2, "malignant": 2}
        assert dataset.report.labels_note == "" and "no class labels" not in dataset.report.to_text()


def test_patient_folders_with_other_images_keep_their_labels(tmp_path):
    # the folder-name rule needs every image to be DICOM: a folder of photos beside them is a class tree
    _write_export(tmp_path, lambda patient, study: patient)
    (tmp_path / "photos").mkdir()
    _png(tmp_path / "photos" / "skin.png", _gradient())
    with open_dataset(tmp_path) as dataset:
        assert dataset.report.class_counts() == {"PAT0001": 3, "PAT0002": 3, "photos": 1}
        assert dataset.report.labels_note == ""
