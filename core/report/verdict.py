"""One honest verdict on a ranking: how far a clinician can trust "the closest public task is X".

The verdict is read from measured quantities of the ranking (:func:`evidence_of`), never from the distance alone:

* ``first_share``: in how many bootstrap re-draws of the user's samples the first source (with the tasks that share
  its images, which are the same pictures) comes first (``BootstrapResult.top1_share``);
* ``rank_worst``: the worst rank the first source could take: 1 + the number of other sources whose 95 % bootstrap
  interval starts below the upper end of the first's (the spread of its rank);
* ``margin_spread``: distance of the next source that shares no images with the first, less the first's, in units of
  the first's bootstrap half-width (half of its 95 % interval);
* ``control_margin_spread``: distance of the nearest non-medical control (digits, faces) less the first medical
  source's, in the same units (negative: an unrelated image set is nearer than every medical task);
* ``close``: the catalogue's own closeness cue (:func:`core.report.recommend.how_close`).

Without per-sample data (a fingerprint loaded from a file) there is no bootstrap: the margins are then read as
relative margins (``margin_pct``) against :data:`MIN_MARGIN_PCT_WITHOUT_BOOTSTRAP`. The thresholds were chosen on real
folders (``bench/verdict_calibration.py``; README "The verdict").
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from core.distances.bootstrap import BootstrapResult

#: the verdict's levels, strongest first (``Verdict.level`` is one of these)
LEVELS = ("strong", "several about equally close", "weak", "nothing close")
#: the first source (with its image-sharing siblings) must come first in at least this share of bootstrap re-draws
MIN_FIRST_SHARE = 0.9
#: ... and the next source must be farther by at least this many standard deviations of the paired difference
MIN_MARGIN_Z = 2.0
#: a non-medical control nearer than this many standard deviations (paired) above the first makes the match weak
MIN_CONTROL_Z = 2.0
#: "a task of your kind": at most this share of the catalogue's medical tasks are nearer to their own nearest
#: different task than the user's task is to its first source (``Closeness.excess_percentile``)
MAX_EXCESS_PERCENTILE = 0.25
#: "several about equally close": the next source (not sharing the first's images) is as close as at most this share
#: of the catalogue's medical tasks are to their own nearest different task: it too is of your kind
MAX_NEXT_EXCESS_PERCENTILE = 0.15
#: without a bootstrap: the next source must be this much farther (per cent of the first's distance) for "strong"
MIN_MARGIN_PCT_WITHOUT_BOOTSTRAP = 0.5
#: ... and a control nearer than this (per cent above the first) makes the match weak
MIN_CONTROL_PCT_WITHOUT_BOOTSTRAP = 1.0

#: a short explanation of each level, for a legend
LEVEL_MEANINGS = {
    "strong": "one public task is clearly and firmly the closest to your images",
    "several about equally close": "a few public tasks are about equally close; treat them as a group",
    "weak": "the closest public task is hardly closer than unrelated images, or farther than catalogue tasks "
            "usually are from their nearest neighbour",
    "nothing close": "unrelated everyday images are closer to yours than any medical task",
}


@dataclass(frozen=True)
class VerdictEvidence:
    """The measured quantities a verdict is read from (see the module docstring). Distances are the ranking's
    directed distances (source -> user task); ``None`` where there is no bootstrap."""

    first: str
    first_distance: float
    next_source: str | None
    next_distance: float | None
    margin_pct: float
    control: str | None
    control_distance: float | None
    control_margin_pct: float
    close: bool
    excess_percentile: float = float("nan")
    next_excess_percentile: float = float("nan")
    first_share: float | None = None
    rank_worst: int | None = None
    margin_spread: float | None = None
    control_margin_spread: float | None = None
    contenders: tuple[str, ...] = ()
    controls_above: tuple[str, ...] = ()


@dataclass(frozen=True)
class Verdict:
    """``level``: one of :data:`LEVELS`; ``sentence``: one plain sentence for a clinician; ``evidence``: the
    figures it was read from."""

    level: str
    sentence: str
    evidence: VerdictEvidence

    @property
    def strength(self) -> int:
        """0 for the strongest level, len(LEVELS) - 1 for the weakest."""
        return LEVELS.index(self.level)

    def to_dict(self) -> dict:
        """{level, sentence, levels (all levels, strongest first), evidence} for JSON output."""
        def plain(value):
            if isinstance(value, tuple):
                return list(value)
            if isinstance(value, float) and not np.isfinite(value):
                return None  # JSON has no infinity (e.g. no next source to compare with)
            return value
        return {"level": self.level, "sentence": self.sentence, "levels": list(LEVELS),
                "evidence": {k: plain(v) for k, v in asdict(self.evidence).items()}}


def _pct(farther: float | None, nearer: float) -> float:
    if farther is None:
        return float("inf")
    return (farther / nearer - 1.0) * 100.0 if nearer > 0 else (0.0 if farther <= 0 else float("inf"))


def _z(farther: np.ndarray | None, nearer: np.ndarray | None, full_gap: float | None) -> float | None:
    """``full_gap`` (distance difference on the full data) over the bootstrap spread of the same, paired difference."""
    if farther is None or nearer is None or full_gap is None:
        return None
    spread = float(np.std(farther - nearer))
    return full_gap / spread if spread > 0 else float(np.sign(full_gap)) * float("inf")


def _share_nearer(own_excess: tuple[float, ...], excess: float | None) -> float:
    """Share of the catalogue's medical tasks at most ``excess`` above their twin distance from their own nearest
    different task (NaN without a reference)."""
    if not own_excess or excess is None or not np.isfinite(excess):
        return float("nan")
    return float(np.mean(np.asarray(own_excess) <= max(excess, 0.0)))


def evidence_of(table: pd.DataFrame, close: bool, resampled: dict[str, np.ndarray] | None = None,
                shares_images: dict[str, list[str]] | None = None, own_excess: tuple[float, ...] = (),
                twin: float = float("nan")) -> VerdictEvidence:
    """Measure what the verdict needs from a ranking ``table`` (from :func:`core.report.recommend.recommendations`:
    candidates nearest first, then the controls). ``resampled``: task id -> (R,) its distance in each of R bootstrap
    re-draws of the user's samples, the same re-draws for every task (from :func:`resampled_distances`);
    ``shares_images``: task id -> ids of tasks holding the same images (one source, not competitors);
    ``own_excess``: each catalogue medical task's distance to its own nearest different task above its twin
    distance, and ``twin``: the user's twin distance (both from :class:`core.report.recommend.Closeness`)."""
    shares_images = shares_images or {}
    candidates = table[table["kind"] != "control"].reset_index(drop=True)
    controls = table[table["kind"] == "control"].sort_values("distance", kind="stable")
    first = candidates.iloc[0]
    siblings = set(shares_images.get(first["task_id"], [])) | {first["task_id"]}
    siblings |= {i for i, shared in shares_images.items() if first["task_id"] in shared}
    others = candidates[~candidates["task_id"].isin(siblings)]
    next_row = others.iloc[0] if len(others) else None
    control = controls.iloc[0] if len(controls) else None
    d_first = float(first["distance"])
    d_next = float(next_row["distance"]) if next_row is not None else None
    d_control = float(control["distance"]) if control is not None else None
    found = dict(first=str(first["task"]), first_distance=d_first,
                 next_source=None if next_row is None else str(next_row["task"]), next_distance=d_next,
                 margin_pct=_pct(d_next, d_first), control=None if control is None else str(control["task"]),
                 control_distance=d_control, control_margin_pct=_pct(d_control, d_first), close=bool(close),
                 excess_percentile=_share_nearer(own_excess, d_first - twin),
                 next_excess_percentile=_share_nearer(own_excess, None if d_next is None else d_next - twin),
                 controls_above=tuple(str(c) for c in controls.loc[controls["distance"] <= d_first, "task"]))
    ids = [i for i in candidates["task_id"] if resampled and i in resampled]
    if resampled and first["task_id"] in resampled and len(ids) > 1:
        values = np.stack([resampled[i] for i in ids], axis=1)  # (R, candidates)
        ranks = np.argsort(np.argsort(values, axis=1), axis=1) + 1
        in_group = np.array([i in siblings for i in ids])
        group_best = values[:, in_group].min(axis=1)
        rest_best = values[:, ~in_group].min(axis=1) if (~in_group).any() else np.full(len(values), np.inf)
        first_at = ids.index(first["task_id"])
        wins = (values == values.min(axis=1, keepdims=True))
        contenders = [str(candidates.loc[candidates["task_id"] == i, "task"].iloc[0])
                      for k, i in enumerate(ids) if not in_group[k] and wins[:, k].mean() >= 0.05]

        def pick(task_id: str | None) -> np.ndarray | None:
            return resampled.get(task_id) if task_id is not None else None
        found.update(first_share=float((group_best < rest_best).mean()),
                     rank_worst=int(np.ceil(np.percentile(ranks[:, first_at], 97.5))),
                     margin_spread=_z(pick(None if next_row is None else next_row["task_id"]),
                                      resampled[first["task_id"]], None if d_next is None else d_next - d_first),
                     control_margin_spread=_z(pick(None if control is None else control["task_id"]),
                                              resampled[first["task_id"]],
                                              None if d_control is None else d_control - d_first),
                     contenders=tuple(contenders))
    return VerdictEvidence(**found)


