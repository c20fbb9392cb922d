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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from core import __version__
from core.catalogue.knowledge import build_knowledge
from core.catalogue.store import CITATION, MAP_MATRIX, TaskInfo, load_catalogue, stored_matrices, write_catalogue
from core.catalogue.taskmap import fit_map
from core.catalogue.validity import (
    facts_from_tasks,
    halves_distances,
    load_paper_matrix,
    report_for_matrix,
    validity_report,
    write_report,
)
from core.distances.bank import bank_for
from core.distances.registry import DEFAULT_DISTANCE
from core.features.backbones import POSTACT, LoadedBackbone
from core.features.environment import library_versions
from core.features.extract import FeatureBatch, extract_all
from core.features.inference import backend_of
from core.features.sampling import SamplingProtocol
from core.fingerprint.binning import BinEdges, reference_edges
from core.fingerprint.fingerprint import Fingerprint, FingerprintMeta, HistogramAccumulator
from core.images.dataset import open_dataset

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
    "covid_xray_3class": "COVID-19 chest X-ray (3 classes)",
    "fundus_eye_disease_4class": "Eye disease fundus (4 classes)",
    "knee_oa_kl_5class": "Knee osteoarthritis KL grade", "lc25000_lung": "Lung histopathology (LC25000)",
    "mias_pathology_3class": "Mammography pathology (mini-MIAS)",
    "mias_tissue_3class": "Mammography tissue (mini-MIAS)",
    "ph2_3class": "Dermoscopy lesions (PH2)", "pneumoniamnist": "Pneumonia X-ray 28 px (PneumoniaMNIST)",
    "herlev_pap_7class": "Pap smear cells (Herlev, 7 classes)",
    "iqothnccd_lung_ct_3class": "Lung cancer CT (IQ-OTH/NCCD)",
    "isic2017_melanoma_2class": "Melanoma dermoscopy (ISIC 2017)",
    "oral_histo_oscc_2class": "Oral cancer histopathology (OSCC)",
    "wbc_type_4class": "White blood cell types (4 classes)",
}


def task_info_from_sources(task_id: str, entry: dict) -> TaskInfo:
    return TaskInfo(
        id=task_id, name=entry.get("display_name") or DISPLAY_NAMES.get(task_id, task_id.replace("_", " ")),
        modality=entry["modality"],
        anatomy=entry["anatomy"], classes=dict(entry["classes"]), n_images=int(entry["n_images"]), kind="medical",
        source=entry.get("source_repo", "") + (f"@{entry['commit'][:7]}" if entry.get("commit") else ""),
        upstream=entry.get("upstream", ""), licence=entry.get("licence", ""),
        shares_images_with=list(entry.get("shares_images_with") or []), paper_task=entry.get("paper_task"),
        paper_link=entry.get("paper_link"), notes=entry.get("notes", "") or "")


#: seed of the image-disjoint split into halves (fixed, so the report is reproducible)
HALVES_SEED = 0
#: probes shipped besides the default: the paper's kind of layer, so users can choose it and the report compares
ALTERNATE_PROBES = ("postact",)


