"""Ranked recommendations of catalogue tasks as sources for a user's task, with uncertainty and what the paper
measured, as pandas tables (no Streamlit here)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.catalogue.knowledge import SCENARIOS
from core.catalogue.store import Catalogue
from core.distances.bank import twin_distance
from core.distances.bootstrap import DEFAULT_RESAMPLES, DEFAULT_SEED, BootstrapResult, bootstrap_distances
from core.distances.registry import DEFAULT_DISTANCE, SECOND_OPINION, spec_of
from core.fingerprint.fingerprint import Fingerprint


def recommendations(catalogue: Catalogue, target: Fingerprint, distance: str = DEFAULT_DISTANCE,
                    bootstrap: BootstrapResult | None = None, computed: dict[str, np.ndarray] | None = None,
                    with_second_opinion: bool = True) -> pd.DataFrame:
    """Candidate sources for ``target``, nearest first, then the non-medical controls (no rank: they are reference
    points, not candidates). Columns: rank, task_id, task, distance (directed, source -> target), task facts.

    ``bootstrap`` (from :func:`bootstrap_for`, over the candidates): the 95 % interval of each candidate's distance,
    how often its rank holds and how often it comes first. ``computed``: distance name -> (T,) distances from every
    catalogue task to ``target`` already at hand (``catalogue.distances_to``), not computed again.
    ``with_second_opinion``: add each candidate's rank under the second-opinion distance (``second_opinion_rank``;
    never for that distance itself).
    """
    spec_of(distance)  # refuses an unknown name
    computed = computed or {}
    values = computed[distance] if distance in computed else catalogue.distances_to(target, distance)
    candidates = catalogue.candidate_ids
    rows = []
    for index, info in enumerate(catalogue.tasks):
        row = {"task_id": info.id, "task": info.name, "distance": float(values[index]), "modality": info.modality,
               "anatomy": info.anatomy, "classes": ", ".join(info.classes), "images": info.n_images,
               "licence": info.licence, "kind": info.kind,
               "caution": (f"shares images with {', '.join(info.shares_images_with)}"
                           if info.shares_images_with else ""),
               "paper_evidence": _evidence_line(catalogue, info.id)}
        if bootstrap is not None and info.id in candidates:
            at = candidates.index(info.id)
            row.update(interval_low=float(bootstrap.low[at]), interval_high=float(bootstrap.high[at]),
                       rank_holds=float(bootstrap.rank_stability[at]), first_place=float(bootstrap.top1_share[at]))
        rows.append(row)
    table = pd.DataFrame(rows)
    table["is_control"] = table["kind"] == "control"
    table = table.sort_values(["is_control", "distance"], kind="stable").reset_index(drop=True)
    ranks = pd.array([None] * len(table), dtype="Int64")
    n_candidates = int((~table["is_control"]).sum())
    ranks[:n_candidates] = np.arange(1, n_candidates + 1)
    table.insert(0, "rank", ranks)
    if with_second_opinion and distance != SECOND_OPINION:
        second = (computed[SECOND_OPINION] if SECOND_OPINION in computed
                  else catalogue.distances_to(target, SECOND_OPINION))
        candidate_rows = [catalogue.ids.index(i) for i in candidates]
        order = np.argsort(second[candidate_rows], kind="stable")
        second_rank = {candidates[i]: r + 1 for r, i in enumerate(order)}
        table["second_opinion_rank"] = pd.array([second_rank.get(i) for i in table["task_id"]], dtype="Int64")
    return table.drop(columns="is_control")


@dataclass(frozen=True)
class Closeness:
    """Whether the nearest candidate is as close as catalogue tasks usually are to their nearest source.

    Distances are measured above the target's *twin distance* (what the formula gives for an identical source,
    :func:`core.distances.bank.twin_distance`): each target's bKLD values carry an offset of their own, so raw values
    are not comparable across targets. ``excess``: the user's nearest candidate's distance above the twin distance;
    ``threshold``: the 90th percentile of the same excess for the catalogue's medical tasks and their own nearest
    legal source; ``controls``: (name, distance) of the non-medical controls, the scale of "far"."""

    close: bool
    nearest: float
    excess: float
    threshold: float
    controls: list[tuple[str, float]]
    message: str
    own_excess: tuple[float, ...] = ()  # each catalogue medical task's excess over its own nearest legal source



def how_close(catalogue: Catalogue, table: pd.DataFrame, target: Fingerprint,
              distance: str = DEFAULT_DISTANCE) -> Closeness:
    """Is anything in the catalogue close to the user's task? (``table`` from :func:`recommendations`.)"""
    return closeness_from(catalogue_excess(catalogue, distance), table, target, distance)


