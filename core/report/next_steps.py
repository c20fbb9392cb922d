"""Next steps in plain words: for the user's nearest paper-linked tasks, one "what to try first" sentence per
scenario (architecture, pretraining data, augmentation policy, co-training data), read from what the paper measured
when that task was the target (knowledge.json), with how sure it was (repetitions, spread over them, how many of the
sources tried helped). The spread needs the paper's per-repetition results (``../shared/paper/transfer``); without
them the sentence gives the repetitions only."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from core.catalogue.knowledge import SCENARIOS

#: the paper's per-repetition AUROC per scenario: file in ``paper/transfer`` (columns r, s, t, p)
TRANSFER_FILES = {"arch": "load_arch_experiment_AUROC_True_True.csv",
                  "pretrain": "load_pretrain_experiment_AUROC_True.csv",
                  "augmentation": "load_augmentation_experiment_AUROC_True.csv",
                  "multi_task": "load_multi_task_experiment_AUROC_True_True.csv"}
#: how the scenario's borrowing is phrased: what to try first, given the source that worked best
TRY_FIRST = {"arch": "the network design that worked best for {source}",
             "pretrain": "starting from a model pretrained on {source}",
             "augmentation": "the augmentation policy searched on {source}",
             "multi_task": "training together with {source}"}


@dataclass(frozen=True)
class TaskSteps:
    """The sentences for one catalogue task linked to a paper task; ``evidence``: per scenario, the rows behind it."""

    task: str
    paper_task: str
    sentences: dict[str, str]
    evidence: dict[str, pd.DataFrame] = field(default_factory=dict)


def read_repetitions(paper: str | Path | None) -> dict[str, pd.DataFrame]:
    """{scenario: the paper's per-repetition table} (empty when the paper folder is absent)."""
    if paper is None:
        return {}
    folder = Path(paper) / "transfer"
    found = {}
    for key, name in TRANSFER_FILES.items():
        try:
            found[key] = pd.read_csv(folder / name, usecols=["r", "s", "t", "p"])
        except (OSError, ValueError):
            continue
    return found


def spread_of(repetitions: dict[str, pd.DataFrame], scenario: str, source: str, target: str) -> float | None:
    """Standard deviation (AUROC) over the paper's repetitions of ``source`` → ``target`` in ``scenario`` (the
    target's 800-image version where the paper shrank it), or None when not found."""
    table = repetitions.get(scenario)
    if table is None:
        return None
    rows = table[(table["s"] == source) & table["t"].astype(str).str.startswith(target)]
    if len(rows) < 2:
        return None
    per_target = rows.groupby("t")["p"]
    return float(per_target.std(ddof=1).iloc[0])


def scenario_sentence(scenario: str, paper_task: str, side: dict, spread: float | None) -> str:
    """One plain sentence: what to try first in ``scenario`` given what worked on ``paper_task``."""
    label = SCENARIOS[scenario].capitalize()
    best = (side.get("best_sources") or [None])[0]
    if best is None or best["delta"] <= 0:
        return (f"{label}: nothing the paper tried beat training {paper_task} alone, so keep your own defaults "
                "here.")
    sure = f"mean of {best['repetitions']} training runs"
    if spread is not None:
        sure += f" that varied by ± {spread:.3f} (standard deviation)"
    helped = side.get("share_of_sources_improving")
    if helped is not None and side.get("n_sources"):
        sure += f"; {helped:.0%} of the {side['n_sources']} sources the paper tried helped at all"
    try_first = TRY_FIRST[scenario].format(source=best["printable"])
    return (f"{label}: try first {try_first}: on {paper_task} it raised the AUROC from "
            f"{side.get('baseline_auroc', float('nan')):.3f} to {best['auroc']:.3f} "
            f"({best['delta']:+.3f}; {sure}).")


def next_steps(catalogue, ranked: pd.DataFrame, repetitions: dict[str, pd.DataFrame] | None = None,
               n_tasks: int = 2) -> list[TaskSteps]:
    """For the ``n_tasks`` nearest candidates of ``ranked`` (from :func:`core.report.recommend.recommendations`)
    that the paper measured: one sentence per scenario, and the evidence table behind each."""
    repetitions = repetitions or {}
    found = []
    for task_id in ranked.loc[ranked["kind"] != "control", "task_id"]:
        entry = catalogue.knowledge.get("tasks", {}).get(task_id)
        if not entry:
            continue
        paper_task = entry["paper_task"]["printable"]
        sentences, evidence = {}, {}
        for scenario in SCENARIOS:
            side = entry["as_target"].get(scenario)
            if not side:
                continue
            best = (side.get("best_sources") or [None])[0]
            spread = spread_of(repetitions, scenario, best["task"], entry["paper_task"]["task"]) if best else None
            sentences[scenario] = scenario_sentence(scenario, paper_task, side, spread)
            frame = pd.DataFrame(side.get("best_sources") or [])
            if not frame.empty:
                evidence[scenario] = pd.DataFrame({
                    "source task (paper)": frame["printable"], "modality": frame["modality"],
                    "AUROC with it": frame["auroc"], "AUROC trained alone": side.get("baseline_auroc", np.nan),
                    "change": frame["delta"], "repetitions": frame["repetitions"]})
        found.append(TaskSteps(catalogue.task(task_id).name, paper_task, sentences, evidence))
        if len(found) == n_tasks:
            break
    return found
