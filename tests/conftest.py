"""Shared fixtures. Tests that need the public images read them from ``../shared/data/catalogue`` (never copied
into the project); tests that test meaning use the backbone's real weights."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from tests.helpers import HALF_N, PIPELINE_TASKS, link_files, require_shared, task_halves

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# exported ONNX models go to a temporary cache, not the user's (they are checked against PyTorch on every load)
os.environ.setdefault("TFE_CACHE_DIR", str(Path(tempfile.gettempdir()) / f"tfe-test-cache-{os.getuid()}"))


@pytest.fixture(scope="session")
def backbone():
    import torch

    from core.features.backbones import load_backbone
    torch.manual_seed(0)
    return load_backbone(device="cpu")


@pytest.fixture(scope="session")
def medical_tasks(catalogue) -> list[str]:
    return [t.id for t in catalogue.tasks if t.kind == "medical"]


@pytest.fixture(scope="session")
def catalogue():
    from core.catalogue.store import load_catalogue
    return load_catalogue()


@pytest.fixture(scope="session")
def edges(catalogue):
    return catalogue.edges


@pytest.fixture(scope="session")
def half_fingerprints(backbone, catalogue, tmp_path_factory):
    """Fingerprints of two disjoint halves (alternate files within each class) of a few tasks, made through the
    whole pipeline from the real images (symlinked, never copied), n = 150 each."""
    from core.features.sampling import SamplingProtocol
    from core.fingerprint.pipeline import fingerprint_folder
    root = require_shared()
    result = {}
    for task in PIPELINE_TASKS:
        first, second = task_halves(task)
        for label, files in (("a", first), ("b", second)):
            folder = link_files(files, tmp_path_factory.mktemp(f"{task}_{label}"), root / task)
            run = fingerprint_folder(folder, backbone, catalogue.edges, SamplingProtocol(n=HALF_N, seed=7),
                                     name=task)
            result[(task, label)] = run.fingerprint
    return result


#: resident memory (MB) above which the app's process-wide caches are emptied after a test
RELEASE_CACHES_ABOVE_MB = 3_000


def _resident_mb() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) // 1024 for line in status if line.startswith("VmRSS"))


@pytest.fixture(autouse=True)
def _release_large_app_caches():
    """AppTest runs the app in this process, so Streamlit's process-wide caches (catalogues with their prepared
    banks, one per catalogue folder and probe) outlive each test: a 150-task catalogue's banks alone hold GBs. A
    server holds one catalogue; the suite makes dozens, so they are dropped once the process grows large."""
    yield
    if os.path.exists("/proc/self/status") and _resident_mb() > RELEASE_CACHES_ABOVE_MB:
        import gc
        import sys
        if "streamlit" in sys.modules:
            import streamlit as st
            st.cache_resource.clear()
            st.cache_data.clear()
        gc.collect()
