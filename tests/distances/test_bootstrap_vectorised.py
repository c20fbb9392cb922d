"""The bootstrap over all resamples at once equals the per-resample loop it replaced (tests/reference_bootstrap.py)
for every distance, on random fingerprints with empty bins, zero means and a source identical to the target."""
from __future__ import annotations

import numpy as np
import pytest

from core.distances.bootstrap import bootstrap_distances, resample_weights
from core.fingerprint.fingerprint import Fingerprint, FingerprintMeta
from tests.reference_bootstrap import loop_bootstrap_distances


def fingerprint(bins: np.ndarray, features: np.ndarray, postact: np.ndarray, keep: bool) -> Fingerprint:
    m = bins.shape[1]
    counts = np.stack([np.bincount(bins[:, f], minlength=1000) for f in range(m)]).astype(np.uint32)
    meta = FingerprintMeta(name="t", backbone="b", weights_sha256="w", feature_dim=m, edges_id="e",
                           n_samples=len(bins), protocol={"n": len(bins), "augment": True, "pipeline": "p"})
    return Fingerprint(counts, features.mean(axis=0), meta, postact.mean(axis=0),
                       bins.astype(np.uint16) if keep else None, features.astype(np.float32) if keep else None,
                       postact.astype(np.float32) if keep else None)


@pytest.fixture(scope="module")
def tasks():
    rng = np.random.default_rng(5)
    n, m = 120, 16

    def task(width: int, keep: bool = False) -> Fingerprint:
        bins = np.minimum(rng.integers(0, width, size=(n, m)) + rng.integers(0, 1001 - width), 999)
        bins[:, 0] = 999  # a feature whose mass sits in the last bin only
        features = rng.normal(size=(n, m))
        postact = np.maximum(features, 0.0)
        postact[:, 1] = 0.0  # a post-activation feature that is always 0 (P2L's empty entries)
        return fingerprint(bins, features.astype(np.float32), postact.astype(np.float32), keep)

    target = task(300, keep=True)
    twin = Fingerprint(target.counts.copy(), target.mean.copy(), target.meta, target.postact_mean.copy())
    return target, [task(200), task(600), twin, task(1000), task(40)]


@pytest.mark.parametrize("distance", ["bkld-small", "bkld-large", "p2l", "vdna"])
def test_all_resamples_at_once_equal_one_at_a_time(tasks, distance):
    target, sources = tasks
    new = bootstrap_distances(target, sources, distance, n_resamples=30, seed=4)
    old = loop_bootstrap_distances(target, sources, distance, n_resamples=30, seed=4)
    np.testing.assert_allclose(new.values, old.values, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(new.low, old.low, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(new.high, old.high, rtol=1e-10, atol=1e-13)
    np.testing.assert_array_equal(new.rank_stability, old.rank_stability)
    np.testing.assert_array_equal(new.top1_share, old.top1_share)


def test_the_resamples_are_the_ones_a_seed_always_drew():
    rng = np.random.default_rng(11)
    expected = [np.bincount(rng.integers(0, 40, 40), minlength=40) for _ in range(7)]
    np.testing.assert_array_equal(resample_weights(40, 7, 11), expected)
