"""Comparing a target fingerprint with many source fingerprints under a named distance, with uncertainty."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.fingerprint.binning import N_BINS_LARGE, N_BINS_SMALL, count_bins, histogram_probabilities
from core.distances.maths import bkld_contributions, feature_weights, log_softmax, p2l
from core.fingerprint.fingerprint import Fingerprint, check_comparable

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


class SourceBank:
    """The source side of a distance, computed once: then each target (or bootstrap resample) costs one pass.

    bKLD: log softmax_b(Q_s) per source and feature; VDNA: cumulative histograms; P2L needs only the means.
    ``distances`` equals :func:`core.distances.maths.bkld` / ``p2l`` / ``vdna`` (tests check it), with self-distance 0.
    """

    def __init__(self, distance: str, source_counts: np.ndarray, source_means: np.ndarray) -> None:
        _check_name(distance)
        self.distance = distance
        self.source_counts = np.asarray(source_counts)
        self.source_means = np.asarray(source_means, dtype=np.float64)
        if distance in ("bkld-small", "bkld-large"):
            self.n_bins = N_BINS_SMALL if distance == "bkld-small" else N_BINS_LARGE
            q = histogram_probabilities(self.source_counts, self.n_bins)
            self.log_q = log_softmax(q, axis=-1)
        elif distance == "vdna":
            self.cdf = np.cumsum(histogram_probabilities(self.source_counts, N_BINS_LARGE), axis=-1)

    def distances(self, target_counts: np.ndarray, target_mean: np.ndarray) -> np.ndarray:
        """Directed distance from every source to this target, shape (S,)."""
        target_mean = np.asarray(target_mean, dtype=np.float64)
        if self.distance in ("bkld-small", "bkld-large"):
            p = histogram_probabilities(target_counts, self.n_bins)
            plogp = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0).sum(axis=-1)
            kl = plogp[None, :] - np.einsum("fb,sfb->sf", p, self.log_q)
            weights = feature_weights(target_mean if self.distance == "bkld-small" else None, p.shape[0])
            values = kl @ (weights / weights.sum())
        elif self.distance == "vdna":
            cdf_t = np.cumsum(histogram_probabilities(target_counts, N_BINS_LARGE), axis=-1)
            values = np.abs(self.cdf - cdf_t[None]).sum(axis=-1).mean(axis=-1)
        else:
            values = p2l(target_mean, self.source_means)
        return np.where(self._identical(target_counts, target_mean), 0.0, values)

    def pairwise(self) -> np.ndarray:
        """Directed distances among the sources themselves, (S, S) [source, target], zero diagonal."""
        return np.stack([self.distances(self.source_counts[t], self.source_means[t])
                         for t in range(len(self.source_counts))], axis=1)

    def _identical(self, target_counts: np.ndarray, target_mean: np.ndarray) -> np.ndarray:
        """Self-distance 0, as on the diagonal of the paper's published matrices: the bKLD formula itself gives
        KL(P || softmax(P)) > 0 for identical inputs, because only the source is softmaxed."""
        same_mean = np.all(self.source_means == np.asarray(target_mean)[None], axis=1)
        if not same_mean.any():
            return same_mean
        return same_mean & np.all(self.source_counts == np.asarray(target_counts)[None], axis=(1, 2))


def distance_from_arrays(distance: str, target_counts: np.ndarray, target_mean: np.ndarray,
                         source_counts: np.ndarray, source_means: np.ndarray) -> np.ndarray:
    """Distances (S,) from stacked sources to one target; counts are fine-bin (…, m, 1000), means (…, m).
    A source identical to the target gets exactly 0 (see :class:`SourceBank`)."""
    return SourceBank(distance, source_counts, source_means).distances(target_counts, target_mean)


def twin_distance(distance: str, target: Fingerprint) -> float:
    """What the distance's formula gives for an identical source (before the self-distance-0 convention):
    KL(P_t || softmax(P_t)) for bKLD, 0 for P2L and VDNA. Each target's bKLD values sit above this offset of its own,
    so "how far is the nearest source" is measured from here."""
    if distance == "bkld-small":
        return float(bkld_contributions(target.probabilities(N_BINS_SMALL), target.probabilities(N_BINS_SMALL),
                                        target.mean).sum())
    if distance == "bkld-large":
        return float(bkld_contributions(target.probabilities(N_BINS_LARGE), target.probabilities(N_BINS_LARGE),
                                        None).sum())
    _check_name(distance)
    return 0.0


def mean_for(distance: str, fingerprint: Fingerprint) -> np.ndarray:
    """The mean vector a distance uses: P2L needs non-negative means, so it takes the post-activation mean whatever
    the probe; bKLD small weights features by the probe's own mean."""
    return fingerprint.postact_mean if distance == "p2l" else fingerprint.mean


def stack(sources: Sequence[Fingerprint], distance: str = "bkld-small") -> tuple[np.ndarray, np.ndarray]:
    """(S, m, 1000) counts and (S, k) means (those ``distance`` uses) of several fingerprints."""
    return np.stack([s.counts for s in sources]), np.stack([mean_for(distance, s) for s in sources])


