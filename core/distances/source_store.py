"""A compact, append-only store of source tasks for ranking by bKLD at 10,000 tasks and more on one machine.

For a fixed target t, bKLD(s -> t) = c_t - sum_f sum_b x_t[f, b] log softmax_b(Q_s)[f, b], with x_t = w_f P_t[f, b]
the target's weighted histogram (weights normalised) and c_t its own sum_f w_f sum_b P log P. Since
log softmax_b(Q)_b = Q_b - lse_f(Q) and sum_b P_t = 1, this is

    bKLD(s -> t) = c_t - sum_f sum_b x_t[f, b] Q_s[f, b] + sum_f w_f lse_s[f]

Ranking every source is one inner product per source. The store keeps, per task, only what ranking needs:

* ``codes.f32``: the screening row, float32, memory-mapped and read by every query: per feature the histogram's
  coordinates in a fixed orthonormal basis of K vectors (the two end bins, which hold the clipped tails, and the
  first K - 2 cosines (DCT-II) of the interior bins: histograms are smooth, so few cosines carry most of a row),
  then lse_s (m values). One matrix-vector product gives every source's approximate distance.
* ``coarse.u16``: the B-bin counts, exact (n <= 65,535 per task), and ``lse.f64``: lse_s in float64. Read with
  ``pread`` (never mapped, so they stay out of the process's resident memory) for the ``candidates`` best screened
  sources only, which are then re-scored exactly in float64: the distances returned are the bKLD values of
  :class:`core.distances.bank.SourceBank` (equal to float64 rounding), and when the store holds no more than
  ``candidates`` tasks every task is re-scored, so the ranking is exact.
* ``digests.bin``: sha256 of each task's B-bin counts and mean: a source whose digest equals the target's scores
  exactly 0 (the bank compares the fine counts as well; equal means of m float64 values with different counts do
  not occur in practice).
* ``index.jsonl``: one line per task (id, name, samples), written last: a task is in the store once its line is.

Adding a task appends to each file (no rebuild); a reader sees new tasks at its next query. Rows past the last index
line (a write that died half-way) are ignored and overwritten by the next add. One writer at a time (an exclusive
``flock`` on ``store.lock``).
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.distances.maths import feature_weights, plogp
from core.distances.registry import DEFAULT_DISTANCE, DistanceSpec, spec_of
from core.errors import CatalogueError, IncompatibleFingerprintsError
from core.fingerprint.binning import coarsen
from core.fingerprint.fingerprint import Fingerprint

STORE_VERSION = 1
#: basis vectors per feature in the screening row (2 end bins + cosines); measured by bench/cloud_scale.py
DEFAULT_BASIS = 8
#: sources re-scored exactly per query, at least (more when top_k is larger)
DEFAULT_CANDIDATES = 200
#: what must agree between the store's fingerprints and a target (check_comparable's hard differences)
_IDENTITY = ("backbone", "probe", "weights_sha256", "edges_id", "feature_dim")
_PROTOCOL_IDENTITY = ("pipeline", "augment")


def screening_basis(n_bins: int, size: int) -> np.ndarray:
    """(n_bins, size) orthonormal columns: the first and last bin, then the first ``size - 2`` DCT-II cosines of
    the interior bins."""
    if not 2 <= size <= n_bins:
        raise ValueError(f"basis size must be between 2 and {n_bins}, got {size}")
    interior = n_bins - 2
    basis = np.zeros((n_bins, size))
    basis[0, 0] = basis[-1, 1] = 1.0
    positions = (np.arange(interior) + 0.5) * np.pi / interior
    for j in range(size - 2):
        column = np.cos(positions * j) * np.sqrt((1.0 if j == 0 else 2.0) / interior)
        basis[1:-1, 2 + j] = column
    return basis


def log_sum_exp(q: np.ndarray) -> np.ndarray:
    """lse over the last axis, max-shifted: (…, B) -> (…)."""
    top = q.max(axis=-1, keepdims=True)
    return (top + np.log(np.exp(q - top).sum(axis=-1, keepdims=True)))[..., 0]


def task_digest(coarse: np.ndarray, mean: np.ndarray) -> bytes:
    """sha256 of B-bin counts (as uint16) and the mean (float64): equal digests = identical task."""
    sha = hashlib.sha256(np.ascontiguousarray(coarse, dtype=np.uint16).data)
    sha.update(np.ascontiguousarray(mean, dtype=np.float64).data)
    return sha.digest()


@dataclass(frozen=True)
class Ranking:
    """The nearest sources of one target, nearest first: ``ids`` and their exact ``distances`` (float64, source ->
    target), ``candidates``: how many sources were re-scored exactly, ``total``: tasks in the store."""

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
        self.basis = screening_basis(self.n_bins, int(manifest["basis"]))
        self.row_values = self.n_features * (self.basis.shape[1] + 1)
        self.ids: list[str] = []
        self.names: list[str] = []
        self.samples: list[int] = []
        self._digests = np.empty((0, 32), dtype=np.uint8)
        self._codes: np.ndarray | None = None
        self._index_bytes = 0
        self._refresh()

    # ------------------------------------------------------------------ opening and publishing
    @classmethod
    def open(cls, root: str | Path, like: Fingerprint | None = None, distance: str = DEFAULT_DISTANCE,
             basis: int = DEFAULT_BASIS) -> SourceStore:
        """The store in folder ``root``; a new one is created there (for fingerprints comparable with ``like``)
        when the folder has no store yet."""
        root = Path(root)
        manifest_path = root / "store.json"
        if not manifest_path.is_file():
            if like is None:
                raise CatalogueError(f"{root}: no source store here (store.json missing)")
            spec = spec_of(distance)
            if not spec.softmaxed_source or spec.n_bins is None:
                raise ValueError(f"a source store ranks by bKLD small or large, not '{spec.name}'")
            root.mkdir(parents=True, exist_ok=True)
            manifest = {"store_version": STORE_VERSION, "distance": spec.name, "n_features": like.n_features,
                        "n_bins": spec.n_bins, "basis": basis, "identity": _identity(like)}
            temporary = manifest_path.with_name(".store.json.tmp")
            temporary.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
            os.replace(temporary, manifest_path)
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise CatalogueError(f"{manifest_path}: unreadable ({str(err)[:160]})") from None
        if not isinstance(manifest, dict) or manifest.get("store_version") != STORE_VERSION:
            raise CatalogueError(f"{manifest_path}: not a source store of version {STORE_VERSION}")
        return cls(root, manifest)

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, fingerprint: Fingerprint, task_id: str) -> None:
        """Publish one task (see :meth:`add_many`)."""
        self.add_many([(task_id, fingerprint)])

    def add_many(self, tasks: Iterable[tuple[str, Fingerprint]]) -> int:
        """Append tasks (id, fingerprint) to the store; returns how many were added. Refuses an id already in the
        store and a fingerprint made differently from the store's (backbone, probe, weights, edges, protocol)."""
        with self._writer():
            self._refresh()
            known = set(self.ids)
            rows = {name: [] for name in ("codes.f32", "coarse.u16", "lse.f64", "digests.bin")}
            lines = []
            for task_id, fingerprint in tasks:
                if not isinstance(task_id, str) or not task_id or "\n" in task_id:
                    raise ValueError(f"invalid task id {task_id!r}")
                if task_id in known:
                    raise CatalogueError(f"{self.root}: task id '{task_id}' is already in the store")
                self._check(fingerprint)
                known.add(task_id)
                coarse, lse, codes = self._source_rows(fingerprint)
                rows["codes.f32"].append(codes.astype(np.float32).tobytes())
                rows["coarse.u16"].append(coarse.tobytes())
                rows["lse.f64"].append(lse.astype(np.float64).tobytes())
                rows["digests.bin"].append(task_digest(coarse, fingerprint.mean))
                lines.append(json.dumps({"id": task_id, "name": fingerprint.name,
                                         "n": int(fingerprint.meta.n_samples)}) + "\n")
            if not lines:
                return 0
            sizes = {"codes.f32": self.row_values * 4, "coarse.u16": self.n_features * self.n_bins * 2,
                     "lse.f64": self.n_features * 8, "digests.bin": 32}
            for name, chunks in rows.items():
                with open(self.root / name, "ab") as handle:
                    handle.truncate(len(self) * sizes[name])  # drop rows of a write that died half-way
                    handle.seek(0, os.SEEK_END)
                    handle.write(b"".join(chunks))
                    handle.flush()
                    os.fsync(handle.fileno())
            with open(self.root / "index.jsonl", "ab") as handle:
                handle.truncate(self._index_bytes)
                handle.seek(0, os.SEEK_END)
                handle.write("".join(lines).encode())
                handle.flush()
                os.fsync(handle.fileno())
            self._refresh()
            return len(lines)

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
        pool = min(total, max(int(candidates), top_k))
        if pool < total:
            screened = self.screen(weighted, weights)
            chosen = np.argpartition(screened, pool - 1)[:pool]
        else:
            chosen = np.arange(total)
        chosen = np.sort(chosen)
        values = offset - self._cross(chosen, weighted, weights)
        own = task_digest(coarsen(np.asarray(target.counts), self.n_bins), target.mean)
        values[_same_rows(self._digests[chosen], own)] = 0.0  # the task itself
        order = np.lexsort((chosen, values))[:top_k]
        return Ranking([self.ids[i] for i in chosen[order]], values[order], pool, total)

    def screen(self, weighted: np.ndarray, weights: np.ndarray, chunk: int = 4096) -> np.ndarray:
        """Approximate bKLD(s -> t) minus the target's constant for every source, (N,) float32: one matrix-vector
        product over the memory-mapped screening rows, in chunks of ``chunk`` tasks."""
        query = np.concatenate([(weighted @ self.basis).ravel(), -weights]).astype(np.float32)
        assert self._codes is not None
        out = np.empty(len(self), dtype=np.float32)
        for start in range(0, len(self), chunk):
            stop = min(start + chunk, len(self))
            out[start:stop] = -(self._codes[start:stop] @ query)
        return out

    def _cross(self, rows: np.ndarray, weighted: np.ndarray, weights: np.ndarray, block: int = 16) -> np.ndarray:
        """sum_f sum_b x_t Q_s - sum_f w_f lse_s for the given tasks (sorted rows), exactly (float64); the rows are
        read with pread, ``block`` tasks at a time."""
        coarse_size, lse_size = self.n_features * self.n_bins * 2, self.n_features * 8
        samples = np.asarray(self.samples, dtype=np.float64)[rows]
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
        weights = feature_weights(target.mean if self.spec.weighted else None, p.shape[0])
        return p * weights[:, None], weights, float(weights @ plogp(p))

    def _source_rows(self, fingerprint: Fingerprint) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(coarse counts (m, B), lse (m,), screening row (m * (K + 1),)) of one source."""
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
        lse = log_sum_exp(q)
        return coarse, lse, np.concatenate([(q @ self.basis).ravel(), lse])

    # ------------------------------------------------------------------ bookkeeping
    def _check(self, fingerprint: Fingerprint) -> None:
        mine, theirs = self.manifest["identity"], _identity(fingerprint)
        differences = [f"{key}: {theirs[key]!r} vs {mine.get(key)!r}" for key in theirs
                       if theirs[key] != mine.get(key)]
        if differences:
            raise IncompatibleFingerprintsError(
                f"'{fingerprint.name}' was made differently from the tasks of the store at {self.root} and cannot "
                f"be compared with them ({'; '.join(differences)})")

    def _refresh(self) -> None:
        """Re-read the index when it grew (another process published); map the screening rows of the tasks in it."""
        index = self.root / "index.jsonl"
        size = index.stat().st_size if index.is_file() else 0
        if size == self._index_bytes and self._codes is not None:
            return
        ids, names, samples, complete = [], [], [], 0
        if size:
            with open(index, "rb") as handle:
                data = handle.read(size)
            for line in data.splitlines(keepends=True):
                if not line.endswith(b"\n"):
                    break  # a line being written
                entry = json.loads(line)
                ids.append(entry["id"])
                names.append(entry["name"])
                samples.append(int(entry["n"]))
                complete += len(line)
        self.ids, self.names, self.samples, self._index_bytes = ids, names, samples, complete
        count = len(ids)
        codes_path = self.root / "codes.f32"
        self._codes = (np.memmap(codes_path, dtype=np.float32, mode="r", shape=(count, self.row_values))
                       if count else np.empty((0, self.row_values), dtype=np.float32))
        digests = self.root / "digests.bin"
        self._digests = (np.fromfile(digests, dtype=np.uint8, count=count * 32).reshape(count, 32)
                         if count else np.empty((0, 32), dtype=np.uint8))

    @contextmanager
    def _writer(self):
        with open(self.root / "store.lock", "a+") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _identity(fingerprint: Fingerprint) -> dict:
    meta = fingerprint.meta
    identity = {key: getattr(meta, key) for key in _IDENTITY}
    identity.update({f"protocol {key}": meta.protocol.get(key) for key in _PROTOCOL_IDENTITY})
    return identity


def _same_rows(digests: np.ndarray, digest: bytes) -> np.ndarray:
    """(k,) bool: which of the (k, 32) digests equal ``digest``."""
    return np.all(digests == np.frombuffer(digest, dtype=np.uint8)[None], axis=1)
