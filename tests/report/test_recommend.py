"""The ranking a user reads: closeness against the catalogue's own scale, the second opinion and its margin."""
from __future__ import annotations

import numpy as np
import pytest

from core.catalogue.validity import facts_of, nearest_legal_source
from core.report.recommend import how_close, recommendations, second_opinion


def test_held_out_halves_are_close_and_handwritten_digits_are_not(catalogue):
    for task in ("busi_3class", "pneumoniamnist", "wbc_type_4class"):
        half = catalogue.halves()[(task, "b")]
        table = recommendations(catalogue, half)
        verdict = how_close(catalogue, table, half)
        assert verdict.close and table.iloc[0]["task_id"] == task, (task, verdict)
    digits = catalogue.fingerprints["control_sklearn_digits"].renamed("handwritten digits")
    table = recommendations(catalogue, digits)
    verdict = how_close(catalogue, table, digits)
    assert not verdict.close and verdict.excess > verdict.threshold
    assert verdict.message.startswith("No catalogue task is close to your task")
    assert "Handwritten digits (control) 0.0000" in verdict.message  # the controls give the scale


def test_the_threshold_is_the_90th_percentile_of_the_tasks_own_nearest_excess(catalogue):
    """Worked out with scipy's KL for the twin distance: bKLD small of an identical source is the weighted
    KL(P || softmax(P)) over features."""
    from scipy.special import softmax
    from scipy.stats import entropy
    matrix, facts = catalogue.bkld_small, facts_of(catalogue)
    own = []
    for t in facts.medical:
        target = catalogue.fingerprints[catalogue.ids[t]]
        p = target.probabilities(100)
        weights = softmax(target.mean)
        twin = float(sum(w * entropy(row, softmax(row)) for w, row in zip(weights, p)) / weights.sum())
        own.append(matrix[nearest_legal_source(matrix, facts, t), t] - twin)
    target = catalogue.fingerprints["ph2_3class"]
    table = recommendations(catalogue, target)
    assert how_close(catalogue, table, target).threshold == pytest.approx(np.percentile(own, 90), rel=1e-9)
    assert sorted(own)[-3] < np.percentile(own, 90) <= max(own)


def test_second_opinion_names_vdna_s_first_and_the_margin(catalogue):
    table = recommendations(catalogue, catalogue.fingerprints["lc25000_lung"].renamed("lungs"))
    candidates = table[table["kind"] != "control"]
    assert sorted(candidates["second_opinion_rank"]) == list(range(1, 18)) and table[table["kind"] == "control"][
        "second_opinion_rank"].isna().all()
    opinion = second_opinion(table)
    first, second = candidates["distance"].iloc[0], candidates["distance"].iloc[1]
    assert opinion["first"] == candidates["task"].iloc[0]
    assert opinion["margin_pct"] == (second / first - 1) * 100 if first > 0 else opinion["margin_pct"] is None
    vdna_first = candidates.loc[candidates["second_opinion_rank"] == 1, "task"].iloc[0]
    assert opinion["second_opinion_first"] == vdna_first and opinion["agree"] == (vdna_first == opinion["first"])
    assert "second_opinion_rank" not in recommendations(catalogue, catalogue.fingerprints["lc25000_lung"], "vdna")


def test_a_held_out_half_lands_among_its_own_task_and_modality_on_the_map(catalogue):
    """The map places a user's task by symmetrised ranks (the map's own scale): a brain-MRI half's three nearest are
    brain MRI and the two CT tasks (raw symmetrised bKLD put the Pap-smear cells among them); a twin lands on its
    task."""
    from core.catalogue.taskmap import place_on_map
    from core.report.views import map_ranks
    half = catalogue.halves()[("brain_mri_4class", "b")]
    nearest = [catalogue.ids[i] for i in np.argsort(map_ranks(catalogue, half), kind="stable")[:3]]
    assert nearest == ["brain_mri_4class", "covid_ct", "iqothnccd_lung_ct_3class"]
    twin = map_ranks(catalogue, catalogue.fingerprints["covid_ct"])
    np.testing.assert_allclose(place_on_map(catalogue.coords, twin), catalogue.coords[catalogue.ids.index("covid_ct")])
