"""Views that show structure at 19 and at 150 tasks (issue 10): the compact bKLD bank, the heatmap's focus and colour
range, map labels, feature meaning, table filters, and every page on a 150-task synthetic catalogue."""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from core.distances.bank import contributions_to
from core.report.views import USER_ID, filter_tasks, heatmap_view, map_annotations, map_frame
from tests.helpers import app, find_table, no_exceptions

N_SYNTHETIC = 150


@pytest.fixture(scope="module")
def synthetic(catalogue, tmp_path_factory):
    """A 150-task synthetic catalogue with the shipped catalogue's edges, weights and probe."""
    from core.catalogue.store import load_catalogue
    from core.catalogue.synthetic import write_synthetic_catalogue
    root = write_synthetic_catalogue(tmp_path_factory.mktemp("scale") / "catalogue", catalogue, N_SYNTHETIC)
    return load_catalogue(root)


def test_catalogue_bank_gives_the_stored_columns_and_rows(catalogue):
    for distance in ("bkld-small", "bkld-large"):
        target = catalogue.fingerprints["busi_3class"]
        at = catalogue.ids.index("busi_3class")
        values = catalogue.distances_to(target, distance)
        assert values[at] == 0.0  # the task itself, exactly
        np.testing.assert_allclose(values, catalogue.matrix(distance)[:, at], rtol=1e-12)
        np.testing.assert_allclose(catalogue.distances_from(target, distance), catalogue.matrix(distance)[at],
                                   rtol=1e-12)


def test_heatmap_colours_only_the_off_diagonal_range(catalogue):
    view = heatmap_view(catalogue, catalogue.fingerprints["covid_ct"].renamed("mine"))
    values = view.symmetric.values
    assert values.shape == (20, 20) and np.isnan(np.diag(values)).all()
    off = values[~np.eye(20, dtype=bool)]
    assert view.lo >= off.min() and view.lo > 0 and view.hi <= off.max()  # the diagonal's 0 is not the range end
    assert "control" in view.modality and "your task" in view.modality
    d = view.directed.values
    assert np.allclose(np.nan_to_num(values), np.nan_to_num((d + d.T) / 2 * (1 - np.eye(20))))


def test_heatmap_keeps_tasks_that_share_a_name_apart(catalogue):
    """Two tasks named alike (two institutions' "Chest X-ray") stay two rows and two columns, numbered."""
    import copy
    from dataclasses import replace

    from core.report.views import distinct_names

    assert distinct_names(["Chest X-ray", "CT", "Chest X-ray", "Chest X-ray (2)", "Chest X-ray"]) == \
        ["Chest X-ray", "CT", "Chest X-ray (3)", "Chest X-ray (2)", "Chest X-ray (4)"]
    alike = copy.copy(catalogue)
    alike.tasks = [replace(t, name="Chest X-ray") if i in (0, 5) else t for i, t in enumerate(catalogue.tasks)]
    view = heatmap_view(alike, catalogue.fingerprints["covid_ct"].renamed("Chest X-ray"))
    labels = list(view.symmetric.index)
    assert len(set(labels)) == 20 and labels == list(view.directed.columns)
    assert {"Chest X-ray", "Chest X-ray (2)", "Chest X-ray (yours)"} <= set(labels)
    pair = sorted([view.directed.loc["Chest X-ray", "Chest X-ray (2)"], view.directed.loc["Chest X-ray (2)",
                                                                                          "Chest X-ray"]])
    np.testing.assert_allclose(pair, sorted([catalogue.bkld_small[0, 5], catalogue.bkld_small[5, 0]]), rtol=1e-12)
    # numbered in catalogue order, as the menus number them (views.task_labels): the first is task 0
    np.testing.assert_allclose(view.directed.loc["Chest X-ray", "Chest X-ray (2)"], catalogue.bkld_small[0, 5],
                               rtol=1e-12)


def test_heatmap_of_150_tasks_focuses_on_the_task_and_its_30_nearest(synthetic, catalogue):
    user = catalogue.fingerprints["brain_mri_4class"].renamed("mine")
    view = heatmap_view(synthetic, user, around=USER_ID, nearest=30)
    assert len(view.symmetric) == 31 and view.total == 151 and "mine (yours)" in view.symmetric.index
    everything = heatmap_view(synthetic, user, around=None)
    assert len(everything.symmetric) == 151


