"""The verdict's rules on small hand-made rankings (the real-data cases are in test_verdict_real.py)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from core.report.verdict import LEVELS, NOT_DISTINGUISHABLE, evidence_of, ranked_with_references, verdict_for


def ranking(candidates: dict[str, float], controls: dict[str, float]) -> pd.DataFrame:
    """A table shaped like recommendations(): candidates nearest first, then the controls."""
    rows = [{"task_id": k, "task": k.title(), "distance": v, "kind": "medical"}
            for k, v in sorted(candidates.items(), key=lambda kv: kv[1])]
    rows += [{"task_id": k, "task": k.title(), "distance": v, "kind": "control"} for k, v in controls.items()]
    table = pd.DataFrame(rows)
    table.insert(0, "rank", pd.array(list(range(1, len(candidates) + 1)) + [None] * len(controls), dtype="Int64"))
    return table


def draws(centre: float, noise: np.ndarray, jitter: float = 0.0, seed: int = 0) -> np.ndarray:
    """Resampled distances that move together (a shared noise) plus a source's own jitter."""
    return centre + noise + jitter * np.random.default_rng(seed).standard_normal(len(noise))


def test_levels_run_strongest_first_and_json_carries_them_all():
    table = ranking({"a": 0.80, "b": 0.86, "c": 0.90}, {"digits": 0.95})
    verdict = verdict_for(table, close=True)
    assert LEVELS[0] == "strong" and LEVELS[-1] == "nothing close" and len(LEVELS) == 4
    payload = json.loads(json.dumps(verdict.to_dict()))  # plain JSON: no infinities, no tuples
    assert payload["levels"] == list(LEVELS) and payload["level"] in LEVELS and payload["sentence"]


def test_a_clear_firm_first_place_is_strong():
    noise = np.random.default_rng(1).normal(0, 0.02, 50)
    table = ranking({"a": 0.80, "b": 0.86, "c": 0.90}, {"digits": 0.95})
    resampled = {"a": draws(0.80, noise, 0.002, 1), "b": draws(0.86, noise, 0.002, 2),
                 "c": draws(0.90, noise, 0.002, 3), "digits": draws(0.95, noise, 0.002, 4)}
    verdict = verdict_for(table, True, resampled, own_excess=(0.05, 0.1, 0.6, 1.0), twin=0.78)
    assert verdict.level == "strong", verdict
    assert verdict.evidence.first_share == 1.0 and verdict.evidence.rank_worst == 1
    assert verdict.sentence.startswith("Strong match: A is")


def test_first_places_shared_in_the_bootstrap_are_never_strong():
    noise = np.random.default_rng(1).normal(0, 0.02, 50)
    table = ranking({"a": 0.800, "b": 0.801, "c": 0.90}, {"digits": 0.95})
    resampled = {"a": draws(0.800, noise, 0.01, 1), "b": draws(0.801, noise, 0.01, 2),
                 "c": draws(0.90, noise, 0.01, 3), "digits": draws(0.95, noise, 0.01, 4)}
    verdict = verdict_for(table, True, resampled, own_excess=(0.05, 0.1, 0.6, 1.0), twin=0.78)
    assert 0.2 < verdict.evidence.first_share < 0.8
    assert verdict.level == "several about equally close"
    assert "B" in verdict.sentence and "A" in verdict.sentence


def test_tasks_sharing_images_count_as_one_source():
    noise = np.random.default_rng(1).normal(0, 0.02, 50)
    table = ranking({"a": 0.800, "a_twin": 0.801, "c": 0.90}, {"digits": 0.95})
    resampled = {"a": draws(0.800, noise, 0.01, 1), "a_twin": draws(0.801, noise, 0.01, 2),
                 "c": draws(0.90, noise, 0.002, 3), "digits": draws(0.95, noise, 0.002, 4)}
    verdict = verdict_for(table, True, resampled, {"a": ["a_twin"]}, own_excess=(0.05, 0.1, 0.6, 1.0), twin=0.78)
    assert verdict.evidence.first_share == 1.0 and verdict.evidence.next_source == "C"
    assert verdict.level == "strong"


def test_a_control_nearer_than_every_medical_task_means_nothing_close():
    table = ranking({"a": 0.80, "b": 0.86}, {"faces": 0.78, "digits": 0.95})
    verdict = verdict_for(table, close=True)
    assert verdict.level == "nothing close"
    assert verdict.evidence.controls_above == ("Faces",)
    assert verdict.sentence.startswith("Nothing close: unrelated everyday images (Faces)")


def test_a_control_just_behind_the_first_makes_it_weak_and_far_makes_it_weak_too():
    near_control = verdict_for(ranking({"a": 0.800, "b": 0.90}, {"faces": 0.805}), close=True)
    assert near_control.level == "weak" and "hardly closer" in near_control.sentence
    far = verdict_for(ranking({"a": 0.80, "b": 0.90}, {"faces": 0.95}), close=False)
    assert far.level == "weak" and "farther from your images than catalogue tasks" in far.sentence


def test_evidence_margins_are_worked_by_hand():
    noise = np.zeros(4)
    table = ranking({"a": 1.0, "b": 1.1}, {"faces": 1.2})
    resampled = {"a": np.array([1.0, 1.1, 0.9, 1.0]), "b": np.array([1.1, 1.1, 1.1, 1.1]) + noise,
                 "faces": np.array([1.2, 1.2, 1.2, 1.2])}
    evidence = evidence_of(table, True, resampled)
    assert np.isclose(evidence.margin_pct, 10.0) and np.isclose(evidence.control_margin_pct, 20.0)
    gaps = np.array([0.1, 0.0, 0.2, 0.1])  # b - a in each re-draw
    assert np.isclose(evidence.margin_spread, 0.1 / gaps.std())
    assert evidence.first_share == 0.75  # a ties b in one draw: a tie is not a win


def test_reference_rows_sit_at_their_rank_and_flag_what_they_outrank():
    table = ranking({"a": 0.80, "b": 0.86, "c": 0.90}, {"faces": 0.85, "digits": 0.95})
    ranked = ranked_with_references(table)
    assert list(ranked["task_id"]) == ["a", "faces", "b", "c", "digits"]
    assert list(ranked["reference_control"]) == [False, True, False, False, True]
    assert list(ranked["note"] == NOT_DISTINGUISHABLE) == [False, False, True, True, False]


def test_a_next_source_as_close_as_catalogue_neighbours_makes_several_even_when_the_first_is_firm():
    noise = np.random.default_rng(1).normal(0, 0.02, 50)
    table = ranking({"a": 0.80, "b": 0.81, "c": 0.95}, {"digits": 0.99})
    resampled = {"a": draws(0.80, noise, 0.001, 1), "b": draws(0.81, noise, 0.001, 2),
                 "c": draws(0.95, noise, 0.001, 3), "digits": draws(0.99, noise, 0.001, 4)}
    # catalogue tasks sit 0.05 .. 1.0 above their twin from their nearest neighbour; the user's twin is 0.78:
    # a is 0.02 above (nearer than all), b 0.03 above (also nearer than all): both of the user's kind
    verdict = verdict_for(table, True, resampled, own_excess=(0.05, 0.1, 0.6, 1.0), twin=0.78)
    assert verdict.evidence.first_share == 1.0 and verdict.evidence.next_excess_percentile == 0.0
    assert verdict.level == "several about equally close"
    assert "A comes first, but the next is nearly as close" in verdict.sentence
