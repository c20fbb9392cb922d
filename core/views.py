"""Data behind the map, heatmap and "why similar?" views as plain tables and arrays (no plotting here)."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.cluster.hierarchy import leaves_list, linkage
from scipy.spatial.distance import squareform

from core.binning import N_BINS_LARGE, N_BINS_SMALL
from core.catalogue import Catalogue
from core.compare import contributions_to
from core.distances import symmetrise
from core.fingerprint import Fingerprint

USER_ID = "__your_task__"


def with_user(catalogue: Catalogue, user: Fingerprint | None, distance: str = "bkld-small"
              ) -> tuple[list[str], list[str], np.ndarray]:
    """Task ids, names and the directed matrix [source, target] of the catalogue, plus the user's task last."""
    ids, names = list(catalogue.ids), [t.name for t in catalogue.tasks]
    matrix = catalogue.matrix(distance)
    if user is None:
        return ids, names, matrix
    to_user, _ = catalogue.distances_to(user, distance)
    from_user = catalogue.distances_from(user, distance)
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


def heatmap_frame(catalogue: Catalogue, user: Fingerprint | None, distance: str = "bkld-small"
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Symmetrised and directed distance tables, rows/columns in clustered order, labelled by task name.
    In the directed table rows are sources and columns targets."""
    _, names, directed = with_user(catalogue, user, distance)
    order = clustered_order(directed)
    labels = [names[i] for i in order]
    sym = symmetrise(directed)[np.ix_(order, order)]
    return (pd.DataFrame(sym, index=labels, columns=labels),
            pd.DataFrame(directed[np.ix_(order, order)], index=labels, columns=labels))


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


def contributions_frame(target: Fingerprint, source: Fingerprint, distance: str = "bkld-small",
                        top: int = 20) -> tuple[pd.DataFrame, float, int]:
    """Top features by contribution to bKLD(source -> target), with each one's share and the cumulative share of the
    total. Returns the table, the total distance and how many features make half of it."""
    contributions = contributions_to(target, source, distance)
    total = float(contributions.sum())
    order = np.argsort(contributions)[::-1]
    cumulative = np.cumsum(contributions[order]) / total if total > 0 else np.zeros(len(order))
    half = int(np.searchsorted(cumulative, 0.5) + 1)
    order = order[:top]
    frame = pd.DataFrame({"feature": order.astype(int), "contribution": contributions[order]})
    frame["share"] = frame["contribution"] / total if total > 0 else 0.0
    frame["cumulative_share"] = cumulative[:top]
    return frame, total, half


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