def test_map_names_every_task_up_to_30_and_the_nearest_beyond(catalogue, synthetic):
    small = map_annotations(map_frame(catalogue, catalogue.coords), np.arange(19.0))
    assert (small["label"] == small["task"]).all()
    assert sorted(small["nearest"])[-3:] == [1, 2, 3] and small.loc[small["nearest"] == 1, "task_id"].item() == \
        catalogue.ids[0]
    assert set(small.loc[small["kind"] == "control", "family"]) == {"control"}
    to_user = np.linspace(1, 2, N_SYNTHETIC)
    large = map_annotations(map_frame(synthetic, synthetic.coords, np.zeros(2), "mine"), to_user)
    named = large[(large["label"] != "") & (large["task_id"] != USER_ID)]
    assert list(named["task_id"]) == synthetic.ids[:12]
    from ui.figures import WEBGL_ABOVE, modality_styles, task_map
    styles = modality_styles(large[large["task_id"] != USER_ID])
    assert len(set(styles.values())) == len(styles)  # every modality its own colour + shape
    assert WEBGL_ABOVE < 1000 and task_map(large).data  # builds


def test_features_are_named_by_imagenet_classes_and_bins_add_up(backbone, catalogue):
    from core.report.feature_meaning import bin_contributions, classifier_weight, feature_classes, imagenet_class_names
    weight, names = classifier_weight(backbone), imagenet_class_names()
    assert weight.shape == (1000, 1280) and names[1] == "goldfish"
    table = feature_classes(weight, names, [5, 828])
    assert table.loc[0, "top_class"] == names[int(np.argmax(weight[:, 5]))]
    assert not table["classes"].str.contains(r"^f\d+", regex=True).any()
    target, source = catalogue.fingerprints["busi_3class"], catalogue.fingerprints["covid_ct"]
    per_feature = contributions_to(target, source, "bkld-large") * target.n_features  # KL_f (w_f = 1)
    for feature in (0, 828):
        terms = bin_contributions(target.counts[feature], source.counts[feature], 1000)
        assert terms.shape == (1000,) and np.isclose(terms.sum(), per_feature[feature])


def test_filters_by_modality_family_and_name():
    frame = pd.DataFrame({"task": ["Knee X-ray", "Chest X-ray", "Brain MRI"],
                          "modality": ["X-ray (knee, AP)", "X-ray", "MRI"]})
    assert list(filter_tasks(frame, ["x-ray"])["task"]) == ["Knee X-ray", "Chest X-ray"]
    assert list(filter_tasks(frame, [], "brain")["task"]) == ["Brain MRI"]
    assert list(filter_tasks(frame, ["x-ray"], "CHEST")["task"]) == ["Chest X-ray"]


def test_every_page_works_on_150_tasks(synthetic, catalogue):
    os.environ["TFE_CATALOGUE"] = str(synthetic.root)
    try:
        user = catalogue.fingerprints["brain_mri_4class"].renamed("mine")
        for page in ("pages/0_Your_task.py", "pages/2_Map.py", "pages/4_Why_similar.py",
                     "pages/5_Catalogue_explorer.py", "pages/6_Co-training_plan.py"):
            at = app(page, fingerprint=user).run()
            no_exceptions(at)
        at = app("pages/3_Heatmap.py", fingerprint=user).run()
        no_exceptions(at)
        assert any("31 of 151 tasks" in c.value for c in at.caption)
        at.toggle(key="heatmap_all").set_value(True).run()
        assert any("151 of 151 tasks" in c.value for c in at.caption)
        at = app("pages/1_Recommendations.py", fingerprint=user).run()
        no_exceptions(at)
        table = find_table(at, "rank", "licence", "licence as stated")
        candidates = table[table["rank"] != "reference"]
        assert len(candidates) == N_SYNTHETIC - 3 and set(table["licence"]) <= {"open", "research-only",
                                                                                "not verified"}
        at.multiselect(key="recommendations_modality").set_value(["mri"]).run()
        filtered = find_table(at, "rank", "licence", "licence as stated")
        assert 0 < len(filtered) < len(table) and filtered["modality"].str.startswith("MRI").all()
    finally:
        del os.environ["TFE_CATALOGUE"]
