"""Large catalogues (thousands of tasks): store-backed, read lazily, shown as the user's neighbourhood.

A catalogue folder whose ``catalogue.json`` says ``"layout": "store"`` keeps no pairwise matrices and no map. Besides
the usual ``catalogue.json``, ``edges.npz`` and ``fingerprints/ID.npz`` it holds:

    store/         a compact source store for bKLD small (core.distances.source_store): ranks one fingerprint
                   against every task in one matrix-vector product plus an exact re-scoring of the best candidates
    facts.npz      the catalogue-wide figures the verdict reads, as samples: ``own_excess`` (a medical task's
                   distance from its nearest legal source above its twin distance, for sampled tasks and every task
                   added since) and ``pair_excess`` (the same for sampled pairs of different medical tasks: the
                   closeness scale)

Loading reads the metadata and opens the store: no fingerprint is read. What the app and the command line show is a
:func:`neighbourhood`: a small in-memory :class:`core.catalogue.store.Catalogue` of the tasks nearest the user's
fingerprint (or a chosen task) with the non-medical controls nearest it, whose matrices, map (MDS) and bootstrap are
computed on demand from the full fingerprints; the verdict's bKLD small facts are the catalogue-wide samples.
Adding a task appends its fingerprint file, its store row and its facts and rewrites ``catalogue.json`` (no
pairwise matrix, no map fit): seconds at 10,000 tasks.
"""
from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from core.catalogue.store import CATALOGUE_VERSION, Catalogue, TaskInfo
from core.distances.bank import bank_for, twin_distance
from core.distances.registry import BKLD_SMALL
from core.distances.source_store import SourceStore
from core.errors import CatalogueError, FingerprintFileError
from core.fingerprint.binning import BinEdges
from core.fingerprint.fingerprint import Fingerprint, check_comparable

LAYOUT = "store"
STORE_FOLDER = "store"
FACTS_FILE = "facts.npz"
#: medical tasks a neighbourhood shows (plus the task it is centred on and up to NEIGHBOURHOOD_CONTROLS controls)
NEIGHBOURHOOD = 30
NEIGHBOURHOOD_CONTROLS = 2
#: medical tasks whose nearest-source distance is measured when a large catalogue is written (the distribution the
#: verdict's "of your kind" reads); every task added later is measured too
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
    knowledge: dict = field(default_factory=dict)
    _by_id: dict = field(default_factory=dict, repr=False)
    _kept: OrderedDict = field(default_factory=OrderedDict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

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
        return read_fingerprint(self.root, task_id, self.manifest, self.edges)

    def facts(self) -> dict[str, np.ndarray]:
        return read_facts(self.root)

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


def read_fingerprint(root: Path, task_id: str, manifest: dict, edges: BinEdges) -> Fingerprint:
    try:
        fingerprint = Fingerprint.load(root / "fingerprints" / f"{task_id}.npz")
    except FingerprintFileError as err:
        raise CatalogueError(str(err)) from None
    if fingerprint.meta.edges_id != edges.identity or fingerprint.meta.weights_sha256 != \
            manifest["weights_sha256"] or fingerprint.meta.probe != manifest["probe"]:
        raise CatalogueError(f"{root}: fingerprint of '{task_id}' was made with other edges, weights or probe")
    return fingerprint


def is_large(root: Path) -> bool:
    """Whether the catalogue folder uses the store layout (reads catalogue.json only)."""
    try:
        return json.loads((Path(root) / "catalogue.json").read_text()).get("layout") == LAYOUT
    except (OSError, ValueError, AttributeError):
        return False


def load_large(root: Path, manifest: dict, edges: BinEdges, tasks: list[TaskInfo]) -> LargeCatalogue:
    """The large catalogue whose manifest, edges and tasks :func:`core.catalogue.store.load_catalogue` has read and
    checked: opens the store (no fingerprint is read). Tasks listed in catalogue.json must be in the store."""
    store = SourceStore.open(root / STORE_FOLDER)
    missing = [t.id for t in tasks if t.id not in set(store.ids)]
    if missing:
        raise CatalogueError(f"{root}: {len(missing)} tasks of catalogue.json are not in its store (first: "
                             f"'{missing[0]}'); the catalogue is inconsistent, rebuild it")
    knowledge_path = root / "knowledge.json"
    knowledge = json.loads(knowledge_path.read_text()) if knowledge_path.is_file() else {}
    return LargeCatalogue(root, CATALOGUE_VERSION, manifest["backbone"], manifest["weights_sha256"],
                          manifest["protocol"], edges, tasks, manifest, store, knowledge if isinstance(knowledge, dict)
                          else {})


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
    catalogue = Catalogue(large.root, CATALOGUE_VERSION, large.backbone, large.weights_sha256, large.protocol,
                          large.edges, [large.task(i) for i in ids], fingerprints, small, None, coords, method,
                          large.knowledge, manifest.get("built", {}), large.probe, large.versions,
                          {}, neighbourhood_of={"total": len(large.tasks), "around": around, "size": size})
    facts = large.facts()
    catalogue._derived[("own excess", BKLD_SMALL)] = [threading.Lock(), [float(v) for v in facts["own_excess"]], True]
    catalogue._derived[("scale pairs", BKLD_SMALL)] = [threading.Lock(), facts["pair_excess"], True]
    return catalogue


def neighbourhood_for(catalogue: Catalogue | LargeCatalogue, target: Fingerprint) -> Catalogue:
    """``catalogue`` itself, or a large catalogue's neighbourhood of ``target``."""
    return catalogue.neighbourhood(target) if isinstance(catalogue, LargeCatalogue) else catalogue


# ---------------------------------------------------------------------------------------------- facts
def read_facts(root: Path) -> dict[str, np.ndarray]:
    path = Path(root) / FACTS_FILE
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: np.asarray(data[name], dtype=np.float64) for name in ("own_excess", "pair_excess")}
    except FileNotFoundError:
        return {"own_excess": np.empty(0), "pair_excess": np.empty(0)}
    except (OSError, KeyError, ValueError) as err:
        raise CatalogueError(f"{path}: unreadable ({str(err)[:160]}); rebuild the catalogue's facts") from None