def distances_to(target: Fingerprint, sources: Sequence[Fingerprint], distance: str = "bkld-small") -> np.ndarray:
    """Directed distance source -> target for each source, shape (S,). Refuses incompatible fingerprints."""
    for source in sources:
        check_comparable(target, source)
    counts, means = stack(sources, distance)
    return distance_from_arrays(distance, target.counts, mean_for(distance, target), counts, means)


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
    bank = SourceBank(distance, *stack(sources, distance))
    full = bank.distances(target.counts, mean_for(distance, target))
    per_sample = target.sample_features
    if distance == "p2l" and target.sample_postact is not None:
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
                           n_resamples)


class CompactBkldBank:
    """bKLD small or large with the catalogue held compactly, for catalogues of 1,000 tasks and more.

    Uses log softmax_b(Q)_b = Q_b - lse(Q) and sum_b P_b = 1, so for a source s and a target t
    ``bKLD(s -> t) = sum_f w_tf (plogp_tf - sum_b P_tfb Q_sfb + lse_sf)`` with w_t the target's normalised feature
    weights. Held per task: coarse probabilities (T, m, B) float32 (1,000 tasks x 1,280 features x 100 bins: 512 MB),
    lse, plogp and weights (T, m) float64 and a digest of the fine counts and mean (self-distance 0, as
    :class:`SourceBank`). The fine (T, m, 1000) counts are never stacked. Values equal SourceBank's within float32
    rounding of the probabilities (about 1e-7 absolute on values near 1)."""

    def __init__(self, distance: str, fingerprints: Sequence[Fingerprint]) -> None:
        if distance not in ("bkld-small", "bkld-large"):
            raise ValueError("CompactBkldBank holds bKLD small or large only")
        self.distance = distance
        self.n_bins = N_BINS_SMALL if distance == "bkld-small" else N_BINS_LARGE
        n, m = len(fingerprints), fingerprints[0].n_features
        self.probabilities = np.empty((n, m, self.n_bins), dtype=np.float32)
        self.lse, self.plogp, self.weights = (np.empty((n, m)) for _ in range(3))
        self.digests = []
        for i, fingerprint in enumerate(fingerprints):  # one task at a time: peak memory stays one task's float64
            self.probabilities[i], self.lse[i], self.plogp[i], self.weights[i] = self._terms(
                fingerprint.counts, fingerprint.mean)
            self.digests.append(_digest(fingerprint.counts, fingerprint.mean))

    def _terms(self, counts: np.ndarray, mean: np.ndarray) -> tuple[np.ndarray, ...]:
        """(m, B) probabilities, (m,) lse of them as logits, (m,) sum p log p and (m,) normalised weights."""
        p = histogram_probabilities(counts, self.n_bins)
        top = p.max(axis=-1, keepdims=True)
        lse = (top + np.log(np.exp(p - top).sum(axis=-1, keepdims=True)))[:, 0]
        plogp = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0).sum(axis=-1)
        weights = feature_weights(np.asarray(mean, dtype=np.float64) if self.distance == "bkld-small" else None,
                                  p.shape[0])
        return p, lse, plogp, weights / weights.sum()

    def distances(self, target_counts: np.ndarray, target_mean: np.ndarray) -> np.ndarray:
        """Directed distance from every held task (source) to this target, shape (S,): one matrix-vector product."""
        p, _, plogp, weights = self._terms(target_counts, target_mean)
        weighted = (p * weights[:, None]).astype(np.float32).ravel()
        cross = self.probabilities.reshape(len(self.digests), -1) @ weighted
        values = float(weights @ plogp) + self.lse @ weights - cross.astype(np.float64)
        return self._zero_identical(values, target_counts, target_mean)

    def distances_from(self, source_counts: np.ndarray, source_mean: np.ndarray) -> np.ndarray:
        """Directed distance from this source to every held task (target), shape (T,)."""
        q, lse, _, _ = self._terms(source_counts, source_mean)
        cross = np.einsum("tfb,fb->tf", self.probabilities, q.astype(np.float32)).astype(np.float64)
        values = (self.weights * (self.plogp - cross + lse[None])).sum(axis=1)
        return self._zero_identical(values, source_counts, source_mean)

    def pairwise(self, block: int = 256) -> np.ndarray:
        """Directed distances among the held tasks (T, T) [source, target], zero diagonal; matrix products in blocks
        of ``block`` targets."""
        n = len(self.digests)
        flat = self.probabilities.reshape(n, -1)
        matrix = np.empty((n, n))
        for start in range(0, n, block):
            stop = min(start + block, n)
            weighted = (self.probabilities[start:stop] * self.weights[start:stop, :, None].astype(np.float32))
            cross = flat @ weighted.reshape(stop - start, -1).T
            matrix[:, start:stop] = ((self.weights[start:stop] * self.plogp[start:stop]).sum(axis=1)[None]
                                     + self.lse @ self.weights[start:stop].T - cross)
        np.fill_diagonal(matrix, 0.0)
        return matrix

    def _zero_identical(self, values: np.ndarray, counts: np.ndarray, mean: np.ndarray) -> np.ndarray:
        digest = _digest(counts, mean)
        return np.where(np.array([d == digest for d in self.digests]), 0.0, values)


def _digest(counts: np.ndarray, mean: np.ndarray) -> str:
    """sha256 of a fingerprint's fine counts (as uint32) and mean (float64): equal digests = identical task."""
    import hashlib
    sha = hashlib.sha256(np.ascontiguousarray(counts, dtype=np.uint32).tobytes())
    sha.update(np.ascontiguousarray(mean, dtype=np.float64).tobytes())
    return sha.hexdigest()
