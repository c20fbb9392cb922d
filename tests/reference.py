"""Reference forms of the distances, written independently of core.distances.maths (per source, per feature, with
scipy): what the tests compare the one implementation against."""
from __future__ import annotations

import numpy as np
from scipy.special import softmax
from scipy.stats import entropy


def bkld(p_target: np.ndarray, q_sources: np.ndarray, mean_target: np.ndarray | None = None) -> np.ndarray | float:
    """bKLD(source -> target), METHOD.md section 4 the slow way: per feature KL(P_t || softmax(Q_s)) with scipy,
    weighted by softmax of the target's mean (None: equal weights). A float for one (m, B) source, (S,) for
    stacked (S, m, B) sources."""
    single = np.ndim(q_sources) == 2
    sources = np.asarray(q_sources)[None] if single else np.asarray(q_sources)
    m = p_target.shape[0]
    w = np.ones(m) if mean_target is None else softmax(np.asarray(mean_target, dtype=np.float64))
    values = np.array([(w * np.array([entropy(p_target[f], softmax(q[f])) for f in range(m)])).sum() / w.sum()
                       for q in sources])
    return float(values[0]) if single else values


def vdna(p_target: np.ndarray, p_sources: np.ndarray) -> np.ndarray | float:
    """Binned EMD: mean over features of sum_b |cumsum_b(P_s - P_t)|. (m, B) or (S, m, B) sources."""
    single = np.ndim(p_sources) == 2
    q = np.asarray(p_sources, dtype=np.float64)[None] if single else np.asarray(p_sources, dtype=np.float64)
    values = np.abs(np.cumsum(q - np.asarray(p_target, dtype=np.float64)[None], axis=-1)).sum(axis=-1).mean(axis=-1)
    return float(values[0]) if single else values


def p2l(mean_target: np.ndarray, mean_sources: np.ndarray) -> np.ndarray | float:
    """KL(norm(mu_t) || norm(mu_s)) / m with scipy's entropy, per source. (m,) or (S, m) sources."""
    single = np.ndim(mean_sources) == 1
    sources = np.atleast_2d(np.asarray(mean_sources, dtype=np.float64))
    values = np.array([entropy(mean_target, s) / len(mean_target) for s in sources])
    return float(values[0]) if single else values