def closeness_from(own: list[float], table: pd.DataFrame, target: Fingerprint,
                   distance: str = DEFAULT_DISTANCE) -> Closeness:
    """:func:`how_close` from ``own``: each catalogue medical task's excess over its own nearest legal source (from
    :func:`catalogue_excess`, or a source store's nearest and twin distances at scale)."""
    threshold = float(np.percentile(own, 90)) if own else float("inf")
    nearest = float(table.loc[table["kind"] != "control", "distance"].iloc[0])
    excess = nearest - twin_distance(distance, target) if nearest > 0 else 0.0
    controls = [(row.task, float(row.distance)) for row in table[table["kind"] == "control"].itertuples()]
    scale = ", ".join(f"{name} {value:.4f}" for name, value in controls)
    if excess <= threshold:
        message = (f"The nearest source ({nearest:.4f}, {excess:.4f} above what an identical task would score) is as "
                   f"close as catalogue tasks usually are to their own nearest source (90 % of them within "
                   f"{threshold:.4f}).")
    else:
        message = (f"No catalogue task is close to your task: the nearest source ({nearest:.4f}) is {excess:.4f} "
                   f"above what an identical task would score, farther than 90 % of the catalogue's tasks are from "
                   f"their own nearest source ({threshold:.4f}). Treat the ranking as weak evidence. For scale, the "
                   f"non-medical controls: {scale}.")
    return Closeness(excess <= threshold, nearest, excess, threshold, controls, message, tuple(map(float, own)))


def catalogue_excess(catalogue: Catalogue, distance: str = DEFAULT_DISTANCE) -> list[float]:
    """Each catalogue medical task's distance to its own nearest legal source above its twin distance: the
    catalogue's reference for :func:`how_close` (depends on the catalogue alone: computed once per catalogue)."""
    return catalogue.derived(("own excess", distance), lambda: _own_excess(catalogue, distance))


def _own_excess(catalogue: Catalogue, distance: str) -> list[float]:
    from core.catalogue.validity import facts_of, nearest_legal_source

    matrix, facts = catalogue.matrix(distance), facts_of(catalogue)
    return [matrix[s, t] - twin_distance(distance, catalogue.fingerprints[catalogue.ids[t]])
            for t in facts.medical if (s := nearest_legal_source(matrix, facts, t)) is not None]


def second_opinion(table: pd.DataFrame) -> dict:
    """What the first place looks like from another distance: {'agree': bool, 'first': task, 'second_opinion_first':
    task, 'margin_pct': how much farther the second source is than the first, in per cent}."""
    candidates = table[table["kind"] != "control"]
    first = candidates.iloc[0]
    margin = (float(candidates["distance"].iloc[1]) / float(first["distance"]) - 1.0) * 100.0 \
        if len(candidates) > 1 and first["distance"] > 0 else None  # None: no ratio to a distance of 0
    result = {"first": first["task"], "margin_pct": margin, "agree": None, "second_opinion_first": None}
    if "second_opinion_rank" in candidates:
        other = candidates.loc[candidates["second_opinion_rank"] == 1, "task"]
        result["second_opinion_first"] = other.iloc[0] if len(other) else None
        result["agree"] = result["second_opinion_first"] == first["task"]
    return result


