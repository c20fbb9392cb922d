"""Example thumbnails: shipped only for clearly open licences, small, credited, and made the same way every time."""
from __future__ import annotations

import json
import shutil

from PIL import Image

from core.catalogue.store import DEFAULT_CATALOGUE
from core.catalogue.thumbnails import MAX_SIDE, make_thumbnails, redistributable, source_link, thumbnails_of
from tests.helpers import require_shared


def test_only_clear_open_licences_are_redistributable():
    assert redistributable("MIT (repo LICENSE)") and redistributable("CC BY 4.0 (MedMNIST)")
    assert not redistributable("upstream Kaggle release CC0 (as listed by the paper's task registry); repo states none")
    assert not redistributable("CC BY 4.0 (Mendeley page, as commonly stated; not re-checked here); repo: none")
    assert not redistributable("MIAS licence: research use only") and not redistributable("")
    assert not redistributable("ChestX-ray8 public (NIH); COVID images carry per-image licences")
    assert source_link("Shenggan/BCCD_Dataset") == "https://github.com/Shenggan/BCCD_Dataset"
    assert source_link("dhruvp/wbc-classification@0b22eb2") == "https://github.com/dhruvp/wbc-classification"
    assert source_link("scikit-learn load_digits()") is None


def test_shipped_thumbnails_are_small_credited_and_only_where_the_licence_allows():
    sources = json.loads((DEFAULT_CATALOGUE / "SOURCES.json").read_text())["tasks"]
    with_thumbnails = {task for task, entry in sources.items() if entry.get("thumbnails")}
    assert with_thumbnails == {task for task, entry in sources.items() if redistributable(entry["licence"])}
    assert with_thumbnails == {"bccd_cells", "pneumoniamnist"}
    for task in with_thumbnails:
        paths, record = thumbnails_of(DEFAULT_CATALOGUE, task)
        assert len(paths) == 6 and record["attribution"] and record["changes"] and record["licence"]
        for path in paths:
            with Image.open(path) as image:
                assert max(image.size) <= MAX_SIDE
    assert thumbnails_of(DEFAULT_CATALOGUE, "brain_mri_4class") == ([], {})
    assert not [p for p in (DEFAULT_CATALOGUE / "thumbnails").iterdir() if p.name not in with_thumbnails]


def test_the_command_makes_the_shipped_thumbnails_again_byte_for_byte(tmp_path):
    source = require_shared()
    copy = tmp_path / "catalogue"
    copy.mkdir()
    shutil.copy(DEFAULT_CATALOGUE / "SOURCES.json", copy / "SOURCES.json")
    made = make_thumbnails(source, copy, log=lambda _: None)
    assert set(made) == {"bccd_cells", "pneumoniamnist"}
    for files in made.values():
        for name in files:
            assert (copy / name).read_bytes() == (DEFAULT_CATALOGUE / name).read_bytes()
    assert json.loads((copy / "SOURCES.json").read_text()) == json.loads(
        (DEFAULT_CATALOGUE / "SOURCES.json").read_text())
