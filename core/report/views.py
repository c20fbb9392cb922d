"""Data behind the map, heatmap and "why similar?" views as plain tables and arrays (no plotting here)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.cluster.hierarchy import leaves_list, linkage
from scipy.spatial.distance import squareform

from core.catalogue.store import Catalogue
from core.distances.bank import contributions_to
from core.distances.maths import symmetrise
from core.distances.registry import DEFAULT_DISTANCE
from core.fingerprint.binning import N_BINS_LARGE, N_BINS_SMALL
from core.fingerprint.fingerprint import Fingerprint

USER_ID = "__your_task__"


def with_user(catalogue: Catalogue, user: Fingerprint | None, distance: str = DEFAULT_DISTANCE,
              user_distances: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[list[str], list[str], np.ndarray]:
    """Task ids, names (numbered where two tasks share one, as :func:`task_labels` numbers them) and the directed
    matrix [source, target] of the catalogue, plus the user's task last. ``user_distances``: (to the user, from the
    user), each (T,), when already computed."""
    ids, names = list(catalogue.ids), list(task_labels(catalogue.tasks).values())
    matrix = catalogue.matrix(distance)
    if user is None:
        return ids, names, matrix
    to_user, from_user = user_distances or (catalogue.distances_to(user, distance),
                                            catalogue.distances_from(user, distance))
    full = np.zeros((len(ids) + 1, len(ids) + 1))
    full[:-1, :-1] = matrix
    full[:-1, -1] = to_user
    full[-1, :-1] = from_user
    return ids + [USER_ID], names + [f"{user.name} (yours)"], full


def clustered_order(directed: np.ndarray) -> np.ndarray:
    """Leaf order of average-linkage clustering on the symmetrised distances."""
    if len(directed) < 3:
        return np.arange(len(directed))
    condensed = squareform(symmetrise(directed), checks=False)
    return leaves_list(linkage(condensed, method="average"))


def map_frame(catalogue: Catalogue, coords: np.ndarray, user_xy: np.ndarray | None = None,
              user_name: str = "your task") -> pd.DataFrame:
    """One row per point: id, name, x, y, modality, kind and hover facts."""
    rows = [{"task_id": t.id, "task": t.name, "x": float(coords[i, 0]), "y": float(coords[i, 1]),
             "modality": t.modality, "anatomy": t.anatomy, "kind": t.kind, "images": t.n_images,
             "classes": ", ".join(t.classes), "licence": t.licence} for i, t in enumerate(catalogue.tasks)]
    if user_xy is not None:
        rows.append({"task_id": USER_ID, "task": user_name, "x": float(user_xy[0]), "y": float(user_xy[1]),
                     "modality": "your task", "anatomy": "", "kind": "user", "images": 0, "classes": "",
                     "licence": ""})
    return pd.DataFrame(rows)


def selected_task(selection: object, valid_ids: list[str]) -> str | None:
    """The catalogue task id picked in a plotly selection event (customdata[0] of the first point), if any."""
    try:
        points = selection["selection"]["points"]  # type: ignore[index]
    except (KeyError, TypeError):
        points = getattr(getattr(selection, "selection", None), "points", None) or []
    for point in points or []:
        custom = point.get("customdata") if isinstance(point, dict) else None
        task_id = custom[0] if isinstance(custom, (list, tuple)) and custom else custom
        if task_id in valid_ids:
            return task_id
    return None


def feature_histograms(target: Fingerprint, source: Fingerprint, feature: int, n_bins: int = N_BINS_SMALL,
                       lo: float | None = None, hi: float | None = None) -> pd.DataFrame:
    """The two normalised histograms of one feature, long format (bin, bin_start, probability, task)."""
    if n_bins not in (N_BINS_SMALL, N_BINS_LARGE):
        raise ValueError("n_bins must be 100 or 1000")
    frames = []
    for label, fingerprint in (("your task", target), (source.name, source)):
        probabilities = fingerprint.probabilities(n_bins)[feature]
        starts = (np.linspace(lo, hi, n_bins, endpoint=False) if lo is not None and hi is not None
                  else np.arange(n_bins))
        frames.append(pd.DataFrame({"bin": np.arange(n_bins), "bin_start": starts, "probability": probabilities,
                                    "task": label}))
    return pd.concat(frames, ignore_index=True)


#: above this many tasks the heatmap shows one task and its nearest ones unless the user asks for all
HEATMAP_FOCUS_ABOVE = 40
HEATMAP_NEAREST = 30
#: rows a catalogue's task table lists at once (its search and modality filter find the others): a browser draws
#: 10,000 rows and a menu of 10,000 tasks in seconds, not within a page switch
TABLE_ROWS_SHOWN = 500
#: the map names every task up to this many; above, only the ones nearest the user's (or the selected) task
MAP_LABEL_ALL_UP_TO = 30
MAP_LABEL_NEAREST = 12


def nearest_indices(symmetric: np.ndarray, centre: int, k: int) -> np.ndarray:
    """``centre`` and its ``k`` nearest rows by the symmetrised distance (T, T), centre first."""
    order = np.argsort(symmetric[centre], kind="stable")
    return np.concatenate([[centre], [i for i in order if i != centre][:k]]).astype(int)


@dataclass(frozen=True)
class HeatmapView:
    """What the heatmap shows. symmetric/directed: (n, n) tables in clustered order labelled by task name, the
    symmetric one with a blank (NaN) diagonal, the directed one [source row, target column]; modality: the modality
    family of each row; lo/hi: the colour range (2nd and 98th percentile of the off-diagonal values); focus: the
    task the view is centred on, or None for the whole matrix; total: tasks in the full matrix."""

    symmetric: pd.DataFrame
    directed: pd.DataFrame
    modality: list[str]
    lo: float
    hi: float
    focus: str | None
    total: int


def distinct_names(names: list[str]) -> list[str]:
    """``names`` with a repeated name numbered from its second occurrence on ("Chest X-ray", "Chest X-ray (2)"): two
    tasks may share a name, and a heatmap's rows and columns (a table's, plotly's category axis) must not merge."""
    taken = set(names)
    number: dict[str, int] = {}  # the last number given to each name (1: the name itself)
    out = []
    for name in names:
        if name not in number:
            number[name], label = 1, name
        else:
            number[name] += 1
            while f"{name} ({number[name]})" in taken:  # a task already named "Chest X-ray (2)" keeps its name
                number[name] += 1
            label = f"{name} ({number[name]})"
        taken.add(label)
        out.append(label)
    return out


