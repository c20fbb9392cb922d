"""One interface for comparing fingerprints under a distance: a :class:`SourceBank` holds the source side of one
distance, prepared once, and ranks one target, many targets (bootstrap resamples) or the sources among themselves.

What is kept per source and how targets are compared comes from the distance's registry entry
(:mod:`core.distances.registry`); the maths is :mod:`core.distances.maths`. A source identical to the target (equal
fine counts and equal mean) scores exactly 0, as on the diagonal of the paper's published matrices: the bKLD formula
itself gives KL(P || softmax(P)) > 0 for identical inputs, because only the source is softmaxed.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.distances.registry import DEFAULT_DISTANCE, DistanceSpec, spec_of
from core.fingerprint.fingerprint import Fingerprint, check_comparable

#: float64 values a block of targets may occupy while a bank compares them (256 MB)
_BLOCK_VALUES = 2 ** 25


class SourceBank:
    """The sources of one distance, prepared once: then each target, or each block of targets, costs one pass.

    ``sources`` are prepared one at a time (peak memory: the prepared stack plus one task); the fingerprints are
    referenced, not copied. Rows of every result are targets, columns sources, except :meth:`pairwise`, which is
    [source, target] like the stored matrices."""

    def __init__(self, distance: str | DistanceSpec, sources: Sequence[Fingerprint]) -> None:
        if not sources:
            raise ValueError("a source bank needs at least one source fingerprint")
        self.spec = spec_of(distance)
        self.sources = list(sources)
        self.means = np.stack([self.spec.mean_of(s) for s in self.sources]).astype(np.float64)
        first = self._source_side(self.sources[0])
        self.prepared = np.empty((len(self.sources), *first.shape), dtype=first.dtype)
        self.prepared[0] = first
        for i, source in enumerate(self.sources[1:], start=1):
            self.prepared[i] = self._source_side(source)

    def __len__(self) -> int:
        return len(self.sources)

    def _source_side(self, fingerprint: Fingerprint) -> np.ndarray:
        return self.spec.source_side(self.spec, fingerprint.counts[None], self.spec.mean_of(fingerprint)[None])[0]

    def distances(self, target: Fingerprint) -> np.ndarray:
        """Directed distance from every source to ``target``, (S,). Refuses an incomparable target."""
        return self.distances_to_each([target])[0]

    def distances_to_each(self, targets: Sequence[Fingerprint]) -> np.ndarray:
        """Directed distance from every source to each target, (R, S); compared in blocks of targets."""
        for target in targets:
            check_comparable(target, self.sources[0])
        values = np.empty((len(targets), len(self.sources)))
        for rows in self._blocks(len(targets)):
            values[rows] = self.distances_many(np.stack([targets[i].counts for i in rows]),
                                               np.stack([self.spec.mean_of(targets[i]) for i in rows]))
        return values

    def distances_many(self, counts: np.ndarray, means: np.ndarray) -> np.ndarray:
        """Directed distance from every source to each of R targets given as fine counts (R, m, 1000) and the means
        this distance uses (R, k): (R, S). Bootstrap resamples are many targets; bKLD compares them in one matrix
        product."""
        counts, means = np.asarray(counts), np.asarray(means, dtype=np.float64)
        values = np.empty((len(counts), len(self.sources)))
        for rows in self._blocks(len(counts)):
            targets = self.spec.target_side(self.spec, counts[rows], means[rows])
            values[rows] = self.spec.compare(targets, self.prepared)
        return np.where(self._identical(counts, means), 0.0, values)

    def distances_from(self, source: Fingerprint) -> np.ndarray:
        """Directed distance from ``source`` to every fingerprint of the bank taken as target, (S,)."""
        return bank_for(self.spec, [source]).distances_to_each(self.sources)[:, 0]

    def pairwise(self) -> np.ndarray:
        """Directed distances among the sources themselves, (S, S) [source, target], zero diagonal."""
        matrix = self.distances_to_each(self.sources).T
        np.fill_diagonal(matrix, 0.0)
        return matrix

    def _blocks(self, n_targets: int) -> list[np.ndarray]:
        """Target indices in blocks whose fine counts and prepared arrays stay within _BLOCK_VALUES values."""
        per_target = max(int(np.prod(self.prepared.shape[1:])), self.sources[0].counts.size)
        block = max(1, _BLOCK_VALUES // per_target)
        return [np.arange(start, min(start + block, n_targets)) for start in range(0, n_targets, block)]

    def _identical(self, counts: np.ndarray, means: np.ndarray) -> np.ndarray:
        """(R, S): target r equals source s (same mean, then same fine counts; the counts are compared only where
        the means agree)."""
        same = np.all(means[:, None, :] == self.means[None], axis=2)
        for r, s in zip(*np.nonzero(same)):
            same[r, s] = np.array_equal(counts[r], self.sources[s].counts)
        return same


def bank_for(distance: str | DistanceSpec, sources: Sequence[Fingerprint]) -> SourceBank:
    """The source bank of ``distance`` over ``sources`` (see :class:`SourceBank`)."""
    return SourceBank(distance, sources)


def twin_distance(distance: str, target: Fingerprint) -> float:
    """What the distance's formula gives for an identical source (before the self-distance-0 convention):
    KL(P_t || softmax(P_t)) for bKLD, 0 for P2L and VDNA. Each target's bKLD values sit above this offset of its own,
    so "how far is the nearest source" is measured from here."""
    return spec_of(distance).twin(target)


def contributions_to(target: Fingerprint, source: Fingerprint, distance: str = DEFAULT_DISTANCE) -> np.ndarray:
    """Per-feature contributions (m,) to bKLD(source -> target); they sum to the distance."""
    check_comparable(target, source)
    return spec_of(distance).contributions(target, source)
