"""The catalogue build command is reproducible: the same inputs and seed give byte-identical files."""
from __future__ import annotations

import json

import numpy as np
import pytest

from core.catalogue.build import build_catalogue
from core.catalogue.store import load_catalogue
from core.features.sampling import SamplingProtocol
from tests.helpers import PAPER, link_files, require_shared


@pytest.mark.slow
def test_small_build_is_reproducible_and_loadable(backbone, tmp_path):
    root = require_shared()
    source = tmp_path / "source"
    sources = json.loads((root / "SOURCES.json").read_text())
    chosen = ["ph2_3class", "busi_3class", "pneumoniamnist", "covid_ct"]
    for task in chosen:
        files = [p for c in sorted((root / task).iterdir()) for p in sorted(c.iterdir())[:6]]
        link_files(files, source / task, root / task)
    subset = {"tasks": {t: sources["tasks"][t] for t in chosen}}
    (source / "SOURCES.json").write_text(json.dumps(subset))
    protocol = SamplingProtocol(n=24, seed=1)
    messages = []
    for out in ("one", "two"):
        build_catalogue(source, tmp_path / out, backbone, protocol, paper=PAPER, with_controls=False,
                        log=messages.append)
    files_one = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*") if p.is_file())
    assert files_one == sorted(p.relative_to(tmp_path / "two") for p in (tmp_path / "two").rglob("*") if p.is_file())
    for relative in files_one:
        assert (tmp_path / "one" / relative).read_bytes() == (tmp_path / "two" / relative).read_bytes(), relative
    catalogue = load_catalogue(tmp_path / "one")
    assert catalogue.ids == sorted(chosen) and np.all(np.diag(catalogue.bkld_small) == 0)
    assert any("written to" in m for m in messages)
    assert set(catalogue.knowledge["tasks"]) == {"ph2_3class", "busi_3class", "pneumoniamnist", "covid_ct"}


@pytest.mark.parametrize("n_images", [7, 100])
def test_halves_split_images_not_samples_and_are_reproducible(n_images):
    """Fast (no backbone): the catalogue's image-disjoint halves put every sample of one image on the same side,
    about half of the images on each side, and the same split every time."""
    from core.catalogue.build import TaskFeatures
    from core.features.extract import FeatureBatch
    rng = np.random.default_rng(1)
    images = rng.integers(0, n_images, size=500)
    task = TaskFeatures(None, FeatureBatch({}, images), n_images, {})
    in_a = task.half_mask()
    assert np.array_equal(in_a, TaskFeatures(None, FeatureBatch({}, images), n_images, {}).half_mask())
    assert not set(images[in_a]) & set(images[~in_a])
    assert len(set(images[in_a])) == n_images // 2 and len(set(images[~in_a])) == n_images - n_images // 2
