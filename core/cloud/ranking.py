"""The cloud's tasks ranked for a query fingerprint with the local catalogue's maths: the comparable tasks become an
in-memory :class:`core.catalogue.store.Catalogue` and :func:`core.report.recommend.recommendations` and
:func:`core.report.recommend.how_close` rank them and give the verdict, exactly as ``python -m core compare`` does.

Tasks are comparable when their features are: same backbone, probe layer, weights, bin edges, feature dimension and
sampling pipeline (:func:`frame_of`, the hard differences of :func:`core.fingerprint.fingerprint.check_comparable`).
A query is ranked against the tasks of its own frame only; when there are none, it is refused, saying so.

The pairwise matrix the verdict needs costs O(T^2); it is kept per frame and recomputed when the frame's tasks
change (a publish or withdrawal)."""
from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import numpy as np
import pandas as pd

from core.catalogue.store import CATALOGUE_VERSION, Catalogue, TaskInfo, stored_matrices
from core.fingerprint.fingerprint import Fingerprint, FingerprintMeta

CLOUD_ROOT = Path("knowledge-cloud")  # a label: a cloud catalogue has no folder
_cache: dict[str, tuple[tuple, Catalogue]] = {}
_cache_lock = threading.Lock()


def frame_identity(meta: FingerprintMeta) -> dict:
    """The settings that must be equal for two fingerprints to be compared."""
    return {"backbone": meta.backbone, "probe": meta.probe, "weights_sha256": meta.weights_sha256,
            "edges_id": meta.edges_id, "feature_dim": meta.feature_dim,
            "pipeline": meta.protocol.get("pipeline"), "augment": meta.protocol.get("augment")}


def frame_of(meta: FingerprintMeta) -> str:
    """A 32-hex-digit digest of :func:`frame_identity`."""
    text = json.dumps(frame_identity(meta), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def describe_frame(meta: FingerprintMeta) -> str:
    return (f"backbone {meta.backbone}, probe {meta.probe}, weights {meta.weights_sha256[:12]}…, bin edges "
            f"{meta.edges_id}, {meta.feature_dim} features, pipeline {meta.protocol.get('pipeline')}")


def task_info(task: dict) -> TaskInfo:
    """A cloud task (as :mod:`core.cloud.service` describes it) as catalogue metadata."""
    card = task["card"]
    return TaskInfo(id=task["id"], name=card["name"], modality=card["modality"], anatomy=card["anatomy"],
                    classes=dict(card["classes"]), n_images=int(sum(card["classes"].values())), kind="medical",
                    source=f"knowledge cloud, published by {task['publisher']}", licence=card["terms_of_reuse"])


def cloud_catalogue(tasks: list[dict], fingerprints: dict[str, Fingerprint]) -> Catalogue:
    """An in-memory catalogue of ``tasks`` (one frame) with their pairwise bKLD matrices; no edges, no map."""
    if not tasks:
        raise ValueError("a cloud catalogue needs at least one task")
    ordered = [fingerprints[t["id"]] for t in tasks]
    meta = ordered[0].meta
    return Catalogue(root=CLOUD_ROOT, version=CATALOGUE_VERSION, backbone=meta.backbone,
                     weights_sha256=meta.weights_sha256, protocol=dict(meta.protocol), edges=None,
                     tasks=[task_info(t) for t in tasks], fingerprints=dict(fingerprints),
                     matrices=stored_matrices(ordered), coords=np.zeros((len(tasks), 2)), map_method="none",
                     knowledge={}, built={}, probe=meta.probe)


def cached_catalogue(frame: str, tasks: list[dict], load: "callable") -> Catalogue:
    """The frame's catalogue, rebuilt only when its tasks (ids and fingerprint digests) changed; ``load(task_id)``
    returns a task's Fingerprint."""
    key = tuple((t["id"], t["fingerprint"]["sha256"], t["card"]["name"]) for t in tasks)
    with _cache_lock:
        cached = _cache.get(frame)
    if cached is not None and cached[0] == key:
        return cached[1]
    previous = cached[1].fingerprints if cached is not None else {}
    fingerprints = {t["id"]: previous.get(t["id"]) or load(t["id"]) for t in tasks}
    catalogue = cloud_catalogue(tasks, fingerprints)
    with _cache_lock:
        _cache[frame] = (key, catalogue)
    return catalogue


def rank(catalogue: Catalogue, tasks: list[dict], query: Fingerprint, distance: str) -> dict:
    """The ranking of ``catalogue`` (made from ``tasks``) for ``query``: rows nearest first, each with its card,
    publisher and experiences, plus the verdict of :func:`core.report.recommend.how_close`."""
    from core.report.recommend import how_close, recommendations

    catalogue.comparison_warnings(query)  # the frame matched already; this refuses anything it missed
    table = recommendations(catalogue, query, distance)
    by_id = {t["id"]: t for t in tasks}
    rows = []
    for record in table.to_dict("records"):
        task = by_id[record["task_id"]]
        row = {"rank": int(record["rank"]), "task_id": task["id"], "distance": float(record["distance"]),
               "card": task["card"], "publisher": task["publisher"], "published_at": task["published_at"],
               "experiences": task.get("experiences", [])}
        second = record.get("second_opinion_rank")
        if second is not None and not pd.isna(second):
            row["second_opinion_rank"] = int(second)
        rows.append(row)
    if len(tasks) >= 2:
        verdict = how_close(catalogue, table, query, distance).message
    else:
        verdict = ("Only one comparable task is published: there is no scale yet to say whether it is close "
                   "(the verdict needs at least two tasks).")
    return {"distance": distance, "direction": "source -> your task; lower = closer", "verdict": verdict,
            "tasks": rows}
