"""The catalogue: public tasks' fingerprints with metadata, shared bin edges, pairwise distances, fixed map
coordinates and measured knowledge from the paper. Read-only once shipped; users add their own tasks to a local
copy (:func:`add_to_local_copy`).

Layout of a catalogue folder::

    catalogue.json        version, backbone, weights sha256, edges id, protocol, tasks with metadata
    edges.npz             bin edges (lo, hi per feature)
    fingerprints/ID.npz   one fingerprint per task (core.fingerprint.fingerprint format)
    matrices.npz          task_ids, one (T, T) matrix per stored distance under its registry entry's
                          ``stored_as`` (bkld_small, bkld_large; rows = source, columns = target), coords (T, 2)
    halves/ID.a.npz, .b.npz  fingerprints of two image-disjoint halves of each task (for the validity report)
    validity.json         the validity report (core.catalogue.validity): can the ranking be trusted, per probe
                          and distance
    probes/NAME/          the same catalogue made with another probe layer of the backbone (same layout)
    knowledge.json        what the paper measured for linked tasks (may be absent in local additions)
    SOURCES.json          provenance and licences of the images the fingerprints were computed from
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
import unicodedata
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np

from core.catalogue.lock import recover, writer_lock
from core.catalogue.task_files import fingerprint_path, read_task_fingerprint
from core.distances.bank import SourceBank, bank_for
from core.distances.registry import BKLD_SMALL, DEFAULT_DISTANCE, DISTANCES, DistanceSpec, spec_of
from core.errors import CatalogueError, FingerprintFileError
from core.fingerprint.binning import BinEdges
from core.fingerprint.fingerprint import Fingerprint, check_comparable
from core.text import printable

CATALOGUE_VERSION = 2
DEFAULT_CATALOGUE = Path(__file__).resolve().parents[2] / "data" / "catalogue"
DEFAULT_LOCAL_CATALOGUE = Path(__file__).resolve().parents[2] / "data" / "local" / "catalogue"
#: longest task id (it is also a file name: fingerprints/ID.npz); longer names get a shortened id with a digest
MAX_TASK_ID_CHARS = 64
#: files and folders a catalogue write produces; everything else in the folder is carried over unchanged
_WRITTEN = ("catalogue.json", "edges.npz", "fingerprints", "matrices.npz")
CITATION = ("Godau P., et al. Beyond Knowledge Silos: Task Fingerprinting for Democratization of Medical Imaging "
            "AI. arXiv:2412.08763 (2024).")


#: the stored matrix the map is fitted on: the default distance's
MAP_MATRIX = spec_of(DEFAULT_DISTANCE).stored_as


def stored_distances() -> dict[str, DistanceSpec]:
    """{stored_as: spec} of every distance of the registry whose matrix a catalogue stores (``matrices.npz``), in
    registry order: a registry entry with ``stored_as`` is all it takes to store one."""
    return {spec.stored_as: spec for spec in DISTANCES.values() if spec.stored_as}


@dataclass
class TaskInfo:
    """Metadata of one catalogue task, as shown to users."""

    id: str
    name: str
    modality: str
    anatomy: str
    classes: dict
    n_images: int
    kind: str = "medical"  # "medical", "control" (non-medical, shows what far away looks like) or "user"
    source: str = ""
    upstream: str = ""
    licence: str = ""
    shares_images_with: list = field(default_factory=list)
    paper_task: str | None = None
    paper_link: str | None = None
    notes: str = ""


@dataclass
class Catalogue:
    root: Path
    version: int
    backbone: str
    weights_sha256: str
    protocol: dict
    edges: BinEdges
    tasks: list[TaskInfo]
    fingerprints: dict[str, Fingerprint]
    #: stored_as -> (T, T) [source, target]: the matrix of every stored distance (:data:`STORED_DISTANCES`)
    matrices: dict[str, np.ndarray]
    coords: np.ndarray  # (T, 2) fixed map coordinates
    map_method: str
    knowledge: dict
    built: dict
    probe: str = "postact"
    versions: dict = field(default_factory=dict)
    validity: dict = field(default_factory=dict)
    #: a large catalogue's neighbourhood (core.catalogue.large): {"total": T of the whole, "around": id or None, "size"}
    neighbourhood_of: dict = field(default_factory=dict)
    _banks: dict = field(default_factory=dict, repr=False, compare=False)
    _derived: dict = field(default_factory=dict, repr=False, compare=False)
    _derived_lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def ids(self) -> list[str]:
        return [t.id for t in self.tasks]

    @property
    def bkld_small(self) -> np.ndarray:
        """The stored bKLD small matrix (T, T) [source, target]."""
        return self.matrix(BKLD_SMALL.name)

    @property
    def candidate_ids(self) -> list[str]:
        """Tasks that may be recommended as sources: everything but the non-medical controls, which are reference
        points (under bKLD they come out close to every task, see README 'Controls')."""
        return [t.id for t in self.tasks if t.kind != "control"]

    def halves(self) -> dict[tuple[str, str], Fingerprint]:
        """{(task id, 'a' | 'b'): fingerprint} of two image-disjoint halves of each task (empty when not shipped).

        Only half A is stored (``halves/ID.a.npz``): the halves partition the task's samples, so half B is the
        task's fingerprint less half A (counts subtracted, means re-weighted), exactly."""
        found = {}
        for info in self.tasks:
            path = self.root / "halves" / f"{info.id}.a.npz"
            if not path.is_file():
                continue
            try:
                half_a = Fingerprint.load(path)
            except FingerprintFileError as err:
                raise CatalogueError(str(err)) from None
            found[(info.id, "a")] = half_a
            found[(info.id, "b")] = complement(self.fingerprints[info.id], half_a, f"{info.name} (half B)")
        return found

    def alternate_probes(self) -> dict[str, Path]:
        """{probe: folder} of the same catalogue made with other probe layers (``probes/NAME``)."""
        folder = self.root / "probes"
        if not folder.is_dir():
            return {}
        return {path.name: path for path in sorted(folder.iterdir()) if (path / "catalogue.json").is_file()}

    def for_probe(self, probe: str | None) -> "Catalogue":
        """This catalogue, or the same tasks made with another probe layer (``probes/NAME``); None: this one."""
        if probe is None or probe == self.probe:
            return self
        alternates = self.alternate_probes()
        if probe not in alternates:
            raise CatalogueError(f"{self.root}: no catalogue made with probe '{probe}'; available: "
                                 f"{', '.join([self.probe, *alternates])}")
        return load_catalogue(alternates[probe])

    def version_warnings(self, affects: str | None = None) -> list[str]:
        """Warnings when the running library versions differ from the build's in a way that changes results."""
        from core.features.environment import version_drift
        return version_drift(self.versions, affects=affects)

    def task(self, task_id: str) -> TaskInfo:
        for info in self.tasks:
            if info.id == task_id:
                return info
        raise KeyError(f"no task '{task_id}' in the catalogue; known: {', '.join(self.ids)}")

    def bank(self, distance: str) -> SourceBank:
        """The catalogue's tasks as sources for ``distance``, prepared once per catalogue object."""
        if distance not in self._banks:
            self._banks[distance] = bank_for(distance, [self.fingerprints[i] for i in self.ids])
        return self._banks[distance]

    def matrix(self, distance: str) -> np.ndarray:
        """Pairwise directed distances (T, T) [source, target]; stored for bKLD, computed once for the others."""
        stored = spec_of(distance).stored_as
        if stored in self.matrices:  # a large catalogue's neighbourhood stores only the map's
            return self.matrices[stored]
        return self.derived(("matrix", distance), lambda: self.bank(distance).pairwise())

    def derived(self, key: object, compute: Callable[[], object]) -> object:
        """``compute()``, once per catalogue object and ``key``: figures of the catalogue alone that every user's
        analysis reuses (computed matrices, the closeness reference, bootstrap source terms). Threads asking for
        the same key wait for one computation."""
        with self._derived_lock:
            entry = self._derived.setdefault(key, [threading.Lock(), None, False])
        with entry[0]:
            if not entry[2]:
                entry[1], entry[2] = compute(), True
        return entry[1]

    def comparison_warnings(self, target: Fingerprint) -> list[str]:
        """Softer differences between ``target`` and the catalogue (sample size); raises
        IncompatibleFingerprintsError when they cannot be compared at all."""
        return check_comparable(target, self.fingerprints[self.ids[0]])

    def distances_to(self, target: Fingerprint, distance: str = DEFAULT_DISTANCE) -> np.ndarray:
        """Directed distance from every catalogue task (source) to ``target``, (T,) in task order."""
        return self.bank(distance).distances(target)

    def distances_from(self, source: Fingerprint, distance: str = DEFAULT_DISTANCE) -> np.ndarray:
        """Directed distance from ``source`` to every catalogue task as target, (T,) in task order."""
        return self.bank(distance).distances_from(source)


