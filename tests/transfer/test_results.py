"""Summaries of runs and the integrity of the shipped measured-transfer results (not their values)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.transfer.results import MIN_SEEDS, RESULTS_FILE, from_dict, integrity_problems, summarise_runs
from core.transfer.splits import illegal_sources

TASKS = {"a": {}, "b": {"shares_images_with": ["c"]}, "c": {}, "d": {}}
REPO_SOURCES = Path(__file__).resolve().parents[2] / "data" / "catalogue" / "SOURCES.json"


def fake_runs(seeds=(0, 1, 2), skip=()) -> list[dict]:
    runs = []
    banned = illegal_sources(TASKS)
    for target in TASKS:
        for seed in seeds:
            runs.append({"kind": "baseline", "source": None, "target": target, "seed": seed, "auroc": 0.8})
            for index, source in enumerate(sorted(TASKS)):
                if source not in banned[target] and (source, target, seed) not in skip:
                    runs.append({"kind": "transfer", "source": source, "target": target, "seed": seed,
                                 "auroc": 0.8 + 0.01 * index + 0.001 * seed})
    return runs


def test_gains_are_paired_by_seed_and_summarised_with_sample_std():
    results = summarise_runs(fake_runs(), TASKS, {"lr": 1})
    pair = next(p for p in results["pairs"] if (p["source"], p["target"]) == ("d", "a"))
    assert pair["gains"] == pytest.approx([0.03, 0.031, 0.032])
    assert pair["mean_gain"] == pytest.approx(0.031) and pair["std_gain"] == pytest.approx(0.001)
    assert results["coverage"]["targets"] == ["a", "b", "c", "d"]
    assert integrity_problems(results, TASKS) == []
    looked_up = from_dict(results)
    assert looked_up.gain("d", "a") == pytest.approx(0.031) and looked_up.gain("c", "b") is None
    mean, _, n = looked_up.mean_over_targets("a")
    assert n == 3 and mean == pytest.approx(0.001)  # source a is index 0: gain 0.001 on average over seeds


def test_a_target_missing_one_run_is_not_shipped():
    results = summarise_runs(fake_runs(skip={("a", "d", 1)}), TASKS, {})
    assert "d" not in results["coverage"]["targets"]
    assert all(p["target"] != "d" for p in results["pairs"])
    assert integrity_problems(results, TASKS) == []
    assert summarise_runs(fake_runs(seeds=(0, 1)), TASKS, {})["coverage"]["targets"] == []


def test_integrity_check_finds_each_kind_of_damage():
    results = summarise_runs(fake_runs(), TASKS, {})
    damaged = json.loads(json.dumps(results))
    damaged["pairs"][0]["mean_gain"] += 0.01
    damaged["pairs"][1]["gains"] = damaged["pairs"][1]["gains"][:2]
    damaged["pairs"][2]["std_gain"] = math.nan
    damaged["pairs"].append({**damaged["pairs"][3], "source": "c", "target": "b"})
    damaged["pairs"] = [p for p in damaged["pairs"] if (p["source"], p["target"]) != ("a", "d")]
    problems = "\n".join(integrity_problems(damaged, TASKS))
    for expected in ("does not follow", "at least 3 needed", "not finite", "c -> b: not a legal pair",
                     "d: legal sources without a measurement: a"):
        assert expected in problems


def test_shipped_results_are_whole_and_consistent():
    results = json.loads(RESULTS_FILE.read_text())
    tasks = {t: f for t, f in json.loads(REPO_SOURCES.read_text())["tasks"].items() if not f.get("control")}
    assert integrity_problems(results, tasks) == []
    assert len(results["coverage"]["targets"]) >= 15
    assert all(len(p["seeds"]) >= MIN_SEEDS for p in results["pairs"])
    protocol = results["protocol"]
    for key in ("image_size", "frozen_blocks", "source_steps", "target_steps", "lr", "train_per_class", "version"):
        assert key in protocol
    for base in results["baselines"].values():
        assert np.mean(base["auroc"]) == pytest.approx(base["mean_auroc"], abs=1e-5)


def test_measured_gains_beside_a_ranking_use_the_first_task_as_reference():
    from core.report.measured import measured_gains

    results = from_dict(summarise_runs(fake_runs(), TASKS, {}))
    frame = measured_gains(results, ["a", "d", "b", "c"])
    rows = frame.set_index("task_id")
    assert pd.isna(rows.loc["a", "measured_gain_nearest"])  # the reference itself
    assert rows.loc["d", "measured_gain_nearest"] == pytest.approx(0.031)
    assert rows.loc["d", "measured_spread_nearest"] == pytest.approx(0.001)
    assert rows.loc["d", "measured_targets"] == 3  # d is a legal source of a, b and c
    assert measured_gains(None, ["a", "b"])["measured_gain_mean"].isna().all()
    with_control = measured_gains(results, ["digits", "a", "d"]).set_index("task_id")  # a control ranked first
    assert (with_control["measured_reference"] == "a").all()
    assert with_control.loc["d", "measured_gain_nearest"] == pytest.approx(0.031)


def test_summarise_folder_refuses_a_summary_that_fails_its_integrity_check(tmp_path):
    """A run with an AUROC that makes a gain outside [-1, 1] (or not finite) is not summarised into a file."""
    from core.transfer.experiment import RUNS_FILE
    from core.transfer.results import summarise_folder

    (tmp_path / "SOURCES.json").write_text(json.dumps({"tasks": TASKS}))
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "protocol.json").write_text(json.dumps({"lr": 1}))
    good = fake_runs()
    (runs / RUNS_FILE).write_text("".join(json.dumps(run) + "\n" for run in good))
    assert summarise_folder(runs, tmp_path)["coverage"]["targets"] == sorted(TASKS)
    bad = [dict(run, auroc=float("nan")) if run["kind"] == "transfer" and run["target"] == "a" else run
           for run in good]
    (runs / RUNS_FILE).write_text("".join(json.dumps(run) + "\n" for run in bad))
    with pytest.raises(ValueError, match=r"fails its integrity check .* a number is not finite\); nothing was written"):
        summarise_folder(runs, tmp_path)
