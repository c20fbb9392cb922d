"""Issue 22, crashes and leftovers: zip members with no name, a 300-character name or a very deep long path are
skipped with a reason (the run goes on); a member stored twice is read once; an empty file named dicomdir keeps a PNG
tree's labels; NFC and NFD spellings of a class are one class; knowledge.json that is not an object is a clear
catalogue error; the second opinion never says 'nan % farther'; links to files outside the folder are skipped;
more samples than images is said plainly."""
from __future__ import annotations

import io
import unicodedata
import zipfile

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from core.catalogue.store import load_catalogue
from core.errors import CatalogueError
from core.features.sampling import SamplingProtocol, plan_samples, reuse_note
from core.fingerprint.pipeline import fingerprint_folder
from core.images.dataset import open_dataset
from core.report.recommend import second_opinion
from tests.synthetic import make_catalogue


def png_bytes(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (16, 16), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def test_zip_members_with_bad_names_are_skipped_with_a_reason(tmp_path):
    archive = tmp_path / "task.zip"
    deep = "/".join(["d" * 200] * 30) + "/deep.png"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("a/good.png", png_bytes(1))
        handle.writestr("b/good.png", png_bytes(2))
        handle.writestr(zipfile.ZipInfo(""), png_bytes(3))
        handle.writestr("a/" + "x" * 300 + ".png", png_bytes(4))
        handle.writestr(deep, png_bytes(5))
        with pytest.warns(UserWarning, match="Duplicate name"):
            handle.writestr("a/good.png", png_bytes(1))  # stored twice
    with open_dataset(archive) as dataset:
        reasons = {s.path.split("!", 1)[1][:20]: s.reason for s in dataset.report.skipped}
        assert len(dataset) == 2 and dataset.report.class_counts() == {"a": 1, "b": 1}
    assert reasons[""] == "member without a name"
    assert "too long" in reasons["a/" + "x" * 18].lower()
    assert "too long" in reasons["d" * 20].lower()
    assert reasons["a/good.png"] == "stored twice in the archive; read once"


def test_an_empty_dicomdir_file_keeps_the_labels_of_a_png_tree(tmp_path):
    for label, seed in (("benign", 1), ("malignant", 2)):
        (tmp_path / label).mkdir()
        (tmp_path / label / "x.png").write_bytes(png_bytes(seed))
    (tmp_path / "dicomdir").write_bytes(b"")
    with open_dataset(tmp_path) as dataset:
        assert dataset.report.class_counts() == {"benign": 1, "malignant": 1} and not dataset.report.labels_note


def test_nfc_and_nfd_spellings_of_a_class_are_one_class(tmp_path):
    name = "Lésion"
    for i, form in enumerate(("NFC", "NFD")):
        folder = tmp_path / unicodedata.normalize(form, name)
        folder.mkdir(exist_ok=True)
        (folder / f"{i}.png").write_bytes(png_bytes(i))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "o.png").write_bytes(png_bytes(9))
    with open_dataset(tmp_path) as dataset:
        assert dataset.report.class_counts() == {unicodedata.normalize("NFC", name): 2, "other": 1}


@pytest.mark.parametrize("content", [b"[1, 2]", b"42"])
def test_knowledge_that_is_not_an_object_is_a_clear_error(tmp_path, content):
    root = make_catalogue(tmp_path / "cat")
    (root / "knowledge.json").write_bytes(content)
    with pytest.raises(CatalogueError, match=r"knowledge\.json: must hold a JSON object"):
        load_catalogue(root)


def test_second_opinion_at_distance_zero_is_not_nan():
    table = pd.DataFrame({"task": ["twin", "next"], "distance": [0.0, 0.1], "kind": ["medical", "medical"]})
    assert second_opinion(table)["margin_pct"] is None


def test_a_single_top_level_folder_in_a_zip_is_a_wrapper_not_a_class(tmp_path):
    wrapped, plain = tmp_path / "alz40.zip", tmp_path / "plain.zip"
    with zipfile.ZipFile(wrapped, "w") as handle:
        for i, label in enumerate(("mild", "moderate", "none", "very_mild")):
            handle.writestr(f"alz40/{label}/{i}.png", png_bytes(i))
    with zipfile.ZipFile(plain, "w") as handle:
        handle.writestr("benign/1.png", png_bytes(1))
        handle.writestr("malignant/2.png", png_bytes(2))
    with open_dataset(wrapped) as dataset:
        assert dataset.report.class_counts() == {"mild": 1, "moderate": 1, "none": 1, "very_mild": 1}
        assert "'alz40' is taken as a wrapper" in dataset.report.to_text()
    with open_dataset(plain) as dataset:  # two top-level folders are the classes, as before
        assert dataset.report.class_counts() == {"benign": 1, "malignant": 1}


