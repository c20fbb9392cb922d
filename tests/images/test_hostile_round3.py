"""Issue 22, crashes and leftovers: zip members with no name, a 300-character name or a very deep long path are
skipped with a reason (the run goes on); a member stored twice is read once; an empty file named dicomdir keeps a PNG
tree's labels; NFC and NFD spellings of a class are one class; knowledge.json that is not an object is a clear
catalogue error; the second opinion never says 'nan % farther'."""
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
