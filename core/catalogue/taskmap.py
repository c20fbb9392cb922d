"""Fixed 2-D map of tasks: UMAP on the symmetrised per-target ranks of the distance matrix (deterministic seed), MDS
as fallback; new tasks are placed onto the fixed map without moving it.

Ranks, not raw values: each target's bKLD values carry an offset of their own, and a map of the raw symmetrised
matrix kept the nearest task within the 5 nearest on the map for only 5 of 19 tasks; on ranks, 18 of 19.

Placement is the weighted mean (1 / symmetrised rank, core.report.views.map_ranks) of the 3 nearest tasks' coordinates
(UMAP's own starting point for ``transform``). UMAP's ``transform`` itself placed a task's exact twin at a median of 35
% of the map's width away from it on the 14-task catalogue, so it is not used.
"""
from __future__ import annotations

import warnings

import numpy as np

from core.distances.maths import symmetrise, target_ranks

MAP_SEED = 0
PLACEMENT_NEIGHBOURS = 3


def _umap_coords(symmetric: np.ndarray) -> np.ndarray:
    import umap  # ~2 s import and numba compilation on the first fit: only the catalogue build pays it

    # random start from the seed: the default spectral start draws from ARPACK's own global state, so two fits in
    # one process differed (measured on small catalogues with tied ranks)
    model = umap.UMAP(metric="precomputed", n_neighbors=min(15, len(symmetric) - 1), random_state=MAP_SEED,
                      init="random")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # UMAP warns about precomputed metrics and single-threaded seeding
        return np.asarray(model.fit_transform(symmetric), dtype=np.float64)


def _mds_coords(symmetric: np.ndarray) -> np.ndarray:
    from sklearn.manifold import MDS
    try:
        # init named: its default changes in 1.10 (FutureWarning); "random" is what the maps were made with
        model = MDS(n_components=2, metric="precomputed", random_state=MAP_SEED, n_init=4, init="random")
    except TypeError:  # scikit-learn before 1.8 names the argument dissimilarity=
        model = MDS(n_components=2, dissimilarity="precomputed", random_state=MAP_SEED, n_init=4)
    return np.asarray(model.fit_transform(symmetric), dtype=np.float64)


def fit_map(directed: np.ndarray, prefer: str = "umap") -> tuple[np.ndarray, str]:
    """Coordinates (T, 2) of the tasks from the directed matrix [source, target] and the method used: "umap"
    (T >= 4, unless ``prefer`` is "mds"), else or on failure "mds"."""
    symmetric = symmetrise(target_ranks(directed))
    if len(symmetric) >= 4 and prefer == "umap":
        try:
            return _umap_coords(symmetric), "umap"
        except Exception:  # the map is a view, not a result: fall back rather than fail a build
            pass
    if len(symmetric) >= 2:
        return _mds_coords(symmetric), "mds"
    return np.zeros((len(symmetric), 2)), "mds"


def place_on_map(coords: np.ndarray, distances_to_tasks: np.ndarray,
                 neighbours: int = PLACEMENT_NEIGHBOURS) -> np.ndarray:
    """(x, y) of a new task from its symmetrised ranks (T,) to the T mapped tasks (core.report.views.map_ranks; any
    symmetric dissimilarity works); an identical task (0) lands on its twin."""
    distances = np.asarray(distances_to_tasks, dtype=np.float64)
    if distances.shape != (len(coords),):
        raise ValueError(f"need one distance per mapped task ({len(coords)}), got {distances.shape}")
    nearest = np.argsort(distances, kind="stable")[:neighbours]
    weights = 1.0 / np.maximum(distances[nearest], 1e-12)
    return (coords[nearest] * weights[:, None]).sum(axis=0) / weights.sum()
