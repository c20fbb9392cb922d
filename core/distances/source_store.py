"""A compact, append-only store of tasks for ranking by bKLD at 10,000 tasks and more on one machine.

For a fixed target t, bKLD(s -> t) = c_t - sum_f sum_b x_t[f, b] Q_s[f, b] + sum_f w_f lse_s[f]
(:mod:`core.distances.store_rows`): ranking every source is one inner product per source. Per task the store keeps:

* ``codes.f32``: the source's screening row, float32, memory-mapped and read by every query: per feature the
  histogram's coordinates in a fixed orthonormal basis (the two end bins, which hold the clipped tails, and the first
  cosines of the interior bins; 16 vectors for the 384 features that carry most of bKLD small's weight, 4 for the
  others: :class:`core.distances.store_rows.Layout`), then lse_s. One matrix-vector product gives every source's
  approximate distance.
* ``targets.f32``: the same task as a target ([x_t on the basis, -w, -c_t]): when a task is published, one product
  gives its approximate distance to every stored target (for the nearest-neighbour maintenance below).
* ``coarse.u16`` (the B-bin counts, exact), ``lse.f64``, ``weights.f64`` and ``constants.f64`` (c_t and the twin
  distance, what the formula gives for an identical source) in float64:
  read with ``pread`` (never
  mapped, so they stay out of the process's resident memory) for the ``candidates`` best screened sources only, which
  are re-scored exactly in float64: the distances returned are the bKLD values of
  :class:`core.distances.bank.SourceBank` (to float64 rounding), and when the store holds no more than ``candidates``
  tasks every task is re-scored, so the ranking is exact.
* ``digests.bin``: sha256 of each task's B-bin counts and mean: a source whose digest equals the target's scores
  exactly 0, as in the bank.
* ``index.jsonl``: one line per task (id, name, samples), written after its rows: a task is in the store once its
  line is. ``withdrawn.jsonl``: tombstones (ids), never ranked again. ``nearest.bin``: see below.

API (stable): ``SourceStore.open(root, like=None, distance=...)``; ``len(store)`` and ``store.ids`` (live tasks, in
publishing order; ``store.names``, ``store.samples`` aligned); ``add(fingerprint, task_id)``; ``add_many(iterable
of (task_id, fingerprint))``; ``withdraw(task_id)``; ``rank(target, top_k, candidates) -> Ranking`` (ids and exact
distances, nearest first); ``twin_distances()``; ``nearest_distances() -> (len(store),) float64`` and
``nearest_sources() -> list of ids`` aligned with ``store.ids``: each task's distance, as the target, to its nearest
OTHER live task (min over s != t of bKLD(s -> t); an identical task published under another id counts, at 0, as in
the catalogue's matrix; inf and None for a task alone in the store). They are maintained on every add and
withdrawal, never rebuilt
(:mod:`core.distances.store_nearest`).

Adding tasks appends to each file (no rebuild); a reader sees new tasks at its next query. Rows past the last index
line (a write that died half-way) are ignored and overwritten by the next add. One writer at a time (an exclusive
``flock`` on ``store.lock``). A store of another format version is refused with a message saying so.
"""
from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import ThreadpoolController

from core.distances.registry import DEFAULT_DISTANCE, DistanceSpec, spec_of
from core.distances.store_rows import (
    Layout,
    prominent_features,
    query_row,
    same_rows,
    screening_basis,
    source_row,
    target_row,
    target_terms,
    task_digest,
    weights_of,
)
from core.errors import CatalogueError, IncompatibleFingerprintsError
from core.fingerprint.binning import coarsen
from core.fingerprint.fingerprint import Fingerprint

__all__ = ["SourceStore", "Ranking", "STORE_VERSION", "screening_basis"]

