"""Co-training plan (issue 13): hand-made catalogues whose right plan is worked out by hand, the licence short form,
the paper's co-training effects from a tiny hand-made CSV, and the plan on the shipped catalogue."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from core.catalogue.store import TaskInfo
from core.cli import EXIT_OK, EXIT_USAGE, main
from core.report.cotrain import (
    NOT_VERIFIED,
    OPEN,
    PAPER_MISSING,
    RESEARCH_ONLY,
    cotrain_effects,
    cotraining_plan,
    licence_allows,
    licence_short,
    plan_for,
    plan_table,
    read_cotrain_effects,
)


def task(task_id: str, licence: str = "CC BY 4.0", kind: str = "medical", shares: list | None = None,
         classes: dict | None = None, paper_task: str | None = None) -> TaskInfo:
    classes = classes or {"a": 10, "b": 10}
    return TaskInfo(id=task_id, name=task_id.upper(), modality="MRI", anatomy="brain", classes=classes,
                    n_images=sum(classes.values()), kind=kind, source=f"repo/{task_id}", upstream=f"{task_id} set",
                    licence=licence, shares_images_with=shares or [], paper_task=paper_task)


# Sorted by distance: ctrl 0.1, a 0.5, b 0.6, c 0.7, e 0.8, d 0.9. b and c share images (stated on b only).
TASKS = [task("a", "MIT", classes={"x": 5, "y": 5, "z": 5}, paper_task="A"),
         task("b", "licence unknown", shares=["c"]),
         task("c", "CC0"),
         task("d", "Apache-2.0", paper_task="PD"),
         task("e", "research use only", classes={"x": 7}),
         task("ctrl", "CC BY 4.0", kind="control")]
DISTANCES = np.array([0.5, 0.6, 0.7, 0.9, 0.8, 0.1])


def ids(plan: dict) -> list[str]:
    return [row["task_id"] for row in plan["tasks"]]


def test_plan_nearest_first_without_controls_or_shared_images():
    plan = cotraining_plan(DISTANCES, TASKS, k=3)
    assert ids(plan) == ["a", "b", "e"]  # ctrl is a control; c shares images with b (stated on b's side only)
    assert plan["totals"] == {"tasks": 3, "images": 15 + 20 + 7, "classes": 3 + 2 + 1}
    assert {s["task_id"]: s["reason"] for s in plan["skipped"]} == {
        "ctrl": "non-medical control: a reference point, never a partner",
        "c": "shares images with b, already in the plan"}
    assert [row["licence"] for row in plan["tasks"]] == [OPEN, NOT_VERIFIED, RESEARCH_ONLY]
    assert [row["licence_stated"] for row in plan["tasks"]] == ["MIT", "licence unknown", "research use only"]
    assert any("licence not verified for b" in note for note in plan["notes"])
    assert plan["tasks"][0]["distance"] == 0.5 and plan["tasks"][0]["order"] == 1


def test_shared_images_are_checked_in_both_directions():
    reverse = [task("b", "CC0"), task("c", "CC0", shares=["b"])]  # stated on the later task only
    assert ids(cotraining_plan(np.array([0.1, 0.2]), reverse, k=2)) == ["b"]


def test_licence_filter_keeps_only_allowed_and_says_why_others_left():
    commercial = cotraining_plan(DISTANCES, TASKS, k=3, use="commercial")
    assert ids(commercial) == ["a", "c", "d"]  # b not verified, so c no longer clashes; e research-only
    reasons = {s["task_id"]: s["reason"] for s in commercial["skipped"]}
    assert reasons["b"] == "licence not verified, so commercial use cannot be confirmed"
    assert reasons["e"] == "licence research-only does not allow commercial use"
    research = cotraining_plan(DISTANCES, TASKS, k=3, use="research")
    assert ids(research) == ["a", "c", "e"]
    assert any("not verified were left out" in note for note in research["notes"])


def test_fewer_qualifying_tasks_than_k_is_said():
    plan = cotraining_plan(DISTANCES, TASKS, k=10)
    assert ids(plan) == ["a", "b", "e", "d"]
    assert "only 4 of the 10 requested tasks qualify" in plan["notes"]


@pytest.mark.parametrize("k, distances, message", [(0, DISTANCES, "k must be at least 1"),
                                                   (3, DISTANCES[:4], "4 distances for 6 tasks")])
def test_plan_refuses_bad_input(k, distances, message):
    with pytest.raises(ValueError, match=message):
        cotraining_plan(distances, TASKS, k=k)
    with pytest.raises(ValueError, match="unknown use"):
        cotraining_plan(DISTANCES, TASKS, use="teaching")


@pytest.mark.parametrize("text, short", [
    ("MIT (repo LICENSE)", OPEN),
    ("CC BY 4.0 (MedMNIST)", OPEN),
    ("upstream Kaggle release CC0 (as listed by the paper's task registry); repo states none", OPEN),
    ("released for free research use", RESEARCH_ONLY),
    ("MIAS licence (data/pgm/Licence.txt): research use only, cite the database, no rent/lease/sale", RESEARCH_ONLY),
    ("LFW: research use; as shipped with scikit-image (BSD-3-Clause)", RESEARCH_ONLY),  # the stricter wins
    ("CC BY-NC 4.0", RESEARCH_ONLY),
    ("figshare part CC BY 4.0; whole set not verified; repo states none", NOT_VERIFIED),
    ("CC BY 4.0 (Mendeley page, as commonly stated; not re-checked here); repo: none", NOT_VERIFIED),
    ("ChestX-ray8 public (NIH); COVID images carry per-image licences", NOT_VERIFIED),
    ("images crawled from preprints; licence unknown", NOT_VERIFIED),
    ("submitted by the authors", NOT_VERIFIED),  # 'mit' inside a word is not MIT
    ("", NOT_VERIFIED),
])
def test_licence_short_form(text, short):
    assert licence_short(text) == short


def test_licence_allows():
    assert licence_allows(OPEN, "commercial") and licence_allows(RESEARCH_ONLY, "research")
    assert not licence_allows(RESEARCH_ONLY, "commercial")
    assert not licence_allows(NOT_VERIFIED, "research")


def write_paper(folder):
    """A tiny paper folder. A co-trained with X: 0.8, 0.9 (mean 0.85), with Y: 0.6; B with X: 0.7, with Z: 0.5.
    Baselines: X 0.8 in the 800-image table (0.1 in the full-size table is ignored), Y 0.7, Z none."""
    transfer = folder / "transfer"
    transfer.mkdir(parents=True)
    pd.DataFrame({"r": [0, 1, 0, 0, 0], "s": ["A", "A", "A", "B", "B"], "t": ["X", "X", "Y", "X", "Z"],
                  "p": [0.8, 0.9, 0.6, 0.7, 0.5]}).to_csv(transfer / "load_multi_task_experiment_AUROC_True_True.csv")
    pd.DataFrame({"X": [0.8, 0.8]}).to_csv(transfer / "load_baseline_experiment_AUROC_True_True.csv")
    pd.DataFrame({"X": [0.1], "Y": [0.7]}).to_csv(transfer / "load_baseline_experiment_AUROC_False_True.csv")


def test_paper_cotrain_effects_from_a_hand_made_csv(tmp_path):
    write_paper(tmp_path)
    effects = read_cotrain_effects(tmp_path)
    a, b = effects["A"], effects["B"]
    assert a.n_targets == 2 and a.mean_delta == pytest.approx((0.05 - 0.1) / 2)
    assert a.improved_share == 0.5 and a.best_target == "X" and a.best_delta == pytest.approx(0.05)
    assert b.n_targets == 1 and b.mean_delta == pytest.approx(-0.1) and b.improved_share == 0.0  # Z: no baseline
    assert "-0.0250 on average over 2 targets (50% improved" in a.text()
    assert read_cotrain_effects(tmp_path / "absent") is None
    with pytest.raises(ValueError, match="lack the columns p"):
        cotrain_effects(pd.DataFrame({"s": ["A"], "t": ["X"]}), [])


def test_plan_carries_the_paper_effect_or_says_it_is_missing(tmp_path):
    write_paper(tmp_path)
    plan = cotraining_plan(DISTANCES, TASKS, k=4, effects=read_cotrain_effects(tmp_path))
    rows = {row["task_id"]: row for row in plan["tasks"]}
    assert rows["a"]["paper_cotrain_effect"]["mean_delta_auroc"] == pytest.approx(-0.025)
    assert rows["d"]["paper_cotrain"] == "no co-training result for PD in the paper"
    assert rows["b"]["paper_cotrain"] == "" and rows["b"]["paper_cotrain_effect"] is None
    missing = cotraining_plan(DISTANCES, TASKS, k=4, effects=None)
    assert {r["task_id"]: r["paper_cotrain"] for r in missing["tasks"]}["a"] == PAPER_MISSING
    assert PAPER_MISSING in missing["notes"]
    table = plan_table(plan)
    assert list(table["task_id"]) == ["a", "b", "e", "d"] and table["classes"][0] == "x (5), y (5), z (5)"


def test_brain_mri_plan_on_the_shipped_catalogue(catalogue):
    """The plan for a brain-MRI task (the catalogue's own brain_mri_4class fingerprint) starts with it."""
    plan = plan_for(catalogue, catalogue.fingerprints["brain_mri_4class"], k=3, effects=read_cotrain_effects())
    assert ids(plan)[0] == "brain_mri_4class" and len(plan["tasks"]) == 3
    chosen = [catalogue.task(i) for i in ids(plan)]
    assert all(info.kind != "control" for info in chosen)
    assert not any(a.id in b.shares_images_with for a in chosen for b in chosen)
    assert all(row["licence"] in (OPEN, RESEARCH_ONLY, NOT_VERIFIED) and row["licence_stated"]
               for row in plan["tasks"])
    assert plan["tasks"][0]["paper_cotrain_effect"]["targets"] > 0  # linked to brain_tumor_type_classification


def test_a_mias_task_never_brings_its_twin(catalogue):
    plan = plan_for(catalogue, catalogue.fingerprints["mias_tissue_3class"], k=5)
    assert ids(plan)[0] == "mias_tissue_3class" and "mias_pathology_3class" not in ids(plan)
    assert {"task_id": "mias_pathology_3class",
            "reason": "shares images with mias_tissue_3class, already in the plan"} in plan["skipped"]


def test_cli_writes_json_and_csv(catalogue, tmp_path, capsys):
    mine = tmp_path / "mine.npz"
    catalogue.fingerprints["brain_mri_4class"].save(mine)
    plan_json, plan_csv = tmp_path / "plan.json", tmp_path / "plan.csv"
    assert main(["cotrain", str(mine), "--k", "3", "--json", str(plan_json), "--csv", str(plan_csv)]) == EXIT_OK
    printed = capsys.readouterr().out
    assert "1  brain_mri_4class" in printed and "total: 3 tasks" in printed and "licence:" in printed
    plan = json.loads(plan_json.read_text())
    assert [row["task_id"] for row in plan["tasks"]][0] == "brain_mri_4class"
    assert all("licence" in row for row in plan["tasks"]) and plan["totals"]["tasks"] == 3
    assert plan["totals"]["images"] == sum(row["images"] for row in plan["tasks"])
    assert list(pd.read_csv(plan_csv)["task_id"]) == [row["task_id"] for row in plan["tasks"]]
    assert main(["cotrain", str(mine), "--json", str(plan_json)]) == EXIT_USAGE  # never overwrites


def test_cli_plans_a_postact_fingerprint_against_the_postact_catalogue(catalogue, tmp_path, capsys):
    """A fingerprint of the paper's kind of layer is planned with the catalogue made with that layer, as compare
    does, not refused as incompatible."""
    mine = tmp_path / "paper_style.npz"
    catalogue.for_probe("postact").fingerprints["ph2_3class"].save(mine)
    assert main(["cotrain", str(mine), "--k", "2"]) == EXIT_OK
    assert "1  ph2_3class  0.000000" in capsys.readouterr().out


def test_cotrain_page_shows_the_plan_and_both_downloads(catalogue):
    from streamlit.testing.v1 import AppTest

    from tests.helpers import ROOT
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.session_state["fingerprint"] = catalogue.fingerprints["brain_mri_4class"]
    at.switch_page("pages/6_Co-training_plan.py").run()
    assert not at.exception, [e.value for e in at.exception]
    table = next(f.value for f in at.dataframe if "licence as stated by the source" in f.value.columns)
    assert list(table["public task"])[0] == "Brain tumour MRI (4 classes)" and len(table) == 3
    assert any(s.value.startswith("**Verdict — ") for s in [*at.success, *at.info, *at.warning, *at.error])
    assert {m.label: m.value for m in at.metric}["tasks"] == "3"
    at.number_input(key="cotrain_k").set_value(5).run()
    at.selectbox(key="cotrain_use").set_value("commercial").run()
    table = next(f.value for f in at.dataframe if "licence as stated by the source" in f.value.columns)
    assert set(table["licence"]) == {OPEN} and "Brain tumour MRI (4 classes)" not in set(table["public task"])
    assert any("not verified were left out" in i.value for i in at.info)
