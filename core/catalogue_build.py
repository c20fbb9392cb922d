"""``python -m core catalogue build``: fingerprints of the public tasks in ``shared/data/catalogue`` plus two
non-medical controls, reference bin edges, pairwise bKLD, fixed map coordinates and the paper's measured knowledge.

Reproducible: the same inputs, seed and library versions give the same files (no timestamps are written).
Images are read where they lie (controls are written to a temporary folder) and never copied into the project.
"""
from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from core import __version__
from core.backbones import LoadedBackbone
from core.binning import BinEdges, reference_edges
from core.catalogue import CITATION, TaskInfo, pairwise_bkld, write_catalogue
from core.dataset import open_dataset
from core.extract import extract_all
from core.fingerprint import Fingerprint, FingerprintMeta, HistogramAccumulator
from core.knowledge import build_knowledge
from core.sampling import SamplingProtocol
from core.taskmap import fit_map

Log = Callable[[str], None]

CONTROLS = {
    "control_sklearn_digits": TaskInfo(
        id="control_sklearn_digits", name="Handwritten digits (control)", modality="non-medical: handwritten digits",
        anatomy="none", classes={}, n_images=0, kind="control", source="scikit-learn load_digits()",
        upstream="UCI Optical Recognition of Handwritten Digits (8 x 8 px)", licence="CC BY 4.0 (UCI)",
        notes="non-medical control: shows what a far-away task looks like"),
    "control_skimage_faces": TaskInfo(
        id="control_skimage_faces", name="Faces vs. non-faces (control)", modality="non-medical: photographs",
        anatomy="none", classes={}, n_images=0, kind="control", source="scikit-image data.lfw_subset()",
        upstream="Labeled Faces in the Wild subset (25 x 25 px) shipped with scikit-image",
        licence="LFW: research use; as shipped with scikit-image (BSD-3-Clause)",
        notes="non-medical control: shows what a far-away task looks like"),
}


def write_control_images(task_id: str, folder: Path) -> None:
    """Materialise a control task from package data as PNG files in class folders below ``folder``."""
    if task_id == "control_sklearn_digits":
        from sklearn.datasets import load_digits
        digits = load_digits()
        images = (digits.images * (255.0 / 16.0)).round().astype(np.uint8)
        labels = [str(t) for t in digits.target]
    elif task_id == "control_skimage_faces":
        from skimage.data import lfw_subset
        faces = lfw_subset()
        images = (faces * 255).round().astype(np.uint8)
        labels = ["face"] * 100 + ["non_face"] * (len(faces) - 100)
    else:
        raise KeyError(task_id)
    for index, (image, label) in enumerate(zip(images, labels)):
        (folder / label).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / label / f"{index:05d}.png")


DISPLAY_NAMES = {
    "bccd_cells": "Blood cell types (BCCD)", "brain_mri_4class": "Brain tumour MRI (4 classes)",
    "busi_3class": "Breast ultrasound (BUSI)", "covid_ct": "COVID-19 CT slices",
    "covid_xray_3class": "COVID-19 chest X-ray (3 classes)", "fundus_eye_disease_4class": "Eye disease fundus (4 classes)",
    "knee_oa_kl_5class": "Knee osteoarthritis KL grade", "lc25000_lung": "Lung histopathology (LC25000)",
    "mias_pathology_3class": "Mammography pathology (mini-MIAS)", "mias_tissue_3class": "Mammography tissue (mini-MIAS)",
    "ph2_3class": "Dermoscopy lesions (PH2)", "pneumoniamnist": "Pneumonia X-ray 28 px (PneumoniaMNIST)",
}


def task_info_from_sources(task_id: str, entry: dict) -> TaskInfo:
    return TaskInfo(
        id=task_id, name=entry.get("display_name") or DISPLAY_NAMES.get(task_id, task_id.replace("_", " ")), modality=entry["modality"],
        anatomy=entry["anatomy"], classes=dict(entry["classes"]), n_images=int(entry["n_images"]), kind="medical",
        source=entry.get("source_repo", "") + (f"@{entry['commit'][:7]}" if entry.get("commit") else ""),
        upstream=entry.get("upstream", ""), licence=entry.get("licence", ""),
        shares_images_with=list(entry.get("shares_images_with") or []), paper_task=entry.get("paper_task"),
        paper_link=entry.get("paper_link"), notes=entry.get("notes", "") or "")


