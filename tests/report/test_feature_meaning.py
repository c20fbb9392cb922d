"""What a feature means: its per-bin bKLD terms come from the one bKLD in core.distances.maths (checked against
scipy and numbers worked by hand), and the image sample goes through the fingerprint's own extraction path and
engine."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.special import rel_entr, softmax
from skimage import data

from core.distances.bank import contributions_to
from core.distances.maths import bkld_bin_terms, feature_weights
from core.features.inference import TOLERANCE
from core.features.preprocess import CROP, RESIZED, prepare, to_model_input
from core.features.specs import pooled_probes
from core.fingerprint.binning import histogram_probabilities
from core.report.feature_meaning import THUMBNAIL_PX, bin_contributions
from tests.helpers import image_sample


def test_bin_terms_worked_by_hand():
    """P = (1/2, 1/2, 0), Q = (0, 0, 1): softmax(Q) = (1, 1, e) / (2 + e); the third bin adds nothing (P = 0)."""
    p = np.array([0.5, 0.5, 0.0])
    log_q = np.log(np.array([1.0, 1.0, np.e]) / (2 + np.e))
    expected = 0.5 * (np.log(0.5) - np.log(1 / (2 + np.e)))
    np.testing.assert_allclose(bkld_bin_terms(p, log_q), [expected, expected, 0.0], rtol=1e-15)
    np.testing.assert_allclose(bkld_bin_terms(p, log_q).sum(), np.log((2 + np.e) / 2), rtol=1e-15)


def test_bin_terms_of_shipped_fingerprints_match_scipy_and_sum_to_the_contribution(catalogue):
    target, source = catalogue.fingerprints["busi_3class"], catalogue.fingerprints["covid_ct"]
    for distance, n_bins, mean in (("bkld-large", 1000, None), ("bkld-small", 100, target.mean)):
        weights = feature_weights(mean, target.n_features)
        per_feature = contributions_to(target, source, distance) / weights  # KL_f
        for feature in (0, 5, 828):
            terms = bin_contributions(target.counts[feature], source.counts[feature], n_bins)
            p = histogram_probabilities(target.counts[feature][None], n_bins)[0]
            q = histogram_probabilities(source.counts[feature][None], n_bins)[0]
            np.testing.assert_allclose(terms, rel_entr(p, softmax(q)), rtol=1e-12, atol=1e-15)
            assert terms.shape == (n_bins,) and np.all(terms[p == 0] == 0)
            np.testing.assert_allclose(terms.sum(), per_feature[feature], rtol=1e-12)


def test_image_sample_goes_through_the_fingerprint_engine(backbone, tmp_path):
    """Three photos and a broken file: three thumbnails whose features are the engine's, equal within the engines'
    tolerance to PyTorch on the centre crop worked out here; every probe of the run from one pass."""
    folder = tmp_path / "folder" / "photos"
    folder.mkdir(parents=True)
    photos = {"astronaut": data.astronaut(), "chelsea": data.chelsea(), "coffee": data.coffee()}
    for name, image in photos.items():
        Image.fromarray(image).save(folder / f"{name}.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot a png")
    sample = image_sample(tmp_path / "folder", backbone, n=10)
    assert sample.thumbnails.shape == (3, THUMBNAIL_PX, THUMBNAIL_PX, 3)
    assert set(sample.by_probe) == {"preact", "postact"} and sample.features is sample.by_probe["preact"]
    offset = (RESIZED - CROP) // 2
    crops = np.stack([prepare(photos[name])[offset:offset + CROP, offset:offset + CROP]
                      for name in sorted(photos)])  # the dataset lists files in name order
    with torch.inference_mode():
        expected = pooled_probes(backbone.model, backbone.spec,
                                 to_model_input(crops, backbone.spec.mean, backbone.spec.std, backbone.device),
                                 ("preact", "postact"))
    for probe, values in expected.items():
        np.testing.assert_allclose(sample.by_probe[probe], values.numpy(), atol=TOLERANCE)


@pytest.mark.parametrize("n", [1, 2])
def test_image_sample_takes_different_images(backbone, tmp_path, n):
    for index, image in enumerate((data.astronaut(), data.chelsea(), data.coffee())):
        Image.fromarray(image).save(tmp_path / f"{index}.png")
    sample = image_sample(tmp_path, backbone, n=n)
    assert len(sample.features) == n and len({row.tobytes() for row in sample.thumbnails}) == n
