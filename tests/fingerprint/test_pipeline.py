"""Fingerprinting real images end to end with the real weights: determinism, order independence, formats, and
that a task's two halves recognise each other."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from core.distances.bank import bank_for
from core.features.sampling import SamplingProtocol, plan_samples
from core.fingerprint.binning import BinEdges
from core.fingerprint.pipeline import fingerprint_dataset, fingerprint_folder
from core.images.dataset import open_dataset
from tests.helpers import PIPELINE_TASKS, link_file, link_files, require_shared
from tests.hostile_inputs import NIBABEL_FILES, PYDICOM_FILES


def test_sample_plan_is_seeded_and_uses_replacement():
    a, b = plan_samples(10, SamplingProtocol(n=500, seed=3)), plan_samples(10, SamplingProtocol(n=500, seed=3))
    np.testing.assert_array_equal(a.image, b.image)
    assert len(np.unique(a.image)) == 10 and len(a) == 500
    assert not np.array_equal(a.image, plan_samples(10, SamplingProtocol(n=500, seed=4)).image)
    assert a.top.max() <= 32 and a.flip.any() and not a.flip.all()
    fixed = plan_samples(10, SamplingProtocol(n=50, seed=3, augment=False))
    assert (fixed.top == 16).all() and not fixed.flip.any()


@pytest.mark.slow
def test_same_seed_same_fingerprint_and_file_order_does_not_matter(backbone, edges, tmp_path):
    root = require_shared() / "ph2_3class"
    files = sorted(p for p in root.rglob("*.jpg"))[:40]
    forward = link_files(files, tmp_path / "forward", root)
    backward = tmp_path / "backward"
    for path in reversed(files):  # created in the opposite order
        link_file(path, backward / path.relative_to(root))
    protocol = SamplingProtocol(n=64, seed=11)
    one = fingerprint_folder(forward, backbone, edges, protocol).fingerprint
    two = fingerprint_folder(backward, backbone, edges, protocol).fingerprint
    again = fingerprint_folder(forward, backbone, edges, protocol).fingerprint
    np.testing.assert_array_equal(one.counts, two.counts)
    np.testing.assert_array_equal(one.counts, again.counts)
    np.testing.assert_allclose(one.mean, two.mean, rtol=1e-6)
    other_seed = fingerprint_folder(forward, backbone, edges, SamplingProtocol(n=64, seed=12)).fingerprint
    assert not np.array_equal(one.counts, other_seed.counts)


def test_fingerprint_records_protocol_and_classes(backbone, edges, tmp_path):
    root = require_shared() / "ph2_3class"
    files = [p for c in sorted(root.iterdir()) for p in sorted(c.iterdir())[:5]]
    run = fingerprint_folder(link_files(files, tmp_path / "t", root), backbone, edges, SamplingProtocol(n=32))
    meta = run.fingerprint.meta
    assert meta.class_counts == {"atypical_nevus": 5, "common_nevus": 5, "melanoma": 5}
    assert meta.n_samples == 32 and meta.protocol["n"] == 32 and meta.edges_id == edges.identity
    assert (run.fingerprint.counts.sum(axis=1) == 32).all()


def test_dicom_and_nifti_test_files_fingerprint_without_error(backbone, edges, tmp_path):
    folder = tmp_path / "mixed"
    (folder / "dicom").mkdir(parents=True)
    (folder / "nifti").mkdir()
    for name in ("CT_small.dcm", "MR_small.dcm", "SC_rgb_rle_2frame.dcm", "rtdose.dcm"):
        shutil.copy(PYDICOM_FILES / name, folder / "dicom" / name)
    for name in ("anatomical.nii", "example4d.nii.gz", "example_nifti2.nii.gz"):
        shutil.copy(NIBABEL_FILES / name, folder / "nifti" / name)
    run = fingerprint_folder(folder, backbone, edges, SamplingProtocol(n=48))
    assert run.report.skipped == []
    assert {fmt for fmt, _ in run.report.files} == {"DICOM", "NIfTI"}
    assert run.report.images[("DICOM", "dicom")] == 1 + 1 + 2 + 15  # multi-frame files give one image per frame
    assert run.fingerprint.meta.n_samples == 48
    assert run.fingerprint.meta.format_counts["NIfTI"] > 3


def test_memory_stays_flat_because_features_are_not_kept(backbone, tmp_path):
    from tests.hostile_inputs import _gradient, _png
    for i in range(4):
        _png(tmp_path / f"{i}.png", _gradient() // (i + 1))
    edges = BinEdges(np.zeros(1280, np.float32), np.full(1280, 3.0, np.float32))
    with open_dataset(tmp_path) as dataset:
        fingerprint = fingerprint_dataset(dataset, backbone, edges, SamplingProtocol(n=40))
    assert fingerprint.sample_bins is None and fingerprint.sample_features is None


@pytest.mark.slow
def test_each_half_is_nearest_to_its_own_other_half(half_fingerprints):
    """A real task split into two halves with no file in common, each fingerprinted through the whole pipeline, is
    nearer to its own other half than to the other tasks' halves (4 tasks of 4 modalities)."""
    hits = {}
    for task in PIPELINE_TASKS:
        values = bank_for("bkld-small", [half_fingerprints[(t, "a")] for t in PIPELINE_TASKS]).distances(
            half_fingerprints[(task, "b")])
        hits[task] = PIPELINE_TASKS[int(np.argmin(values))]
    assert hits == {task: task for task in PIPELINE_TASKS}


@pytest.mark.parametrize("background", [False, True])
def test_cancel_stops_the_run_and_a_finished_run_leaves_the_event_alone(backbone, edges, tmp_path, background):
    import threading

    from core.features.extract import ExtractionCancelled, iter_features
    from tests.hostile_inputs import _gradient, _png
    for i in range(4):
        _png(tmp_path / f"{i}.png", _gradient() // (i + 1))
    with open_dataset(tmp_path) as dataset:
        untouched = threading.Event()
        batches = list(iter_features(dataset, backbone, SamplingProtocol(n=32), batch_size=8, cancel=untouched,
                                     background=background))
        assert sum(len(batch) for batch in batches) == 32
        assert all(batch.probes["preact"].shape == (len(batch), 1280) for batch in batches)
        assert not untouched.is_set()
        cancel = threading.Event()
        with pytest.raises(ExtractionCancelled):
            list(iter_features(dataset, backbone, SamplingProtocol(n=64), batch_size=8, cancel=cancel,
                               background=background, progress=lambda update: cancel.set()))
