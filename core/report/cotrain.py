"""Co-training plan: which catalogue tasks to train *with* your task, as pure functions on arrays and TaskInfo lists
(no Streamlit, no file writing here except the paper reader).

The plan takes the directed distances source -> your task (lower = closer), walks the catalogue tasks nearest first
and picks k of them, never a non-medical control and never a task that shares images with one already picked (two
tasks built on the same images would count the same data twice). A licence filter can keep only tasks whose stated
licence allows a use; a licence that is not verified never passes a filter and is always said to be not verified.

For paper-linked tasks the plan adds what the paper measured when the linked paper task was co-trained with other
tasks (``multi_task`` scenario of ``shared/paper/transfer``): the change in the targets' AUROC over training alone.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.catalogue.store import TaskInfo
from core.distances.registry import DEFAULT_DISTANCE
from core.paper import DEFAULT_PAPER

MULTI_TASK_FILE = "load_multi_task_experiment_AUROC_True_True.csv"
BASELINE_FILES = ("load_baseline_experiment_AUROC_True_True.csv",   # 800-image targets (used first)
                  "load_baseline_experiment_AUROC_False_True.csv")  # full-size targets
PAPER_MISSING = "paper results not available"

OPEN, RESEARCH_ONLY, NOT_VERIFIED = "open", "research-only", "not verified"
USES = {"research": (OPEN, RESEARCH_ONLY), "commercial": (OPEN,)}  # use -> licence short forms that allow it
_UNCERTAIN = re.compile(r"not verified|not re-checked|unknown|per-image licen[cs]e|none stated")
_RESEARCH = re.compile(r"research|non-?commercial|\bcc[ -]by[ -]nc|no rent|no sale")
_OPEN = re.compile(r"\bcc0\b|\bcc[ -]by\b|\bmit\b|\bbsd\b|\bapache\b|public domain")


def licence_short(text: str) -> str:
    """Short form of a licence as stated by its source: 'not verified', 'research-only' or 'open'.

    Rule, first match wins (case-insensitive; licence names match as whole words, so 'MIT' is not 'submitted'):

    1. 'not verified' when the text admits doubt: it contains "not verified", "not re-checked", "unknown",
       "per-image licence" or "none stated", or is empty;
    2. 'research-only' when it restricts use: "research", "non-commercial", "CC BY-NC", "no rent", "no sale";
    3. 'open' when it names an open licence: CC0, CC BY, MIT, BSD, Apache, public domain;
    4. otherwise 'not verified' (we do not guess).

    So a task whose text mixes an open part with an unverified part is 'not verified', and one whose text names both
    a research restriction and an open licence (e.g. research-use images shipped in a BSD package) is
    'research-only': the stricter statement wins.
    """
    lowered = " ".join(str(text or "").lower().split())
    if not lowered or _UNCERTAIN.search(lowered):
        return NOT_VERIFIED
    if _RESEARCH.search(lowered):
        return RESEARCH_ONLY
    if _OPEN.search(lowered):
        return OPEN
    return NOT_VERIFIED


def licence_allows(short: str, use: str) -> bool:
    """Whether a licence short form allows ``use`` ('research' or 'commercial'); 'not verified' allows nothing."""
    if use not in USES:
        raise ValueError(f"unknown use '{use}'; choose one of {', '.join(USES)}")
    return short in USES[use]


@dataclass(frozen=True)
class CotrainEffect:
    """What the paper measured with one paper task as co-training partner (``multi_task`` scenario).

    delta: per target, mean AUROC co-trained with this task minus the target's mean AUROC trained alone (AUROC
    units, -1..1); mean_delta is their mean over targets, improved_share the share of targets with delta > 0.
    """

    paper_task: str
    n_targets: int
    mean_delta: float
    improved_share: float
    best_target: str
    best_delta: float

    def text(self) -> str:
        return (f"co-training with {self.paper_task} changed the targets' AUROC by {self.mean_delta:+.4f} on average "
                f"over {self.n_targets} targets ({self.improved_share:.0%} improved; best {self.best_target} "
                f"{self.best_delta:+.4f})")


def cotrain_effects(multi_task: pd.DataFrame, baselines: list[pd.DataFrame]) -> dict[str, CotrainEffect]:
    """Per paper source task, its measured co-training effect.

    multi_task: rows (r, s, t, p) = repetition, source task, target task, target AUROC when co-trained with s.
    baselines: tables with rows = repetitions, columns = target tasks, values = AUROC trained alone; for each target
    the first table that has its column is used (pass the 800-image table first, as the transfer runs used it).
    Targets without a baseline are left out.
    """
    missing = {"s", "t", "p"} - set(multi_task.columns)
    if missing:
        raise ValueError(f"multi-task results lack the columns {', '.join(sorted(missing))}")
    base: dict[str, float] = {}
    for table in baselines:
        for target in table.columns:
            values = pd.to_numeric(table[target], errors="coerce").dropna()
            if target not in base and len(values):
                base[str(target)] = float(values.mean())
    means = multi_task.assign(p=pd.to_numeric(multi_task["p"], errors="coerce")).dropna(subset=["p"]) \
        .groupby(["s", "t"])["p"].mean()
    effects = {}
    for source, per_target in means.groupby(level="s"):
        deltas = {str(t): float(v) - base[str(t)] for (_, t), v in per_target.items() if str(t) in base}
        if not deltas:
            continue
        best = max(deltas, key=deltas.get)
        values = np.array(list(deltas.values()))
        effects[str(source)] = CotrainEffect(str(source), len(values), float(values.mean()),
                                             float((values > 0).mean()), best, deltas[best])
    return effects


def read_cotrain_effects(paper: str | Path = DEFAULT_PAPER) -> dict[str, CotrainEffect] | None:
    """The co-training effects from the paper folder's ``transfer/`` CSVs, or None when they are not there."""
    transfer = Path(paper) / "transfer"
    if not (transfer / MULTI_TASK_FILE).is_file():
        return None
    baselines = [pd.read_csv(transfer / name, index_col=0) for name in BASELINE_FILES if (transfer / name).is_file()]
    if not baselines:
        return None
    return cotrain_effects(pd.read_csv(transfer / MULTI_TASK_FILE, index_col=0), baselines)


