"""The bootstrap as it was before issue 21 vectorised it over resamples (core/distances/bootstrap.py at the merge
of issue 23: every resample's full fine histogram, compared by SourceBank.distances_many), with the bias-shifted
resampled values the verdict reads. Kept only as the reference the vectorised bootstrap is checked against."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.distances.bank import SourceBank, bank_for
from core.distances.bootstrap import BootstrapResult
from core.distances.registry import DEFAULT_DISTANCE
from core.fingerprint.binning import N_BINS_LARGE, count_bins
from core.fingerprint.fingerprint import Fingerprint

#: resamples of the target's samples: 50 is what the app shows (issue 21's latency budget)
DEFAULT_RESAMPLES = 50
#: resamples whose fine counts are held at once (each m x 1000 float64)
_RESAMPLES_AT_ONCE = 10


def loop_bootstrap_distances(target: Fingerprint, sources: Sequence[Fingerprint] | SourceBank,
                             distance: str = DEFAULT_DISTANCE, n_resamples: int = DEFAULT_RESAMPLES,
                             seed: int = 0) -> BootstrapResult:
    """Resample the target's samples with replacement and recompute every distance (histograms and mean); the
    resamples are compared as many targets at once (:meth:`SourceBank.distances_many`). ``sources``: fingerprints,
    or a prepared bank of ``distance`` (e.g. the catalogue's).

    Needs the per-sample data kept when fingerprinting with ``keep_samples=True``.
    """
    if target.sample_bins is None or target.sample_features is None:
        raise ValueError("this fingerprint kept no per-sample bins (loaded from a file?): no bootstrap possible")
    bank = sources if isinstance(sources, SourceBank) else bank_for(distance, sources)
    full = bank.distances(target)
    per_sample = target.sample_features
    if bank.spec.uses_postact_mean and target.sample_postact is not None:
        per_sample = target.sample_postact
    full_rank = np.argsort(np.argsort(full))
    rng = np.random.default_rng(seed)
    n = len(target.sample_bins)
    bins = target.sample_bins.astype(np.int64)
    values = np.empty((n_resamples, len(bank)))
    for start in range(0, n_resamples, _RESAMPLES_AT_ONCE):
        stop = min(start + _RESAMPLES_AT_ONCE, n_resamples)
        weights = np.stack([np.bincount(rng.integers(0, n, n), minlength=n).astype(np.float64)
                            for _ in range(start, stop)])
        resampled = np.stack([count_bins(bins, N_BINS_LARGE, w) for w in weights])
        values[start:stop] = bank.distances_many(resampled, weights @ per_sample / n)
    ranks = np.argsort(np.argsort(values, axis=1), axis=1)
    q_low, q_high = np.percentile(values, [2.5, 97.5], axis=0)
    bias = values.mean(axis=0) - full
    low, high = np.maximum(q_low - bias, 0.0), q_high - bias
    return BootstrapResult(low, high, (ranks == full_rank[None]).mean(axis=0), (ranks == 0).mean(axis=0),
                           n_resamples, values - bias[None])
