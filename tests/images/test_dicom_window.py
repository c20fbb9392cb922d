"""Issue 22: a DICOM window outside the pixel range (WindowCenter 100000 / WindowWidth 10, or a centre of 1e308)
falls back to the pixel range, as viewers do, with a note in the read report; never an all-black image without a
word."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from core.images.dataset import open_dataset

CT = Path(pydicom.__file__).parent / "data" / "test_files" / "CT_small.dcm"


def with_window(path: Path, center: str, width: str) -> Path:
    dataset = pydicom.dcmread(CT)
    dataset.WindowCenter, dataset.WindowWidth = center, width
    dataset.save_as(path)
    return path


@pytest.mark.parametrize("center, width", [("100000", "10"), ("1e308", "10"), ("-1e6", "5")])
def test_window_outside_the_pixels_uses_the_pixel_range_with_a_note(tmp_path, center, width):
    windowed, plain = tmp_path / "windowed", tmp_path / "plain"
    windowed.mkdir(), plain.mkdir()
    with_window(windowed / "ct.dcm", center, width)
    (plain / "ct.dcm").write_bytes(CT.read_bytes())
    with open_dataset(windowed) as dataset, open_dataset(plain) as reference:
        image = dataset.read(dataset.items[0])
        expected = reference.read(reference.items[0])
        text = dataset.report.to_text()
    assert image.std() > 20  # not a constant (all-black) image
    assert "lies outside the pixel values" in text and "the pixel range is used instead" in text
    if "WindowCenter" not in pydicom.dcmread(CT):  # the shipped file has no window: both use the pixel range
        assert np.array_equal(image, expected)


def test_a_window_inside_the_pixels_is_used_without_a_note(tmp_path):
    with_window(tmp_path / "ct.dcm", "40", "400")
    with open_dataset(tmp_path) as dataset:
        image = dataset.read(dataset.items[0])
        assert "outside the pixel values" not in dataset.report.to_text()
    assert image.min() == 0 and image.max() == 255  # a narrow soft-tissue window saturates both ends