def task_id_for(name: str, prefix: str = "user_") -> str:
    """A file-name-safe task id for a task name: lower-case ASCII letters, digits and underscores, at most
    MAX_TASK_ID_CHARS characters. A name that had to be shortened (or has no ASCII letters or digits at all) gets
    8 hex digits of its sha256, so different long names keep different ids. The name itself stays in the metadata."""
    ascii_name = unicodedata.normalize("NFKD", printable(name, 10_000)).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "_", ascii_name.lower()).strip("_")
    room = MAX_TASK_ID_CHARS - len(prefix)
    if slug and len(slug) <= room:
        return prefix + slug
    digest = hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return prefix + (slug[: room - 9].rstrip("_") + "_" + digest if slug else digest)


def _task_info(entry: object, root: Path) -> TaskInfo:
    """A catalogue.json task entry as TaskInfo, with printable display text; CatalogueError when malformed."""
    known = {f.name: f for f in fields(TaskInfo)}
    if not isinstance(entry, dict) or not isinstance(entry.get("id"), str) or \
            not re.fullmatch(r"[A-Za-z0-9_.-]{1,128}", entry["id"]) or entry["id"].startswith("."):
        raise CatalogueError(f"{root / 'catalogue.json'}: a task entry has no valid id (letters, digits, '_', '-', "
                             "'.'; at most 128 characters)")
    try:
        info = TaskInfo(**{k: v for k, v in entry.items() if k in known})
    except TypeError as err:
        raise CatalogueError(f"{root / 'catalogue.json'}: task '{entry['id']}' is incomplete ({err})") from None
    for name in ("name", "modality", "anatomy", "source", "upstream", "licence", "notes"):
        value = getattr(info, name)
        if not isinstance(value, str):
            raise CatalogueError(f"{root / 'catalogue.json'}: task '{info.id}' field '{name}' must be text")
        setattr(info, name, printable(value, 2_000))
    if not isinstance(info.classes, dict) or type(info.n_images) is not int:
        raise CatalogueError(f"{root / 'catalogue.json'}: task '{info.id}' needs classes (an object) and n_images "
                             "(an integer)")
    info.classes = {printable(k): v for k, v in info.classes.items()}
    return info


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise CatalogueError(f"{path}: missing; build the catalogue with 'python -m core catalogue build'") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise CatalogueError(f"{path}: unreadable ({str(err)[:160]})") from None


