"""A synthetic catalogue of many tasks with real-shaped random fingerprints, for scale tests and benchmarks only.

The fingerprints have the shipped catalogue's shape and identity (feature count, 1,000 fine bins, probe, edges id,
weights sha256), so a user's fingerprint made against the shipped catalogue can be compared with them. Their
histograms are random but valid (every row sums to n_samples); task names say "synthetic". Nothing here is evidence
about real tasks.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np

from core.catalogue.store import (
    CATALOGUE_VERSION,
    MAP_MATRIX,
    Catalogue,
    TaskInfo,
    stored_distances,
    write_catalogue,
)
from core.catalogue.task_files import fingerprint_path
from core.distances.bank import bank_for
from core.fingerprint.binning import N_BINS_LARGE
from core.fingerprint.fingerprint import Fingerprint


def synthetic_fingerprint(like: Fingerprint, name: str, rng: np.random.Generator, centre: np.ndarray,
                          n_samples: int = 200) -> Fingerprint:
    """Random fingerprint shaped like ``like``: per feature, ``n_samples`` fine bins drawn around ``centre`` (m,)
    (bin units, 0..999) with a random spread; mean and postact_mean random around ``like``'s."""
    m = like.n_features
    spread = rng.uniform(20, 120, size=m)
    bins = np.clip(np.rint(rng.normal(centre, spread, size=(n_samples, m))), 0, N_BINS_LARGE - 1).astype(np.int64)
    flat = (bins + np.arange(m)[None] * N_BINS_LARGE).ravel()
    counts = np.bincount(flat, minlength=m * N_BINS_LARGE).reshape(m, N_BINS_LARGE).astype(np.uint32)
    mean = like.mean + rng.normal(0, 0.3, size=m)
    postact = np.clip(like.postact_mean + rng.normal(0, 0.05, size=like.postact_mean.shape), 0, None)
    meta = replace(like.meta, name=name, n_samples=n_samples, class_counts={"a": n_samples // 2,
                                                                              "b": n_samples - n_samples // 2})
    return Fingerprint(counts, mean, meta, postact)


def synthetic_tasks(like: Catalogue, n_tasks: int, seed: int = 0,
                    n_samples: int = 200) -> Iterator[tuple[TaskInfo, Fingerprint, np.ndarray]]:
    """(task, fingerprint, map position (2,)) of ``n_tasks`` synthetic tasks, one at a time, with ``like``'s edges,
    backbone, weights and probe. Modalities and licences cycle through ``like``'s; every 50th task is a non-medical
    control. Tasks of one modality share a histogram centre (plus noise), so the distances have structure; map
    positions are random clusters per modality."""
    rng = np.random.default_rng(seed)
    template = like.fingerprints[like.ids[0]]
    modalities = sorted({t.modality for t in like.tasks if t.kind == "medical"})
    licences = [t.licence for t in like.tasks]
    centres = {m: rng.uniform(150, 850, size=template.n_features) for m in modalities + ["control"]}
    anchors = {m: rng.uniform(-10, 10, size=2) for m in centres}
    for i in range(n_tasks):
        control = i % 50 == 49
        modality = "non-medical: synthetic" if control else modalities[i % len(modalities)]
        key = "control" if control else modality
        info = TaskInfo(id=f"synthetic_{i:04d}", name=f"Synthetic {modality.split('(')[0].strip()} task {i:04d}",
                        modality=modality, anatomy="synthetic", classes={"a": 50, "b": 50}, n_images=100,
                        kind="control" if control else "medical", licence=licences[i % len(licences)],
                        source="synthetic (core/catalogue/synthetic.py)", upstream="none")
        centre = centres[key] + rng.normal(0, 40, size=template.n_features)
        fingerprint = synthetic_fingerprint(template, info.name, rng, centre, n_samples)
        yield info, fingerprint, anchors[key] + rng.normal(0, 1.5, size=2)


def synthetic_manifest(like: Catalogue, n_tasks: int, seed: int, n_samples: int) -> dict:
    return {"backbone": like.backbone, "weights_sha256": like.weights_sha256, "probe": like.probe,
            "catalogue_version": CATALOGUE_VERSION, "protocol": dict(like.protocol, n=n_samples),
            "built": {"synthetic": f"{n_tasks} random tasks, seed {seed}"}}


def write_synthetic_catalogue(root: Path, like: Catalogue, n_tasks: int, seed: int = 0,
                              n_samples: int = 200, compute_all: bool = False) -> Path:
    """Write a catalogue of ``n_tasks`` synthetic tasks (:func:`synthetic_tasks`) to ``root``. The map's matrix
    (bKLD small) is computed; the other stored matrices only with ``compute_all`` (bKLD large's source bank holds
    T x m x 1000 float64; otherwise they are copies of the map's and the manifest says so); map coordinates are
    random clusters per modality (no UMAP fit at this size)."""
    tasks, fingerprints, coords = [], {}, np.empty((n_tasks, 2))
    for i, (info, fingerprint, xy) in enumerate(synthetic_tasks(like, n_tasks, seed, n_samples)):
        tasks.append(info)
        fingerprints[info.id] = fingerprint
        coords[i] = xy
    ordered = [fingerprints[t.id] for t in tasks]
    computed = bank_for(stored_distances()[MAP_MATRIX], ordered).pairwise()
    matrices = {key: computed if key == MAP_MATRIX else bank_for(spec, ordered).pairwise() if compute_all
                else computed.copy() for key, spec in stored_distances().items()}
    manifest = dict(synthetic_manifest(like, n_tasks, seed, n_samples), map_method="synthetic")
    manifest["built"].update({key: "computed" if compute_all or key == MAP_MATRIX else f"copy of {MAP_MATRIX} (not "
                              "computed)" for key in stored_distances()})
    write_catalogue(Path(root), manifest, like.edges, tasks, fingerprints, matrices, coords)
    return Path(root)


def write_synthetic_large_catalogue(root: Path, like: Catalogue, n_tasks: int, seed: int = 0,
                                    n_samples: int = 200, workers: int = 0) -> Path:
    """The same tasks as :func:`write_synthetic_catalogue` in the store layout (core.catalogue.large): no matrices,
    one fingerprint in memory at a time. ``workers`` > 0: that many processes write the fingerprint files (each
    draws every task, the draws being sequential, and saves its share) while this one fills the store."""
    from core.catalogue.large import write_large_catalogue

    root = Path(root)
    (root / "fingerprints").mkdir(parents=True, exist_ok=True)
    started = []
    if workers > 0:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        started = [context.Process(target=_save_share, args=(root, like.root, n_tasks, seed, n_samples, k, workers))
                   for k in range(workers)]
        for process in started:
            process.start()

    def wait() -> None:
        for process in started:
            process.join()
            if process.exitcode != 0:
                raise RuntimeError(f"a fingerprint-writing worker failed (exit code {process.exitcode})")

    write_large_catalogue(root, synthetic_manifest(like, n_tasks, seed, n_samples), like.edges,
                          ((info, fingerprint) for info, fingerprint, _ in synthetic_tasks(like, n_tasks, seed,
                                                                                          n_samples)),
                          Catalogue, files_written_by=wait if started else None)
    return root


def _save_share(root: Path, like_root: Path, n_tasks: int, seed: int, n_samples: int, share: int,
                shares: int) -> None:
    from core.catalogue.store import load_catalogue

    like = load_catalogue(like_root)
    for i, (info, fingerprint, _) in enumerate(synthetic_tasks(like, n_tasks, seed, n_samples)):
        if i % shares == share:
            fingerprint.save(fingerprint_path(root, info.id), overwrite=True)
