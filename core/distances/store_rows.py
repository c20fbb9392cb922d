"""What :class:`core.distances.source_store.SourceStore` keeps per task, as pure functions on arrays.

For a fixed target t, bKLD(s -> t) = c_t - sum_f sum_b x_t[f, b] Q_s[f, b] + sum_f w_f lse_s[f], with Q_s the
source's B-bin histogram (rows sum to 1), lse_s[f] = log sum_b exp(Q_s[f, b]), w the target's normalised feature
weights, x_t = w_f P_t[f, b] its weighted histogram and c_t = sum_f w_f sum_b P_t log P_t. A fixed orthonormal basis
of K vectors per feature (:func:`screening_basis`) turns both sides into short rows whose inner product approximates
the distance (:func:`source_row`, :func:`target_row`); exact values come from the counts afterwards.

The basis is richer for the *prominent* features (:class:`Layout`): bKLD small weights features by softmax of the
target's mean, which puts most of the weight on a few hundred features, mostly the same ones for every task. Those get
``prominent_basis`` vectors, the rest ``basis`` vectors, at the same row length as one uniform basis.
"""
from __future__ import annotations

import hashlib

import numpy as np

from core.distances.maths import feature_weights, log_softmax_terms, plogp


def screening_basis(n_bins: int, size: int) -> np.ndarray:
    """(n_bins, size) orthonormal columns: the first and last bin, then the first ``size - 2`` DCT-II cosines of
    the interior bins."""
    if not 2 <= size <= n_bins:
        raise ValueError(f"basis size must be between 2 and {n_bins}, got {size}")
    interior = n_bins - 2
    basis = np.zeros((n_bins, size))
    basis[0, 0] = basis[-1, 1] = 1.0
    positions = (np.arange(interior) + 0.5) * np.pi / interior
    for j in range(size - 2):
        column = np.cos(positions * j) * np.sqrt((1.0 if j == 0 else 2.0) / interior)
        basis[1:-1, 2 + j] = column
    return basis


class Layout:
    """Which basis each feature is projected on: ``prominent`` (feature indices) on ``prominent_basis`` vectors, the
    others on ``basis`` vectors. Rows hold the prominent features' coordinates, then the others'."""

    def __init__(self, n_features: int, n_bins: int, prominent: list[int], prominent_basis: int, basis: int) -> None:
        chosen = np.asarray(prominent, dtype=np.int64)
        if len(set(chosen.tolist())) != len(chosen) or np.any((chosen < 0) | (chosen >= n_features)):
            raise ValueError("prominent features must be distinct feature indices")
        self.prominent = chosen
        self.rest = np.setdiff1d(np.arange(n_features), chosen)
        self.high = screening_basis(n_bins, prominent_basis)
        self.low = screening_basis(n_bins, basis)
        self.size = len(chosen) * prominent_basis + len(self.rest) * basis  # coordinates per row

    def project(self, histogram: np.ndarray) -> np.ndarray:
        """(m, B) -> (size,): the coordinates of each feature's row on its basis."""
        return np.concatenate([(histogram[self.prominent] @ self.high).ravel(),
                               (histogram[self.rest] @ self.low).ravel()])


def prominent_features(means: list[np.ndarray], count: int) -> list[int]:
    """The ``count`` features with the largest average bKLD small weight over tasks with these ``means``."""
    average = np.mean([feature_weights(np.asarray(mean, dtype=np.float64), len(mean)) for mean in means], axis=0)
    return sorted(np.argsort(-average, kind="stable")[:count].tolist())


def log_sum_exp(q: np.ndarray) -> np.ndarray:
    """lse over the last axis, max-shifted (:func:`core.distances.maths.log_softmax_terms`): (…, B) -> (…)."""
    top, log_sum = log_softmax_terms(q)
    return (top + log_sum)[..., 0]


def task_digest(coarse: np.ndarray, mean: np.ndarray) -> bytes:
    """sha256 of B-bin counts (as uint16) and the mean (float64): equal digests = identical task."""
    sha = hashlib.sha256(np.ascontiguousarray(coarse, dtype=np.uint16).data)
    sha.update(np.ascontiguousarray(mean, dtype=np.float64).data)
    return sha.digest()


def same_rows(digests: np.ndarray, digest: bytes) -> np.ndarray:
    """(k,) bool: which of the (k, 32) digests equal ``digest``."""
    return np.all(digests == np.frombuffer(digest, dtype=np.uint8)[None], axis=1)


def target_terms(p: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, float]:
    """(x_t (m, B) weighted histogram, c_t) of a target with histogram ``p`` (m, B) and normalised ``weights``."""
    return p * weights[:, None], float(weights @ plogp(p))


def weights_of(mean: np.ndarray, n_features: int, weighted: bool) -> np.ndarray:
    """The target's normalised feature weights (m,): softmax of its mean (bKLD small) or uniform (bKLD large)."""
    return feature_weights(mean if weighted else None, n_features)


def source_row(q: np.ndarray, layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """(lse (m,) float64, screening row (size + m,) float32 = [Q_s projected, lse]) of a source with histogram
    ``q`` (m, B)."""
    lse = log_sum_exp(q)
    return lse, np.concatenate([layout.project(q), lse]).astype(np.float32)


def target_row(weighted: np.ndarray, weights: np.ndarray, constant: float, layout: Layout) -> np.ndarray:
    """(size + m + 1,) float32 = [x_t projected, -w, -c_t]: minus its inner product with a source row extended by 1
    approximates bKLD(source -> t)."""
    return np.concatenate([layout.project(weighted), -weights, [-constant]]).astype(np.float32)


def query_row(weighted: np.ndarray, weights: np.ndarray, layout: Layout) -> np.ndarray:
    """(size + m,) float32: minus its inner product with a source row approximates bKLD(source -> t) - c_t."""
    return np.concatenate([layout.project(weighted), -weights]).astype(np.float32)