def load_catalogue(root: str | Path = DEFAULT_CATALOGUE) -> Catalogue:
    """Load and validate a catalogue folder; raises :class:`CatalogueError` saying what is wrong. A folder of the
    store layout gives a :class:`core.catalogue.large.LargeCatalogue` (metadata and store; no fingerprint read)."""
    root = Path(root)
    if not root.is_dir():
        retired = sorted(root.parent.glob(f".{root.name}.old-*")) if root.parent.is_dir() else []
        if retired:
            try:
                recover(root)  # a write killed between its two renames: its previous catalogue is put back
            except CatalogueError:
                pass  # read-only location, or a writer holds the lock: say where the previous catalogue is
        if retired and not root.is_dir():
            raise CatalogueError(f"{root}: missing; a write was interrupted and left the previous catalogue at "
                                 f"{retired[-1]}: rename it to {root.name}")
        if not root.is_dir():
            raise CatalogueError(f"{root}: no catalogue folder here")
    manifest = _read_json(root / "catalogue.json")
    if not isinstance(manifest, dict) or not isinstance(manifest.get("tasks"), list) or not all(
            isinstance(manifest.get(key), str) for key in ("edges_id", "weights_sha256", "backbone", "probe")):
        raise CatalogueError(f"{root / 'catalogue.json'}: not a catalogue manifest (needs tasks, edges_id, "
                             "weights_sha256, backbone, probe)")
    version = manifest.get("catalogue_version")
    if version != CATALOGUE_VERSION:
        raise CatalogueError(f"{root}: catalogue version {version}, this tool reads version {CATALOGUE_VERSION}; "
                             "rebuild it with 'python -m core catalogue build' or update the tool")
    edges = BinEdges.load(root / "edges.npz")
    if edges.identity != manifest["edges_id"]:
        raise CatalogueError(f"{root}: edges.npz does not match catalogue.json (edges id {edges.identity} vs "
                             f"{manifest['edges_id']}); the catalogue is inconsistent, rebuild it")
    tasks = [_task_info(entry, root) for entry in manifest["tasks"]]
    if len({t.id for t in tasks}) != len(tasks) or not tasks:
        raise CatalogueError(f"{root / 'catalogue.json'}: task ids must be unique and at least one task listed")
    if manifest.get("layout") == "store":
        from core.catalogue.large import load_large
        return load_large(root, manifest, edges, tasks, Catalogue)
    fingerprints = {}
    for info in tasks:
        fingerprint = read_task_fingerprint(root, info.id, manifest, edges)
        first = next(iter(fingerprints.values()), fingerprint)
        if (fingerprint.meta.feature_dim, fingerprint.meta.postact_dim) != (first.meta.feature_dim,
                                                                            first.meta.postact_dim):
            raise CatalogueError(f"{root}: fingerprint of '{info.id}' has {fingerprint.meta.feature_dim} features "
                                 f"and {fingerprint.meta.postact_dim} post-activation features, the others "
                                 f"{first.meta.feature_dim} and {first.meta.postact_dim}; remove that task")
        fingerprints[info.id] = fingerprint
    try:
        with np.load(root / "matrices.npz", allow_pickle=False) as data:
            task_ids = [str(t) for t in data["task_ids"]]
            matrices = {key: data[key] for key in stored_distances() if key in data.files}
            coords = data["coords"]
    except (OSError, KeyError, ValueError) as err:
        raise CatalogueError(f"{root / 'matrices.npz'}: unreadable ({err})") from None
    if task_ids != [t.id for t in tasks]:
        raise CatalogueError(f"{root}: matrices.npz lists other tasks than catalogue.json; rebuild the catalogue")
    for key, spec in stored_distances().items():  # a distance stored since the folder was written (refresh keeps it)
        if key not in matrices:
            matrices[key] = bank_for(spec, [fingerprints[t.id] for t in tasks]).pairwise()
    matrices = {key: matrices[key] for key in stored_distances()}
    knowledge = _read_json(root / "knowledge.json") if (root / "knowledge.json").exists() else {}
    validity = _read_json(root / "validity.json") if (root / "validity.json").exists() else {}
    for name, value in (("knowledge.json", knowledge), ("validity.json", validity)):
        if not isinstance(value, dict):
            raise CatalogueError(f"{root / name}: must hold a JSON object, found {type(value).__name__}; restore it "
                                 "from the shipped catalogue or remove it")
    return Catalogue(root, version, manifest["backbone"], manifest["weights_sha256"], manifest["protocol"], edges,
                     tasks, fingerprints, matrices, coords, manifest.get("map_method", "umap"), knowledge,
                     manifest.get("built", {}), manifest["probe"], manifest.get("versions", {}), validity)


