"""`python -m core compare` and `cotrain` state the verdict first and write it into their JSON; the CSV carries the
controls as flagged reference rows (shipped fingerprints, no backbone needed)."""
from __future__ import annotations

import csv
import json

import pytest

from core.report.verdict import LEVELS, NOT_DISTINGUISHABLE
from tests.test_cli import run_cli

pytestmark = pytest.mark.slow  # four command-line runs, each loading the catalogue


def test_compare_prints_the_verdict_first_and_writes_it_to_json_and_csv(catalogue, tmp_path):
    half = tmp_path / "half.npz"
    catalogue.halves()[("busi_3class", "b")].save(half)
    out_json, out_csv = tmp_path / "ranking.json", tmp_path / "ranking.csv"
    done = run_cli("compare", str(half), "--json", str(out_json), "--csv", str(out_csv), "--top", "17")
    assert done.returncode == 0, done.stderr
    first_line = done.stdout.splitlines()[0]
    assert first_line.startswith("Strong match: Breast ultrasound (BUSI) is clearly the public task closest")
    payload = json.loads(out_json.read_text())
    assert payload["verdict"]["level"] == "strong" and payload["verdict"]["sentence"] == first_line
    assert payload["verdict"]["levels"] == list(LEVELS)
    rows = list(csv.DictReader(out_csv.open()))
    assert len(rows) == 19 and [r["task_id"] for r in rows] == [r["task_id"] for r in payload["ranking"]]
    distances = [float(r["distance"]) for r in rows]
    assert distances == sorted(distances)  # the controls sit at their place
    references = [i for i, r in enumerate(rows) if r["reference_control"] == "True"]
    assert {rows[i]["task_id"] for i in references} == {"control_sklearn_digits", "control_skimage_faces"}
    for row in rows[references[0] + 1:]:
        if row["reference_control"] == "False":
            assert row["note"] == NOT_DISTINGUISHABLE
    for row in rows[:references[0]]:
        assert row["note"] == ""


def test_images_like_a_control_get_nothing_close_and_cotrain_says_so_first(catalogue, tmp_path):
    digits = tmp_path / "digits.npz"
    catalogue.fingerprints["control_sklearn_digits"].renamed("my digits").save(digits)
    done = run_cli("compare", str(digits))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith("Nothing close: unrelated everyday images (Handwritten digits")
    plan = tmp_path / "plan.json"
    planned = run_cli("cotrain", str(digits), "--json", str(plan))
    assert planned.returncode == 0, planned.stderr
    assert planned.stdout.splitlines()[0].startswith("The plan follows the ranking, so it is only as good as the "
                                                     "ranking: nothing close:")
    written = json.loads(plan.read_text())
    assert written["verdict"]["level"] == "nothing close"
    assert all(task["note"] == NOT_DISTINGUISHABLE for task in written["tasks"])
