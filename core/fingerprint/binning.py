"""Global per-feature bin edges (METHOD.md section 3) and histogram counting.

Edges: ``lo_f``/``hi_f`` are the 5 % and 95 % quantiles of feature f over stacked reference features. Values are
clipped to [lo, hi] and counted into B equal-width bins; a value equal to ``hi`` goes into the last bin; a feature with
``lo == hi`` puts all its mass into the middle bin. Counts are kept at B = 1000; the 100-bin histogram is the sum of
each 10 consecutive fine bins, which is the same as binning directly (floor(floor(1000 t) / 10) = floor(100 t)).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import CatalogueError

N_BINS_LARGE = 1000
N_BINS_SMALL = 100
QUANTILES = (0.05, 0.95)


@dataclass(frozen=True)
class BinEdges:
    """Lower and upper clip value per feature, arrays of shape (m,), float32."""

    lo: np.ndarray
    hi: np.ndarray

    def __post_init__(self) -> None:
        if self.lo.shape != self.hi.shape or self.lo.ndim != 1:
            raise ValueError(f"edges need two 1-D arrays of equal length, got {self.lo.shape} and {self.hi.shape}")
        if np.any(self.hi < self.lo) or not (np.all(np.isfinite(self.lo)) and np.all(np.isfinite(self.hi))):
            raise ValueError("edges must be finite with hi >= lo for every feature")

    @property
    def n_features(self) -> int:
        return int(self.lo.shape[0])

    @property
    def identity(self) -> str:
        """sha256 of the edge values (first 16 hex digits): fingerprints with different edges are not comparable."""
        digest = hashlib.sha256(self.lo.astype("<f4").tobytes() + self.hi.astype("<f4").tobytes())
        return digest.hexdigest()[:16]

    def save(self, path: Path) -> None:
        with open(path, "wb") as handle:
            np.savez(handle, lo=self.lo.astype("<f4"), hi=self.hi.astype("<f4"))

    @classmethod
    def load(cls, path: Path) -> "BinEdges":
        try:
            with np.load(path, allow_pickle=False) as data:
                return cls(np.asarray(data["lo"], dtype=np.float32), np.asarray(data["hi"], dtype=np.float32))
        except (OSError, KeyError, ValueError) as err:
            raise CatalogueError(f"{path}: not a valid bin-edges file ({err})") from None


def reference_edges(feature_sets: list[np.ndarray], per_task: int | None = None) -> BinEdges:
    """Edges from the stacked features of reference tasks, ``per_task`` samples of each (all tasks contribute equally:
    default the smallest task's count). Each array is (n_i, m); the first ``per_task`` rows are used, which is a
    uniform subsample because samples are drawn at random."""
    if not feature_sets:
        raise ValueError("need the features of at least one reference task")
    take = per_task or min(len(f) for f in feature_sets)
    stacked = np.concatenate([np.asarray(f[:take], dtype=np.float32) for f in feature_sets])
    lo, hi = np.quantile(stacked, QUANTILES, axis=0)
    return BinEdges(lo.astype(np.float32), np.maximum(hi, lo).astype(np.float32))


def bin_indices(features: np.ndarray, edges: BinEdges, n_bins: int = N_BINS_LARGE) -> np.ndarray:
    """Bin of every value: (N, m) features -> (N, m) int64 in [0, n_bins)."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[1] != edges.n_features:
        raise ValueError(f"features must be (N, {edges.n_features}), got {features.shape}")
    lo, hi = edges.lo.astype(np.float64), edges.hi.astype(np.float64)
    width = hi - lo
    degenerate = width <= 0
    t = (np.clip(features, lo, hi) - lo) / np.where(degenerate, 1.0, width)
    index = np.minimum(np.floor(t * n_bins).astype(np.int64), n_bins - 1)
    index[:, degenerate] = n_bins // 2
    return index


def count_bins(indices: np.ndarray, n_bins: int = N_BINS_LARGE, weights: np.ndarray | None = None) -> np.ndarray:
    """Histogram counts (m, n_bins) from bin indices (N, m); ``weights`` (N,) counts each sample that many times."""
    n_samples, m = indices.shape
    flat = (indices + np.arange(m) * n_bins).ravel()
    sample_weights = None if weights is None else np.repeat(np.asarray(weights, dtype=np.float64), m)
    counts = np.bincount(flat, weights=sample_weights, minlength=m * n_bins)
    return counts.reshape(m, n_bins).astype(np.int64 if weights is None else np.float64)


def coarsen(counts: np.ndarray, n_bins: int = N_BINS_SMALL) -> np.ndarray:
    """Sum consecutive fine bins: (..., 1000) -> (..., n_bins)."""
    fine = counts.shape[-1]
    if fine % n_bins:
        raise ValueError(f"{fine} bins cannot be coarsened to {n_bins}")
    return counts.reshape(*counts.shape[:-1], n_bins, fine // n_bins).sum(axis=-1)


def histogram_probabilities(counts: np.ndarray, n_bins: int = N_BINS_SMALL) -> np.ndarray:
    """Fine-bin counts (..., 1000) -> probabilities (..., n_bins), float64; rows sum to 1. Coarsening happens while
    the counts are still integers (10x less to convert to float for 100 bins)."""
    counts = np.asarray(counts)
    if n_bins != counts.shape[-1]:
        counts = coarsen(counts, n_bins)
    counts = counts.astype(np.float64)
    totals = counts.sum(axis=-1, keepdims=True)
    if np.any(totals <= 0):
        raise ValueError("a histogram row is empty; a fingerprint needs at least one sample")
    return counts / totals
