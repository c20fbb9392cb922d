"""The ranking a user reads: closeness against the catalogue's own scale, the second opinion and its margin."""
from __future__ import annotations

import numpy as np

from core.recommend import how_close, recommendations, second_opinion
from core.validity import facts_of, nearest_legal_source


def test_a_catalogue_task_is_close_and_a_control_is_not(catalogue):
    own = recommendations(catalogue, catalogue.fingerprints["busi_3class"])
    assert how_close(catalogue, own).close and own.iloc[0]["task_id"] == "busi_3class"
    faces = catalogue.fingerprints["control_skimage_faces"].renamed("photos of faces")
    table = recommendations(catalogue, faces)
    verdict = how_close(catalogue, table)
    assert not verdict.close
    assert verdict.message.startswith("No catalogue task is close to your task")
    assert "Faces vs. non-faces (control) 0.0000" in verdict.message  # the controls give the scale


def test_the_threshold_is_the_90th_percentile_of_the_tasks_own_nearest_distances(catalogue):
    matrix, facts = catalogue.bkld_small, facts_of(catalogue)
    own = sorted(matrix[nearest_legal_source(matrix, facts, t), t] for t in facts.medical)
    table = recommendations(catalogue, catalogue.fingerprints["ph2_3class"])
    assert how_close(catalogue, table).threshold == np.percentile(own, 90)
    assert own[-3] < np.percentile(own, 90) <= own[-1]


def test_second_opinion_names_vdna_s_first_and_the_margin(catalogue):
    table = recommendations(catalogue, catalogue.fingerprints["lc25000_lung"].renamed("lungs"))
    candidates = table[table["kind"] != "control"]
    assert sorted(candidates["vdna_rank"]) == list(range(1, 18)) and table[table["kind"] == "control"][
        "vdna_rank"].isna().all()
    opinion = second_opinion(table)
    first, second = candidates["distance"].iloc[0], candidates["distance"].iloc[1]
    assert opinion["first"] == candidates["task"].iloc[0]
    assert opinion["margin_pct"] == (second / first - 1) * 100 if first > 0 else np.isnan(opinion["margin_pct"])
    vdna_first = candidates.loc[candidates["vdna_rank"] == 1, "task"].iloc[0]
    assert opinion["second_opinion_first"] == vdna_first and opinion["agree"] == (vdna_first == opinion["first"])
    assert "vdna_rank" not in recommendations(catalogue, catalogue.fingerprints["lc25000_lung"], "vdna")
