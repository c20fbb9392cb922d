"""The validity report's measured-transfer figures on the shipped catalogue's distances, with gains made up so the
right answer is known: gains that follow bKLD small's ranking exactly give it a weighted tau of 1."""
from __future__ import annotations

import json

import pytest

from core.catalogue.validity import measured_transfer_report, transfer_table
from core.transfer.results import summarise_runs, write_results
from core.transfer.splits import illegal_sources


def test_gains_that_follow_bkld_small_give_it_tau_one(tmp_path, catalogue):
    tasks = {t.id: {"shares_images_with": list(t.shares_images_with)} for t in catalogue.tasks if t.kind == "medical"}
    matrix = catalogue.matrix("bkld-small")
    banned = illegal_sources(tasks)
    runs = []
    for target in tasks:
        for seed in (0, 1, 2):
            runs.append({"kind": "baseline", "source": None, "target": target, "seed": seed, "auroc": 0.5})
            for source in tasks:
                if source not in banned[target]:
                    nearness = -matrix[catalogue.ids.index(source), catalogue.ids.index(target)]
                    runs.append({"kind": "transfer", "source": source, "target": target, "seed": seed,
                                 "auroc": 0.5 + nearness + 0.0001 * seed})  # unbounded: made up
    path = write_results(summarise_runs(runs, tasks, {"image_size": 8}), tmp_path / "results.json")
    report = measured_transfer_report(catalogue, path)
    default = report["probes"][catalogue.probe]
    # gains are stored to 1e-6, which can tie two sources at nearly equal distance: tau 1 up to that rounding
    assert default["bkld-small"]["weighted_tau"]["mean"] == pytest.approx(1.0, abs=1e-3)
    assert default["vdna"]["weighted_tau"]["mean"] < 0.99
    assert default["bkld-small"]["mean_regret"] == 0.0
    assert default["random order"]["weighted_tau"]["low"] < 0.5  # no order is expected to be that good at random
    assert set(default) == {"bkld-small", "bkld-large", "vdna", "p2l", "same modality first", "random order"}
    assert len(report["targets"]) == len(tasks)
    rows = transfer_table({"default_probe": catalogue.probe, "measured_transfer": report})
    assert rows[0]["ranking"] == "bkld-small" and rows[0]["weighted tau (mean over targets)"] > 0.99
    assert sum(r["ranking"] == "random order" for r in rows) == 1
    json.dumps(report)  # JSON-ready


def test_no_results_no_section(tmp_path, catalogue):
    assert measured_transfer_report(catalogue, tmp_path / "missing.json") is None
