"""Comparing a target fingerprint with many source fingerprints under a named distance, with uncertainty."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.binning import N_BINS_LARGE, N_BINS_SMALL, coarsen, count_bins
from core.distances import bkld, bkld_contributions, p2l, vdna
from core.fingerprint import Fingerprint, check_comparable

#: distance name -> human description; the first is the default (the paper's main method)
DISTANCES = {
    "bkld-small": "bKLD small: 100 bins, features weighted by softmax of the target's mean (paper's main method)",
    "bkld-large": "bKLD large: 1000 bins, unweighted",
    "p2l": "P2L: KL divergence of L1-normalised mean feature vectors / m",
    "vdna": "VDNA: binned earth mover's distance on 1000 bins (symmetric)",
}


def _check_name(distance: str) -> None:
    if distance not in DISTANCES:
        raise ValueError(f"unknown distance '{distance}'; choose one of {', '.join(DISTANCES)}")


def distance_from_arrays(distance: str, target_counts: np.ndarray, target_mean: np.ndarray,
                         source_counts: np.ndarray, source_means: np.ndarray) -> np.ndarray:
    """Distances (S,) from stacked sources to one target; counts are fine-bin (…, m, 1000), means (…, m).

    A source identical to the target gets exactly 0 (self-distance 0, as on the diagonal of the paper's published
    matrices): the bKLD formula itself gives KL(P || softmax(P)) > 0 there, because only the source is softmaxed.
    """
    values = _raw_distance(distance, target_counts, target_mean, source_counts, source_means)
    identical = np.all(np.asarray(source_counts) == np.asarray(target_counts)[None], axis=(1, 2)) & np.all(
        np.asarray(source_means) == np.asarray(target_mean)[None], axis=1)
    return np.where(identical, 0.0, values)


def _raw_distance(distance: str, target_counts: np.ndarray, target_mean: np.ndarray, source_counts: np.ndarray,
                  source_means: np.ndarray) -> np.ndarray:
    _check_name(distance)
    def probs(counts: np.ndarray, bins: int) -> np.ndarray:
        c = np.asarray(counts, dtype=np.float64)
        c = coarsen(c, bins) if bins != c.shape[-1] else c
        return c / c.sum(axis=-1, keepdims=True)
    if distance == "bkld-small":
        return bkld(probs(target_counts, N_BINS_SMALL), probs(source_counts, N_BINS_SMALL), target_mean)
    if distance == "bkld-large":
        return bkld(probs(target_counts, N_BINS_LARGE), probs(source_counts, N_BINS_LARGE), None)
    if distance == "p2l":
        return p2l(target_mean, source_means)
    return vdna(probs(target_counts, N_BINS_LARGE), probs(source_counts, N_BINS_LARGE))


def stack(sources: Sequence[Fingerprint]) -> tuple[np.ndarray, np.ndarray]:
    """(S, m, 1000) counts and (S, m) means of several fingerprints."""
    return np.stack([s.counts for s in sources]), np.stack([s.mean for s in sources])


def distances_to(target: Fingerprint, sources: Sequence[Fingerprint], distance: str = "bkld-small") -> np.ndarray:
    """Directed distance source -> target for each source, shape (S,). Refuses incompatible fingerprints."""
    for source in sources:
        check_comparable(target, source)
    counts, means = stack(sources)
    return distance_from_arrays(distance, target.counts, target.mean, counts, means)


def contributions_to(target: Fingerprint, source: Fingerprint, distance: str = "bkld-small") -> np.ndarray:
    """Per-feature contributions (m,) to bKLD(source -> target); they sum to the distance."""
    check_comparable(target, source)
    if distance == "bkld-large":
        return bkld_contributions(target.probabilities(N_BINS_LARGE), source.probabilities(N_BINS_LARGE), None)
    if distance != "bkld-small":
        raise ValueError("per-feature contributions exist for bKLD small and large only")
    return bkld_contributions(target.probabilities(N_BINS_SMALL), source.probabilities(N_BINS_SMALL), target.mean)


@dataclass(frozen=True)
class BootstrapResult:
    """Bootstrap over the target's samples. Arrays over sources, shape (S,):
    low/high: 95 % bootstrap interval of the distance, shifted by the bootstrap's bias (resampling with replacement
    makes histograms sparser, which moves every KL upwards by about the same amount; the interval keeps the spread
    and is centred on the full-data value); rank_stability: share of resamples in which the source keeps
    the rank it has on the full data; top1_share: share of resamples in which it is the nearest source."""

    low: np.ndarray
    high: np.ndarray
    rank_stability: np.ndarray
    top1_share: np.ndarray
    n_resamples: int


def bootstrap_distances(target: Fingerprint, sources: Sequence[Fingerprint], distance: str = "bkld-small",
                        n_resamples: int = 50, seed: int = 0) -> BootstrapResult:
    """Resample the target's samples with replacement and recompute every distance (histograms and mean).

    Needs the per-sample data kept when fingerprinting with ``keep_samples=True``.
    """
    if target.sample_bins is None or target.sample_features is None:
        raise ValueError("this fingerprint kept no per-sample bins (loaded from a file?): no bootstrap possible")
    for source in sources:
        check_comparable(target, source)
    counts, means = stack(sources)
    full = distance_from_arrays(distance, target.counts, target.mean, counts, means)
    full_rank = np.argsort(np.argsort(full))
    rng = np.random.default_rng(seed)
    n = len(target.sample_bins)
    values = np.empty((n_resamples, len(sources)))
    for r in range(n_resamples):
        weights = np.bincount(rng.integers(0, n, n), minlength=n).astype(np.float64)
        resampled = count_bins(target.sample_bins.astype(np.int64), N_BINS_LARGE, weights)
        mean = weights @ target.sample_features / n
        values[r] = distance_from_arrays(distance, resampled, mean, counts, means)
    ranks = np.argsort(np.argsort(values, axis=1), axis=1)
    q_low, q_high = np.percentile(values, [2.5, 97.5], axis=0)
    bias = values.mean(axis=0) - full
    low, high = np.maximum(q_low - bias, 0.0), q_high - bias
    return BootstrapResult(low, high, (ranks == full_rank[None]).mean(axis=0), (ranks == 0).mean(axis=0),
                           n_resamples)
