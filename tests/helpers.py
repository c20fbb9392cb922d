"""Helpers the tests share (fixtures stay in conftest.py): where the shared images and the paper are, task
folders made of hard links, random histograms, the app under AppTest and fingerprint files rewritten."""
from __future__ import annotations

import io
import os
import shutil
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

if TYPE_CHECKING:
    from streamlit.testing.v1 import AppTest

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


#: a few tasks of different modalities for end-to-end tests of the pipeline on real images (every task's
#: image-disjoint halves ship with the catalogue, so the whole catalogue is covered without recomputing them)
PIPELINE_TASKS = ["brain_mri_4class", "lc25000_lung", "ph2_3class", "pneumoniamnist"]
HALF_N = 150


def link_files(files: list[Path], root: Path, relative_to: Path) -> Path:
    """Make a task folder from existing files by hard links (the shared images are never copied; symbolic links
    to files outside a task folder are skipped by design)."""
    for path in files:
        link_file(path, root / path.relative_to(relative_to))
    return root


def link_file(path: Path, target: Path) -> None:
    """A hard link to ``path`` at ``target``; a copy in the temporary folder only where the two lie on different
    file systems."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(path, target)
    except OSError:
        shutil.copyfile(path, target)


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


# --------------------------------------------------------------------------- the app under AppTest
TIMEOUT = 300


def app(page: str = "app.py", **state) -> "AppTest":
    """The app, opened on ``page`` (inside the multipage app, as a user's click would), with session state set."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    for key, value in state.items():
        at.session_state[key] = value
    if page != "app.py":
        at.switch_page(page)
    return at


def find_table(at: "AppTest", *columns: str):
    """The first dataframe on the page that has all ``columns`` (AppTest finds widgets, not tables, by key)."""
    for frame in at.dataframe:
        value = frame.value
        if all(c in value.columns for c in columns):
            return value
    raise AssertionError(f"no table with columns {columns}; tables: {[list(f.value.columns) for f in at.dataframe]}")


def no_exceptions(at: "AppTest") -> None:
    assert not at.exception, [e.value for e in at.exception]


# --------------------------------------------------------------------------- fingerprint files
def rewrite(data: bytes, member: str, payload: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, payload if info.filename == member else src.read(info))
    return out.getvalue()


def fingerprint_of(counts: np.ndarray, mean: np.ndarray, name: str = "t", postact_mean: np.ndarray | None = None):
    """A Fingerprint around given fine counts (m, 1000) and mean (m,), for tests of the distances."""
    from core.fingerprint.fingerprint import Fingerprint, FingerprintMeta
    n = int(np.asarray(counts).sum(axis=1).max())
    meta = FingerprintMeta(name=name, backbone="b", weights_sha256="w", feature_dim=len(mean), edges_id="e",
                           n_samples=n, protocol={"n": n, "augment": True, "pipeline": "p"})
    return Fingerprint(np.asarray(counts, dtype=np.uint32), np.asarray(mean, dtype=np.float64), meta, postact_mean)


def shown(markdown: str) -> str:
    """The text a user reads from Markdown that ui.text.md escaped: backslash escapes and word joiners removed."""
    import re
    return re.sub(r"\\(.)", r"\1", markdown.replace("\u2060", ""))


def image_sample(folder, backbone, n: int | None = None, seed: int = 0):
    """Why this task?'s image sample in one step, as the app makes it in two (read while the upload exists, features
    after the first table): core.report.feature_meaning.read_sampled_images then sample_features."""
    from core.features.inference import engine_for
    from core.report.feature_meaning import IMAGE_SAMPLE, read_sampled_images, sample_features

    sampled = read_sampled_images(folder, engine_for(backbone).batch_size, n or IMAGE_SAMPLE, seed)
    return None if sampled is None else sample_features(sampled, backbone)
