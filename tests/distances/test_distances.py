"""bKLD, P2L and VDNA against independent scipy computations and numbers worked by hand."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax
from scipy.stats import entropy, wasserstein_distance

from core.distances.bank import distance_from_arrays, distances_to
from core.distances.maths import bkld, bkld_contributions, p2l, symmetrise, vdna
from tests.helpers import random_histograms


def scipy_bkld(p_target: np.ndarray, q_source: np.ndarray, mean_target: np.ndarray | None) -> float:
    """METHOD.md section 4 written the slow way with scipy: per-feature KL(P_t || softmax(Q_s))."""
    m = p_target.shape[0]
    kl = np.array([entropy(p_target[f], softmax(q_source[f])) for f in range(m)])
    w = np.ones(m) if mean_target is None else softmax(mean_target)
    return float((w * kl).sum() / w.sum())


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
    contributions = bkld_contributions(p, sources, mean)
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
    for name in ("bkld-small", "bkld-large", "p2l", "vdna"):
        values = distance_from_arrays(name, counts[1], means[1], counts, means)
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
    full = distances_to(target, sources, "bkld-small")
    assert np.all(result.low <= full) and np.all(full <= result.high) and np.all(result.high > result.low)
    assert np.all((0 <= result.rank_stability) & (result.rank_stability <= 1))
    assert result.top1_share.sum() == pytest.approx(1.0)
    assert result.top1_share[int(np.argmin(full))] > 0.5


@pytest.mark.parametrize("name", ["bkld-small", "bkld-large", "p2l", "vdna"])
def test_prepared_sources_equal_the_pure_functions(name):
    from core.distances.bank import SourceBank
    from core.fingerprint.binning import coarsen
    rng = np.random.default_rng(10)
    counts = rng.integers(0, 4, size=(4, 6, 1000))
    means = rng.random((4, 6))
    target_counts, target_mean = rng.integers(0, 4, size=(6, 1000)), rng.random(6)
    bins = 100 if name == "bkld-small" else 1000
    p = coarsen(target_counts, bins) / coarsen(target_counts, bins).sum(axis=1, keepdims=True)
    q = coarsen(counts, bins) / coarsen(counts, bins).sum(axis=2, keepdims=True)
    expected = {"bkld-small": lambda: bkld(p, q, target_mean), "bkld-large": lambda: bkld(p, q, None),
                "p2l": lambda: p2l(target_mean, means), "vdna": lambda: vdna(p, q)}[name]()
    np.testing.assert_allclose(SourceBank(name, counts, means).distances(target_counts, target_mean), expected,
                               rtol=1e-12)


def test_log_softmax_matches_scipy():
    from scipy.special import log_softmax as scipy_log_softmax

    from core.distances.maths import log_softmax
    values = np.random.default_rng(11).normal(0, 30, size=(3, 5, 40))
    np.testing.assert_allclose(log_softmax(values), scipy_log_softmax(values, axis=-1), rtol=1e-12, atol=1e-12)
