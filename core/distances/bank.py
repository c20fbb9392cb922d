"""Comparing a target fingerprint with many source fingerprints under a named distance, with uncertainty."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.distances import maths
from core.distances.registry import DEFAULT_DISTANCE, DISTANCES, DistanceSpec, spec_of
from core.fingerprint.binning import histogram_probabilities
from core.fingerprint.fingerprint import Fingerprint, check_comparable

__all__ = ["DEFAULT_DISTANCE", "DISTANCES", "CompactBkldBank", "SourceBank", "contributions_to",
           "distance_from_arrays", "distances_to", "mean_for", "stack", "twin_distance"]

class SourceBank:
    """The source side of a distance, computed once: then each target (or bootstrap resample) costs one pass.

    What is prepared is the spec's (:mod:`core.distances.registry`): bKLD: log softmax_b(Q_s) per source and feature;
    VDNA: cumulative histograms; P2L: the means. ``distances`` equals :func:`core.distances.maths.bkld` / ``p2l`` /
    ``vdna`` (tests check it), with self-distance 0.
    """

    def __init__(self, distance: str | DistanceSpec, source_counts: np.ndarray, source_means: np.ndarray) -> None:
        self.spec = spec_of(distance)
        self.distance = self.spec.name
        self.source_counts = np.asarray(source_counts)
        self.source_means = np.asarray(source_means, dtype=np.float64)
        self.prepared = self.spec.prepare(self.spec, self.source_counts, self.source_means)

    def distances(self, target_counts: np.ndarray, target_mean: np.ndarray) -> np.ndarray:
        """Directed distance from every source to this target, shape (S,)."""
        target_mean = np.asarray(target_mean, dtype=np.float64)
        values = self.spec.against(self.spec, self.prepared, target_counts, target_mean)
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
    return spec_of(distance).twin(target)


def mean_for(distance: str, fingerprint: Fingerprint) -> np.ndarray:
    """The mean vector a distance uses: P2L needs non-negative means, so it takes the post-activation mean whatever
    the probe; bKLD small weights features by the probe's own mean."""
    return fingerprint.postact_mean if spec_of(distance).uses_postact_mean else fingerprint.mean


def stack(sources: Sequence[Fingerprint], distance: str = DEFAULT_DISTANCE) -> tuple[np.ndarray, np.ndarray]:
    """(S, m, 1000) counts and (S, k) means (those ``distance`` uses) of several fingerprints."""
    return np.stack([s.counts for s in sources]), np.stack([mean_for(distance, s) for s in sources])


def distances_to(target: Fingerprint, sources: Sequence[Fingerprint], distance: str = DEFAULT_DISTANCE
                 ) -> np.ndarray:
    """Directed distance source -> target for each source, shape (S,). Refuses incompatible fingerprints."""
    for source in sources:
        check_comparable(target, source)
    counts, means = stack(sources, distance)
    return distance_from_arrays(distance, target.counts, mean_for(distance, target), counts, means)


def contributions_to(target: Fingerprint, source: Fingerprint, distance: str = DEFAULT_DISTANCE) -> np.ndarray:
    """Per-feature contributions (m,) to bKLD(source -> target); they sum to the distance."""
    check_comparable(target, source)
    if distance not in DISTANCES or not DISTANCES[distance].has_contributions:
        raise ValueError("per-feature contributions exist for bKLD small and large only")
    return DISTANCES[distance].contributions(target, source)


class CompactBkldBank:
    """bKLD small or large with the catalogue held compactly, for catalogues of 1,000 tasks and more.

    Uses log softmax_b(Q)_b = Q_b - lse(Q) and sum_b P_b = 1, so for a source s and a target t
    ``bKLD(s -> t) = sum_f w_tf (plogp_tf - sum_b P_tfb Q_sfb + lse_sf)`` with w_t the target's normalised feature
    weights. Held per task: coarse probabilities (T, m, B) float32 (1,000 tasks x 1,280 features x 100 bins: 512 MB),
    lse, plogp and weights (T, m) float64 and a digest of the fine counts and mean (self-distance 0, as
    :class:`SourceBank`). The fine (T, m, 1000) counts are never stacked. Values equal SourceBank's within float32
    rounding of the probabilities (about 1e-7 absolute on values near 1)."""

    def __init__(self, distance: str | DistanceSpec, fingerprints: Sequence[Fingerprint]) -> None:
        self.spec = spec_of(distance)
        if not self.spec.softmaxed_source:
            raise ValueError("CompactBkldBank holds bKLD small or large only")
        self.distance = self.spec.name
        self.n_bins = self.spec.n_bins
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
        plogp = maths.plogp(p)
        weights = maths.feature_weights(np.asarray(mean, dtype=np.float64) if self.spec.weighted else None,
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
