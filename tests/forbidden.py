"""What no page may show a clinician: raw task ids, raw column names and file paths (one list, used by the AppTest
scan in tests/test_pages_text.py and the browser test)."""
from __future__ import annotations

import json

from tests.helpers import ROOT

#: raw column names and internal words that once reached the pages
RAW_WORDS = ["printable", "baseline_auroc", "bkld_small", "bkld_large", "closer_than_best_candidate", "task_id",
             "interval_low", "interval_high", "rank_holds", "first_place", "vdna_rank", "second_opinion_rank",
             "measured_gain_nearest", "measured_gain_mean", "licence_short",
             "paper_evidence", "paper_cotrain", "licence_stated", "n_classes", "reference_control",
             "cumulative_share", "top_operations", "as_source", "as_target", "most_helped", "best_sources"]
#: file paths of the project
PATHS = ["core/", "ui/", "pages/", "data/catalogue", ".py", ".json", "../shared"]


def task_ids() -> list[str]:
    """Every shipped catalogue task's id (e.g. brain_mri_4class)."""
    manifest = json.loads((ROOT / "data" / "catalogue" / "catalogue.json").read_text())
    return [task["id"] for task in manifest["tasks"]]


def forbidden_strings() -> list[str]:
    return RAW_WORDS + PATHS + task_ids()


def offending(text: str) -> list[str]:
    """The forbidden strings found in ``text``."""
    return [word for word in forbidden_strings() if word in text]
