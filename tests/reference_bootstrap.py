"""The bootstrap as it was before it was vectorised (issue 21): one SourceBank pass per resample. Kept only as the
reference that the vectorised core.distances.bootstrap is checked against (tests/distances/test_bootstrap_vectorised.py)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.distances.bootstrap import BootstrapResult
from core.distances.bank import SourceBank, mean_for, stack
from core.distances.registry import DEFAULT_DISTANCE, spec_of
from core.fingerprint.binning import N_BINS_LARGE, count_bins
from core.fingerprint.fingerprint import Fingerprint, check_comparable


def loop_bootstrap_distances(target: Fingerprint, sources: Sequence[Fingerprint], distance: str = DEFAULT_DISTANCE,
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