def task_labels(tasks: list) -> dict[str, str]:
    """Task id -> its name as menus and tables show it, numbered where two tasks share a name
    (:func:`distinct_names`), in catalogue order."""
    return dict(zip((t.id for t in tasks), distinct_names([t.name for t in tasks])))


def heatmap_view(catalogue: Catalogue, user: Fingerprint | None, distance: str = DEFAULT_DISTANCE,
                 around: str | None = None, nearest: int | None = HEATMAP_NEAREST, colour: str = "distance",
                 user_distances: tuple[np.ndarray, np.ndarray] | None = None) -> HeatmapView:
    """The heatmap's data. ``around``: task id (or USER_ID) to centre on, showing it and its ``nearest`` tasks
    (None: all tasks). ``colour``: 'distance' (symmetrised values) or 'rank' (each target's ranks of its sources,
    symmetrised: removes the per-target offset of bKLD, see core.catalogue.families)."""
    from core.catalogue.validity import modality_family
    from core.distances.maths import target_ranks

    ids, names, directed = with_user(catalogue, user, distance, user_distances)
    modality = [("control" if t.kind == "control" else modality_family(t.modality)) for t in catalogue.tasks] + \
        (["your task"] if user is not None else [])
    basis = target_ranks(directed) if colour == "rank" else directed  # what is coloured is what is clustered
    shown = symmetrise(basis)
    keep = np.arange(len(ids))
    if around is not None and nearest is not None and around in ids:
        keep = np.sort(nearest_indices(shown, ids.index(around), nearest))
    sub_directed, sub_shown = directed[np.ix_(keep, keep)], shown[np.ix_(keep, keep)]
    order = keep[clustered_order(basis[np.ix_(keep, keep)])]
    local = [list(keep).index(i) for i in order]
    labels = [names[i] for i in order]
    values = sub_shown[np.ix_(local, local)].astype(float)
    np.fill_diagonal(values, np.nan)
    off = values[np.isfinite(values)]
    lo, hi = (float(np.percentile(off, 2)), float(np.percentile(off, 98))) if off.size else (0.0, 1.0)
    return HeatmapView(pd.DataFrame(values, index=labels, columns=labels),
                       pd.DataFrame(sub_directed[np.ix_(local, local)], index=labels, columns=labels),
                       [modality[i] for i in order], lo, hi if hi > lo else lo + 1e-9,
                       None if len(keep) == len(ids) else around, len(ids))


def map_ranks(catalogue: Catalogue, user: Fingerprint | None = None, task_id: str | None = None) -> np.ndarray:
    """(T,) symmetrised ranks between the user's task (or a catalogue task) and every catalogue task, on the map's
    own scale (core.catalogue.taskmap: UMAP of per-target ranks): what places the user's task and picks its
    nearest. Raw symmetrised distances would not do: a peaked target's bKLD values are low against everything, so
    tasks such as the Pap-smear cells came out "near" a brain-MRI folder. An identical task gets 0 (lands on it)."""
    from core.catalogue.families import user_ranks
    from core.distances.maths import target_ranks

    if user is None:
        return symmetrise(target_ranks(catalogue.matrix(DEFAULT_DISTANCE)))[catalogue.ids.index(task_id)]
    to_user = catalogue.distances_to(user, DEFAULT_DISTANCE)
    from_user = catalogue.distances_from(user, DEFAULT_DISTANCE)
    return user_ranks(catalogue.matrix(DEFAULT_DISTANCE), to_user, from_user)


