"""Shared fixtures. Tests that need the public images read them from ``../shared/data/catalogue`` (never copied
into the project); tests that test meaning use the backbone's real weights."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# exported ONNX models go to a temporary cache, not the user's (they are checked against PyTorch on every load)
os.environ.setdefault("TFE_CACHE_DIR", str(Path(tempfile.gettempdir()) / f"tfe-test-cache-{os.getuid()}"))

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
CATALOGUE_IMAGES = SHARED / "data" / "catalogue"
PAPER = SHARED / "paper"


def require_shared() -> Path:
    """The shared image folder; a clear one-line failure (not a silent skip) when it is missing."""
    if not (CATALOGUE_IMAGES / "SOURCES.json").is_file():
        pytest.fail(f"this test needs the public catalogue images at {CATALOGUE_IMAGES} (../shared beside the "
                    "checkout); they are missing", pytrace=False)
    return CATALOGUE_IMAGES


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


#: a few tasks of different modalities for end-to-end tests of the pipeline on real images (every task's
#: image-disjoint halves ship with the catalogue, so the whole catalogue is covered without recomputing them)
PIPELINE_TASKS = ["brain_mri_4class", "lc25000_lung", "ph2_3class", "pneumoniamnist"]
HALF_N = 150


@pytest.fixture(scope="session")
def half_fingerprints(backbone, catalogue, tmp_path_factory):
    """Fingerprints of two disjoint halves (alternate files within each class) of a few tasks, made through the
    whole pipeline from the real images (symlinked, never copied), n = 150 each."""
    from core.fingerprint.pipeline import fingerprint_folder
    from core.features.sampling import SamplingProtocol
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


def link_files(files: list[Path], root: Path, relative_to: Path) -> Path:
    """Make a task folder from existing files by symbolic links (the shared images are never copied)."""
    for path in files:
        target = root / path.relative_to(relative_to)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(path)
    return root


def task_halves(task: str) -> tuple[list[Path], list[Path]]:
    """Two disjoint halves of a catalogue task's images, alternating within each class (stratified)."""
    folder = require_shared() / task
    first, second = [], []
    for class_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        files = sorted(p for p in class_dir.iterdir() if p.is_file())
        first += files[0::2]
        second += files[1::2]
    return first, second


def random_histograms(rng: np.random.Generator, n_features: int, n_bins: int, empty_share: float = 0.3
                      ) -> np.ndarray:
    """Random rows that sum to 1, with some exactly empty bins."""
    counts = rng.integers(0, 50, size=(n_features, n_bins)).astype(float)
    counts[rng.random(counts.shape) < empty_share] = 0
    counts[counts.sum(axis=1) == 0, 0] = 1
    return counts / counts.sum(axis=1, keepdims=True)
