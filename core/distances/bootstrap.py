"""Bootstrap over the target's samples: how firm each distance and each rank is.

Every resample at once. A resample is a weight per sample (how often it was drawn, (R, n)); its histogram can only
have mass in the bins the target's samples occupy (K of the m x B bins), so the resampled histograms of all R
resamples are one sparse product ``weights @ one-hot(sample -> occupied bin)`` (R, K). Then, per distance:

* bKLD: :func:`core.distances.maths.bkld_at_bins` (the bank's bKLD, restricted to the occupied bins): the second
  term for every resample and source is one (R, K) x (K, S) matrix product against the sources' log softmax at the
  occupied bins, read from each source's per-feature max and log-sum (:func:`core.distances.maths.log_softmax_terms`,
  computed once).
* VDNA: ``sum_b |F_s(b) - F_r(b)|``: the resample's cumulative histogram F_r is constant between two occupied bins.
  Where a source's F_s lies on one side of the band that F_r spans over all resamples, the term is linear in F_r and
  is summed by a matrix product; only the bins where F_s lies inside the band are evaluated one by one.
* P2L: :func:`core.distances.maths.p2l_many` of the resampled mean vectors: one matrix product.

The resample weights are drawn exactly as one resample at a time did (same generator, same calls), so the figures
equal the per-resample loop's (tests/reference_bootstrap.py) up to the order of floating-point sums.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from threadpoolctl import threadpool_limits

from core.distances.bank import SourceBank
from core.distances.maths import bkld_at_bins, feature_weights, log_softmax_terms, p2l_many
from core.distances.registry import DEFAULT_DISTANCE, DistanceSpec, spec_of
from core.fingerprint.binning import N_BINS_LARGE, coarsen, count_bins
from core.fingerprint.fingerprint import Fingerprint, check_comparable

#: resamples of the target's samples: 50 is what the app shows (issue 21's latency budget)
DEFAULT_RESAMPLES = 50
#: the seed of the resamples unless one is given (every table and verdict of one fingerprint uses the same draws)
DEFAULT_SEED = 0
#: resamples handled together (bounds the (chunk, K) temporaries)
CHUNK = 10


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


def resample_weights(n: int, n_resamples: int, seed: int) -> np.ndarray:
    """(n_resamples, n) float64: how often each of n samples is drawn in each resample (n draws with replacement).
    Drawn one resample at a time from ``default_rng(seed)``: the same resamples as ever for a seed."""
    rng = np.random.default_rng(seed)
    return np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(n_resamples)]
                    ).astype(np.float64) if n_resamples else np.zeros((0, n))


def summarise(values: np.ndarray, full: np.ndarray) -> BootstrapResult:
    """Interval, rank stability and first-place share from resampled distances (R, S) and the full-data ones (S,)."""
    full_rank = np.argsort(np.argsort(full))
    ranks = np.argsort(np.argsort(values, axis=1), axis=1)
    q_low, q_high = np.percentile(values, [2.5, 97.5], axis=0)
    bias = values.mean(axis=0) - full
    low, high = np.maximum(q_low - bias, 0.0), q_high - bias
    return BootstrapResult(low, high, (ranks == full_rank[None]).mean(axis=0), (ranks == 0).mean(axis=0),
                           len(values), values - bias[None])


@dataclass(frozen=True)
class _Occupied:
    """The bins a target's samples occupy at one resolution: ``keys`` (K,) = f * B + b, sorted; ``feature`` (K,);
    ``starts`` (m,) each feature's first position in ``keys``; ``onehot`` (K, n) sparse: sample i is in bin k."""

    keys: np.ndarray
    feature: np.ndarray
    starts: np.ndarray
    onehot: sparse.csr_matrix
    n_bins: int

    @classmethod
    def of(cls, sample_bins: np.ndarray, n_bins: int) -> "_Occupied":
        n, m = sample_bins.shape
        flat = sample_bins.astype(np.int64) // (N_BINS_LARGE // n_bins) + np.arange(m) * n_bins
        keys, inverse = np.unique(flat, return_inverse=True)
        onehot = sparse.csr_matrix((np.ones(n * m), (inverse.ravel(), np.repeat(np.arange(n), m))),
                                   shape=(len(keys), n))
        feature = keys // n_bins
        return cls(keys, feature, np.searchsorted(feature, np.arange(m)), onehot, n_bins)

    def probabilities(self, weights: np.ndarray) -> np.ndarray:
        """Resampled histograms at the occupied bins, (R, K), from sample weights (R, n)."""
        counts = np.asarray(self.onehot @ weights.T).T
        return counts / weights.sum(axis=1, keepdims=True)

    def cumulative(self, probabilities: np.ndarray) -> np.ndarray:
        """Each feature's cumulative histogram at its occupied bins (R, K): the same running sums as
        ``cumsum`` over all B bins (the skipped bins add exact zeros)."""
        position = np.arange(len(self.keys)) - self.starts[self.feature]
        padded = np.zeros((len(probabilities), len(self.starts), int(position.max()) + 1))
        padded[:, self.feature, position] = probabilities
        return np.cumsum(padded, axis=2)[:, self.feature, position]


