"""The fingerprint file: portable, pickle-free, validated on load, deterministic, never silently overwritten."""
from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

from core.distances.bank import bank_for
from core.errors import FingerprintFileError, IncompatibleFingerprintsError
from core.fingerprint.fingerprint import FORMAT_VERSION, Fingerprint, FingerprintMeta, check_comparable
from tests.helpers import rewrite


def make_fingerprint(seed: int = 0, m: int = 16, n: int = 200, **meta_changes) -> Fingerprint:
    rng = np.random.default_rng(seed)
    bins = rng.integers(0, 1000, size=(n, m))
    counts = np.zeros((m, 1000), dtype=np.uint32)
    for f in range(m):
        counts[f] = np.bincount(bins[:, f], minlength=1000)
    meta = dict(name="task", backbone="tf_efficientnet_lite0", weights_sha256="ab" * 32, feature_dim=m,
                edges_id="e" * 16, n_samples=n, protocol={"n": n, "seed": 42, "augment": True, "pipeline": "p1"},
                class_counts={"benign": 3, "malignant": 2})
    meta.update(meta_changes)
    return Fingerprint(counts, rng.random(m), FingerprintMeta(**meta))


def test_round_trip_keeps_counts_mean_and_metadata(tmp_path):
    original = make_fingerprint()
    path = original.save(tmp_path / "fp.npz")
    loaded = Fingerprint.load(path)
    np.testing.assert_array_equal(loaded.counts, original.counts)
    np.testing.assert_array_equal(loaded.mean, original.mean)
    assert loaded.meta == original.meta
    np.testing.assert_allclose(loaded.probabilities(100).sum(axis=1), 1.0)


def test_same_fingerprint_gives_identical_bytes():
    assert make_fingerprint().to_bytes() == make_fingerprint().to_bytes()


def test_save_refuses_to_overwrite(tmp_path):
    path = make_fingerprint().save(tmp_path / "fp.npz")
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="already exists"):
        make_fingerprint(seed=1).save(path)
    assert path.read_bytes() == before


def test_file_holds_no_file_names_or_pixels():
    data = make_fingerprint().to_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as bundle:
        assert sorted(bundle.namelist()) == ["counts.npy", "mean.npy", "meta.json", "postact_mean.npy"]
        meta = json.loads(bundle.read("meta.json"))
    assert not any("path" in key or "file" in key for key in meta)


def test_truncated_file_is_refused_with_its_name(tmp_path):
    path = tmp_path / "cut.npz"
    path.write_bytes(make_fingerprint().to_bytes()[:300])
    with pytest.raises(FingerprintFileError, match="cut.npz"):
        Fingerprint.load(path)


def test_newer_format_version_is_refused():
    data = make_fingerprint().to_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as bundle:
        meta = json.loads(bundle.read("meta.json"))
    meta["format_version"] = FORMAT_VERSION + 1
    with pytest.raises(FingerprintFileError, match="newer than this tool reads"):
        Fingerprint.from_bytes(rewrite(data, "meta.json", json.dumps(meta).encode()), "new.npz")


def test_format_1_files_are_refused_with_how_to_recompute_them():
    """Files made before the probe was recorded cannot be compared safely (their features may come from another
    layer than the catalogue's), so they are refused, saying how to make a new one."""
    data = make_fingerprint().to_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as bundle:
        meta = json.loads(bundle.read("meta.json"))
    meta["format_version"] = 1
    del meta["probe"]
    old = rewrite(data, "meta.json", json.dumps(meta).encode())
    with pytest.raises(FingerprintFileError, match=r"old\.npz: fingerprint format 1 .*python -m core fingerprint"):
        Fingerprint.from_bytes(old, "old.npz")


def test_postact_mean_round_trips_and_negative_values_are_refused(tmp_path):
    fingerprint = make_fingerprint(probe="preact")
    with_postact = Fingerprint(fingerprint.counts, fingerprint.mean - 0.5, fingerprint.meta,
                               postact_mean=np.linspace(0, 1, 16))
    loaded = Fingerprint.load(with_postact.save(tmp_path / "p.npz"))
    np.testing.assert_array_equal(loaded.postact_mean, np.linspace(0, 1, 16))
    assert loaded.meta.probe == "preact" and loaded.mean.min() < 0
    negative = Fingerprint(fingerprint.counts, fingerprint.mean, fingerprint.meta, postact_mean=-np.ones(16))
    with pytest.raises(FingerprintFileError, match="postact_mean"):
        Fingerprint.from_bytes(negative.to_bytes(), "neg.npz")


def test_other_probe_is_refused_naming_both():
    with pytest.raises(IncompatibleFingerprintsError, match="probe layer: 'preact' vs 'postact'"):
        check_comparable(make_fingerprint(probe="preact"), make_fingerprint(probe="postact"))


def test_pickle_payload_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    buffer = io.BytesIO()
    np.save(buffer, np.array([Exploit()], dtype=object), allow_pickle=True)
    evil = rewrite(make_fingerprint().to_bytes(), "counts.npy", buffer.getvalue())
    with pytest.raises(FingerprintFileError, match="pickled"):
        Fingerprint.from_bytes(evil, "evil.npz")
    assert not marker.exists()


def test_counts_that_disagree_with_n_samples_are_refused():
    fingerprint = make_fingerprint()
    bad = Fingerprint(fingerprint.counts, fingerprint.mean,
                      FingerprintMeta(**{**fingerprint.meta.__dict__, "n_samples": 999}))
    with pytest.raises(FingerprintFileError, match="n_samples"):
        Fingerprint.from_bytes(bad.to_bytes(), "bad.npz")


def test_other_backbone_is_refused_with_what_differs():
    mine = make_fingerprint()
    other = make_fingerprint(seed=1, backbone="resnet34", weights_sha256="cd" * 32)
    with pytest.raises(IncompatibleFingerprintsError, match="backbone: 'tf_efficientnet_lite0' vs 'resnet34'"):
        bank_for("bkld-small", [other]).distances(mine)


def test_other_edges_and_augmentation_are_refused_but_other_n_only_warns():
    mine = make_fingerprint()
    with pytest.raises(IncompatibleFingerprintsError, match="bin edges"):
        check_comparable(mine, make_fingerprint(edges_id="f" * 16))
    with pytest.raises(IncompatibleFingerprintsError, match="augment"):
        check_comparable(mine, make_fingerprint(protocol={"n": 200, "seed": 42, "augment": False,
                                                          "pipeline": "p1"}))
    warnings = check_comparable(mine, make_fingerprint(protocol={"n": 2000, "seed": 42, "augment": True,
                                                                 "pipeline": "p1"}))
    assert warnings and "noisier" in warnings[0]