def map_annotations(points: pd.DataFrame, symmetric_to: np.ndarray | None, label_all_up_to: int =
                    MAP_LABEL_ALL_UP_TO, label_nearest: int = MAP_LABEL_NEAREST, lines_to: int = 3) -> pd.DataFrame:
    """``points`` (from :func:`map_frame`) plus 'label' (the task name, or '' when not labelled), 'family' (modality
    family; 'control' for controls) and 'nearest' (1..lines_to for the tasks nearest the user's task, else 0).
    symmetric_to: (T,) symmetrised ranks (:func:`map_ranks`) of the user's (or a selected) task to the catalogue
    tasks in row order, or None. Every task is labelled up to ``label_all_up_to`` tasks, else the ``label_nearest``
    nearest ones."""
    from core.catalogue.validity import modality_family

    out = points.copy()
    catalogue_rows = out["task_id"] != USER_ID
    out["family"] = [("control" if kind == "control" else "your task" if kind == "user" else modality_family(m))
                     for m, kind in zip(out["modality"], out["kind"])]
    out["nearest"] = 0
    order = np.argsort(symmetric_to, kind="stable") if symmetric_to is not None else np.array([], dtype=int)
    index = out.index[catalogue_rows]
    for rank, row in enumerate(order[:lines_to]):
        out.loc[index[row], "nearest"] = rank + 1
    if int(catalogue_rows.sum()) <= label_all_up_to:
        out["label"] = out["task"]
    else:
        labelled = set(index[order[:label_nearest]]) if len(order) else set()
        out["label"] = [name if (i in labelled or not is_task) else "" for i, name, is_task in
                        zip(out.index, out["task"], catalogue_rows)]
    return out


def filter_tasks(frame: pd.DataFrame, modalities: list[str] | None = None, search: str = "",
                 modality_column: str = "modality", name_column: str = "task") -> pd.DataFrame:
    """Rows whose modality family is in ``modalities`` (None or empty: all) and whose name contains ``search``
    (case-insensitive; '' keeps all)."""
    from core.catalogue.validity import modality_family

    keep = pd.Series(True, index=frame.index)
    if modalities:
        keep &= frame[modality_column].map(modality_family).isin(modalities)
    if search.strip():
        keep &= frame[name_column].str.contains(search.strip(), case=False, regex=False)
    return frame[keep]


def distinctive_features(catalogue, target: Fingerprint, source_id: str, distance: str = DEFAULT_DISTANCE,
                         top: int = 20, contributions: np.ndarray | None = None) -> tuple[pd.DataFrame, float]:
    """What sets ``source_id`` apart as a source for ``target``: per feature, its contribution to bKLD(source ->
    target) against the median contribution over every catalogue task as a source. ``advantage`` = median - this
    source's (positive: this source explains the user's images better than the typical public task on that feature).
    Returns the ``top`` features by advantage (columns feature, contribution, median_contribution, advantage,
    share_of_advantage: of the sum of the positive advantages) and the source's distance minus the median task's
    distance (negative: nearer than the typical task). ``contributions``: every task's (T, m) contributions in task
    order when already computed (core.report.analysis.contributions)."""
    everyone = contributions if contributions is not None else np.stack(
        [contributions_to(target, catalogue.fingerprints[i], distance) for i in catalogue.ids])
    median = np.median(everyone, axis=0)
    own = everyone[catalogue.ids.index(source_id)]
    advantage = median - own
    positive = float(advantage[advantage > 0].sum())
    order = np.argsort(advantage)[::-1][:top]
    frame = pd.DataFrame({"feature": order.astype(int), "contribution": own[order],
                          "median_contribution": median[order], "advantage": advantage[order]})
    frame["share_of_advantage"] = frame["advantage"] / positive if positive > 0 else 0.0
    return frame, float(own.sum() - np.median(everyone.sum(axis=1)))


def readable_histograms(frame: pd.DataFrame, max_bins: int = 50) -> pd.DataFrame:
    """``frame`` from :func:`feature_histograms` merged into at most ``max_bins`` bins over the range where either
    histogram has mass (the occupied range), so shapes are visible; columns as the input (``bin``: the first original
    bin of the merged one) plus ``last_bin`` and ``bin_end``."""
    occupied = frame.groupby("bin")["probability"].sum()
    used = occupied.index[occupied > 0]
    if len(used) == 0:
        return frame.assign(last_bin=frame["bin"], bin_end=frame["bin_start"])
    first, last = int(used.min()), int(used.max())
    width = max(1, int(np.ceil((last - first + 1) / max_bins)))
    inside = frame[(frame["bin"] >= first) & (frame["bin"] <= last)].copy()
    inside["group"] = (inside["bin"] - first) // width
    step = float(np.diff(np.sort(frame["bin_start"].unique()))[:1].sum()) or 1.0
    merged = inside.groupby(["task", "group"], sort=False).agg(
        bin=("bin", "min"), last_bin=("bin", "max"), bin_start=("bin_start", "min"),
        probability=("probability", "sum"), bin_end=("bin_start", "max")).reset_index()
    merged["bin_end"] = merged["bin_end"] + step
    return merged.drop(columns="group")