def _shares(a: TaskInfo, b: TaskInfo) -> bool:
    return b.id in (a.shares_images_with or []) or a.id in (b.shares_images_with or [])


def cotraining_plan(distances: np.ndarray, tasks: list[TaskInfo], k: int = 3, use: str | None = None,
                    effects: dict[str, CotrainEffect] | None = None) -> dict:
    """Pick up to ``k`` catalogue tasks to co-train with: nearest first, no control, no two sharing images.

    distances: (T,) directed distance from each task in ``tasks`` (source) to the user's task, lower = closer.
    use: None (no filter), 'research' or 'commercial': keep only tasks whose licence short form allows it.
    effects: from :func:`read_cotrain_effects`; None means the paper results are not available.
    Returns a JSON-ready dict: ``tasks`` (in plan order, each with task_id, licence short form, licence_stated,
    distance, classes, images, upstream, source, citation, paper effect), ``totals`` (tasks, images, classes),
    ``skipped`` (task_id, reason) for every nearer task that was passed over, and ``notes``.
    """
    values = np.asarray(distances, dtype=np.float64)
    if values.shape != (len(tasks),):
        raise ValueError(f"{values.shape[0] if values.ndim else 0} distances for {len(tasks)} tasks")
    if int(k) < 1:
        raise ValueError(f"k must be at least 1 (got {k})")
    if use is not None and use not in USES:
        raise ValueError(f"unknown use '{use}'; choose one of {', '.join(USES)}")
    chosen: list[TaskInfo] = []
    rows, skipped = [], []
    for index in np.argsort(values, kind="stable"):
        info = tasks[index]
        if len(chosen) == k:
            break
        short = licence_short(info.licence)
        reason = None
        if info.kind == "control":
            reason = "non-medical control: a reference point, never a partner"
        elif not math.isfinite(values[index]):
            reason = "no finite distance"
        elif use is not None and not licence_allows(short, use):
            reason = (f"licence {short} does not allow {use} use" if short != NOT_VERIFIED
                      else f"licence not verified, so {use} use cannot be confirmed")
        else:
            clash = [c.id for c in chosen if _shares(info, c)]
            if clash:
                reason = f"shares images with {', '.join(clash)}, already in the plan"
        if reason:
            skipped.append({"task_id": info.id, "reason": reason})
            continue
        chosen.append(info)
        effect = (effects or {}).get(info.paper_task) if info.paper_task else None
        rows.append({
            "order": len(chosen), "task_id": info.id, "task": info.name, "distance": float(values[index]),
            "modality": info.modality, "anatomy": info.anatomy, "classes": dict(info.classes),
            "n_classes": len(info.classes), "images": int(info.n_images), "licence": short,
            "licence_stated": info.licence, "upstream": info.upstream, "source": info.source,
            "citation": f"{info.upstream}; images via {info.source}" if info.source else info.upstream,
            "shares_images_with": list(info.shares_images_with or []), "paper_task": info.paper_task,
            "paper_link": info.paper_link,
            "paper_cotrain_effect": None if effect is None else {
                "mean_delta_auroc": effect.mean_delta, "targets": effect.n_targets,
                "improved_share": effect.improved_share, "best_target": effect.best_target,
                "best_delta_auroc": effect.best_delta},
            "paper_cotrain": (effect.text() if effect is not None else
                              "" if not info.paper_task else
                              PAPER_MISSING if effects is None else
                              f"no co-training result for {info.paper_task} in the paper")})
    notes = []
    if len(rows) < k:
        notes.append(f"only {len(rows)} of the {k} requested tasks qualify"
                     + (f" under the {use} licence filter" if use else ""))
    unverified = [r["task_id"] for r in rows if r["licence"] == NOT_VERIFIED]
    if unverified:
        notes.append(f"licence not verified for {', '.join(unverified)}: check the stated text before use")
    if use is not None:
        notes.append(f"licence filter '{use}': kept only tasks whose stated licence reads as "
                     f"{' or '.join(USES[use])}; tasks whose licence is not verified were left out")
    if effects is None and any(r["paper_task"] for r in rows):
        notes.append(PAPER_MISSING)
    return {"k": int(k), "use": use or "any", "tasks": rows,
            "totals": {"tasks": len(rows), "images": sum(r["images"] for r in rows),
                       "classes": sum(r["n_classes"] for r in rows)},
            "skipped": skipped, "notes": notes}


