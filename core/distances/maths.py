"""bKLD (METHOD.md section 4) and the paper's competitors P2L and VDNA (section 5), as pure functions on arrays.

Direction: ``target`` receives knowledge (the user's task), ``sources`` are candidates. Lower = more transferable.
Each distance is written once, in float64, for many targets against many sources at a time: a (R, S) [target,
source] result. One target is R = 1. The reference forms the tests compare against live in ``tests/reference.py``.
"""
from __future__ import annotations

import numpy as np
from scipy.special import softmax
from scipy.stats import rankdata


def log_softmax_terms(values: np.ndarray, axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """(max, log sum exp(values - max)) along ``axis`` (kept as a length-1 axis): log softmax is
    ``(values - max) - log_sum``, so keeping these two per row gives log softmax at any bin without the whole
    array (the bootstrap reads it at the bins a target occupies)."""
    values = np.asarray(values, dtype=np.float64)
    top = values.max(axis=axis, keepdims=True)
    return top, np.log(np.exp(values - top).sum(axis=axis, keepdims=True))


def log_softmax(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """log softmax along ``axis``, max-shifted so that it cannot overflow."""
    values = np.asarray(values, dtype=np.float64)
    top, log_sum = log_softmax_terms(values, axis)
    return (values - top) - log_sum


def feature_weights(mean_target: np.ndarray | None, n_features: int) -> np.ndarray:
    """w_f / sum(w), (m,): softmax over features of the target's mean feature vector (bKLD small), or uniform
    weights when ``mean_target`` is None (bKLD large)."""
    if mean_target is None:
        return np.full(n_features, 1.0 / n_features)
    weights = softmax(np.asarray(mean_target, dtype=np.float64))
    return weights / weights.sum()


def plogp_terms(p: np.ndarray) -> np.ndarray:
    """p log p per element, 0 log 0 = 0: (…) -> (…)."""
    return np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)


def plogp(p: np.ndarray) -> np.ndarray:
    """sum_b p log p per row, 0 log 0 = 0: (…, B) -> (…)."""
    return plogp_terms(p).sum(axis=-1)


def bkld_bin_terms(p_target: np.ndarray, log_q_source: np.ndarray) -> np.ndarray:
    """Per-bin terms of KL_f in bKLD(source -> target): P_t[b] (log P_t[b] - log softmax_b(Q_s)[b]), 0 where
    P_t[b] = 0; (..., B) -> (..., B). Summed over bins they are KL_f (:func:`bkld_contributions`).

    p_target: (..., B) target histograms, rows sum to 1; log_q_source: (..., B) log softmax_b of the source's."""
    positive = p_target > 0
    return np.where(positive, p_target * (np.log(np.where(positive, p_target, 1.0)) - log_q_source), 0.0)


def bkld_contributions(p_target: np.ndarray, log_q_source: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per-feature terms w_f KL_f of bKLD(source -> target), (m,); they sum to the distance.

    p_target: (m, B) target histogram, rows sum to 1; log_q_source: (m, B) log softmax_b of the source histogram;
    weights: (m,) normalised feature weights (:func:`feature_weights`). KL_f = sum_b P_t log(P_t / softmax_b(Q_s)),
    the sum of :func:`bkld_bin_terms`.
    """
    return weights * bkld_bin_terms(p_target, log_q_source).sum(axis=-1)


def bkld_many(p_targets: np.ndarray, weights: np.ndarray, log_q_sources: np.ndarray) -> np.ndarray:
    """bKLD(source -> target) for R targets and S sources, (R, S): the sum over features of
    :func:`bkld_contributions`, as one matrix product (:func:`bkld_at_bins` over every bin).

    p_targets: (R, m, B); weights: (R, m) normalised; log_q_sources: (S, m, B)."""
    n_targets, m, n_bins = p_targets.shape
    return bkld_at_bins(p_targets.reshape(n_targets, m * n_bins), np.repeat(np.arange(m), n_bins), weights,
                        log_q_sources.reshape(len(log_q_sources), m * n_bins))


def bkld_at_bins(p_targets: np.ndarray, feature: np.ndarray, weights: np.ndarray, log_q_sources: np.ndarray
                 ) -> np.ndarray:
    """bKLD(source -> target), (R, S), from K bins that hold all of every target's mass (all m * B bins, or only
    those the targets occupy: a bin where P_t = 0 adds nothing). Since sum_b P_t = 1 for every feature, bKLD is
    sum_f w_f sum_b P_t log P_t minus one matrix product of the weighted targets w_f P_t[f, b] (R, K) with the
    sources' log softmax_b(Q_s) (S, K).

    p_targets: (R, K) target probabilities at the K bins; feature: (K,) the feature of each bin; weights: (R, m)
    normalised feature weights (:func:`feature_weights`); log_q_sources: (S, K) at the same bins."""
    weighted = p_targets * weights[:, feature]
    offset = (weights[:, feature] * plogp_terms(p_targets)).sum(axis=1)
    return offset[:, None] - weighted @ log_q_sources.T


def p2l_many(mean_targets: np.ndarray, mean_sources: np.ndarray) -> np.ndarray:
    """KL(norm(mu_t) || norm(mu_s)) / m on L1-normalised mean feature vectors, (R, S). (R, m) and (S, m) means,
    non-negative; a zero target entry contributes 0."""
    mu_t = np.asarray(mean_targets, dtype=np.float64)
    mu_s = np.asarray(mean_sources, dtype=np.float64)
    p = mu_t / mu_t.sum(axis=1, keepdims=True)
    q = mu_s / mu_s.sum(axis=1, keepdims=True)
    tiny = np.finfo(np.float64).tiny
    return (plogp(p)[:, None] - p @ np.log(np.maximum(q, tiny)).T) / mu_t.shape[1]


def vdna_many(cdf_targets: np.ndarray, cdf_sources: np.ndarray) -> np.ndarray:
    """VDNA, binned EMD: mean over features of sum_b |cumsum_b(P_s - P_t)|, symmetric, (R, S), from cumulative
    histograms (R, m, B) and (S, m, B); one target at a time (the sum of absolute values has no product form)."""
    return np.stack([np.abs(cdf_sources - cdf[None]).sum(axis=-1).mean(axis=-1) for cdf in cdf_targets])


def symmetrise(directed: np.ndarray) -> np.ndarray:
    """(D + D^T) / 2 with a zero diagonal: for maps and clustering only; tables keep the directed values."""
    sym = (np.asarray(directed, dtype=np.float64) + np.asarray(directed, dtype=np.float64).T) / 2.0
    np.fill_diagonal(sym, 0.0)
    return sym


def target_ranks(directed: np.ndarray) -> np.ndarray:
    """(T, T) [source, target] distances -> each target's (column's) ranks of its sources: 0 for the smallest (the
    task itself), 1 for its nearest source, ...; ties share the lower rank. Removes each target's offset: raw bKLD
    values are not comparable across targets (a peaked target scores low against everything)."""
    return rankdata(np.asarray(directed, dtype=np.float64), method="min", axis=0) - 1.0
