"""Two sessions fingerprinting at the same time get their own, correct results."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from core.features.sampling import SamplingProtocol
from core.fingerprint.pipeline import fingerprint_folder
from tests.helpers import link_files, require_shared

pytestmark = pytest.mark.slow  # runs the real backbone over many images, builds a catalogue or starts a server

def test_two_simultaneous_runs_equal_their_sequential_results(backbone, catalogue, tmp_path):
    root = require_shared()
    folders = {}
    for task in ("ph2_3class", "pneumoniamnist"):
        files = [p for c in sorted((root / task).iterdir()) for p in sorted(c.iterdir())[:6]]
        folders[task] = link_files(files, tmp_path / task, root / task)
    protocol = SamplingProtocol(n=64, seed=5)
    sequential = {task: fingerprint_folder(folder, backbone, catalogue.edges, protocol).fingerprint
                  for task, folder in folders.items()}
    parallel, errors = {}, []

    def work(task: str) -> None:
        try:
            parallel[task] = fingerprint_folder(folders[task], backbone, catalogue.edges, protocol).fingerprint
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(task,)) for task in folders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors
    for task in folders:
        np.testing.assert_array_equal(parallel[task].counts, sequential[task].counts)
        assert parallel[task].meta.class_counts == sequential[task].meta.class_counts