def bootstrap_for(catalogue: Catalogue, target: Fingerprint, distance: str = DEFAULT_DISTANCE,
                  n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> BootstrapResult | None:
    """Bootstrap over the target's samples, for the candidate sources in ``catalogue.candidate_ids`` order (None
    when the fingerprint kept no samples, e.g. loaded from a file)."""
    if target.sample_bins is None:
        return None
    sources = [catalogue.fingerprints[i] for i in catalogue.candidate_ids]
    return bootstrap_distances(target, sources, distance, n_resamples=n_resamples, seed=seed)


def _evidence_line(catalogue: Catalogue, task_id: str) -> str:
    entry = catalogue.knowledge.get("tasks", {}).get(task_id)
    if not entry:
        return ""
    parts = []
    for key, label in SCENARIOS.items():
        scenario = entry["as_source"].get(key, {})
        helped = scenario.get("most_helped") or []
        if helped:
            best = helped[0]
            parts.append(f"{label}: best gain {best['delta']:+.3f} AUROC ({best['printable']})")
    return "; ".join(parts)


#: the paper's table headers in words
KNOWLEDGE_COLUMNS = {"printable": "paper task", "modality": "modality", "auroc": "AUROC with transfer",
                     "baseline_auroc": "AUROC trained alone", "delta": "change in AUROC",
                     "repetitions": "repetitions", "bkld_small": "published distance (bKLD small)",
                     "operation": "operation",
                     "probability": "times applied per image (of the policy's 3 steps)"}
#: what the augmentation figure is: the searched policy (FasterAutoAugment, as albumentations JSON) picks one of 10
#: sub-policies per image, each a sequence of 3 steps that each apply one operation (NoOp = nothing); the figure
#: adds, over the 3 steps, the chance that the step applies this operation: an expected count from 0 to 3
POLICY_FIGURE = ("Each searched augmentation policy applies 3 steps in a row to every training image; the figure is "
                 "how many of those 3 steps apply the operation on average (0 to 3; 'NoOp' = the step does nothing).")


def knowledge_tables(catalogue: Catalogue, task_id: str) -> dict[str, pd.DataFrame]:
    """For a paper-linked task: per scenario, the best sources when it was the target and the targets it helped
    most as a source, plus its paper neighbours, with headers in words (:data:`KNOWLEDGE_COLUMNS`). Empty dict for
    tasks without paper evidence."""
    entry = catalogue.knowledge.get("tasks", {}).get(task_id)
    if not entry:
        return {}
    tables = {}
    for key, label in SCENARIOS.items():
        target_side = entry["as_target"].get(key, {})
        if target_side.get("best_sources"):
            frame = pd.DataFrame(target_side["best_sources"])
            frame["baseline_auroc"] = target_side.get("baseline_auroc")
            tables[f"{label}: best sources when it was the target"] = frame[
                ["printable", "modality", "auroc", "baseline_auroc", "delta", "repetitions"]]
        source_side = entry["as_source"].get(key, {})
        if source_side.get("most_helped"):
            tables[f"{label}: targets it helped most as a source"] = pd.DataFrame(source_side["most_helped"])[
                ["printable", "modality", "auroc", "delta", "repetitions"]]
    if entry.get("augmentation_policy"):
        tables["searched augmentation policy: most applied operations"] = pd.DataFrame(
            entry["augmentation_policy"]["top_operations"])
    if entry.get("paper_neighbours"):
        tables["nearest paper tasks by the published bKLD"] = pd.DataFrame(entry["paper_neighbours"])[
            ["printable", "modality", "bkld_small"]]
    return {title: frame.rename(columns=KNOWLEDGE_COLUMNS) for title, frame in tables.items()}


def distance_scale(catalogue: Catalogue, table: pd.DataFrame, target: Fingerprint,
                   distance: str = DEFAULT_DISTANCE) -> pd.Series:
    """A readable scale for each row's distance: the share (0..1) of the catalogue's own pairs of different medical
    tasks (source != target, no shared images) that are farther apart than this source is from the user's task.
    Both sides are measured above the target's twin distance (:func:`twin_distance`), since raw bKLD values carry an
    offset per target. 1.0 = nearer than any two different catalogue tasks; 0.0 = farther than all of them."""
    pairs = pair_excess(catalogue, distance)
    if pairs.size == 0:
        return pd.Series(np.nan, index=table.index)
    excess = table["distance"].to_numpy(dtype=float) - twin_distance(distance, target)
    return pd.Series(1.0 - np.searchsorted(np.sort(pairs), excess, side="left") / pairs.size, index=table.index)


def pair_excess(catalogue: Catalogue, distance: str = DEFAULT_DISTANCE) -> np.ndarray:
    """The catalogue's pairs of different medical tasks, each source's distance above its target's twin distance
    (the scale of :func:`distance_scale`; the catalogue's alone, so computed once per catalogue)."""
    return catalogue.derived(("scale pairs", distance), lambda: _pair_excess(catalogue, distance))


def _pair_excess(catalogue: Catalogue, distance: str) -> np.ndarray:
    from core.catalogue.validity import facts_of

    matrix, facts = catalogue.matrix(distance), facts_of(catalogue)
    twins = {t: twin_distance(distance, catalogue.fingerprints[catalogue.ids[t]]) for t in facts.medical}
    return np.concatenate([matrix[facts.legal_sources(t), t] - twins[t] for t in facts.medical] or [np.empty(0)])