def resampled_distances(target, fingerprints: dict, distance: str, bootstrap: BootstrapResult | None,
                        candidate_ids: list[str], extra_ids: list[str], seed: int = 0) -> dict[str, np.ndarray]:
    """task id -> (R,) bootstrap distances: the candidates' from ``bootstrap`` (over ``candidate_ids``) and, for
    ``extra_ids`` (the controls), from a bootstrap with the same seed and number of re-draws, hence the same
    re-draws (the resample weights depend only on both)."""
    if bootstrap is None or bootstrap.values is None:
        return {}
    from core.distances.bootstrap import bootstrap_distances

    found = {task_id: bootstrap.values[:, k] for k, task_id in enumerate(candidate_ids)}
    if extra_ids:
        extra = bootstrap_distances(target, [fingerprints[i] for i in extra_ids], distance,
                                    n_resamples=bootstrap.n_resamples, seed=seed)
        found.update({task_id: extra.values[:, k] for k, task_id in enumerate(extra_ids)})
    return found


def level_of(evidence: VerdictEvidence) -> str:
    """The verdict's level from its evidence (thresholds: the module's constants, chosen in
    ``bench/verdict_calibration.py``)."""
    control_beats = evidence.control_distance is not None and evidence.control_distance <= evidence.first_distance
    control_near = _control_near(evidence)
    if control_beats or (control_near and not evidence.close):
        return "nothing close"
    if control_near or not evidence.close or not _of_your_kind(evidence):
        return "weak"
    if evidence.next_excess_percentile <= MAX_NEXT_EXCESS_PERCENTILE:  # NaN compares False
        return "several about equally close"
    if evidence.first_share is not None:
        firm = (evidence.first_share >= MIN_FIRST_SHARE
                and (evidence.margin_spread is None or evidence.margin_spread >= MIN_MARGIN_Z))
    else:
        firm = evidence.margin_pct >= MIN_MARGIN_PCT_WITHOUT_BOOTSTRAP
    return "strong" if firm else "several about equally close"