def complement(whole: Fingerprint, part: Fingerprint, name: str) -> Fingerprint:
    """The fingerprint of the samples of ``whole`` that are not in ``part`` (a subset of its samples)."""
    n_rest = whole.meta.n_samples - part.meta.n_samples
    if n_rest < 1 or np.any(part.counts > whole.counts):
        raise CatalogueError(f"'{part.name}' is not a part of '{whole.name}': its samples are not a subset")

    def rest_mean(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (a * whole.meta.n_samples - b * part.meta.n_samples) / n_rest

    meta = replace(whole.meta, name=name, n_samples=n_rest)
    return Fingerprint(whole.counts - part.counts, rest_mean(whole.mean, part.mean), meta,
                       np.maximum(rest_mean(whole.postact_mean, part.postact_mean), 0.0))


def stored_matrices(fingerprints: list[Fingerprint]) -> dict[str, np.ndarray]:
    """The stored matrices among ``fingerprints``: {stored_as: directed (T, T) [source, target]} for every
    distance of the registry with ``stored_as``, through the one source bank."""
    return {key: bank_for(spec, fingerprints).pairwise() for key, spec in stored_distances().items()}


def write_catalogue(root: Path, manifest: dict, edges: BinEdges, tasks: list[TaskInfo],
                    fingerprints: dict[str, Fingerprint], matrices: dict[str, np.ndarray],
                    coords: np.ndarray, halves: dict[tuple[str, str], Fingerprint] | None = None,
                    extra_files: dict[str, bytes] | None = None, carry_from: Path | None = None) -> None:
    """Write every file of a catalogue folder (deterministic bytes for the same inputs), atomically: everything is
    written to a temporary sibling folder first, which then replaces ``root``; a failure at any point leaves
    ``root`` as it was. Files of ``carry_from`` (default: ``root``) that a write does not produce (SOURCES.json,
    knowledge.json, validity.json, halves/, probes/ ...) are carried over; ``extra_files`` (name -> bytes) are
    written besides; ``halves`` {(task id, 'a' | 'b'): fingerprint} go to ``halves/``; ``matrices``: one per
    stored distance (:func:`stored_matrices`)."""
    root = Path(root)
    if set(matrices) != set(stored_distances()):
        raise ValueError(f"a catalogue stores the matrices {', '.join(stored_distances())}; got {', '.join(matrices)}")

    def write(staging: Path) -> None:
        (staging / "fingerprints").mkdir()
        if halves:
            (staging / "halves").mkdir()
            for (task_id, half), fingerprint in sorted(halves.items()):
                fingerprint.save(staging / "halves" / f"{task_id}.{half}.npz")
        full = dict(manifest, catalogue_version=CATALOGUE_VERSION, edges_id=edges.identity,
                    tasks=[asdict(t) for t in tasks])
        (staging / "catalogue.json").write_text(json.dumps(full, indent=1, sort_keys=True) + "\n")
        edges.save(staging / "edges.npz")
        for info in tasks:
            fingerprints[info.id].save(fingerprint_path(staging, info.id), overwrite=True)
        with open(staging / "matrices.npz", "wb") as handle:
            np.savez(handle, task_ids=np.array([t.id for t in tasks]),
                     **{key: matrices[key] for key in stored_distances()}, coords=coords)
        for name, payload in (extra_files or {}).items():
            (staging / name).write_bytes(payload)

    replace_folder(root, write, carry_from=root if carry_from is None else Path(carry_from),
                   produced=_WRITTEN + tuple(extra_files or ()) + (("halves",) if halves else ()))


def replace_folder(root: Path, write: Callable[[Path], None], carry_from: Path | None = None,
                   produced: tuple[str, ...] = ()) -> None:
    """Replace folder ``root`` by what ``write`` puts into a fresh staging folder beside it (same file system), plus
    the entries of ``carry_from`` not named in ``produced``. Only two renames touch ``root``; if the process dies
    between them, the previous folder remains as ``.NAME.old-*`` beside it, and the next writer (or reader) renames
    it back (core.catalogue.lock). Runs under the folder's writer lock."""
    with writer_lock(root):
        _replace_folder_locked(root, write, carry_from, produced)


def _replace_folder_locked(root: Path, write: Callable[[Path], None], carry_from: Path | None,
                           produced: tuple[str, ...]) -> None:
    parent = root.parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.new-", dir=parent))
    retired: Path | None = None
    try:
        if carry_from is not None and carry_from.is_dir():
            for entry in carry_from.iterdir():
                if entry.name in produced or entry.name.startswith(f".{root.name}."):
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    shutil.copytree(entry, staging / entry.name, symlinks=True)
                else:
                    shutil.copy2(entry, staging / entry.name, follow_symlinks=False)
        write(staging)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(staging, (root.stat().st_mode & 0o7777) if root.is_dir() else (0o777 & ~umask))
        if root.exists():
            retired = parent / f".{root.name}.old-{staging.name.rsplit('-', 1)[-1]}"
            os.rename(root, retired)
        os.rename(staging, root)
    except BaseException:
        if retired is not None and not root.exists():
            os.rename(retired, root)
            retired = None
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)