def test_links_to_images_outside_the_folder_are_skipped_with_a_reason(tmp_path):
    outside, task = tmp_path / "elsewhere", tmp_path / "task"
    (outside / "more").mkdir(parents=True)
    (outside / "secret.png").write_bytes(png_bytes(1))
    (outside / "more" / "x.png").write_bytes(png_bytes(2))
    (task / "a").mkdir(parents=True)
    (task / "a" / "own.png").write_bytes(png_bytes(3))
    (task / "a" / "secret.png").symlink_to(outside / "secret.png")
    (task / "a" / "relative.png").symlink_to("../../elsewhere/secret.png")
    (task / "a" / "chain.png").symlink_to(task / "a" / "relative.png")  # inside, but leads outside
    (task / "a" / "same.png").symlink_to("own.png")  # stays inside: may be read
    (task / "b").symlink_to(outside / "more", target_is_directory=True)
    with open_dataset(task) as dataset:
        report = dataset.report
        assert sorted(item.key for item in dataset.items) == ["a/own.png", "a/same.png"]
    reasons = {s.path: s.reason for s in report.skipped}
    for name in ("a/secret.png", "a/relative.png", "a/chain.png"):
        assert reasons[name].startswith("link to a file outside the folder")
    assert reasons["b"] == "symbolic link to a folder outside the folder is not followed"
    assert "a/secret.png: link to a file outside the folder" in report.to_text()


def test_more_samples_than_images_is_said_plainly(tmp_path, backbone, edges):
    for i in range(40):
        (tmp_path / "task").mkdir(exist_ok=True)
        (tmp_path / "task" / f"{i:02d}.png").write_bytes(png_bytes(100 + i))
    run = fingerprint_folder(tmp_path / "task", backbone, edges, SamplingProtocol(n=500, seed=1))
    line = "500 samples drawn with replacement from 40 images: each image is used about 12 times"
    assert run.fingerprint.meta.n_samples == 500
    assert run.report.to_text().splitlines()[1] == line and run.report.headlines() == [line]  # the app shows these
    assert reuse_note(2_000, 2_000) is None and reuse_note(3, 10) == ("10 samples drawn with replacement from 3 "
                                                                      "images: each image is used about 3.3 times")


RGB24 = np.dtype([("R", "u1"), ("G", "u1"), ("B", "u1")])


def test_nifti_rgb24_slices_are_read_as_colour(tmp_path):
    import nibabel

    volume = np.zeros((8, 6, 4), dtype=RGB24)
    volume["R"] = np.arange(8)[:, None, None] * 30  # red varies along x, green by slice, blue constant
    volume["G"] = np.arange(4)[None, None, :] * 60
    volume["B"] = 200
    nibabel.save(nibabel.Nifti1Image(volume, np.eye(4)), tmp_path / "colour.nii.gz")
    with open_dataset(tmp_path) as dataset:
        assert not dataset.report.skipped and len(dataset) == 4
        for item in dataset.items:
            image = dataset.read(item)
            assert image.shape == (6, 8, 3) and image.dtype == np.uint8  # rotated like grey slices: x runs across
            np.testing.assert_array_equal(image[0, :, 0], np.arange(8) * 30)
            assert (image[..., 1] == item.frame * 60).all() and (image[..., 2] == 200).all()


def test_a_nifti_volume_that_fails_while_sampling_is_listed_once(tmp_path, monkeypatch):
    import threading

    import nibabel

    from core.features.extract import crop_batches
    from core.images.readers.nifti import NiftiReader

    nibabel.save(nibabel.Nifti1Image(np.random.default_rng(0).random((16, 16, 12)).astype(np.float32), np.eye(4)),
                 tmp_path / "v.nii")
    (tmp_path / "ok.png").write_bytes(png_bytes(7))
    nibabel.save(nibabel.Nifti1Image(np.ones((4, 4, 3), dtype=np.complex64), np.eye(4)), tmp_path / "complex.nii")

    def broken(self, path):
        raise TypeError("numpy cannot window this")

    monkeypatch.setattr(NiftiReader, "_load", broken)
    with open_dataset(tmp_path) as dataset:
        assert [s.path for s in dataset.report.skipped] == ["complex.nii"]  # refused at scan, one reason
        assert "voxel type complex64 is not an image type" in dataset.report.skipped[0].reason
        plan = plan_samples(len(dataset), SamplingProtocol(n=200, seed=0))
        list(crop_batches(dataset, plan, 16, threading.Event()))
        rows = [s for s in dataset.report.skipped if s.path == "v.nii"]
    assert len(rows) == 1 and rows[0].reason.startswith("cannot read NIfTI volume (TypeError: numpy cannot window")
    assert dataset.report.dropped_samples["v.nii"] > 100