STORE_VERSION = 2
#: basis vectors per feature in the screening row (2 end bins + cosines): the prominent features (the largest
#: average bKLD small weights) and the others; measured by bench/cloud_scale.py
PROMINENT_FEATURES = 384
PROMINENT_BASIS = 16
DEFAULT_BASIS = 4
#: sources re-scored exactly per query, at least (more when top_k is larger)
DEFAULT_CANDIDATES = 50
#: what must agree between the store's fingerprints and a target (check_comparable's hard differences)
_IDENTITY = ("backbone", "probe", "weights_sha256", "edges_id", "feature_dim")
_PROTOCOL_IDENTITY = ("pipeline", "augment")
_ROW_FILES = ("codes.f32", "targets.f32", "coarse.u16", "lse.f64", "weights.f64", "constants.f64", "digests.bin")
_BLAS = None


def one_blas_thread():
    """A context in which BLAS uses one thread: the store's products read memory-mapped rows at memory speed, so a
    second thread adds nothing on an idle machine and, on a busy one, waits for a core while the first spins (each
    call many times slower)."""
    global _BLAS
    if _BLAS is None:
        _BLAS = ThreadpoolController()
    return _BLAS.limit(limits=1, user_api="blas")


@dataclass(frozen=True)
class Ranking:
    """The nearest sources of one target, nearest first: ``ids`` and their exact ``distances`` (float64, source ->
    target), ``candidates``: how many sources were re-scored exactly, ``total``: live tasks in the store."""

    ids: list[str]
    distances: np.ndarray
    candidates: int
    total: int


