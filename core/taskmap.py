"""Fixed 2-D map of tasks: UMAP on the symmetrised distance matrix (deterministic), MDS as fallback, and placement
of a new task onto the existing map without moving it."""
from __future__ import annotations

import warnings

import numpy as np

from core.distances import symmetrise

MAP_SEED = 0


def _umap(n_tasks: int):
    import umap  # ~2 s import, numba compilation on first fit

    return umap.UMAP(metric="precomputed", n_neighbors=min(15, n_tasks - 1), random_state=MAP_SEED,
                     init="spectral")


def _mds(symmetric: np.ndarray) -> np.ndarray:
    from sklearn.manifold import MDS
    try:
        model = MDS(n_components=2, metric="precomputed", random_state=MAP_SEED, n_init=4)
    except TypeError:  # scikit-learn < 1.8 names the argument differently
        model = MDS(n_components=2, dissimilarity="precomputed", random_state=MAP_SEED, n_init=4)
    return model.fit_transform(symmetric)


class TaskMap:
    """A fitted map. ``coords`` (T, 2); :meth:`place` puts a new task on it from its distances to the T tasks."""

    def __init__(self, directed: np.ndarray) -> None:
        self.symmetric = symmetrise(directed)
        self.model = None
        self.method = "mds"
        n_tasks = len(self.symmetric)
        if n_tasks >= 4:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # UMAP warns about precomputed metrics and n_jobs
                    model = _umap(n_tasks)
                    self.coords = np.asarray(model.fit_transform(self.symmetric), dtype=np.float64)
                self.model, self.method = model, "umap"
                return
            except Exception:  # any UMAP failure falls back to MDS: the map is a view, not the result
                pass
        self.coords = _mds(self.symmetric) if n_tasks >= 2 else np.zeros((n_tasks, 2))

    def place(self, distances_to_tasks: np.ndarray) -> np.ndarray:
        """(x, y) of a new task given its symmetrised distances (T,) to the mapped tasks."""
        distances = np.asarray(distances_to_tasks, dtype=np.float64)
        if self.model is not None:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    return np.asarray(self.model.transform(distances[None, :]), dtype=np.float64)[0]
            except Exception:
                pass
        # fallback: inverse-distance weighted position of the 3 nearest tasks
        nearest = np.argsort(distances)[:3]
        weights = 1.0 / np.maximum(distances[nearest], 1e-9)
        return (self.coords[nearest] * weights[:, None]).sum(axis=0) / weights.sum()


def fit_map(directed: np.ndarray) -> tuple[np.ndarray, str]:
    """Coordinates (T, 2) and the method used ("umap" or "mds")."""
    task_map = TaskMap(directed)
    return task_map.coords, task_map.method
