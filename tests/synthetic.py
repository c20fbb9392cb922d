"""Small synthetic fingerprints and catalogues (16 features, a few tasks) for tests that must not touch the shipped
catalogue and must stay fast: they are built in a temporary folder in well under a second."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from core.catalogue.store import TaskInfo, stored_matrices, write_catalogue
from core.fingerprint.binning import BinEdges
from core.fingerprint.fingerprint import Fingerprint, FingerprintMeta

FEATURES = 16
EDGES = BinEdges(np.zeros(FEATURES, np.float32), np.ones(FEATURES, np.float32))
WEIGHTS = "ab" * 32


def make_fingerprint(seed: int = 0, n: int = 200, name: str = "task", **meta_changes) -> Fingerprint:
    """(16, 1000) random counts of ``n`` samples, made with EDGES and WEIGHTS so it fits :func:`make_catalogue`."""
    rng = np.random.default_rng(seed)
    bins = rng.integers(0, 1000, size=(n, FEATURES))
    counts = np.stack([np.bincount(bins[:, f], minlength=1000) for f in range(FEATURES)]).astype(np.uint32)
    meta = dict(name=name, backbone="tf_efficientnet_lite0", weights_sha256=WEIGHTS, feature_dim=FEATURES,
                edges_id=EDGES.identity, n_samples=n,
                protocol={"n": n, "seed": 42, "augment": True, "pipeline": "p1"},
                class_counts={"benign": 3, "malignant": 2})
    meta.update(meta_changes)
    return Fingerprint(counts, rng.random(FEATURES), FingerprintMeta(**meta))


def make_catalogue(root: Path, n_tasks: int = 2) -> Path:
    """A valid catalogue folder of ``n_tasks`` synthetic tasks (with a SOURCES.json to be carried over)."""
    tasks = [TaskInfo(id=f"task_{i}", name=f"Task {i}", modality="CT", anatomy="chest", classes={"a": 1},
                      n_images=1) for i in range(n_tasks)]
    fingerprints = {t.id: make_fingerprint(seed=i, name=t.name) for i, t in enumerate(tasks)}
    matrices = stored_matrices([fingerprints[t.id] for t in tasks])
    coords = np.arange(2 * n_tasks, dtype=float).reshape(n_tasks, 2)
    manifest = {"backbone": "tf_efficientnet_lite0", "weights_sha256": WEIGHTS, "probe": "postact",
                "protocol": {"n": 200, "seed": 42, "augment": True, "pipeline": "p1"}, "map_method": "mds"}
    write_catalogue(root, manifest, EDGES, tasks, fingerprints, matrices, coords,
                    extra_files={"SOURCES.json": b"{}\n"})
    return root


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file below ``root`` (relative path -> bytes)."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def run_main(capsys, *args: str) -> tuple[int, str, str]:
    """Run the command line in this process (fast: no new interpreter); (exit code, stdout, stderr). The SIGTERM
    handler the CLI installs is restored afterwards."""
    import signal

    from core.cli import main
    handler = signal.getsignal(signal.SIGTERM)
    try:
        code = main(list(args))
    finally:
        signal.signal(signal.SIGTERM, handler)
    out, err = capsys.readouterr()
    return code, out, err