def _write_atomic(path: Path, payload: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "wb") as handle:
        handle.write(payload)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def write_facts(root: Path, own_excess: np.ndarray, pair_excess: np.ndarray) -> None:
    import io

    buffer = io.BytesIO()
    np.savez(buffer, own_excess=np.asarray(own_excess, dtype=np.float64),
             pair_excess=np.asarray(pair_excess, dtype=np.float64))
    _write_atomic(Path(root) / FACTS_FILE, buffer.getvalue())


def own_excess_of(store: SourceStore, tasks: dict[str, TaskInfo], task_id: str,
                  fingerprint: Fingerprint) -> float | None:
    """bKLD small from the task's nearest legal source (medical, not itself, no shared images) above its twin
    distance, from the store's ``NEAREST_DEPTH`` nearest; None when none of them is legal."""
    info = tasks[task_id]
    shared = set(info.shares_images_with)
    ranking = store.rank(fingerprint, top_k=min(len(store), NEAREST_DEPTH))
    for source, value in zip(ranking.ids, ranking.distances):
        known = tasks.get(source)
        if source != task_id and source not in shared and known is not None and known.kind == "medical":
            return float(value) - twin_distance(BKLD_SMALL, fingerprint)
    return None


def pair_excess_of(sources: list[str], bank, tasks: dict[str, TaskInfo], task_id: str,
                   fingerprint: Fingerprint) -> np.ndarray:
    """bKLD small from each legal one of ``sources`` (their bKLD small SourceBank: ``bank``) to the task, above the
    task's twin distance."""
    if not sources:
        return np.empty(0)
    shared = set(tasks[task_id].shares_images_with)
    legal = np.array([i != task_id and i not in shared for i in sources])
    values = bank.distances(fingerprint)[legal]
    return values - twin_distance(BKLD_SMALL, fingerprint)


