"""bKLD, P2L and VDNA: the one implementation (core.distances.maths through the source bank) against independent
scipy computations (tests/reference.py) and numbers worked by hand."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import entropy, wasserstein_distance

from core.distances.bank import bank_for
from core.distances.maths import (
    bkld_contributions,
    bkld_many,
    feature_weights,
    log_softmax,
    p2l_many,
    symmetrise,
    vdna_many,
)
from tests.helpers import fingerprint_of, random_histograms
from tests.reference import bkld as reference_bkld


def bkld(p_target: np.ndarray, q_sources: np.ndarray, mean_target: np.ndarray | None) -> np.ndarray | float:
    """The one bKLD (core.distances.maths.bkld_many) for one target: a float for one source, (S,) for many."""
    single = np.ndim(q_sources) == 2
    q = np.asarray(q_sources)[None] if single else np.asarray(q_sources)
    values = bkld_many(p_target[None], feature_weights(mean_target, p_target.shape[0])[None],
                       log_softmax(q, axis=-1))[0]
    return float(values[0]) if single else values


def vdna(p_target: np.ndarray, p_sources: np.ndarray) -> float:
    return float(vdna_many(np.cumsum(p_target, axis=-1)[None], np.cumsum(p_sources, axis=-1)[None])[0, 0])


def p2l(mean_target: np.ndarray, mean_sources: np.ndarray) -> np.ndarray:
    return p2l_many(mean_target[None], mean_sources)[0]


def scipy_bkld(p_target: np.ndarray, q_source: np.ndarray, mean_target: np.ndarray | None) -> float:
    """METHOD.md section 4 written the slow way with scipy: per-feature KL(P_t || softmax(Q_s))."""
    return reference_bkld(p_target, q_source, mean_target)


@pytest.mark.parametrize("n_bins", [100, 1000])
def test_bkld_matches_scipy_on_random_histograms_with_empty_bins(n_bins):
    rng = np.random.default_rng(1)
    p, q = random_histograms(rng, 40, n_bins), random_histograms(rng, 40, n_bins)
    mean = rng.random(40) * 3
    assert bkld(p, q, mean) == pytest.approx(scipy_bkld(p, q, mean), rel=1e-10)
    assert bkld(p, q, None) == pytest.approx(scipy_bkld(p, q, None), rel=1e-10)


def test_bkld_matches_scipy_for_degenerate_features():
    rng = np.random.default_rng(2)
    p, q = random_histograms(rng, 10, 100), random_histograms(rng, 10, 100)
    p[3] = 0.0
    p[3, 50] = 1.0  # lo == hi: all mass in the middle bin
    q[7] = 0.0
    q[7, 50] = 1.0
    mean = rng.random(10)
    assert bkld(p, q, mean) == pytest.approx(scipy_bkld(p, q, mean), rel=1e-10)


def test_bkld_by_hand_for_two_bins():
    # one feature, P = [1, 0], Q = [0, 1]: softmax(Q) = [1/(1+e), e/(1+e)], KL = log(1 / (1/(1+e))) = log(1+e)
    p = np.array([[1.0, 0.0]])
    q = np.array([[0.0, 1.0]])
    assert bkld(p, q, None) == pytest.approx(np.log(1 + np.e), rel=1e-12)


def test_contributions_sum_to_distance_and_vectorised_equals_loop():
    rng = np.random.default_rng(3)
    p = random_histograms(rng, 30, 100)
    sources = np.stack([random_histograms(rng, 30, 100) for _ in range(5)])
    mean = rng.random(30)
    weights = feature_weights(mean, 30)
    contributions = np.stack([bkld_contributions(p, log_softmax(q), weights) for q in sources])
    assert contributions.shape == (5, 30)
    np.testing.assert_allclose(contributions.sum(axis=1), bkld(p, sources, mean), rtol=1e-12)
    np.testing.assert_allclose(bkld(p, sources, mean), [bkld(p, s, mean) for s in sources], rtol=1e-12)


def test_bkld_is_asymmetric():
    rng = np.random.default_rng(4)
    a, b = random_histograms(rng, 20, 100), random_histograms(rng, 20, 100, empty_share=0.8)
    assert abs(bkld(a, b, None) - bkld(b, a, None)) > 1e-3


def test_self_distance_is_zero_for_identical_fingerprints_only():
    rng = np.random.default_rng(5)
    counts = rng.integers(0, 5, size=(3, 8, 1000))
    means = rng.random((3, 8))
    sources = [fingerprint_of(c, m, postact_mean=m) for c, m in zip(counts, means)]
    for name in ("bkld-small", "bkld-large", "p2l", "vdna"):
        values = bank_for(name, sources).distances(sources[1])
        assert values[1] == 0.0
        assert values[0] > 0 and values[2] > 0
    # the raw formula alone is not zero for identical inputs (only the source is softmaxed)
    p = counts[0] / counts[0].sum(axis=1, keepdims=True)
    assert bkld(p, p, None) > 0


def test_lower_bkld_for_more_similar_source():
    rng = np.random.default_rng(6)
    target = random_histograms(rng, 20, 100, empty_share=0.6)
    near = 0.9 * target + 0.1 * random_histograms(rng, 20, 100)
    far = random_histograms(rng, 20, 100, empty_share=0.6)
    assert bkld(target, near, None) < bkld(target, far, None)


def test_p2l_matches_scipy_entropy():
    rng = np.random.default_rng(7)
    mu_t, mu_s = rng.random(50), rng.random((3, 50))
    expected = [entropy(mu_t, s) / 50 for s in mu_s]  # entropy() L1-normalises both arguments
    np.testing.assert_allclose(p2l(mu_t, mu_s), expected, rtol=1e-10)


def test_vdna_matches_scipy_wasserstein_per_feature():
    rng = np.random.default_rng(8)
    p, q = random_histograms(rng, 6, 1000), random_histograms(rng, 6, 1000)
    bins = np.arange(1000)
    expected = np.mean([wasserstein_distance(bins, bins, q[f], p[f]) for f in range(6)])
    assert vdna(p, q) == pytest.approx(expected, rel=1e-9)
    assert vdna(p, q) == pytest.approx(vdna(q, p), rel=1e-12)  # symmetric


def test_symmetrise_averages_and_zeroes_diagonal():
    d = np.array([[5.0, 1.0], [3.0, 7.0]])
    np.testing.assert_array_equal(symmetrise(d), [[0.0, 2.0], [2.0, 0.0]])


def test_bootstrap_interval_contains_the_estimate_and_ranks_are_shares():
    from core.distances.bootstrap import bootstrap_distances
    from core.fingerprint.fingerprint import Fingerprint, FingerprintMeta
    rng = np.random.default_rng(9)
    m, n = 12, 300

    def fingerprint(bins: np.ndarray, features: np.ndarray, keep: bool) -> Fingerprint:
        counts = np.stack([np.bincount(bins[:, f], minlength=1000) for f in range(m)]).astype(np.uint32)
        meta = FingerprintMeta(name="t", backbone="b", weights_sha256="w", feature_dim=m, edges_id="e",
                               n_samples=len(bins), protocol={"n": len(bins), "augment": True, "pipeline": "p"})
        return Fingerprint(counts, features.mean(axis=0), meta, sample_bins=bins.astype(np.uint16) if keep else None,
                           sample_features=features.astype(np.float32) if keep else None)

    target_bins = rng.integers(0, 300, size=(n, m))
    target = fingerprint(target_bins, rng.random((n, m)), keep=True)
    sources = [fingerprint(rng.integers(0, width, size=(n, m)), rng.random((n, m)), keep=False)
               for width in (300, 600, 1000)]
    result = bootstrap_distances(target, sources, "bkld-small", n_resamples=40, seed=1)
    full = bank_for("bkld-small", sources).distances(target)
    assert np.all(result.low <= full) and np.all(full <= result.high) and np.all(result.high > result.low)
    assert np.all((0 <= result.rank_stability) & (result.rank_stability <= 1))
    assert result.top1_share.sum() == pytest.approx(1.0)
    assert result.top1_share[int(np.argmin(full))] > 0.5


@pytest.mark.parametrize("name", ["bkld-small", "bkld-large", "p2l", "vdna"])
def test_bank_equals_the_reference_forms(name):
    """Every distance through the one bank (one target, many targets, pairwise, from a source) against
    tests/reference.py, written per source and per feature with scipy."""
    from core.fingerprint.binning import coarsen
    from tests import reference
    rng = np.random.default_rng(10)
    counts = rng.integers(0, 4, size=(4, 6, 1000))
    means = rng.random((4, 6)) + 0.1
    sources = [fingerprint_of(c, m, postact_mean=m) for c, m in zip(counts, means)]
    target = fingerprint_of(rng.integers(0, 4, size=(6, 1000)), rng.random(6) + 0.1, "target")
    target = fingerprint_of(target.counts, target.mean, "target", postact_mean=target.mean)
    bins = 100 if name == "bkld-small" else 1000

    def probabilities(c: np.ndarray) -> np.ndarray:
        return coarsen(c, bins) / coarsen(c, bins).sum(axis=-1, keepdims=True)

    def expected(t, s_list) -> np.ndarray:
        q = np.stack([probabilities(s.counts) for s in s_list])
        return {"bkld-small": lambda: reference.bkld(probabilities(t.counts), q, t.mean),
                "bkld-large": lambda: reference.bkld(probabilities(t.counts), q, None),
                "p2l": lambda: reference.p2l(t.mean, np.stack([s.mean for s in s_list])),
                "vdna": lambda: reference.vdna(probabilities(t.counts), q)}[name]()

    bank = bank_for(name, sources)
    np.testing.assert_allclose(bank.distances(target), expected(target, sources), rtol=1e-12)
    many = bank.distances_to_each([target, sources[2]])
    np.testing.assert_allclose(many[0], expected(target, sources), rtol=1e-12)
    assert many[1, 2] == 0.0
    pairwise = bank.pairwise()
    for t in range(4):
        others = [s for s in range(4) if s != t]
        np.testing.assert_allclose(pairwise[others, t], expected(sources[t], [sources[s] for s in others]),
                                   rtol=1e-12)
    np.testing.assert_allclose(bank.distances_from(target),
                               [expected(s, [target])[0] for s in sources], rtol=1e-12)


def test_log_softmax_matches_scipy():
    from scipy.special import log_softmax as scipy_log_softmax

    from core.distances.maths import log_softmax
    values = np.random.default_rng(11).normal(0, 30, size=(3, 5, 40))
    np.testing.assert_allclose(log_softmax(values), scipy_log_softmax(values, axis=-1), rtol=1e-12, atol=1e-12)
