"""Real folders for the verdict (shared by tests/report/test_verdict_real.py and bench/verdict_calibration.py):
image-disjoint held-out halves of catalogue tasks, tasks the catalogue does not hold (the task and the tasks sharing
its images left out), mixes of two modalities and the controls' own kind of images. Images are symbolic links to
``../shared`` (never copied); fingerprints are made through the whole pipeline with the real backbone."""
from __future__ import annotations

import os
import pickle
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from core.catalogue.build import HALVES_SEED, write_control_images
from core.catalogue.store import Catalogue
from core.features.sampling import SamplingProtocol
from core.fingerprint.fingerprint import Fingerprint
from core.fingerprint.pipeline import fingerprint_folder
from core.images.dataset import open_dataset
from core.report.recommend import bootstrap_for, recommendations
from core.report.verdict import Verdict, verdict_from_catalogue
from tests.helpers import link_files, require_shared

#: samples per case folder (the brief's reasonable runtime: about 200 images' worth)
CASE_N = 200
#: where bench/verdict_calibration.py keeps the case fingerprints between runs (TFE_VERDICT_CACHE; unset: none)
CACHE = Path(os.environ["TFE_VERDICT_CACHE"]) if os.environ.get("TFE_VERDICT_CACHE") else None


@dataclass(frozen=True)
class Case:
    name: str
    fingerprint: Fingerprint
    catalogue: Catalogue


def half_b_files(task: str) -> list[Path]:
    """The task's images that are NOT in the shipped half A (the catalogue build's seeded split), sorted."""
    folder = require_shared() / task
    with open_dataset(folder) as dataset:
        paths = [item.path for item in dataset.items]
    order = np.random.default_rng(HALVES_SEED).permutation(len(paths))
    in_a = np.zeros(len(paths), dtype=bool)
    in_a[order[: len(paths) // 2]] = True
    return [p for p, a in zip(paths, in_a) if not a]


def every_other(files: list[Path], n: int) -> list[Path]:
    """About ``n`` files spread evenly over ``files`` (deterministic)."""
    step = max(1, len(files) // n)
    return files[::step][:n]


def fingerprint_files(files: list[Path], backbone, catalogue: Catalogue, scratch: Path, name: str,
                      relative_to: Path) -> Fingerprint:
    cached = CACHE / f"{name}.pickle" if CACHE else None
    if cached is not None and cached.is_file():
        return pickle.loads(cached.read_bytes())
    fingerprint = _fingerprint_files(files, backbone, catalogue, scratch, name, relative_to)
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_bytes(pickle.dumps(fingerprint))
    return fingerprint


def _fingerprint_files(files: list[Path], backbone, catalogue: Catalogue, scratch: Path, name: str,
                       relative_to: Path) -> Fingerprint:
    folder = link_files(files, scratch / name, relative_to)
    run = fingerprint_folder(folder, backbone, catalogue.edges, SamplingProtocol(n=CASE_N, seed=7), name=name,
                             keep_samples=True)
    return run.fingerprint


def with_half_a(catalogue: Catalogue, task: str) -> Catalogue:
    """The catalogue with ``task`` represented by its half A only (so a folder of half-B images is held out)."""
    fingerprints = dict(catalogue.fingerprints)
    fingerprints[task] = catalogue.halves()[(task, "a")]
    return replace(catalogue, fingerprints=fingerprints, _banks={})


def without(catalogue: Catalogue, task: str) -> Catalogue:
    """The catalogue without ``task`` and every task sharing images with it (so it does not hold the task)."""
    info = catalogue.task(task)
    dropped = {task, *info.shares_images_with} | {t.id for t in catalogue.tasks if task in t.shares_images_with}
    keep = [i for i, t in enumerate(catalogue.tasks) if t.id not in dropped]
    grid = np.ix_(keep, keep)
    return replace(catalogue, tasks=[catalogue.tasks[i] for i in keep],
                   fingerprints={k: v for k, v in catalogue.fingerprints.items() if k not in dropped},
                   matrices={key: matrix[grid] for key, matrix in catalogue.matrices.items()},
                   coords=catalogue.coords[keep], _banks={})


def verdict_of(case: Case, distance: str = "bkld-small") -> Verdict:
    table = recommendations(case.catalogue, case.fingerprint, distance,
                            bootstrap := bootstrap_for(case.catalogue, case.fingerprint, distance))
    return verdict_from_catalogue(case.catalogue, table, case.fingerprint, distance, bootstrap)


def held_out_half(task: str, backbone, catalogue: Catalogue, scratch: Path) -> Case:
    """Half-B images of ``task`` against the catalogue holding only its half A (must be a strong match)."""
    root = require_shared()
    fingerprint = fingerprint_files(every_other(half_b_files(task), CASE_N), backbone, catalogue, scratch,
                                    f"{task}-half-b", root / task)
    return Case(f"held-out half of {task}", fingerprint, with_half_a(catalogue, task))


def unheld_task(task: str, backbone, catalogue: Catalogue, scratch: Path,
                fingerprint: Fingerprint | None = None) -> Case:
    """Images of ``task`` against the catalogue without it and its image-sharing siblings."""
    root = require_shared()
    if fingerprint is None:
        fingerprint = fingerprint_files(every_other(half_b_files(task), CASE_N), backbone, catalogue, scratch,
                                        f"{task}-unheld", root / task)
    return Case(f"{task} left out of the catalogue", fingerprint, without(catalogue, task))


def mix(first: str, second: str, backbone, catalogue: Catalogue, scratch: Path) -> Case:
    """Half the images from each of two tasks of different modalities, against the full catalogue."""
    root = require_shared()
    files = every_other(half_b_files(first), CASE_N // 2) + every_other(half_b_files(second), CASE_N // 2)
    fingerprint = fingerprint_files(files, backbone, catalogue, scratch, f"mix-{first}-{second}", root)
    return Case(f"mix of {first} and {second}", fingerprint, catalogue)


def control_kind(control: str, backbone, catalogue: Catalogue, scratch: Path) -> Case:
    """The images a non-medical control is made of, against the full catalogue (controls are not candidates)."""
    folder = scratch / control
    write_control_images(control, folder)
    run = fingerprint_folder(folder, backbone, catalogue.edges, SamplingProtocol(n=CASE_N, seed=7),
                             name=control, keep_samples=True)
    return Case(f"images like the control {control}", run.fingerprint, catalogue)
