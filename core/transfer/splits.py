"""Class-balanced train/test splits of the catalogue's task folders, stored by image id, and the legal pairs.

An image id is its path inside its task folder (``CLASS/NAME.jpg``). Each class gives
``min(train_per_class, count // 2)`` images to training (drawn with a fixed seed); the rest are the held-out test
images. A pair (source, target) is legal when they differ and share no images (SOURCES.json
``shares_images_with``), as in METHOD.md section 6.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def read_sources(catalogue_dir: Path) -> dict:
    """The ``tasks`` of ``catalogue_dir/SOURCES.json`` (medical tasks only: controls are not part of it)."""
    path = Path(catalogue_dir) / "SOURCES.json"
    try:
        tasks = json.loads(path.read_text())["tasks"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: not a readable SOURCES.json with 'tasks' ({err})") from None
    return {task: facts for task, facts in tasks.items() if not facts.get("control")}


def task_images(task_dir: Path) -> dict[str, list[str]]:
    """{class: sorted image ids} of a TASK/CLASS/IMAGE folder."""
    classes = {}
    for class_dir in sorted(p for p in Path(task_dir).iterdir() if p.is_dir()):
        ids = sorted(f"{class_dir.name}/{f.name}" for f in class_dir.iterdir()
                     if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        if ids:
            classes[class_dir.name] = ids
    if len(classes) < 2:
        raise ValueError(f"{task_dir}: needs at least two class folders with images, found {len(classes)}")
    return classes


def make_split(classes: dict[str, list[str]], train_per_class: int, seed: int) -> dict[str, list[str]]:
    """{'train': ids, 'test': ids}: per class min(train_per_class, count // 2) training images, the rest test."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for name in sorted(classes):
        ids = sorted(classes[name])
        order = rng.permutation(len(ids))
        k = min(train_per_class, len(ids) // 2)
        train += sorted(ids[i] for i in order[:k])
        test += sorted(ids[i] for i in order[k:])
    return {"train": train, "test": test}


def make_splits(catalogue_dir: Path, train_per_class: int, seed: int) -> dict:
    """Splits of every medical task in ``catalogue_dir``, with the rule that made them."""
    tasks = read_sources(catalogue_dir)
    out = {"rule": f"per class min({train_per_class}, count // 2) training images, seed {seed}; the rest test",
           "train_per_class": train_per_class, "seed": seed, "tasks": {}}
    for task in sorted(tasks):
        out["tasks"][task] = make_split(task_images(Path(catalogue_dir) / task), train_per_class, seed)
    return out


def load_or_make_splits(path: Path, catalogue_dir: Path, train_per_class: int, seed: int) -> dict:
    """The stored splits at ``path`` (made and written once, when missing). Stored splits made with another rule
    are refused rather than silently reused."""
    path = Path(path)
    if path.is_file():
        try:
            stored = json.loads(path.read_text())
            rule = (stored["train_per_class"], stored["seed"], stored["tasks"])
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{path}: not a splits file ({err})") from None
        if rule[:2] != (train_per_class, seed):
            raise ValueError(f"{path}: made with train_per_class {rule[0]}, seed {rule[1]}; this protocol asks for "
                             f"{train_per_class}, {seed} (use another --splits file)")
        return stored
    splits = make_splits(catalogue_dir, train_per_class, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(splits, indent=0) + "\n")
    return splits


def illegal_sources(tasks: dict) -> dict[str, set[str]]:
    """{target: tasks that may not be its source}: itself and every task sharing images with it (either way)."""
    out = {task: {task} for task in tasks}
    for task, facts in tasks.items():
        for other in facts.get("shares_images_with") or []:
            if other in out:
                out[task].add(other)
                out[other].add(task)
    return out


def legal_pairs(tasks: dict) -> list[tuple[str, str]]:
    """Every legal (source, target), targets in sorted order."""
    banned = illegal_sources(tasks)
    return [(source, target) for target in sorted(tasks) for source in sorted(tasks) if source not in banned[target]]
