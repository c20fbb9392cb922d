"""Switching the probe layer reuses the forward pass already made: the post-activation fingerprint derived from a
default-probe run equals a run made with the post-activation probe (real weights, real images, same samples)."""
from __future__ import annotations

import numpy as np
import pytest

from core.features.backbones import load_backbone
from core.features.sampling import SamplingProtocol
from core.fingerprint.pipeline import fingerprint_folder, with_probe
from tests.helpers import link_files, require_shared, task_halves


def test_the_derived_postact_fingerprint_equals_a_postact_run(catalogue, tmp_path):
    first, _ = task_halves("ph2_3class")
    folder = link_files(first[:24], tmp_path / "ph2", require_shared() / "ph2_3class")
    postact = catalogue.for_probe("postact")
    protocol = SamplingProtocol(n=40, seed=5)
    default_run = fingerprint_folder(folder, load_backbone(device="cpu", backend="torch", probe=catalogue.probe),
                                     catalogue.edges, protocol, name="ph2", keep_samples=True).fingerprint
    direct = fingerprint_folder(folder, load_backbone(device="cpu", backend="torch", probe="postact"),
                                postact.edges, protocol, name="ph2", keep_samples=True).fingerprint
    derived = with_probe(default_run, "postact", postact.edges)
    assert derived.meta == direct.meta and derived.meta.probe == "postact"
    np.testing.assert_array_equal(derived.counts, direct.counts)
    np.testing.assert_array_equal(derived.sample_bins, direct.sample_bins)
    np.testing.assert_allclose(derived.mean, direct.mean, rtol=1e-12)
    np.testing.assert_allclose(derived.postact_mean, direct.postact_mean, rtol=1e-12)
    assert with_probe(default_run, catalogue.probe, catalogue.edges) is default_run
    with pytest.raises(ValueError, match="holds the samples of probe"):
        with_probe(direct, "preact", catalogue.edges)