class BootstrapSources:
    """The source side of one distance, prepared once for bootstrapping any number of targets against the S
    ``sources`` (fingerprints; their fine counts are stacked, (S, m, 1000), unless ``counts`` gives that stack, e.g.
    one shared by every distance)."""

    def __init__(self, distance: str | DistanceSpec, sources: Sequence[Fingerprint],
                 counts: np.ndarray | None = None) -> None:
        if not sources:
            raise ValueError("a bootstrap needs at least one source fingerprint")
        self.spec = spec_of(distance)
        self.sources = list(sources)
        self.counts = np.stack([s.counts for s in self.sources]) if counts is None else counts
        self.means = np.stack([self.spec.mean_of(s) for s in self.sources]).astype(np.float64)
        self.n_bins = self.spec.n_bins or N_BINS_LARGE
        binned = self.counts if self.n_bins == self.counts.shape[-1] else coarsen(self.counts, self.n_bins)
        self.binned = binned.reshape(len(binned), -1)  # (S, m * B) integer counts
        self.totals = binned.sum(axis=-1).astype(np.float64)  # (S, m), as histogram_probabilities divides
        if self.spec.softmaxed_source:
            self.top, self.log_sum = np.empty_like(self.totals), np.empty_like(self.totals)
            for s in range(len(binned)):  # log softmax's terms, one source at a time (S x m x B never held)
                terms = log_softmax_terms(binned[s].astype(np.float64) / self.totals[s][:, None])
                self.top[s], self.log_sum[s] = terms[0][:, 0], terms[1][:, 0]

    def __len__(self) -> int:
        return len(self.counts)

    def distances(self, target: Fingerprint, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(full (S,), resampled (R, S)): the distances from every source to the target and to each resample of
        its samples (``weights`` (R, n) from :func:`resample_weights`). The target must have kept its samples."""
        with threadpool_limits(1, user_api="blas"):  # products of <= CHUNK rows: a second BLAS thread only waits
            return self._distances(target, weights)

    def _distances(self, target: Fingerprint, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        per_sample = target.sample_features
        if self.spec.uses_postact_mean and target.sample_postact is not None:
            per_sample = target.sample_postact
        occupied = _Occupied.of(target.sample_bins, self.n_bins)
        full_mean = np.asarray(self.spec.mean_of(target), dtype=np.float64)
        full_p = self._binned(target.counts)[occupied.keys] / target.meta.n_samples
        n = len(target.sample_bins)
        full = self._values(occupied, [full_p[None]], full_mean[None])[0]
        full = np.where(self._identical(target.counts, full_mean), 0.0, full)
        means = weights @ per_sample / n
        values = self._values(occupied, [occupied.probabilities(weights[start:start + CHUNK])
                                         for start in range(0, len(weights), CHUNK)], means)
        for r, s in zip(*np.nonzero(np.all(self.means[None] == means[:, None], axis=2))):  # as SourceBank: 0
            if np.array_equal(count_bins(target.sample_bins.astype(np.int64), N_BINS_LARGE, weights[r]),
                              self.counts[s]):
                values[r, s] = 0.0
        return full, values

    def _binned(self, counts: np.ndarray) -> np.ndarray:
        return (counts if self.n_bins == counts.shape[-1] else coarsen(counts, self.n_bins)).ravel()

    def _identical(self, counts: np.ndarray, mean: np.ndarray) -> np.ndarray:
        same_mean = np.all(self.means == mean[None], axis=1)
        if not same_mean.any():
            return same_mean
        return same_mean & np.all(self.counts == counts[None], axis=(1, 2))

    def _values(self, occupied: _Occupied, chunks: list[np.ndarray], means: np.ndarray) -> np.ndarray:
        """Distances (R, S) from resampled histograms at the occupied bins (R, K, in chunks of rows) and means
        (R, k)."""
        if self.spec.softmaxed_source:
            f = occupied.feature  # the sources' log softmax_b(Q_s) at the occupied bins, (K, S)
            log_q = ((self.binned[:, occupied.keys] / self.totals[:, f] - self.top[:, f]) - self.log_sum[:, f]).T
            bounds = np.cumsum([0] + [len(p) for p in chunks])
            return np.concatenate([self._bkld(occupied, log_q, p, means[start:stop])
                                   for p, start, stop in zip(chunks, bounds[:-1], bounds[1:])])
        if self.spec.n_bins is None:
            return self._p2l(means)
        return self._vdna(occupied, np.concatenate([occupied.cumulative(p) for p in chunks]))

    def _bkld(self, occupied: _Occupied, log_q: np.ndarray, p: np.ndarray, means: np.ndarray) -> np.ndarray:
        m = len(occupied.starts)
        weights = np.stack([feature_weights(mean if self.spec.weighted else None, m) for mean in means])
        return bkld_at_bins(p, occupied.feature, weights, log_q.T)

    def _p2l(self, means: np.ndarray) -> np.ndarray:
        return p2l_many(means, self.means)

    def _vdna(self, occupied: _Occupied, cumulative: np.ndarray) -> np.ndarray:
        """sum_b |F_s - F_r| / m from F_r at each occupied bin (R, K; constant up to the next occupied bin), split
        into bins where the sign is the same for every row (a matrix product) and the few where it is not
        (evaluated one by one)."""
        m, n_bins = len(occupied.starts), self.n_bins
        grid = np.arange(m * n_bins)
        segment = np.searchsorted(occupied.keys, grid, side="right") - 1  # the occupied bin at or before each bin
        before_first = (segment < 0) | (occupied.feature[np.maximum(segment, 0)] != grid // n_bins)  # F_r = 0
        segment = np.where(before_first, 0, segment)
        low = np.where(before_first, 0.0, cumulative.min(axis=0)[segment])
        high = np.where(before_first, 0.0, cumulative.max(axis=0)[segment])
        constant, slopes = np.empty(len(self)), np.empty((len(occupied.keys), len(self)))
        exact = np.empty((len(cumulative), len(self)))
        for s in range(len(self)):
            x = np.cumsum(self.binned[s].reshape(m, n_bins) / self.totals[s][:, None], axis=-1).ravel()
            sign = np.where(x >= high, 1.0, np.where(x <= low, -1.0, 0.0))
            linear = sign != 0
            slopes[:, s] = np.bincount(segment[linear & ~before_first], weights=sign[linear & ~before_first],
                                       minlength=len(occupied.keys))
            constant[s] = sign @ x
            inside = np.flatnonzero(~linear)  # never before the first occupied bin (there low = high = 0 <= x)
            exact[:, s] = np.abs(x[inside][None] - cumulative[:, segment[inside]]).sum(axis=1)
        return (constant[None] - cumulative @ slopes + exact) / m


def bootstrap_distances(target: Fingerprint, sources: Sequence[Fingerprint] | SourceBank | BootstrapSources,
                        distance: str = DEFAULT_DISTANCE, n_resamples: int = DEFAULT_RESAMPLES,
                        seed: int = DEFAULT_SEED) -> BootstrapResult:
    """Resample the target's samples with replacement and recompute every distance (histograms and mean), all
    resamples at once (see the module's docstring). ``sources``: fingerprints, a bank of ``distance`` (e.g. the
    catalogue's) or their :class:`BootstrapSources` prepared once.

    Needs the per-sample data kept when fingerprinting with ``keep_samples=True``.
    """
    if target.sample_bins is None or target.sample_features is None:
        raise ValueError("this fingerprint kept no per-sample bins (loaded from a file?): no bootstrap possible")
    if not isinstance(sources, BootstrapSources):
        listed = sources.sources if isinstance(sources, SourceBank) else list(sources)
        for source in listed:
            check_comparable(target, source)
        sources = BootstrapSources(sources.spec if isinstance(sources, SourceBank) else distance, listed)
    else:
        check_comparable(target, sources.sources[0])
    full, values = sources.distances(target, resample_weights(len(target.sample_bins), n_resamples, seed))
    return summarise(values, full)
