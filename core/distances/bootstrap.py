"""Bootstrap over the target's samples: how firm each distance and each rank is."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.distances.bank import SourceBank, mean_for, stack
from core.distances.registry import DEFAULT_DISTANCE, spec_of
from core.fingerprint.binning import N_BINS_LARGE, count_bins
from core.fingerprint.fingerprint import Fingerprint, check_comparable


@dataclass(frozen=True)
class BootstrapResult:
    """Bootstrap over the target's samples. Arrays over sources, shape (S,):
    low/high: 95 % bootstrap interval of the distance, shifted by the bootstrap's bias (resampling with replacement
    makes histograms sparser, which moves every KL upwards by about the same amount; the interval keeps the spread
    and is centred on the full-data value); rank_stability: share of resamples in which the source keeps
    the rank it has on the full data; top1_share: share of resamples in which it is the nearest source.
    values: (n_resamples, S) the resampled distances, bias-shifted like the interval (paired across sources: every
    source is measured on the same resample, so differences between sources keep their own, smaller spread)."""

    low: np.ndarray
    high: np.ndarray
    rank_stability: np.ndarray
    top1_share: np.ndarray
    n_resamples: int
    values: np.ndarray | None = None


def bootstrap_distances(target: Fingerprint, sources: Sequence[Fingerprint], distance: str = DEFAULT_DISTANCE,
                        n_resamples: int = 50, seed: int = 0) -> BootstrapResult:
    """Resample the target's samples with replacement and recompute every distance (histograms and mean).

    Needs the per-sample data kept when fingerprinting with ``keep_samples=True``.
    """
    if target.sample_bins is None or target.sample_features is None:
        raise ValueError("this fingerprint kept no per-sample bins (loaded from a file?): no bootstrap possible")
    for source in sources:
        check_comparable(target, source)
    bank = SourceBank(distance, *stack(sources, distance))
    full = bank.distances(target.counts, mean_for(distance, target))
    per_sample = target.sample_features
    if spec_of(distance).uses_postact_mean and target.sample_postact is not None:
        per_sample = target.sample_postact
    full_rank = np.argsort(np.argsort(full))
    rng = np.random.default_rng(seed)
    n = len(target.sample_bins)
    values = np.empty((n_resamples, len(sources)))
    for r in range(n_resamples):
        weights = np.bincount(rng.integers(0, n, n), minlength=n).astype(np.float64)
        resampled = count_bins(target.sample_bins.astype(np.int64), N_BINS_LARGE, weights)
        mean = weights @ per_sample / n
        values[r] = bank.distances(resampled, mean)
    ranks = np.argsort(np.argsort(values, axis=1), axis=1)
    q_low, q_high = np.percentile(values, [2.5, 97.5], axis=0)
    bias = values.mean(axis=0) - full
    low, high = np.maximum(q_low - bias, 0.0), q_high - bias
    return BootstrapResult(low, high, (ranks == full_rank[None]).mean(axis=0), (ranks == 0).mean(axis=0),
                           n_resamples, values - bias[None])