def _control_near(evidence: VerdictEvidence) -> bool:
    """A non-medical control is not clearly farther than the first medical source."""
    if evidence.control_distance is None:
        return False
    if evidence.control_margin_spread is not None:
        return evidence.control_margin_spread < MIN_CONTROL_Z
    return evidence.control_margin_pct < MIN_CONTROL_PCT_WITHOUT_BOOTSTRAP


def _of_your_kind(evidence: VerdictEvidence) -> bool:
    """As close as the catalogue's tasks are to their nearest different task, or closer (unknown: yes)."""
    return not evidence.excess_percentile > MAX_EXCESS_PERCENTILE  # NaN (no reference) passes


def _names(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def sentence_of(level: str, evidence: VerdictEvidence) -> str:
    """One plain sentence for ``level``."""
    first = evidence.first
    if level == "strong":
        how = (f"it comes first in {evidence.first_share:.0%} of repeated re-draws of your images"
               if evidence.first_share is not None else
               "its fingerprint is identical to yours" if evidence.margin_pct == float("inf") else
               f"the next public task is {evidence.margin_pct:.0f} % farther")
        return f"Strong match: {first} is clearly the public task closest to your images ({how})."
    if level == "several about equally close":
        group = [first] + [c for c in evidence.contenders if c != first][:2]
        if len(group) == 1 and evidence.next_source:
            group.append(evidence.next_source)
        if evidence.first_share is not None and evidence.first_share < MIN_FIRST_SHARE:
            why = "which one comes first changes when your images are re-drawn"
        else:
            why = f"{first} comes first, but the next is nearly as close"
        return (f"Several public tasks are about equally close to your images ({_names(group)}): {why}, so treat "
                "them as a group, not a single answer.")
    if level == "weak":
        if _control_near(evidence):
            return (f"Weak match: the closest public task, {first}, is hardly closer to your images than a set of "
                    f"unrelated everyday images ({evidence.control}); use the ranking with caution.")
        if evidence.close:
            return (f"Weak match: the closest public task, {first}, is only as close to your images as different "
                    "public tasks are to one another: a neighbour, not a task of your kind; use the ranking with "
                    "caution.")
        return (f"Weak match: the closest public task, {first}, is farther from your images than catalogue tasks "
                "usually are from their nearest neighbour; use the ranking with caution.")
    beaten_by = _names(list(evidence.controls_above) or [str(evidence.control)])
    return (f"Nothing close: unrelated everyday images ({beaten_by}) are about as close to your images as any "
            "medical task in the catalogue, so no public task can be recommended on image similarity alone.")


def verdict_for(table: pd.DataFrame, close: bool, resampled: dict[str, np.ndarray] | None = None,
                shares_images: dict[str, list[str]] | None = None, own_excess: tuple[float, ...] = (),
                twin: float = float("nan")) -> Verdict:
    """The verdict on a ranking (arguments as :func:`evidence_of`)."""
    evidence = evidence_of(table, close, resampled, shares_images, own_excess, twin)
    level = level_of(evidence)
    return Verdict(level, sentence_of(level, evidence), evidence)


def verdict_from_catalogue(catalogue, table: pd.DataFrame, target, distance: str,
                           bootstrap: BootstrapResult | None = None, seed: int = 0,
                           resampled: dict[str, np.ndarray] | None = None) -> Verdict:
    """The verdict for ``target`` against ``catalogue`` (a :class:`core.catalogue.store.Catalogue`); ``bootstrap``
    over ``catalogue.candidate_ids`` (:func:`core.report.recommend.bootstrap_for`, made with ``seed``). The
    closeness cue and the image-sharing groups come from the catalogue. ``resampled``: task id -> (R,) distances in
    the same re-draws for every catalogue task, when a bootstrap over all of them is at hand (else the controls'
    are drawn here, :func:`resampled_distances`)."""
    from core.report.recommend import how_close

    closeness = how_close(catalogue, table, target, distance)
    shares = {t.id: list(t.shares_images_with) for t in catalogue.tasks if t.shares_images_with}
    controls = [t.id for t in catalogue.tasks if t.kind == "control"]
    if resampled is None:
        resampled = resampled_distances(target, catalogue.fingerprints, distance, bootstrap,
                                        catalogue.candidate_ids, controls, seed)
    return verdict_for(table, closeness.close, resampled, shares, closeness.own_excess,
                       closeness.nearest - closeness.excess)


def outranked_by_control(table: pd.DataFrame) -> np.ndarray:
    """(rows of ``table``,) bool: medical rows farther than the nearest non-medical control, i.e. "not
    distinguishable from unrelated images"."""
    controls = table.loc[table["kind"] == "control", "distance"]
    if controls.empty:
        return np.zeros(len(table), dtype=bool)
    return ((table["kind"] != "control") & (table["distance"] >= float(controls.min()))).to_numpy()


#: the note on a medical row that a non-medical control outranks
NOT_DISTINGUISHABLE = "not distinguishable from unrelated images"
#: the columns of the exported ranking (CSV / JSON), in order
EXPORT_COLUMNS = ["rank", "task_id", "task", "distance", "modality", "anatomy", "kind", "reference_control", "note",
                  "caution", "licence"]


def ranked_with_references(table: pd.DataFrame) -> pd.DataFrame:
    """Every row of ``table`` (candidates and controls) in distance order, the controls at their place as reference
    rows: ``reference_control`` True for them (no rank), ``note`` = :data:`NOT_DISTINGUISHABLE` on medical rows a
    control outranks (equal or nearer)."""
    ordered = table.sort_values("distance", kind="stable").reset_index(drop=True)
    ordered["reference_control"] = ordered["kind"] == "control"
    ordered["note"] = np.where(outranked_by_control(ordered), NOT_DISTINGUISHABLE, "")
    ordered.loc[ordered["reference_control"], "note"] = "reference point: non-medical images, not a candidate"
    return ordered
