"""Task families (issue 13): hand-made distance matrices whose families and adjusted Rand index are worked out by
hand, then the report on the shipped catalogue and the CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest

from core.catalogue.families import (
    assign_family,
    cluster_families,
    families_from_matrix,
    families_report,
    family_of,
    format_families,
    modality_family,
    user_ranks,
)
from core.cli import EXIT_OK, main
from tests.helpers import shown


def blocks(sizes: list[int], within: float = 1.0, between: float = 10.0) -> np.ndarray:
    """A symmetric matrix of tight blocks: ``within`` inside a block, ``between`` across, 0 on the diagonal."""
    labels = np.repeat(np.arange(len(sizes)), sizes)
    matrix = np.where(labels[:, None] == labels[None, :], within, between).astype(float)
    np.fill_diagonal(matrix, 0.0)
    return matrix


def test_two_blocks_give_two_families_numbered_by_first_task():
    order = [3, 0, 4, 1, 5, 2]  # interleave the blocks: family 1 must be the first task's
    matrix = blocks([3, 3])[np.ix_(order, order)]
    labels, scores = cluster_families(matrix)
    assert labels.tolist() == [1, 2, 1, 2, 1, 2]
    assert set(scores) == {2, 3} and scores[2] > scores[3]


def test_three_blocks_give_three_families():
    labels, scores = cluster_families(blocks([3, 3, 3]))
    assert labels.tolist() == [1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert set(scores) == {2, 3, 4} and max(scores, key=scores.get) == 3


def test_directed_distances_are_symmetrised_first():
    """Directed [source, target]: a->b 1 but b->a 3 (symmetrised 2); across the blocks 2 one way and 18 the other
    (symmetrised 10). Read one-way, c would sit nearer to a (2) than b does (3); symmetrised, {a, b} and {c, d}."""
    directed = np.array([[0.0, 1.0, 2.0, 2.0],
                         [3.0, 0.0, 2.0, 2.0],
                         [18.0, 18.0, 0.0, 1.0],
                         [18.0, 18.0, 3.0, 0.0]])
    report = families_from_matrix(directed, ["a", "b", "c", "d"], ["MRI", "MRI", "CT", "CT (head)"])
    assert report["assignment"] == {"a": 1, "b": 1, "c": 2, "d": 2}
    assert report["adjusted_rand_index"] == pytest.approx(1.0)


def test_adjusted_rand_index_worked_out_by_hand():
    """Families {0,1,2}, {3,4,5}; modality families a a b | b c c. Contingency n_ij: 2,1 / 1,2 -> sum C(n_ij, 2) = 2;
    rows 3, 3 -> 6; columns 2, 2, 2 -> 3; C(6, 2) = 15; expected 6 * 3 / 15 = 1.2; max (6 + 3) / 2 = 4.5;
    ARI = (2 - 1.2) / (4.5 - 1.2) = 0.2424..."""
    ids = list("uvwxyz")
    report = families_from_matrix(blocks([3, 3]), ids, ["A", "A (1)", "B", "b", "C", "C (2)"])
    assert report["adjusted_rand_index"] == pytest.approx(0.8 / 3.3)
    assert report["k"] == 2 and report["families"][0]["tasks"] == ["u", "v", "w"]
    assert report["families"][0]["modality_families"] == {"a": 2, "b": 1} and report["families"][0]["label"] == "a"
    assert report["modality_family"]["v"] == "a" and report["silhouette"] == report["silhouette_by_k"]["2"]
    json.dumps(report)  # JSON-ready


def test_too_few_tasks_make_one_family():
    labels, scores = cluster_families(blocks([1, 2]))
    assert labels.tolist() == [1, 1, 1] and scores == {}
    text = format_families(dict(families_from_matrix(blocks([1, 2]), ["a", "b", "c"], ["x", "y", "y"]),
                                distance="bkld-small"))
    assert "too few tasks to cut" in text


def test_refuses_asymmetric_or_infinite_input():
    with pytest.raises(ValueError, match="symmetric"):
        cluster_families(np.array([[0.0, 1.0], [2.0, 0.0]]))
    matrix = blocks([2, 2])
    matrix[0, 1] = matrix[1, 0] = np.inf
    with pytest.raises(ValueError, match="finite"):
        cluster_families(matrix)


@pytest.mark.parametrize("text, family", [("X-ray (knee, AP)", "x-ray"), ("X-ray", "x-ray"), ("MRI", "mri"),
                                          ("microscopy (blood smear)", "microscopy"),
                                          ("mammography (film, digitised)", "mammography")])
def test_modality_family(text, family):
    assert modality_family(text) == family


def test_assign_family_by_mean_distance_to_members():
    labels = np.array([1, 1, 2, 2])
    assert assign_family(np.array([1.0, 5.0, 2.0, 2.5]), labels) == 2  # mean 3.0 vs 2.25
    assert assign_family(np.array([1.0, 2.0, 2.0, 2.5]), labels) == 1  # mean 1.5 vs 2.25
    with pytest.raises(ValueError, match="3 distances for 4"):
        assign_family(np.ones(3), labels)


def test_family_of_uses_the_symmetrised_ranks():
    """As a target the user ranks its sources c 1, d 2, a 3, b 3; as a source it is beaten in a's column by a itself
    (1), in b's by b (1), in c's by c and d (2), in d's by d (1). Symmetrised: a 2, b 2, c 1.5, d 1.5; family {c, d}
    (mean 1.5) beats {a, b} (mean 2), although the user's own distances to a and b are the smallest (1)."""
    ids = ["a", "b", "c", "d"]
    matrix = np.array([[0.0, 1, 5, 5], [1, 0, 5, 5], [5, 5, 0, 1], [5, 5, 1, 0]])
    to_user, from_user = np.array([9.0, 9.0, 1.0, 5.0]), np.array([1.0, 1.0, 5.0, 1.0])
    ranks = user_ranks(matrix, to_user, from_user)
    np.testing.assert_array_equal(ranks, [2.0, 2.0, 1.5, 1.5])
    report = families_from_matrix(blocks([2, 2]), ids, ["x"] * 4) | {"distance": "bkld-small"}
    assert family_of(ranks, ids, report)["tasks"] == ["c", "d"]