def refresh_derived(root: Path) -> Catalogue:
    """Recompute the distance matrices and map of a catalogue folder from its stored fingerprints (after a change
    to the distance code; no images needed). Fingerprints, edges and metadata are left as they are."""
    from core.catalogue.taskmap import fit_map

    with writer_lock(Path(root)):
        return _refresh_locked(Path(root), fit_map)


def _refresh_locked(root: Path, fit_map: Callable) -> Catalogue:
    catalogue = load_catalogue(root)
    matrices = stored_matrices([catalogue.fingerprints[i] for i in catalogue.ids])
    coords, method = fit_map(matrices[MAP_MATRIX])  # callers warn about catalogue.version_warnings("map") first
    manifest = _read_json(Path(root) / "catalogue.json")
    manifest["map_method"] = method
    write_catalogue(Path(root), manifest, catalogue.edges, catalogue.tasks, catalogue.fingerprints, matrices, coords)
    return load_catalogue(root)


def add_to_local_copy(fingerprint: Fingerprint, task: TaskInfo, local: Path = DEFAULT_LOCAL_CATALOGUE,
                      shipped: Path = DEFAULT_CATALOGUE, replace: bool = False) -> Catalogue:
    """Add a user's fingerprint to a local copy of the catalogue (made from ``shipped`` on first use), recompute
    its distances and map. The shipped catalogue is never written. The whole read-modify-write runs under the local
    catalogue's writer lock, so concurrent additions all land; a copy left by a write killed between its two renames
    is restored first (the local copy is only made from ``shipped`` when no previous local catalogue exists)."""
    local, shipped = Path(local).resolve(), Path(shipped).resolve()
    if local == shipped:
        raise CatalogueError("the local catalogue must be a different folder from the shipped one")
    with writer_lock(local):
        return _add_locked(fingerprint, task, local, shipped, replace)