class SourceStore:
    """Open with :meth:`open` (creating the folder on first use); :meth:`add` publishes, :meth:`rank` queries."""

    def __init__(self, root: Path, manifest: dict) -> None:
        self.root = Path(root)
        self.manifest = manifest
        self.spec: DistanceSpec = spec_of(manifest["distance"])
        self.n_features, self.n_bins = int(manifest["n_features"]), int(manifest["n_bins"])
        self.layout = Layout(self.n_features, self.n_bins, manifest["prominent"], int(manifest["prominent_basis"]),
                             int(manifest["basis"]))
        self.row_values = self.layout.size + self.n_features
        m = self.n_features
        self.row_bytes = {"codes.f32": self.row_values * 4, "targets.f32": (self.row_values + 1) * 4,
                          "coarse.u16": m * self.n_bins * 2, "lse.f64": m * 8, "weights.f64": m * 8,
                          "constants.f64": 16, "digests.bin": 32}
        self.ids: list[str] = []
        self.names: list[str] = []
        self.samples: list[int] = []
        self.row_ids: list[str] = []  # every published row, withdrawn ones included
        self.row_samples = np.empty(0)
        self.live = np.empty(0, dtype=bool)
        self.live_rows = np.empty(0, dtype=np.int64)
        self.digests = np.empty((0, 32), dtype=np.uint8)
        self._codes: np.ndarray | None = None
        self._index_bytes = self._withdrawn_bytes = -1
        self._refresh()

    # ------------------------------------------------------------------ opening and publishing
    @classmethod
    def open(cls, root: str | Path, like: Fingerprint | None = None, distance: str = DEFAULT_DISTANCE,
             basis: int = DEFAULT_BASIS, reference: Iterable[Fingerprint] | None = None,
             prominent: int = PROMINENT_FEATURES, prominent_basis: int = PROMINENT_BASIS) -> SourceStore:
        """The store in folder ``root``; a new one is created there (for fingerprints comparable with ``like``)
        when the folder has no store yet. Only when creating: ``reference`` (default ``[like]``) are the tasks
        whose average feature weights choose the ``prominent`` features (bKLD small; bKLD large weighs every
        feature equally and gets ``basis`` vectors, at least 8, for all), projected on ``prominent_basis`` vectors."""
        root = Path(root)
        manifest_path = root / "store.json"
        if not manifest_path.is_file():
            if like is None:
                raise CatalogueError(f"{root}: no source store here (store.json missing)")
            spec = spec_of(distance)
            if not spec.softmaxed_source or spec.n_bins is None:
                raise ValueError(f"a source store ranks by bKLD small or large, not '{spec.name}'")
            root.mkdir(parents=True, exist_ok=True)
            chosen = prominent_features([f.mean for f in (reference or [like])], prominent) if spec.weighted else []
            basis = basis if spec.weighted else max(basis, 8)
            manifest = {"store_version": STORE_VERSION, "distance": spec.name, "n_features": like.n_features,
                        "n_bins": spec.n_bins, "basis": basis, "prominent": chosen, "prominent_basis": prominent_basis,
                        "identity": _identity(like)}
            temporary = manifest_path.with_name(".store.json.tmp")
            temporary.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
            os.replace(temporary, manifest_path)
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise CatalogueError(f"{manifest_path}: unreadable ({str(err)[:160]})") from None
        if not isinstance(manifest, dict) or manifest.get("store_version") != STORE_VERSION:
            found = manifest.get("store_version") if isinstance(manifest, dict) else None
            raise CatalogueError(f"{manifest_path}: a source store of format version {found}, this program reads "
                                 f"version {STORE_VERSION}; build the store again from the fingerprints")
        return cls(root, manifest)

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, fingerprint: Fingerprint, task_id: str) -> None:
        """Publish one task (see :meth:`add_many`)."""
        self.add_many([(task_id, fingerprint)])

    def add_many(self, tasks: Iterable[tuple[str, Fingerprint]]) -> int:
        """Append tasks (id, fingerprint) to the store and update every task's nearest neighbour; returns how many
        were added. Refuses an id already in the store (withdrawn ones included) and a fingerprint made differently
        from the store's (backbone, probe, weights, edges, protocol)."""
        from core.distances.store_nearest import ensure_nearest, extend_nearest

        with self._writer(), one_blas_thread():
            self._refresh()
            nearest = ensure_nearest(self)
            known = set(self.row_ids)
            rows = {name: [] for name in _ROW_FILES}
            lines = []
            for task_id, fingerprint in tasks:
                if not isinstance(task_id, str) or not task_id or "\n" in task_id:
                    raise ValueError(f"invalid task id {task_id!r}")
                if task_id in known:
                    raise CatalogueError(f"{self.root}: task id '{task_id}' is already in the store")
                self._check(fingerprint)
                known.add(task_id)
                for name, data in self._rows_of(fingerprint).items():
                    rows[name].append(data)
                lines.append(json.dumps({"id": task_id, "name": fingerprint.name,
                                         "n": int(fingerprint.meta.n_samples)}) + "\n")
            if not lines:
                return 0
            start = len(self.row_ids)
            for name, chunks in rows.items():
                with open(self.root / name, "ab") as handle:
                    handle.truncate(start * self.row_bytes[name])  # drop rows of a write that died half-way
                    handle.seek(0, os.SEEK_END)
                    handle.write(b"".join(chunks))
                    handle.flush()
                    os.fsync(handle.fileno())
            _append(self.root / "index.jsonl", "".join(lines), self._index_bytes)
            self._refresh()
            extend_nearest(self, nearest, start)
            return len(lines)

    def withdraw(self, task_id: str) -> None:
        """Withdraw a task: it is never ranked again (a tombstone; its rows stay), and the tasks whose nearest
        neighbour it was get their next nearest."""
        from core.distances.store_nearest import ensure_nearest, repair_nearest

        with self._writer(), one_blas_thread():
            self._refresh()
            if task_id not in self.ids:
                raise CatalogueError(f"{self.root}: no live task '{task_id}' in the store")
            nearest = ensure_nearest(self)
            _append(self.root / "withdrawn.jsonl", json.dumps({"id": task_id}) + "\n", self._withdrawn_bytes)
            self._refresh()
            repair_nearest(self, nearest)

    # ------------------------------------------------------------------ querying
    def rank(self, target: Fingerprint, top_k: int | None = 10, candidates: int = DEFAULT_CANDIDATES) -> Ranking:
        """The ``top_k`` nearest sources of ``target`` (None: all), exact bKLD values. The ``max(candidates,
        top_k)`` best by the screening row are re-scored exactly; with no more tasks than that, all are."""
        self._check(target)
        self._refresh()
        total = len(self)
        if total == 0:
            return Ranking([], np.empty(0), 0, 0)
        top_k = total if top_k is None else min(int(top_k), total)
        weighted, weights, offset = self._target_terms(target)
        own = task_digest(coarsen(np.asarray(target.counts), self.n_bins), target.mean)
        with one_blas_thread():
            chosen = self.shortlist(query_row(weighted, weights, self.layout), max(int(candidates), top_k))
            values = self.exact(chosen, weighted, weights, offset, own)
        order = np.lexsort((chosen, values))[:top_k]
        return Ranking([self.row_ids[i] for i in chosen[order]], values[order], len(chosen), total)

    def nearest_distances(self) -> np.ndarray:
        """(len(store),) float64 aligned with ``ids``: each task's distance (as target) to its nearest other live
        task; inf for a task alone."""
        return self._nearest()["distance"][self.live_rows].copy()

    def twin_distances(self) -> np.ndarray:
        """(len(store),) float64 aligned with ``ids``: each task's twin distance (the formula's value for an
        identical source, KL(P_t || softmax P_t) weighted: :func:`core.distances.bank.twin_distance`)."""
        constants = np.fromfile(self.root / "constants.f64", dtype=np.float64, count=2 * len(self.row_ids))
        return constants.reshape(-1, 2)[self.live_rows, 1].copy()

    def nearest_sources(self) -> list[str | None]:
        """Aligned with ``ids``: the id of each task's nearest other live task (None for a task alone)."""
        sources = self._nearest()["source"][self.live_rows]
        return [self.row_ids[s] if s >= 0 else None for s in sources]

    # ------------------------------------------------------------------ building blocks (also for store_nearest)
    def screen_rows(self, queries: np.ndarray, chunk: int = 2048) -> np.ndarray:
        """(rows, Q) float32: minus the inner products of every row's screening row with ``queries`` (Q, row
        values); withdrawn rows included."""
        assert self._codes is not None
        out = np.empty((len(self.row_ids), len(queries)), dtype=np.float32)
        transposed = np.ascontiguousarray(queries.T, dtype=np.float32)
        for start in range(0, len(out), chunk):
            stop = min(start + chunk, len(out))
            np.matmul(self._codes[start:stop], transposed, out=out[start:stop])
        return np.negative(out, out=out)

    def shortlist(self, query: np.ndarray, pool: int, exclude: int | None = None) -> np.ndarray:
        """Sorted rows of the ``pool`` live sources with the best screened value for ``query`` (all live rows when
        there are no more than ``pool``); row ``exclude`` left out."""
        live = self.live_rows if exclude is None else self.live_rows[self.live_rows != exclude]
        if len(live) <= pool:
            return live
        screened = self.screen_rows(query[None])[:, 0]
        mask = np.ones(len(screened), dtype=bool)
        mask[live] = False
        screened[mask] = np.inf
        return np.sort(np.argpartition(screened, pool - 1)[:pool])

    def exact(self, rows: np.ndarray, weighted: np.ndarray, weights: np.ndarray, offset: float,
              digest: bytes) -> np.ndarray:
        """Exact bKLD(s -> t) (float64) for the source ``rows`` (sorted) and the target's terms; 0 for a source
        whose digest equals the target's."""
        values = offset - self._cross(rows, weighted, weights)
        values[same_rows(self.digests[rows], digest)] = 0.0
        return values

    def row_target(self, row: int) -> tuple[np.ndarray, np.ndarray, float]:
        """(x_t (m, B), w (m,), c_t) of the stored task at ``row`` as a target, exact (float64)."""
        counts = np.empty(self.n_features * self.n_bins, dtype=np.uint16)
        weights, constant = np.empty(self.n_features), np.empty(2)
        for name, buffer in (("coarse.u16", counts), ("weights.f64", weights), ("constants.f64", constant)):
            with open(self.root / name, "rb") as handle:
                os.preadv(handle.fileno(), [buffer], row * self.row_bytes[name])
        p = counts.reshape(self.n_features, self.n_bins) / np.float64(self.row_samples[row])
        return p * weights[:, None], weights, float(constant[0])

    def target_rows(self) -> np.ndarray:
        """(rows, row values + 1) float32, memory-mapped: every task's target screening row."""
        return np.memmap(self.root / "targets.f32", dtype=np.float32, mode="r",
                         shape=(len(self.row_ids), self.row_values + 1))

    def source_codes(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), row values) float32: the screening rows of ``rows``."""
        assert self._codes is not None
        return np.asarray(self._codes[rows])

    def _cross(self, rows: np.ndarray, weighted: np.ndarray, weights: np.ndarray, block: int = 16) -> np.ndarray:
        """sum_f sum_b x_t Q_s - sum_f w_f lse_s for the given rows (sorted), exactly (float64); the rows are
        read with pread, ``block`` tasks at a time."""
        coarse_size, lse_size = self.row_bytes["coarse.u16"], self.row_bytes["lse.f64"]
        samples = self.row_samples[rows]
        flat = weighted.ravel()
        counts = np.empty((len(rows), self.n_features * self.n_bins), dtype=np.uint16)
        lse = np.empty((len(rows), self.n_features))
        with open(self.root / "coarse.u16", "rb") as coarse_file, open(self.root / "lse.f64", "rb") as lse_file:
            for k, row in enumerate(rows):
                os.preadv(coarse_file.fileno(), [counts[k]], int(row) * coarse_size)
                os.preadv(lse_file.fileno(), [lse[k]], int(row) * lse_size)
        cross = np.empty(len(rows))
        for start in range(0, len(rows), block):
            stop = min(start + block, len(rows))
            cross[start:stop] = counts[start:stop].astype(np.float64) @ flat
        return cross / samples - lse @ weights

    def _target_terms(self, target: Fingerprint) -> tuple[np.ndarray, np.ndarray, float]:
        """(x_t (m, B) weighted histogram, w (m,) normalised weights, c_t)."""
        p = target.probabilities(self.n_bins)
        weights = weights_of(target.mean, p.shape[0], self.spec.weighted)
        weighted, constant = target_terms(p, weights)
        return weighted, weights, constant

    def _rows_of(self, fingerprint: Fingerprint) -> dict[str, bytes]:
        """The bytes of every row file for one task."""
        counts = np.asarray(fingerprint.counts)
        coarse = counts if counts.shape[-1] == self.n_bins else coarsen(counts, self.n_bins)
        if coarse.max() > np.iinfo(np.uint16).max:
            raise ValueError(f"'{fingerprint.name}': more than 65,535 samples in one bin")
        coarse = coarse.astype(np.uint16)
        totals = coarse.sum(axis=1, dtype=np.int64)
        if np.any(totals != fingerprint.meta.n_samples):
            raise ValueError(f"'{fingerprint.name}': histogram rows do not sum to its {fingerprint.meta.n_samples} "
                             "samples")
        q = coarse / np.float64(fingerprint.meta.n_samples)
        lse, codes = source_row(q, self.layout)
        weights = weights_of(fingerprint.mean, self.n_features, self.spec.weighted)
        weighted, constant = target_terms(q, weights)
        twin = constant - float(weighted.ravel() @ q.ravel()) + float(weights @ lse)  # KL(P || softmax P), weighted
        return {"codes.f32": codes.tobytes(), "targets.f32": target_row(weighted, weights, constant, self.layout)
                .tobytes(), "coarse.u16": coarse.tobytes(), "lse.f64": lse.astype(np.float64).tobytes(),
                "weights.f64": weights.astype(np.float64).tobytes(),
                "constants.f64": np.array([constant, twin]).tobytes(),
                "digests.bin": task_digest(coarse, fingerprint.mean)}

    # ------------------------------------------------------------------ bookkeeping
    def _nearest(self) -> np.ndarray:
        from core.distances.store_nearest import ensure_nearest, read_nearest

        self._refresh()
        found = read_nearest(self)
        if found is not None:
            return found
        with self._writer(), one_blas_thread():
            self._refresh()
            return ensure_nearest(self)

    def _check(self, fingerprint: Fingerprint) -> None:
        mine, theirs = self.manifest["identity"], _identity(fingerprint)
        differences = [f"{key}: {theirs[key]!r} vs {mine.get(key)!r}" for key in theirs
                       if theirs[key] != mine.get(key)]
        if differences:
            raise IncompatibleFingerprintsError(
                f"'{fingerprint.name}' was made differently from the tasks of the store at {self.root} and cannot "
                f"be compared with them ({'; '.join(differences)})")

    def _refresh(self) -> None:
        """Re-read the index and the tombstones when they grew (another process published or withdrew); map the
        screening rows of the tasks in the index."""
        index, withdrawn = self.root / "index.jsonl", self.root / "withdrawn.jsonl"
        size = index.stat().st_size if index.is_file() else 0
        gone_size = withdrawn.stat().st_size if withdrawn.is_file() else 0
        if size == self._index_bytes and gone_size == self._withdrawn_bytes and self._codes is not None:
            return
        entries, complete = _read_lines(index, size)
        gone, gone_complete = _read_lines(withdrawn, gone_size)
        self.row_ids = [e["id"] for e in entries]
        self.row_samples = np.array([int(e["n"]) for e in entries], dtype=np.float64)
        gone_ids = {e["id"] for e in gone}
        self.live = np.array([i not in gone_ids for i in self.row_ids], dtype=bool)
        self.live_rows = np.flatnonzero(self.live)
        self.ids = [self.row_ids[r] for r in self.live_rows]
        self.names = [entries[r]["name"] for r in self.live_rows]
        self.samples = [int(entries[r]["n"]) for r in self.live_rows]
        self._index_bytes, self._withdrawn_bytes = complete, gone_complete
        count = len(entries)
        self._codes = (np.memmap(self.root / "codes.f32", dtype=np.float32, mode="r", shape=(count, self.row_values))
                       if count else np.empty((0, self.row_values), dtype=np.float32))
        self.digests = (np.fromfile(self.root / "digests.bin", dtype=np.uint8, count=count * 32).reshape(count, 32)
                        if count else np.empty((0, 32), dtype=np.uint8))

    @contextmanager
    def _writer(self):
        with open(self.root / "store.lock", "a+") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _read_lines(path: Path, size: int) -> tuple[list[dict], int]:
    """The complete JSON lines of the first ``size`` bytes of ``path`` and their length in bytes."""
    entries, complete = [], 0
    if size:
        with open(path, "rb") as handle:
            data = handle.read(size)
        for line in data.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break  # a line being written
            entries.append(json.loads(line))
            complete += len(line)
    return entries, complete


def _append(path: Path, text: str, keep: int) -> None:
    """Append ``text`` after the first ``keep`` bytes of ``path`` (dropping a half-written line), durably."""
    with open(path, "ab") as handle:
        handle.truncate(max(keep, 0))
        handle.seek(0, os.SEEK_END)
        handle.write(text.encode())
        handle.flush()
        os.fsync(handle.fileno())


def _identity(fingerprint: Fingerprint) -> dict:
    meta = fingerprint.meta
    identity = {key: getattr(meta, key) for key in _IDENTITY}
    identity.update({f"protocol {key}": meta.protocol.get(key) for key in _PROTOCOL_IDENTITY})
    return identity