@dataclass
class TaskFeatures:
    """Every probe's per-sample features of one task, and which image each sample came from."""

    info: TaskInfo
    batch: FeatureBatch
    n_images: int
    class_counts: dict

    def half_mask(self) -> np.ndarray:
        """(n,) bool: the sample's image is in half A (a seeded half of the task's images; half B is the rest)."""
        order = np.random.default_rng(HALVES_SEED).permutation(self.n_images)
        in_a = np.zeros(self.n_images, dtype=bool)
        in_a[order[: self.n_images // 2]] = True
        return in_a[self.batch.images]


def build_catalogue(task_folders: Path, out: Path, backbone: LoadedBackbone, protocol: SamplingProtocol,
                    paper: Path | None = None, with_controls: bool = True, log: Log = print,
                    overwrite: bool = False) -> dict:
    """Build a catalogue folder at ``out`` from the task folders in ``task_folders`` (with SOURCES.json): the backbone's
    probe at ``out``, each alternate probe at ``out/probes/NAME``, and the validity report. Returns timings."""
    started = time.perf_counter()
    sources = json.loads((task_folders / "SOURCES.json").read_text())
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out}: not empty; pass --overwrite to rebuild it")
    probes = tuple(backbone.spec.probes)
    tasks = [task_info_from_sources(task_id, entry) for task_id, entry in sorted(sources["tasks"].items())]
    extracted: dict[str, TaskFeatures] = {}
    with tempfile.TemporaryDirectory(prefix="catalogue-controls-") as scratch:
        folders = {t.id: task_folders / t.id for t in tasks}
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
                batch = extract_all(dataset, backbone, protocol, probes)
                extracted[info.id] = TaskFeatures(info, batch, len(dataset), dataset.report.class_counts())
            if info.kind == "control":
                info.classes, info.n_images = extracted[info.id].class_counts, \
                    sum(extracted[info.id].class_counts.values())
            log(f"[{number}/{len(tasks)}] {info.id}: {len(batch)} samples in "
                f"{time.perf_counter() - task_started:.0f} s")
    manifest = {
        "backbone": backbone.spec.name, "weights_sha256": backbone.weights_sha256, "protocol": protocol.to_dict(),
        "reference_tasks": [t.id for t in tasks], "citation": CITATION, "versions": library_versions(),
        "built": {"by": f"task-fingerprint-explorer {__version__}", "samples_per_task": protocol.n,
                  "edges": "5 % and 95 % quantiles per feature over the stacked features of all catalogue tasks "
                           "(medical and controls, as the paper's development set mixes both), "
                           f"{min(len(f.batch) for f in extracted.values())} samples each",
                  "halves": f"images split in two at random (seed {HALVES_SEED}); each half's fingerprint is made "
                            "from the catalogue samples whose image lies in it"},
    }
    sources_file = {"SOURCES.json": (task_folders / "SOURCES.json").read_bytes()}
    knowledge = {}
    if paper is not None and paper.is_dir():
        links = {t.id: t.paper_task for t in tasks if t.paper_task}
        knowledge["knowledge.json"] = (json.dumps(build_knowledge(paper, links), indent=1, sort_keys=True)
                                       + "\n").encode()
    for probe in dict.fromkeys((backbone.probe,) + ALTERNATE_PROBES):
        if probe not in probes:
            continue
        default = probe == backbone.probe
        folder = out if default else out / "probes" / probe
        _write_probe_folder(folder, dict(manifest, probe=probe), tasks, extracted, backbone, protocol, probe,
                            with_halves=default, extra_files={**sources_file, **(knowledge if default else {})})
        log(f"  probe {probe}: written to {folder}")
    candidates = _candidate_figures(tasks, extracted, backbone, protocol, probes, paper)
    write_report(out, validity_report(load_catalogue(out), paper, candidates))
    elapsed = time.perf_counter() - started
    log(f"catalogue of {len(tasks)} tasks written to {out} in {elapsed:.0f} s")
    return {"seconds": elapsed, "tasks": len(tasks)}


def _write_probe_folder(folder: Path, manifest: dict, tasks: list[TaskInfo], extracted: dict[str, TaskFeatures],
                        backbone: LoadedBackbone, protocol: SamplingProtocol, probe: str, with_halves: bool,
                        extra_files: dict[str, bytes]) -> None:
    """One probe's catalogue folder; the halves only for the default probe, and of each task only half A (half B is
    the task less half A: Catalogue.halves), to keep the shipped catalogue small (the alternates' halves figures are
    in the report's build-time candidates)."""
    edges = reference_edges([extracted[t.id].batch.probes[probe] for t in tasks])
    fingerprints, halves = {}, {}
    for info in tasks:
        task = extracted[info.id]
        fingerprints[info.id] = _fingerprint(info.name, task, edges, backbone, protocol, probe)
        if with_halves and info.kind == "medical":
            in_a = task.half_mask()
            halves[(info.id, "a")] = _fingerprint(f"{info.name} (half A)", task, edges, backbone, protocol, probe, in_a)
    ordered = [fingerprints[t.id] for t in tasks]
    matrices = stored_matrices(ordered)
    coords, map_method = fit_map(matrices[MAP_MATRIX])
    write_catalogue(folder, dict(manifest, map_method=map_method), edges, tasks, fingerprints, matrices, coords,
                    halves, extra_files=extra_files)


def _fingerprint(name: str, task: TaskFeatures, edges: BinEdges, backbone: LoadedBackbone,
                 protocol: SamplingProtocol, probe: str, rows: np.ndarray | None = None) -> Fingerprint:
    rows = np.ones(len(task.batch), dtype=bool) if rows is None else rows
    accumulator = HistogramAccumulator(edges)
    accumulator.add(task.batch.probes[probe][rows],
                    task.batch.probes[POSTACT][rows] if probe != POSTACT else None)
    meta = FingerprintMeta(name=name, backbone=backbone.spec.name, weights_sha256=backbone.weights_sha256,
                           feature_dim=backbone.probe_dim(probe), edges_id=edges.identity, n_samples=accumulator.n,
                           protocol=protocol.to_dict(), class_counts=task.class_counts, probe=probe,
                           postact_dim=backbone.probe_dim(POSTACT),
                           backend=backend_of(backbone, tuple(backbone.spec.probes)))
    return accumulator.fingerprint(meta)


def _candidate_figures(tasks: list[TaskInfo], extracted: dict[str, TaskFeatures], backbone: LoadedBackbone,
                       protocol: SamplingProtocol, probes: tuple[str, ...], paper: Path | None) -> dict:
    """bKLD small's figures for every probe with two reference sets for the bin edges (all tasks, medical only):
    the candidates the default was chosen from. Computed in memory (fingerprints made as the shipped ones are, then
    compared through the same source bank); only the shipped probes are stored."""
    facts = facts_from_tasks(tasks)
    paper_matrix = load_paper_matrix(paper)
    reference_sets = {"all tasks": tasks, "medical tasks only": [t for t in tasks if t.kind == "medical"]}
    figures = {}
    for probe in probes:
        for label, reference in reference_sets.items():
            edges = reference_edges([extracted[t.id].batch.probes[probe] for t in reference])
            whole, half_a, half_b = [], [], []
            for info in tasks:
                task = extracted[info.id]
                in_a = task.half_mask()
                whole.append(_fingerprint(info.name, task, edges, backbone, protocol, probe))
                half_a.append(_fingerprint(f"{info.name} (half A)", task, edges, backbone, protocol, probe, in_a))
                half_b.append(_fingerprint(f"{info.name} (half B)", task, edges, backbone, protocol, probe, ~in_a))
            halves = halves_distances(half_a, half_b, DEFAULT_DISTANCE)
            end_bins = float(np.mean([(f.counts[:, 0].sum() + f.counts[:, -1].sum()) / f.counts.sum()
                                      for f in whole]))
            figures[f"{probe}, edges from {label}"] = dict(
                report_for_matrix(bank_for(DEFAULT_DISTANCE, whole).pairwise(), facts, halves, paper_matrix),
                end_bin_mass=round(end_bins, 3), distance=DEFAULT_DISTANCE)
    return figures
