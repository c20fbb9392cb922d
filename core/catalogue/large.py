"""Large catalogues (thousands of tasks): store-backed, read lazily, shown as the user's neighbourhood.

A catalogue folder whose ``catalogue.json`` says ``"layout": "store"`` keeps no pairwise matrices and no map. Besides
the usual ``catalogue.json``, ``edges.npz`` and ``fingerprints/ID.npz`` it holds:

    store/         a compact source store for bKLD small (core.distances.source_store): ranks one fingerprint
                   against every task in one matrix-vector product plus an exact re-scoring of the best candidates
    facts.npz      what the verdict's catalogue-wide figures need besides the store's nearest neighbours (which
                   the store maintains on every addition): each task's twin distance, the nearest-legal-source
                   distance of tasks whose store nearest is a control or shares their images (``fallback``), and
                   ``pair_excess``, bKLD small of sampled pairs of different medical tasks above the target's twin
                   distance (the closeness scale)

Loading reads the metadata and opens the store: no fingerprint is read. What the app and the command line show is a
:func:`neighbourhood`: a small in-memory :class:`core.catalogue.store.Catalogue` of the tasks nearest the user's
fingerprint (or a chosen task) with the non-medical controls nearest it, whose matrices, map (MDS) and bootstrap are
computed on demand from the full fingerprints; the verdict's bKLD small facts are the catalogue-wide samples.
Adding a task appends its fingerprint file, its store row and its facts and rewrites ``catalogue.json`` (no
pairwise matrix, no map fit): seconds at 10,000 tasks.
"""
from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from core.atomic_file import replace_atomically
from core.catalogue.task_files import fingerprint_path, read_task_fingerprint
from core.distances.bank import bank_for, twin_distance
from core.distances.registry import BKLD_SMALL, spec_of
from core.distances.source_store import SourceStore
from core.errors import CatalogueError
from core.fingerprint.binning import BinEdges
from core.fingerprint.fingerprint import Fingerprint, check_comparable

#: core.catalogue.store.TaskInfo and .Catalogue: store imports this module, so their class is handed in (small_class)
TaskInfo = Any
Catalogue = Any

LAYOUT = "store"
STORE_FOLDER = "store"
FACTS_FILE = "facts.npz"
#: medical tasks a neighbourhood shows (plus the task it is centred on and up to NEIGHBOURHOOD_CONTROLS controls)
NEIGHBOURHOOD = 30
NEIGHBOURHOOD_CONTROLS = 2
#: medical targets of the pair sample when a large catalogue is written (each added task is one more)
FACT_SAMPLE = 200
#: sources of the pair sample: each sampled target is compared with this many sampled sources (the closeness scale)
PAIR_SOURCES = 40
#: sources compared with each added task for the pair sample
PAIR_SOURCES_PER_ADD = 8
#: nearest sources read from the store when looking for a task's nearest legal source
NEAREST_DEPTH = 40
#: neighbourhoods kept per catalogue object (each holds ~33 fingerprints, ~200 MB)
NEIGHBOURHOODS_KEPT = 3
#: a local catalogue that grows past this many tasks is converted to the store layout by its next addition
STORE_ABOVE = 100


