"""The precomputed analysis (core.report.analysis) shows the same figures as the per-page computations it replaced,
for a real fingerprint with its samples: tables, bootstrap intervals and shares, closeness, verdict, heatmap row and
column, map placement, family and contributions. The old per-resample bootstrap loop (tests/reference_bootstrap.py)
stands in for the vectorised one on the old side."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.distances.registry import DISTANCES, WITH_CONTRIBUTIONS
from core.report import analysis
from tests.helpers import link_files, require_shared, task_halves
from tests.reference_bootstrap import loop_bootstrap_distances


@pytest.fixture(scope="module")
def user(backbone, catalogue, tmp_path_factory):
    """A real fingerprint with its samples: half of the brain MRI images, n = 150."""
    from core.features.sampling import SamplingProtocol
    from core.fingerprint.pipeline import fingerprint_folder
    first, _ = task_halves("brain_mri_4class")
    folder = link_files(first, tmp_path_factory.mktemp("brain"), require_shared() / "brain_mri_4class")
    return fingerprint_folder(folder, backbone, catalogue.edges, SamplingProtocol(n=150, seed=3), name="brain",
                              keep_samples=True).fingerprint


def assert_same_table(new: pd.DataFrame, old: pd.DataFrame) -> None:
    assert list(new.columns) == list(old.columns)
    assert list(new["task_id"]) == list(old["task_id"]) and new["rank"].equals(old["rank"])
    np.testing.assert_array_equal(new["distance"], old["distance"])  # the same bank computes both
    for column in ("interval_low", "interval_high"):
        np.testing.assert_allclose(new[column].astype(float), old[column].astype(float), rtol=1e-9)
    for column in ("rank_holds", "first_place", "vdna_rank"):
        if column in old:
            assert new[column].equals(old[column]), column
    text = [c for c in old.columns if old[c].dtype == object]
    assert new[text].equals(old[text])


@pytest.mark.parametrize("distance", list(DISTANCES))
def test_a_precomputed_ranking_shows_what_the_pages_computed_before(catalogue, user, distance, monkeypatch):
    import core.distances.bootstrap as bootstrap_module  # noqa: F401 (patched below)
    import core.report.recommend as recommend_module
    from core.report.recommend import bootstrap_for, how_close, recommendations
    from core.report.verdict import verdict_from_catalogue

    new = analysis.ranking(catalogue, user, distance)
    monkeypatch.setattr(bootstrap_module, "bootstrap_distances", loop_bootstrap_distances)  # the old loop
    monkeypatch.setattr(recommend_module, "bootstrap_distances", loop_bootstrap_distances)
    bootstrap = bootstrap_for(catalogue, user, distance)
    table = recommendations(catalogue, user, distance, bootstrap)
    assert_same_table(new.table, table)
    assert np.array_equal(new.bootstrap.rank_stability, bootstrap.rank_stability)
    assert np.array_equal(new.bootstrap.top1_share, bootstrap.top1_share)
    np.testing.assert_allclose(new.bootstrap.values, bootstrap.values, rtol=1e-9)
    closeness = how_close(catalogue, table, user, distance)
    assert (new.closeness.message, new.closeness.close) == (closeness.message, closeness.close)
    verdict = verdict_from_catalogue(catalogue, table, user, distance, bootstrap)
    assert (new.verdict.level, new.verdict.sentence) == (verdict.level, verdict.sentence)
    for field, value in vars(verdict.evidence).items():
        if isinstance(value, float):
            assert getattr(new.verdict.evidence, field) == pytest.approx(value, rel=1e-9, nan_ok=True), field
        else:
            assert getattr(new.verdict.evidence, field) == value, field
    np.testing.assert_array_equal(new.from_user, catalogue.distances_from(user, distance))


def test_placement_and_contributions_equal_the_page_functions(catalogue, user):
    from core.catalogue.families import families_report, family_of
    from core.catalogue.taskmap import place_on_map
    from core.distances.bank import contributions_to
    from core.report.views import map_ranks

    found = analysis.placement(catalogue, user)
    ranks = map_ranks(catalogue, user)
    np.testing.assert_array_equal(found.ranks, ranks)
    np.testing.assert_array_equal(found.xy, place_on_map(catalogue.coords, ranks))
    assert found.family == family_of(ranks, catalogue.ids, families_report(catalogue))
    for distance in WITH_CONTRIBUTIONS:
        every = analysis.contributions(catalogue, user, distance)
        for row, task_id in enumerate(catalogue.ids):
            np.testing.assert_allclose(every[row], contributions_to(user, catalogue.fingerprints[task_id], distance),
                                       rtol=1e-12, atol=1e-15)


def test_parts_are_computed_once_whoever_asks_first():
    import threading
    import time

    calls: list[str] = []
    started = threading.Event()

    def compute(key):
        calls.append(key)
        started.set()
        time.sleep(0.2)
        return key.upper()

    parts = analysis.Parts(compute)
    parts.prepare_all(["a", "b"])
    started.wait(5)
    assert parts.get("a") == "A"  # claimed by the background thread: waited for, not recomputed
    assert parts.get("c") == "C"  # not planned: computed in the caller
    parts.thread.join(5)
    assert sorted(calls) == ["a", "b", "c"] and parts.progress() == (2, 2)


@pytest.mark.parametrize("distance", list(DISTANCES))
def test_the_first_table_equals_the_final_one_and_the_ranking_reuses_its_distances(catalogue, user, distance):
    """The table a page shows before the bootstrap (the points part) has the final table's rows, order, distances
    and text; the ranking made from it equals one made from scratch."""
    first = analysis.points(catalogue, user, distance)
    full = analysis.ranking(catalogue, user, distance)
    shared = [c for c in full.table.columns if c in first.table.columns]
    assert set(full.table.columns) - set(shared) <= {"interval_low", "interval_high", "rank_holds", "first_place",
                                                     "second_opinion_rank"}
    assert first.table.equals(full.table[shared])
    np.testing.assert_array_equal(first.to_user, full.to_user)
    reused = analysis.ranking(catalogue, user, distance, first=first)
    assert reused.table.equals(full.table)
    assert (reused.verdict.level, reused.verdict.sentence) == (full.verdict.level, full.verdict.sentence)
    np.testing.assert_array_equal(reused.bootstrap.values, full.bootstrap.values)


def test_a_ranking_part_starts_from_the_points_part_computed_once(catalogue, user, monkeypatch):
    calls: list[str] = []
    original = catalogue.distances_to

    def counted(target, distance):
        calls.append(distance)
        return original(target, distance)

    monkeypatch.setattr(catalogue, "distances_to", counted)
    parts = analysis.Parts(lambda name: analysis.compute_part(catalogue, user, name, parts.get))
    parts.get(("points", "bkld-large"))
    parts.get(("ranking", "bkld-large"))
    assert calls.count("bkld-large") == 1  # the ranking reused the first table's distances


def test_start_leaves_a_planned_part_to_the_background_and_computes_others_once():
    import threading

    release, calls = threading.Event(), []

    def compute(key):
        calls.append(key)
        release.wait(5)
        return key

    parts = analysis.Parts(compute)
    parts.prepare_all(["a", "b"])
    parts.start("b")  # planned and still to come: left to the background thread
    parts.start("c")  # not planned: its own thread
    parts.start("c")
    release.set()
    assert parts.get("c") == "c" and parts.get("b") == "b"
    parts.thread.join(5)
    assert sorted(calls) == ["a", "b", "c"]