def sampled_facts(large: LargeCatalogue, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(own_excess, pair_excess) for a random sample of ``FACT_SAMPLE`` medical tasks (all when fewer): each one's
    nearest legal source from the store, and its distance from ``PAIR_SOURCES`` sampled sources."""
    rng = np.random.default_rng(seed)
    medical = [t.id for t in large.tasks if t.kind == "medical"]
    sample = sorted(rng.choice(len(medical), size=min(FACT_SAMPLE, len(medical)), replace=False)) if medical else []
    sample_ids = [medical[i] for i in sample]
    source_ids = sample_ids[:: max(1, len(sample_ids) // PAIR_SOURCES)][:PAIR_SOURCES]
    tasks = {t.id: t for t in large.tasks}
    bank = bank_for(BKLD_SMALL, [large.fingerprint(i) for i in source_ids]) if source_ids else None
    own, pairs = [], []
    for task_id in sample_ids:
        fingerprint = large.fingerprint(task_id)
        value = own_excess_of(large.store, tasks, task_id, fingerprint)
        if value is not None:
            own.append(value)
        pairs.append(pair_excess_of(source_ids, bank, tasks, task_id, fingerprint))
    return np.asarray(own), np.concatenate(pairs or [np.empty(0)])


# ---------------------------------------------------------------------------------------------- writing
def write_manifest(root: Path, manifest: dict, tasks: list[TaskInfo], edges: BinEdges) -> None:
    full = dict(manifest, catalogue_version=CATALOGUE_VERSION, edges_id=edges.identity, layout=LAYOUT,
                tasks=[asdict(t) for t in tasks])
    full.pop("map_method", None)
    _write_atomic(Path(root) / "catalogue.json", (json.dumps(full, indent=1, sort_keys=True) + "\n").encode())


def write_large_catalogue(root: Path, manifest: dict, edges: BinEdges,
                          tasks: Iterable[tuple[TaskInfo, Fingerprint]], seed: int = 0) -> LargeCatalogue:
    """Write a new store-layout catalogue to the empty or new folder ``root`` from (task, fingerprint) pairs (an
    iterable: one fingerprint in memory at a time), then its sampled facts. Files of ``root`` are written in place:
    build into a new folder (core.catalogue.store.replace_folder's staging folder when converting)."""
    from core.catalogue.store import load_catalogue

    root = Path(root)
    (root / "fingerprints").mkdir(parents=True, exist_ok=True)
    edges.save(root / "edges.npz")
    listed: list[TaskInfo] = []
    store = None
    batch: list[tuple[str, Fingerprint]] = []
    for info, fingerprint in tasks:
        fingerprint.save(root / "fingerprints" / f"{info.id}.npz", overwrite=True)
        if store is None:
            store = SourceStore.open(root / STORE_FOLDER, like=fingerprint, distance=BKLD_SMALL)
        batch.append((info.id, fingerprint))
        listed.append(info)
        if len(batch) >= 64:
            store.add_many(batch)
            batch = []
    if store is None:
        raise CatalogueError(f"{root}: a catalogue needs at least one task")
    store.add_many(batch)
    write_facts(root, np.empty(0), np.empty(0))
    write_manifest(root, manifest, listed, edges)
    large = load_catalogue(root)
    write_facts(root, *sampled_facts(large, seed))
    return large


def add_large(local: Path, fingerprint: Fingerprint, task: TaskInfo, replace: bool) -> LargeCatalogue:
    """Add one task to a large catalogue in place (the caller holds its writer lock): the fingerprint file, the
    store row, the task's facts, then catalogue.json (the task is in the catalogue once catalogue.json lists it;
    an addition killed before that leaves a fingerprint file and a store row that nothing lists)."""
    from core.catalogue.store import _read_json, load_catalogue

    large = load_catalogue(local)
    check_comparable(fingerprint, large.fingerprint(large.ids[0]))
    if task.id in large.ids:
        raise CatalogueError(f"task id '{task.id}' is already in {local}; choose another name" +
                             (" (a large catalogue does not replace tasks)" if replace else ""))
    if task.id in set(large.store.ids):
        raise CatalogueError(f"task id '{task.id}' was left in {local} by an interrupted addition; choose another "
                             "name")
    fingerprint = fingerprint.renamed(task.name)
    fingerprint.save(local / "fingerprints" / f"{task.id}.npz", overwrite=True)
    large.store.add(fingerprint, task.id)
    tasks = {t.id: t for t in large.tasks}
    tasks[task.id] = task
    facts = large.facts()
    own, pairs = facts["own_excess"], facts["pair_excess"]
    if task.kind == "medical":
        value = own_excess_of(large.store, tasks, task.id, fingerprint)
        rng = np.random.default_rng(len(large.tasks))
        medical = [t.id for t in large.tasks if t.kind == "medical"]
        picked = rng.choice(len(medical), size=min(PAIR_SOURCES_PER_ADD, len(medical)), replace=False) \
            if medical else []
        sources = [medical[i] for i in picked]
        bank = bank_for(BKLD_SMALL, [large.fingerprint(i) for i in sources]) if sources else None
        own = np.append(own, [] if value is None else [value])
        pairs = np.concatenate([pairs, pair_excess_of(sources, bank, tasks, task.id, fingerprint)])
    write_facts(local, own, pairs)
    write_manifest(local, _read_json(local / "catalogue.json"), large.tasks + [task], large.edges)
    return load_catalogue(local)


def convert_to_large(catalogue: Catalogue, staging: Path, manifest: dict,
                     extra: tuple[TaskInfo, Fingerprint]) -> None:
    """Write ``catalogue``'s tasks plus ``extra`` as a store-layout catalogue into ``staging`` (a fresh folder)."""
    pairs = [(info, catalogue.fingerprints[info.id]) for info in catalogue.tasks if info.id != extra[0].id]
    write_large_catalogue(staging, manifest, catalogue.edges, pairs + [extra])