def plan_table(plan: dict) -> pd.DataFrame:
    """One row per planned task (for CSV and display): classes as 'name (count)' text, the paper effect as text."""
    columns = ["order", "task_id", "task", "distance", "modality", "anatomy", "classes", "n_classes", "images",
               "licence", "licence_stated", "upstream", "source", "citation", "paper_task", "paper_cotrain"]
    if any("note" in row for row in plan["tasks"]):  # with_verdict: planned tasks a control outranks
        columns.insert(4, "note")
    frame = pd.DataFrame(plan["tasks"], columns=columns)
    frame["classes"] = [", ".join(f"{name} ({count})" for name, count in classes.items())
                        for classes in frame["classes"]]
    return frame


def plan_for(catalogue, target, distance: str = DEFAULT_DISTANCE, k: int = 3, use: str | None = None,
             effects: dict[str, CotrainEffect] | None = None) -> dict:
    """:func:`cotraining_plan` for a catalogue (``core.catalogue.store.Catalogue``) and a user's fingerprint,
    recording the user's task name, the distance and any comparability warnings. ``effects``: see
    :func:`read_cotrain_effects`."""
    values, warnings = catalogue.distances_to(target, distance), catalogue.comparison_warnings(target)
    plan = cotraining_plan(values, catalogue.tasks, k, use, effects)
    return {"user_task": target.name, "distance": distance, **plan, "warnings": list(warnings)}


def with_verdict(plan: dict, verdict, table) -> dict:
    """The plan with the ranking's verdict (``core.report.verdict.Verdict``) and its caveat first, the nearest
    non-medical control as a reference, and every planned task the control outranks flagged (``note``)."""
    from core.report.verdict import NOT_DISTINGUISHABLE

    controls = table[table["kind"] == "control"].sort_values("distance")
    reference = None if controls.empty else {"task": str(controls.iloc[0]["task"]),
                                             "distance": float(controls.iloc[0]["distance"])}
    tasks = [{**row, "note": NOT_DISTINGUISHABLE if reference and row["distance"] >= reference["distance"] else ""}
             for row in plan["tasks"]]
    caveat = ("The plan follows the ranking, so it is only as good as the ranking: "
              + verdict.sentence[0].lower() + verdict.sentence[1:])
    return {**plan, "tasks": tasks, "verdict": verdict.to_dict(), "caveat": caveat, "reference_control": reference}