@dataclass
class LargeCatalogue:
    """A store-backed catalogue: metadata of every task, the store, and fingerprints read on demand."""

    root: Path
    version: int
    backbone: str
    weights_sha256: str
    protocol: dict
    edges: BinEdges
    tasks: list[TaskInfo]
    manifest: dict
    store: SourceStore
    small_class: type  # core.catalogue.store.Catalogue: what a neighbourhood is
    knowledge: dict = field(default_factory=dict)
    _by_id: dict = field(default_factory=dict, repr=False)
    _kept: OrderedDict = field(default_factory=OrderedDict, repr=False)
    _own: list | None = field(default=None, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def __post_init__(self) -> None:
        self._by_id = {t.id: t for t in self.tasks}

    @property
    def probe(self) -> str:
        return self.manifest["probe"]

    @property
    def ids(self) -> list[str]:
        return [t.id for t in self.tasks]

    @property
    def candidate_ids(self) -> list[str]:
        return [t.id for t in self.tasks if t.kind != "control"]

    @property
    def versions(self) -> dict:
        return self.manifest.get("versions", {})

    def task(self, task_id: str) -> TaskInfo:
        try:
            return self._by_id[task_id]
        except KeyError:
            raise KeyError(f"no task '{task_id}' in the catalogue ({len(self.tasks)} tasks)") from None

    def alternate_probes(self) -> dict[str, Path]:
        return {}  # a large catalogue is made with one probe

    def for_probe(self, probe: str | None) -> LargeCatalogue:
        if probe not in (None, self.probe):
            raise CatalogueError(f"{self.root}: no catalogue made with probe '{probe}'; available: {self.probe}")
        return self

    def version_warnings(self, affects: str | None = None) -> list[str]:
        from core.features.environment import version_drift
        return version_drift(self.versions, affects=affects)

    def comparison_warnings(self, target: Fingerprint) -> list[str]:
        return check_comparable(target, self.fingerprint(self.ids[0]))

    def fingerprint(self, task_id: str) -> Fingerprint:
        """The full fingerprint of one task, read from its file (validated against the catalogue's identity)."""
        self.task(task_id)
        return read_task_fingerprint(self.root, task_id, self.manifest, self.edges)

    def facts(self) -> dict:
        return read_facts(self.root)

    def own_excess(self) -> list[float]:
        """Every medical task's nearest-legal-source distance above its twin (:func:`own_excess`), computed once
        per catalogue object."""
        with self._lock:
            if self._own is None:
                self._own = own_excess(self)
            return self._own

    def neighbourhood(self, target: Fingerprint | None = None, around: str | None = None,
                      size: int = NEIGHBOURHOOD) -> Catalogue:
        """A small in-memory catalogue of the ``size`` medical tasks nearest ``target`` (or task ``around``) by bKLD
        small, plus ``around`` itself and the nearest controls; kept for the last few centres."""
        if (target is None) == (around is None):
            raise ValueError("give a target fingerprint or a task id, not both")
        key = (around, size) if around is not None else (_digest(target), size)
        with self._lock:
            if key in self._kept:
                self._kept.move_to_end(key)
                return self._kept[key]
            made = neighbourhood(self, target if target is not None else self.fingerprint(around), around, size)
            self._kept[key] = made
            while len(self._kept) > NEIGHBOURHOODS_KEPT:
                self._kept.popitem(last=False)
            return made


def _digest(fingerprint: Fingerprint) -> tuple:
    import hashlib

    sha = hashlib.sha256(np.ascontiguousarray(fingerprint.counts).data)
    sha.update(np.ascontiguousarray(fingerprint.mean, dtype=np.float64).data)
    return fingerprint.meta.probe, sha.hexdigest()


def is_large(root: Path) -> bool:
    """Whether the catalogue folder uses the store layout (reads catalogue.json only)."""
    try:
        return json.loads((Path(root) / "catalogue.json").read_text()).get("layout") == LAYOUT
    except (OSError, ValueError, AttributeError):
        return False


def load_large(root: Path, manifest: dict, edges: BinEdges, tasks: list[TaskInfo],
               small_class: type) -> LargeCatalogue:
    """The large catalogue whose manifest, edges and tasks :func:`core.catalogue.store.load_catalogue` has read and
    checked: opens the store (no fingerprint is read). Tasks listed in catalogue.json must be in the store.
    ``small_class``: core.catalogue.store.Catalogue."""
    store = SourceStore.open(root / STORE_FOLDER)
    stored = set(store.ids)
    missing = [t.id for t in tasks if t.id not in stored]
    if missing:
        raise CatalogueError(f"{root}: {len(missing)} tasks of catalogue.json are not in its store (first: "
                             f"'{missing[0]}'); the catalogue is inconsistent, rebuild it")
    knowledge_path = root / "knowledge.json"
    knowledge = json.loads(knowledge_path.read_text()) if knowledge_path.is_file() else {}
    return LargeCatalogue(root, manifest["catalogue_version"], manifest["backbone"], manifest["weights_sha256"],
                          manifest["protocol"], edges, tasks, manifest, store, small_class,
                          knowledge if isinstance(knowledge, dict) else {})


# ---------------------------------------------------------------------------------------------- the neighbourhood
def neighbourhood_ids(large: LargeCatalogue, target: Fingerprint, around: str | None, size: int) -> list[str]:
    """Ids of the neighbourhood, in catalogue order: ``around``, the ``size`` nearest medical (non-control) tasks by
    bKLD small (exact values of the store's re-scored candidates) and the nearest controls (any controls when none
    is among the nearest)."""
    listed = set(large.ids)  # the store may hold a task whose addition was interrupted: not listed, not shown
    ranking = large.store.rank(target, top_k=min(len(large.store), size * 2 + 20))
    nearest = [i for i in ranking.ids if i in listed]
    chosen = {around} if around is not None else set()
    medical = [i for i in nearest if large.task(i).kind != "control" and i not in chosen][:size]
    controls = [i for i in nearest if large.task(i).kind == "control"][:NEIGHBOURHOOD_CONTROLS]
    if not controls:
        controls = [t.id for t in large.tasks if t.kind == "control"][:NEIGHBOURHOOD_CONTROLS]
    chosen |= set(medical) | set(controls)
    return [t.id for t in large.tasks if t.id in chosen]


def neighbourhood(large: LargeCatalogue, target: Fingerprint, around: str | None, size: int) -> Catalogue:
    """The neighbourhood of ``target`` as an in-memory catalogue (see :meth:`LargeCatalogue.neighbourhood`)."""
    from core.catalogue.taskmap import fit_map

    ids = neighbourhood_ids(large, target, around, size)
    fingerprints = {i: (target if i == around else large.fingerprint(i)) for i in ids}
    ordered = [fingerprints[i] for i in ids]
    small = bank_for(BKLD_SMALL, ordered).pairwise()
    coords, method = fit_map(small, prefer="mds")  # MDS: no numba compilation, 0.05 s at this size
    manifest = large.manifest
    catalogue = large.small_class(large.root, large.version, large.backbone, large.weights_sha256, large.protocol,
                          large.edges, [large.task(i) for i in ids], fingerprints,
                          {spec_of(BKLD_SMALL).stored_as: small}, coords, method,
                          large.knowledge, manifest.get("built", {}), large.probe, large.versions,
                          {}, neighbourhood_of={"total": len(large.tasks), "around": around, "size": size})
    catalogue._derived[("own excess", BKLD_SMALL)] = [threading.Lock(), large.own_excess(), True]
    catalogue._derived[("scale pairs", BKLD_SMALL)] = [threading.Lock(), large.facts()["pair_excess"], True]
    return catalogue


# ---------------------------------------------------------------------------------------------- facts
def read_facts(root: Path) -> dict:
    """{'twin': {task id: twin distance}, 'fallback': {task id: own excess}, 'pair_excess': (n,) float64}."""
    path = Path(root) / FACTS_FILE
    try:
        with np.load(path, allow_pickle=False) as data:
            return {"twin": dict(zip(map(str, data["twin_ids"]), map(float, data["twin"]))),
                    "fallback": dict(zip(map(str, data["fallback_ids"]), map(float, data["fallback"]))),
                    "pair_excess": np.asarray(data["pair_excess"], dtype=np.float64)}
    except FileNotFoundError:
        return {"twin": {}, "fallback": {}, "pair_excess": np.empty(0)}
    except (OSError, KeyError, ValueError) as err:
        raise CatalogueError(f"{path}: unreadable ({str(err)[:160]}); rebuild the catalogue") from None


def write_facts(root: Path, facts: dict) -> None:
    import io

    buffer = io.BytesIO()
    np.savez(buffer, twin_ids=np.array(list(facts["twin"]), dtype=str),
             twin=np.array(list(facts["twin"].values()), dtype=np.float64),
             fallback_ids=np.array(list(facts["fallback"]), dtype=str),
             fallback=np.array(list(facts["fallback"].values()), dtype=np.float64),
             pair_excess=np.asarray(facts["pair_excess"], dtype=np.float64))
    replace_atomically(Path(root) / FACTS_FILE, buffer.getvalue())


def _legal(tasks: dict[str, TaskInfo], target: str, source: str | None) -> bool:
    known = tasks.get(source) if source is not None else None
    return known is not None and source != target and known.kind == "medical" and \
        source not in set(tasks[target].shares_images_with)


def own_excess(large: LargeCatalogue) -> list[float]:
    """Each medical task's bKLD small from its nearest legal source above its twin distance (the reference of
    "of your kind", core.report.recommend.catalogue_excess), from the store's nearest neighbours, maintained on every
    addition; a task whose nearest is not a legal source (a control, a task sharing its images) takes the value
    measured when it was added (``fallback``), or is left out."""
    facts = large.facts()
    tasks = {t.id: t for t in large.tasks}
    distances = dict(zip(large.store.ids, large.store.nearest_distances()))
    sources = dict(zip(large.store.ids, large.store.nearest_sources()))
    values = []
    for task in large.tasks:
        if task.kind != "medical" or task.id not in facts["twin"]:
            continue
        if _legal(tasks, task.id, sources.get(task.id)):
            values.append(float(distances[task.id]) - facts["twin"][task.id])
        elif task.id in facts["fallback"]:
            values.append(facts["fallback"][task.id])
    return values


def own_excess_of(store: SourceStore, tasks: dict[str, TaskInfo], task_id: str,
                  fingerprint: Fingerprint, twin: float) -> float | None:
    """bKLD small from the task's nearest legal source (medical, not itself, no shared images) above its twin
    distance, from the store's ``NEAREST_DEPTH`` nearest; None when none of them is legal."""
    ranking = store.rank(fingerprint, top_k=min(len(store), NEAREST_DEPTH))
    for source, value in zip(ranking.ids, ranking.distances):
        if _legal(tasks, task_id, source):
            return float(value) - twin
    return None


def pair_excess_of(sources: list[str], bank, tasks: dict[str, TaskInfo], task_id: str,
                   fingerprint: Fingerprint, twin: float) -> np.ndarray:
    """bKLD small from each legal one of ``sources`` (their bKLD small SourceBank: ``bank``) to the task, above the
    task's twin distance."""
    if not sources:
        return np.empty(0)
    legal = np.array([_legal(tasks, task_id, i) for i in sources])
    return bank.distances(fingerprint)[legal] - twin


def task_facts(large: LargeCatalogue, twins: dict[str, float], seed: int = 0) -> dict:
    """The facts of a freshly written catalogue: ``twins`` (every task's), the fallback of every medical task whose
    store nearest is not a legal source, and the pair sample: ``FACT_SAMPLE`` sampled medical targets against
    ``PAIR_SOURCES`` sampled sources."""
    rng = np.random.default_rng(seed)
    tasks = {t.id: t for t in large.tasks}
    fallback = {}
    for task_id, source in zip(large.store.ids, large.store.nearest_sources()):
        if task_id in tasks and tasks[task_id].kind == "medical" and not _legal(tasks, task_id, source):
            value = own_excess_of(large.store, tasks, task_id, large.fingerprint(task_id), twins[task_id])
            if value is not None:
                fallback[task_id] = value
    medical = [t.id for t in large.tasks if t.kind == "medical"]
    sample = sorted(rng.choice(len(medical), size=min(FACT_SAMPLE, len(medical)), replace=False)) if medical else []
    sample_ids = [medical[i] for i in sample]
    source_ids = sample_ids[:: max(1, len(sample_ids) // PAIR_SOURCES)][:PAIR_SOURCES]
    bank = bank_for(BKLD_SMALL, [large.fingerprint(i) for i in source_ids]) if source_ids else None
    pairs = [pair_excess_of(source_ids, bank, tasks, i, large.fingerprint(i), twins[i]) for i in sample_ids]
    return {"twin": twins, "fallback": fallback, "pair_excess": np.concatenate(pairs or [np.empty(0)])}


# ---------------------------------------------------------------------------------------------- writing
def write_manifest(root: Path, manifest: dict, tasks: list[TaskInfo], edges: BinEdges) -> dict:
    """catalogue.json of a large catalogue (``manifest`` holds catalogue_version), atomically; returns it."""
    names = [f.name for f in fields(tasks[0])] if tasks else []
    full = dict(manifest, edges_id=edges.identity, layout=LAYOUT,
                tasks=[{name: getattr(t, name) for name in names} for t in tasks])
    full.pop("map_method", None)
    # compact, without indentation: json's C encoder (indent= takes its pure-Python one, 1 s at 10,000 tasks)
    replace_atomically(Path(root) / "catalogue.json",
                       (json.dumps(full, sort_keys=True, separators=(",", ":")) + "\n").encode())
    return full


def write_large_catalogue(root: Path, manifest: dict, edges: BinEdges,
                          tasks: Iterable[tuple[TaskInfo, Fingerprint]], small_class: type, seed: int = 0,
                          files_written_by: Callable[[], None] | None = None) -> LargeCatalogue:
    """Write a new store-layout catalogue to the empty or new folder ``root`` from (task, fingerprint) pairs (an
    iterable: one fingerprint in memory at a time), then its sampled facts. Files of ``root`` are written in place:
    build into a new folder (core.catalogue.store.replace_folder's staging folder when converting).
    ``files_written_by``: the fingerprint files are written by others (e.g. worker processes); called (to wait for
    them) before the facts read any."""
    root = Path(root)
    (root / "fingerprints").mkdir(parents=True, exist_ok=True)
    edges.save(root / "edges.npz")
    listed: list[TaskInfo] = []
    twins: dict[str, float] = {}
    store = None
    batch: list[tuple[str, Fingerprint]] = []
    for info, fingerprint in tasks:
        if files_written_by is None:
            fingerprint.save(fingerprint_path(root, info.id), overwrite=True)
        if store is None:
            store = SourceStore.open(root / STORE_FOLDER, like=fingerprint, distance=BKLD_SMALL)
        batch.append((info.id, fingerprint))
        listed.append(info)
        twins[info.id] = twin_distance(BKLD_SMALL, fingerprint)
        if len(batch) >= 64:
            store.add_many(batch)
            batch = []
    if store is None:
        raise CatalogueError(f"{root}: a catalogue needs at least one task")
    store.add_many(batch)
    write_facts(root, {"twin": twins, "fallback": {}, "pair_excess": np.empty(0)})
    full = write_manifest(root, manifest, listed, edges)
    if files_written_by is not None:
        files_written_by()
    large = load_large(root, full, edges, listed, small_class)
    write_facts(root, task_facts(large, twins, seed))
    return large


def add_large(large: LargeCatalogue, fingerprint: Fingerprint, task: TaskInfo, replace: bool) -> None:
    """Add one task to a large catalogue in place (the caller holds its writer lock): the fingerprint file, the
    store row, the task's facts, then catalogue.json (the task is in the catalogue once catalogue.json lists it;
    an addition killed before that leaves a fingerprint file and a store row that nothing lists)."""
    local = large.root
    check_comparable(fingerprint, large.fingerprint(large.ids[0]))
    if task.id in large.ids:
        raise CatalogueError(f"task id '{task.id}' is already in {local}; choose another name" +
                             (" (a large catalogue does not replace tasks)" if replace else ""))
    if task.id in set(large.store.ids):
        raise CatalogueError(f"task id '{task.id}' was left in {local} by an interrupted addition; choose another "
                             "name")
    fingerprint = fingerprint.renamed(task.name)
    fingerprint.save(fingerprint_path(local, task.id), overwrite=True)
    large.store.add(fingerprint, task.id)
    tasks = {t.id: t for t in large.tasks}
    tasks[task.id] = task
    facts = large.facts()
    twin = facts["twin"][task.id] = twin_distance(BKLD_SMALL, fingerprint)
    if task.kind == "medical":
        ranking = large.store.nearest_sources()[large.store.ids.index(task.id)]
        if not _legal(tasks, task.id, ranking):
            value = own_excess_of(large.store, tasks, task.id, fingerprint, twin)
            if value is not None:
                facts["fallback"][task.id] = value
        rng = np.random.default_rng(len(large.tasks))
        medical = [t.id for t in large.tasks if t.kind == "medical"]
        picked = rng.choice(len(medical), size=min(PAIR_SOURCES_PER_ADD, len(medical)), replace=False) \
            if medical else []
        sources = [medical[i] for i in picked]
        bank = bank_for(BKLD_SMALL, [large.fingerprint(i) for i in sources]) if sources else None
        facts["pair_excess"] = np.concatenate([facts["pair_excess"],
                                               pair_excess_of(sources, bank, tasks, task.id, fingerprint, twin)])
    write_facts(local, facts)
    write_manifest(local, {k: v for k, v in large.manifest.items() if k != "tasks"}, large.tasks + [task], large.edges)


def convert_to_large(catalogue: Catalogue, staging: Path, manifest: dict,
                     extra: tuple[TaskInfo, Fingerprint]) -> None:
    """Write ``catalogue``'s tasks plus ``extra`` as a store-layout catalogue into ``staging`` (a fresh folder)."""
    pairs = [(info, catalogue.fingerprints[info.id]) for info in catalogue.tasks if info.id != extra[0].id]
    write_large_catalogue(staging, manifest, catalogue.edges, pairs + [extra], type(catalogue))