def build_catalogue(source: Path, out: Path, backbone: LoadedBackbone, protocol: SamplingProtocol,
                    paper: Path | None = None, with_controls: bool = True, log: Log = print,
                    overwrite: bool = False) -> dict:
    """Build a catalogue folder at ``out`` from task folders in ``source`` (with SOURCES.json). Returns timings."""
    started = time.perf_counter()
    sources = json.loads((source / "SOURCES.json").read_text())
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out}: not empty; pass --overwrite to rebuild it")
    tasks = [task_info_from_sources(task_id, entry) for task_id, entry in sorted(sources["tasks"].items())]
    features: dict[str, np.ndarray] = {}
    class_counts: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="catalogue-controls-") as scratch:
        folders = {t.id: source / t.id for t in tasks}
        if with_controls:
            for task_id, info in CONTROLS.items():
                write_control_images(task_id, Path(scratch) / task_id)
                folders[task_id] = Path(scratch) / task_id
                tasks.append(TaskInfo(**{**info.__dict__}))
        for number, info in enumerate(tasks, 1):
            task_started = time.perf_counter()
            with open_dataset(folders[info.id]) as dataset:
                if dataset.report.skipped:
                    log(f"  {info.id}: {len(dataset.report.skipped)} files skipped")
                features[info.id] = extract_all(dataset, backbone, protocol)
                class_counts[info.id] = dataset.report.class_counts()
            if info.kind == "control":
                info.classes, info.n_images = class_counts[info.id], sum(class_counts[info.id].values())
            log(f"[{number}/{len(tasks)}] {info.id}: {len(features[info.id])} samples in "
                f"{time.perf_counter() - task_started:.0f} s")
    reference = [t.id for t in tasks if t.kind == "medical"]
    edges = reference_edges([features[t] for t in reference])
    fingerprints = {t.id: _fingerprint(t, features[t.id], class_counts[t.id], edges, backbone, protocol)
                    for t in tasks}
    ordered = [fingerprints[t.id] for t in tasks]
    small, large = pairwise_bkld(ordered)
    coords, map_method = fit_map(small)
    out.mkdir(parents=True, exist_ok=True)
    manifest = {
        "backbone": backbone.spec.name, "weights_sha256": backbone.weights_sha256, "protocol": protocol.to_dict(),
        "reference_tasks": reference, "map_method": map_method, "citation": CITATION,
        "built": {"by": f"task-fingerprint-explorer {__version__}", "samples_per_task": protocol.n,
                  "edges": "5 % and 95 % quantiles per feature over the stacked features of the reference tasks, "
                           f"{min(len(features[t]) for t in reference)} samples each"},
    }
    extra = {"SOURCES.json": (source / "SOURCES.json").read_bytes()}
    if paper is not None and paper.is_dir():
        links = {t.id: t.paper_task for t in tasks if t.paper_task}
        extra["knowledge.json"] = (json.dumps(build_knowledge(paper, links), indent=1, sort_keys=True)
                                   + "\n").encode()
    write_catalogue(out, manifest, edges, tasks, fingerprints, small, large, coords, extra_files=extra)
    elapsed = time.perf_counter() - started
    log(f"catalogue of {len(tasks)} tasks written to {out} in {elapsed:.0f} s")
    return {"seconds": elapsed, "tasks": len(tasks)}


def _fingerprint(info: TaskInfo, features: np.ndarray, classes: dict, edges: BinEdges, backbone: LoadedBackbone,
                 protocol: SamplingProtocol) -> Fingerprint:
    accumulator = HistogramAccumulator(edges)
    accumulator.add(features)
    meta = FingerprintMeta(name=info.name, backbone=backbone.spec.name, weights_sha256=backbone.weights_sha256,
                           feature_dim=backbone.feature_dim, edges_id=edges.identity, n_samples=accumulator.n,
                           protocol=protocol.to_dict(), class_counts=classes)
    return Fingerprint(accumulator.counts.astype(np.uint32), accumulator.feature_sum / accumulator.n, meta)
