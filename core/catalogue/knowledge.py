"""Measured knowledge derived from the paper's published results (``shared/paper``; MIT licence, Godau et al. 2024).

For catalogue tasks linked to a paper task: per transfer scenario, what the paper measured with that task as target
(best sources, AUROC change over the no-transfer baseline, repetitions) and as source; its searched augmentation
policy in readable form; and its nearest paper tasks by the published bKLD. Only these compact derived tables are
committed, never copies of the paper's files.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from core.paper import PAPER_BKLD_SMALL

SCENARIOS = {  # paper file key -> what a user borrows
    "arch": "architecture",
    "pretrain": "pretraining data",
    "augmentation": "augmentation policy",
    "multi_task": "co-training data",
}
_TRANSFER_FILES = {
    "arch": "load_arch_experiment_AUROC_True_True.csv",
    "pretrain": "load_pretrain_experiment_AUROC_True.csv",
    "augmentation": "load_augmentation_experiment_AUROC_True.csv",
    "multi_task": "load_multi_task_experiment_AUROC_True_True.csv",
}
TOP = 5
ATTRIBUTION = ("Derived from the published results of Godau et al., 'Beyond Knowledge Silos: Task Fingerprinting "
               "for Democratization of Medical Imaging AI' (arXiv 2412.08763), repository "
               "IMSY-DKFZ/task-fingerprinting, MIT licence.")


def _policy_file(folder: Path, task: str) -> Path | None:
    for path in sorted(folder.glob("*.json")):
        stem = path.stem.split("_", 1)[1] if "_" in path.stem else path.stem
        if stem == task or (task.endswith("_v2") and stem == task[:-3]):
            return path
    return None


def summarise_policy(policy: dict, top: int = 8) -> list[dict]:
    """Leaf operations of an albumentations policy with their effective probability of being applied to an image
    (OneOf picks one child in proportion to the children's p; Compose/Sequential children apply independently)."""
    totals: dict[str, float] = {}

    def walk(node: dict, reach: float, forced: bool) -> None:
        name = node.get("__class_fullname__", "?").split(".")[-1]
        p = 1.0 if forced else float(node.get("p", 1.0))
        children = node.get("transforms")
        if children is None:
            totals[name] = totals.get(name, 0.0) + reach * p
            return
        if name == "OneOf":
            weights = [float(c.get("p", 1.0)) for c in children]
            total = sum(weights) or 1.0
            for child, weight in zip(children, weights):
                walk(child, reach * p * weight / total, forced=True)
        else:
            for child in children:
                walk(child, reach * p, forced=False)

    walk(policy.get("transform", policy), 1.0, forced=False)
    ranked = sorted(totals.items(), key=lambda kv: -kv[1])[:top]
    return [{"operation": op, "probability": round(prob, 4)} for op, prob in ranked]


def build_knowledge(paper: Path, links: dict[str, str]) -> dict:
    """``links``: catalogue task id -> paper task name. Returns a JSON-ready dict keyed by catalogue task id."""
    infos = pd.read_csv(paper / "tasks71.csv").set_index("name")
    printable = infos["printable"].to_dict()
    domain = infos["domain"].to_dict()
    group = infos["shared_image_group"].fillna("").to_dict()
    baselines = {True: pd.read_csv(paper / "transfer" / "load_baseline_experiment_AUROC_True_True.csv", index_col=0),
                 False: pd.read_csv(paper / "transfer" / "load_baseline_experiment_AUROC_False_True.csv",
                                    index_col=0)}
    transfers = {key: pd.read_csv(paper / "transfer" / name, index_col=0) for key, name in _TRANSFER_FILES.items()}
    published = pd.read_csv(paper / PAPER_BKLD_SMALL, index_col=0)

    def baseline(task: str) -> tuple[float, int] | None:
        shrunk = bool(infos.loc[task, "shrinkable_800"]) if task in infos.index else False
        table = baselines[shrunk] if task in baselines[shrunk].columns else baselines[not shrunk]
        if task not in table.columns:
            return None
        return float(table[task].mean()), int(table[task].count())

    def describe(task: str) -> dict:
        return {"task": task, "printable": printable.get(task, task), "modality": domain.get(task, "")}

    knowledge = {"attribution": ATTRIBUTION, "scenarios": SCENARIOS, "tasks": {}}
    for task_id, paper_task in sorted(links.items()):
        entry = {"paper_task": describe(paper_task), "as_target": {}, "as_source": {}}
        for key, table in transfers.items():
            rows = table[table["t"] == paper_task]
            base = baseline(paper_task)
            scenario = {"n_sources": int(rows["s"].nunique()), "baseline_auroc": None, "best_sources": []}
            if base is not None and len(rows):
                scenario["baseline_auroc"], scenario["baseline_repetitions"] = round(base[0], 4), base[1]
                stats = rows.groupby("s")["p"].agg(["mean", "count"]).sort_values("mean", ascending=False)
                scenario["best_sources"] = [
                    dict(describe(s), auroc=round(float(r["mean"]), 4), delta=round(float(r["mean"]) - base[0], 4),
                         repetitions=int(r["count"])) for s, r in stats.head(TOP).iterrows()]
                scenario["share_of_sources_improving"] = round(float((stats["mean"] > base[0]).mean()), 3)
            entry["as_target"][key] = scenario
            as_source = table[table["s"] == paper_task]
            gains = []
            for target, rows_t in as_source.groupby("t"):
                base_t = baseline(target)
                if base_t is not None:
                    gains.append(dict(describe(target), auroc=round(float(rows_t["p"].mean()), 4),
                                      delta=round(float(rows_t["p"].mean()) - base_t[0], 4),
                                      repetitions=int(rows_t["p"].count())))
            gains.sort(key=lambda g: -g["delta"])
            entry["as_source"][key] = {"n_targets": len(gains), "most_helped": gains[:TOP]}
        policy_path = _policy_file(paper / "augmentation_policies", paper_task)
        if policy_path is not None:
            entry["augmentation_policy"] = {"file": policy_path.name,
                                            "top_operations": summarise_policy(json.loads(policy_path.read_text()))}
        if paper_task in published.columns:
            column = published[paper_task].drop(labels=[paper_task], errors="ignore")
            column = column[[not (group.get(s) and group.get(s) == group.get(paper_task)) for s in column.index]]
            entry["paper_neighbours"] = [dict(describe(s), bkld_small=round(float(v), 4))
                                         for s, v in column.sort_values().head(TOP).items()]
        knowledge["tasks"][task_id] = entry
    return knowledge
