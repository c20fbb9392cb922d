"""The cloud's tasks ranked for a query fingerprint with the local catalogue's maths: the comparable tasks become an
in-memory :class:`core.catalogue.store.Catalogue` and :func:`core.report.recommend.recommendations` and
:func:`core.report.recommend.how_close` rank them and give the verdict, exactly as ``python -m core compare`` does.

Tasks are comparable when their features are: same backbone, probe layer, weights, bin edges, feature dimension and
sampling pipeline (:func:`frame_of`, the hard differences of :func:`core.fingerprint.fingerprint.check_comparable`).
A query is ranked against the tasks of its own frame only; when there are none, it is refused, saying so.

Ranking by bKLD small goes through the frame's source store (:mod:`core.cloud.frames`, :func:`rank_in_store`):
exact distances of the nearest tasks, and the verdict's reference from the store's maintained nearest-neighbour
distances, so no pairwise matrix is built. The other distances are ranked with an in-memory catalogue
(:func:`cached_catalogue`, :func:`rank`: its pairwise matrix costs O(T^2), recomputed when the frame's tasks change),
for frames of up to ``IN_MEMORY_UP_TO`` tasks only."""
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
        second = record.get("second_opinion_rank")
        rows.append(task_row(by_id[record["task_id"]], int(record["rank"]), float(record["distance"]),
                             None if second is None or pd.isna(second) else int(second)))
    verdict = how_close(catalogue, table, query, distance).message if len(tasks) >= 2 else ONE_TASK
    return {"distance": distance, "direction": DIRECTION, "verdict": verdict, "tasks": rows}


#: the verdict when the frame holds a single task
ONE_TASK = ("Only one comparable task is published: there is no scale yet to say whether it is close (the verdict "
            "needs at least two tasks).")
DIRECTION = "source -> your task; lower = closer"


def task_row(task: dict, rank: int, distance: float, second_opinion_rank: int | None) -> dict:
    """One row of a ranking: the task (as the service describes it) at ``rank`` with its ``distance`` to the query,
    its card, publisher and experiences, and its rank under the second opinion when there is one."""
    row = {"rank": rank, "task_id": task["id"], "distance": distance, "card": task["card"],
           "publisher": task["publisher"], "published_at": task["published_at"],
           "experiences": task.get("experiences", [])}
    if second_opinion_rank is not None:
        row["second_opinion_rank"] = second_opinion_rank
    return row


#: frames up to this many tasks may also be ranked by the other distances (in memory, with the catalogue's maths),
#: and their rankings carry the second opinion's rank
IN_MEMORY_UP_TO = 200
#: rows a ranking from a store lists at most: the user's neighbourhood, not the whole cloud
LISTED = 50
_fingerprints: dict[str, dict[str, Fingerprint]] = {}


def rank_in_store(store, frame_ids: list[str], query: Fingerprint, describe: "callable", load: "callable") -> dict:
    """:func:`rank` through ``store`` (a :class:`core.distances.source_store.SourceStore` of the frame's tasks,
    bKLD small): its ``LISTED`` nearest tasks with exact distances, described by ``describe(ids) -> {id: task}``.
    The verdict's reference (each task's excess over its own nearest other task) comes from the store's maintained
    nearest and twin distances, not from a pairwise matrix. Frames of up to ``IN_MEMORY_UP_TO`` tasks list every
    task (the same rows and values as :func:`rank`) and carry the second opinion's rank (VDNA, over every task;
    ``load(task_id)`` gives a fingerprint, kept per frame)."""
    from core.distances.bank import bank_for
    from core.distances.registry import SECOND_OPINION
    from core.report.recommend import closeness_from

    distance = store.spec.name
    small = len(frame_ids) <= IN_MEMORY_UP_TO
    ranking = store.rank(query, top_k=None if small else LISTED)
    by_id = describe(ranking.ids)
    second_rank: dict[str, int] = {}
    if small:
        kept = _fingerprints.setdefault(store.root.name, {})
        for stale in set(kept) - set(frame_ids):
            del kept[stale]
        for task_id in frame_ids:
            if task_id not in kept:
                kept[task_id] = load(task_id)
        sources = [kept[i] for i in frame_ids]
        second = bank_for(SECOND_OPINION, sources).distances(query)
        second_rank = {frame_ids[k]: r + 1 for r, k in enumerate(np.argsort(second, kind="stable"))}
    rows = [task_row(by_id[task_id], position + 1, float(value), second_rank.get(task_id))
            for position, (task_id, value) in enumerate(zip(ranking.ids, ranking.distances))]
    if len(frame_ids) >= 2:
        nearest, twins = store.nearest_distances(), store.twin_distances()
        own = [float(n - t) for n, t, source in zip(nearest, twins, store.nearest_sources()) if source is not None]
        table = pd.DataFrame({"task": [by_id[i]["card"]["name"] for i in ranking.ids], "kind": "medical",
                              "distance": ranking.distances})
        verdict = closeness_from(own, table, query, distance).message
    else:
        verdict = ONE_TASK
    return {"distance": distance, "direction": DIRECTION, "verdict": verdict, "tasks": rows, "listed": len(rows),
            "comparable": len(frame_ids)}
