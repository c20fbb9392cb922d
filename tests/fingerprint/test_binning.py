"""Bin edges and counting (METHOD.md section 3), checked against values worked by hand."""
from __future__ import annotations

import numpy as np
import pytest

from core.fingerprint.binning import BinEdges, bin_indices, coarsen, count_bins, reference_edges


def test_bin_indices_by_hand():
    edges = BinEdges(np.array([0.0, 2.0], np.float32), np.array([1.0, 2.0], np.float32))
    values = np.array([[-1.0, 0], [0.0, 2], [0.05, 5], [0.1, 1], [0.999, 2], [1.0, 2], [5.0, 2]])
    index = bin_indices(values, edges, n_bins=10)
    # clipped below -> bin 0; 0.1 starts bin 1; hi (1.0) and above go into the last bin
    assert index[:, 0].tolist() == [0, 0, 0, 1, 9, 9, 9]
    assert index[:, 1].tolist() == [5] * 7  # lo == hi: all mass in the middle bin


def test_counts_rows_sum_to_n_and_coarse_bins_equal_direct_binning():
    rng = np.random.default_rng(0)
    features = rng.gamma(1.0, 1.0, size=(500, 7))
    edges = BinEdges(np.quantile(features, 0.05, axis=0).astype(np.float32),
                     np.quantile(features, 0.95, axis=0).astype(np.float32))
    fine = count_bins(bin_indices(features, edges, 1000), 1000)
    assert (fine.sum(axis=1) == 500).all()
    direct = count_bins(bin_indices(features, edges, 100), 100)
    np.testing.assert_array_equal(coarsen(fine, 100), direct)
    # the end bins hold the tails: about 5 % of the samples each
    assert 0.03 < direct[:, 0].mean() / 500 < 0.08 and 0.03 < direct[:, -1].mean() / 500 < 0.08


def test_reference_edges_give_every_task_equal_weight():
    rng = np.random.default_rng(1)
    small_task = rng.normal(0.0, 1.0, size=(100, 3))
    big_task = rng.normal(10.0, 1.0, size=(10_000, 3))
    edges = reference_edges([small_task, big_task])
    stacked = np.concatenate([small_task, big_task[:100]])
    np.testing.assert_allclose(edges.lo, np.quantile(stacked, 0.05, axis=0), rtol=1e-5)
    np.testing.assert_allclose(edges.hi, np.quantile(stacked, 0.95, axis=0), rtol=1e-5)
    assert edges.lo[0] < 0 < 10 < edges.hi[0]  # the small task is not drowned by the big one


def test_edges_identity_changes_with_values_and_invalid_edges_are_refused():
    a = BinEdges(np.zeros(4, np.float32), np.ones(4, np.float32))
    b = BinEdges(np.zeros(4, np.float32), np.full(4, 2.0, np.float32))
    assert a.identity != b.identity
    with pytest.raises(ValueError, match="hi >= lo"):
        BinEdges(np.ones(2, np.float32), np.zeros(2, np.float32))


def test_gray_images_give_the_same_crops_as_their_rgb_replica():
    from core.features.preprocess import CROP, PreparedImage, prepare

    def crop(prepared: np.ndarray, top: int, left: int, flip: bool) -> np.ndarray:
        """The reference for PreparedImage: a (224, 224, 3) crop, mirrored left-right when ``flip``."""
        window = prepared[top:top + CROP, left:left + CROP]
        window = window[:, ::-1] if flip else window
        return np.repeat(window[:, :, None], 3, axis=2) if window.ndim == 2 else window
    gray = np.random.default_rng(2).integers(0, 256, size=(131, 347), dtype=np.uint8)
    rgb = np.repeat(gray[:, :, None], 3, axis=2)
    for top, left, flip in ((0, 0, False), (32, 5, True), (16, 16, False)):
        from_gray, from_rgb = np.empty((224, 224, 3), np.uint8), np.empty((224, 224, 3), np.uint8)
        PreparedImage(prepare(gray)).crop_into(from_gray, top, left, flip)
        PreparedImage(prepare(rgb)).crop_into(from_rgb, top, left, flip)
        np.testing.assert_array_equal(from_gray, from_rgb)
        np.testing.assert_array_equal(from_gray, crop(prepare(rgb), top, left, flip))


def test_accumulator_counts_equal_counting_all_at_once_whatever_the_batches():
    from core.fingerprint.fingerprint import HistogramAccumulator
    rng = np.random.default_rng(3)
    features = rng.gamma(1.0, 1.0, size=(700, 9))
    edges = BinEdges(np.zeros(9, np.float32), np.full(9, 2.5, np.float32))
    accumulator = HistogramAccumulator(edges, flush_every=100)
    for start in range(0, 700, 16):
        accumulator.add(features[start:start + 16])
    np.testing.assert_array_equal(accumulator.counts, count_bins(bin_indices(features, edges, 1000), 1000))
    np.testing.assert_allclose(accumulator.feature_sum, features.sum(axis=0))
    assert accumulator.n == 700