def _add_locked(fingerprint: Fingerprint, task: TaskInfo, local: Path, shipped: Path, replace: bool) -> Catalogue:
    from core.catalogue import large
    from core.catalogue.taskmap import fit_map

    first_use = not (local / "catalogue.json").exists()
    if first_use and local.exists() and (not local.is_dir() or any(local.iterdir())):
        raise CatalogueError(f"{local}: exists and is not a catalogue; choose an empty or new folder")
    origin = shipped if first_use else local
    if not first_use and large.is_large(local):
        large.add_large(load_catalogue(local), fingerprint, task, replace)  # in place: no matrix, map or copy
        return load_catalogue(local)
    catalogue = load_catalogue(origin)
    check_comparable(fingerprint, catalogue.fingerprints[catalogue.ids[0]])
    if task.id in catalogue.ids and not replace:
        raise CatalogueError(f"task id '{task.id}' is already in {local}; choose another name")
    tasks = [t for t in catalogue.tasks if t.id != task.id] + [task]
    fingerprints = dict(catalogue.fingerprints)
    fingerprints[task.id] = fingerprint.renamed(task.name)
    if len(tasks) > large.STORE_ABOVE:  # pairwise matrices grow as T^2: from here on the store layout
        replace_folder(local, lambda staging: large.convert_to_large(
            catalogue, staging, _read_json(origin / "catalogue.json"), (task, fingerprints[task.id])),
            carry_from=origin, produced=_WRITTEN + ("store", large.FACTS_FILE, "validity.json", "probes"))
        return load_catalogue(local)
    ordered = [fingerprints[t.id] for t in tasks]
    matrices = stored_matrices(ordered)
    coords, method = fit_map(matrices[MAP_MATRIX])
    manifest = _read_json(origin / "catalogue.json")
    manifest["map_method"] = method
    write_catalogue(local, manifest, catalogue.edges, tasks, fingerprints, matrices, coords, carry_from=origin)
    return load_catalogue(local)