def test_report_on_the_shipped_catalogue(catalogue):
    report = families_report(catalogue)
    assert set(report["assignment"]) == set(catalogue.ids)
    assert 2 <= report["k"] <= len(catalogue.ids) // 2
    assert sorted(t for f in report["families"] for t in f["tasks"]) == sorted(catalogue.ids)
    assert -1.0 <= report["adjusted_rand_index"] <= 1.0
    assert report["modality_family"]["knee_oa_kl_5class"] == "x-ray"
    brain = catalogue.fingerprints["brain_mri_4class"]
    ranks = user_ranks(catalogue.matrix("bkld-small"), catalogue.distances_to(brain), catalogue.distances_from(brain))
    assert report["distance"] == "bkld-small" and "brain_mri_4class" in family_of(ranks, catalogue.ids,
                                                                                   report)["tasks"]


def test_cli_prints_families_and_adjusted_rand_index(tmp_path, capsys):
    out = tmp_path / "families.json"
    assert main(["catalogue", "families", "--json", str(out)]) == EXIT_OK
    printed = capsys.readouterr().out
    assert "family 1 (" in printed and "adjusted Rand index against the modality families:" in printed
    assert json.loads(out.read_text())["criterion"].startswith("largest mean silhouette")


def test_map_colours_by_family_and_recommendations_name_the_users_family(catalogue):
    from streamlit.testing.v1 import AppTest

    from tests.helpers import ROOT
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.session_state["fingerprint"] = catalogue.fingerprints["brain_mri_4class"]
    at.switch_page("pages/2_Map.py").run()
    def legend() -> set[str]:
        return {trace.get("name", "") for trace in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]}

    assert not any(group.startswith("family 1") for group in legend())
    at.radio(key="map_colour").set_value("family").run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(group.startswith("family 1 (") for group in legend()), legend()
    at.switch_page("pages/1_Recommendations.py").run()
    assert not at.exception, [e.value for e in at.exception]
    line = next(m.value for m in at.markdown if m.value.startswith("Your task's family"))
    assert catalogue.task("brain_mri_4class").name in shown(line) and "adjusted Rand index" in line
