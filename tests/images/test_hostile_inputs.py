"""Every hostile input ends in a read image, a listed skip with a specific reason, or a clear refusal (issue 5)."""
from __future__ import annotations

import re

import numpy as np
import pytest

from core.errors import InputFolderError
from core.images.archive import extract_zip
from core.images.dataset import open_dataset
from tests.hostile_inputs import KINDS, write_anchor


def read_everything(dataset) -> list[str]:
    """Read every item like a fingerprint run would; return the reasons of the failures (never raise)."""
    from core.errors import UnreadableImageError
    reasons = []
    for item in dataset.items:
        try:
            image = dataset.read(item)
            assert image.dtype == np.uint8 and (image.ndim == 2 or image.shape[2] == 3)
        except UnreadableImageError as err:
            reasons.append(str(err))
    return reasons


@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
def test_each_kind_is_read_or_skipped_with_a_reason(kind, tmp_path):
    folder = tmp_path / "export"
    folder.mkdir()
    write_anchor(folder)
    kind.build(folder)
    with open_dataset(folder) as dataset:
        failures = read_everything(dataset)
        skipped = " | ".join(f"{s.path}: {s.reason}" for s in dataset.report.skipped)
        n_images = len(dataset.items) - 1  # minus the anchor
        if kind.expect == "read":
            assert n_images == kind.images and not failures, (skipped, failures)
            if kind.reason:  # some refused members travel with good ones
                assert re.search(kind.reason, skipped, re.I), skipped
        elif kind.skipped_at_sampling:  # caught when scanning the header or, at the latest, when decoding
            assert re.search(kind.reason, " ".join(failures) + skipped, re.I), (failures, skipped)
        else:
            assert n_images == 0 and re.search(kind.reason, skipped, re.I), skipped
            assert all(s.reason for s in dataset.report.skipped)


def test_zip_members_never_leave_the_extraction_folder(tmp_path):
    from tests.hostile_inputs import _zip_traversal
    _zip_traversal(tmp_path)
    target = tmp_path / "out"
    result = extract_zip(tmp_path / "traversal.zip", target)
    assert [p.name for p in result.extracted] == ["ok.png"]
    assert not (tmp_path / "escaped.png").exists()
    assert {reason for _, reason in result.refused} >= {"absolute path in archive refused"}


def test_zip_total_size_limit_stops_extraction(tmp_path):
    import zipfile
    with zipfile.ZipFile(tmp_path / "big.zip", "w") as bundle:
        for i in range(5):
            bundle.writestr(f"{i}.png", np.random.default_rng(i).bytes(100_000))
    with pytest.raises(InputFolderError, match="zip bomb"):
        extract_zip(tmp_path / "big.zip", tmp_path / "out", max_total_bytes=250_000)


def test_image_contents_are_right(tmp_path):
    from tests.hostile_inputs import _exif_rotated, _palette_transparent, _png16
    for build in (_png16, _palette_transparent, _exif_rotated):
        build(tmp_path)
    with open_dataset(tmp_path) as dataset:
        images = {item.key: dataset.read(item) for item in dataset.items}
    gray16 = images["gray16.png"]  # grayscale stays one channel until the crop
    assert gray16[:, 0].max() <= 5 and gray16[:, -1].min() >= 250  # 12-bit range stretched, not divided by 257
    assert np.all(np.diff(gray16[0].astype(int)) >= 0)
    palette = images["palette.png"]
    assert palette[:, :16].max() == 0 and (palette[:, 16:] == [255, 0, 0]).all()  # transparent -> black
    assert images["rotated.jpg"].shape[:2] == (60, 20)  # EXIF orientation applied


def test_empty_folder_and_folder_of_non_images_are_refused_clearly(tmp_path):
    with pytest.raises(InputFolderError, match="no readable image"):
        open_dataset(tmp_path)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InputFolderError, match=r"notes.txt: not an image format"):
        open_dataset(tmp_path)
    with pytest.raises(InputFolderError, match="no such file or folder"):
        open_dataset(tmp_path / "missing")


def test_a_file_that_disappears_mid_run_is_skipped(tmp_path, backbone):
    from core.features.sampling import SamplingProtocol
    from core.fingerprint.binning import BinEdges
    from core.fingerprint.pipeline import fingerprint_dataset
    from tests.hostile_inputs import _gradient, _png
    for i in range(6):
        _png(tmp_path / f"{i}.png", _gradient() // (i + 1))
    edges = BinEdges(np.zeros(1280, np.float32), np.full(1280, 3.0, np.float32))
    with open_dataset(tmp_path) as dataset:
        (tmp_path / "3.png").unlink()
        fingerprint = fingerprint_dataset(dataset, backbone, edges, SamplingProtocol(n=40, seed=0))
        assert any(s.path == "3.png" and "disappeared" in s.reason for s in dataset.report.skipped)
    assert 0 < fingerprint.meta.n_samples < 40


def test_thousand_file_run_survives_broken_files(tmp_path):
    from tests.hostile_inputs import _gradient, _png
    for i in range(1000):
        if i % 100 == 7:
            (tmp_path / f"{i:04d}.png").write_bytes(b"broken")
        else:
            _png(tmp_path / f"{i:04d}.png", _gradient(8, 8))
    with open_dataset(tmp_path) as dataset:
        assert len(dataset.items) == 990 and len(dataset.report.skipped) == 10


def test_extraction_folder_is_removed_on_close(tmp_path):
    from tests.hostile_inputs import _zip_in_zip
    _zip_in_zip(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    dataset = open_dataset(tmp_path, workdir=work)
    assert any(work.iterdir())
    dataset.close()
    assert not any(work.iterdir())


def test_folder_with_a_single_image_fingerprints(tmp_path, backbone):
    from core.features.sampling import SamplingProtocol
    from core.fingerprint.binning import BinEdges
    from core.fingerprint.pipeline import fingerprint_folder
    write_anchor(tmp_path)
    edges = BinEdges(np.zeros(1280, np.float32), np.full(1280, 3.0, np.float32))
    run = fingerprint_folder(tmp_path, backbone, edges, SamplingProtocol(n=16))
    assert run.fingerprint.meta.n_samples == 16 and run.report.n_files == 1
    assert run.fingerprint.meta.class_counts == {"(no class)": 1}
