"""Each task's nearest other task in a :class:`core.distances.source_store.SourceStore`, maintained incrementally.

``nearest.bin`` holds one record per row (``distance`` float64, ``source`` row int64, -1 for none): the task's
distance as the target to its nearest other live task, min over s != t of bKLD(s -> t) (a different task with an
identical fingerprint counts, at 0, as in the catalogue's matrix). It is derived data, written whole (temporary
file, then a rename) after the index, so a write that dies leaves it short, and the next writer completes it.

When tasks are published (rows ``start`` onwards):

* each new task as the target: its ``candidates`` best sources by the screening rows (one matrix product for the
  whole batch) are re-scored exactly, the best is its nearest;
* each new task as a source for every earlier target t: one product of the new screening rows with the stored
  target rows approximates d(new -> t) for every t at once; the pairs that could beat t's current nearest are
  re-scored exactly: those whose screened value exceeds t's nearest by less than the typical screening error plus
  twice the largest deviation from it, both seen on the exactly re-scored candidates of the same batch (the
  screening of near neighbours errs by a similar amount for every target), at most ``PAIRS_PER_SOURCE`` per new
  task, smallest excess first (bench/cloud_scale.py measures how often a task's nearest is missed). With no more than
  ``EVERY_PAIR_UP_TO`` earlier tasks, every pair is.

A withdrawal recomputes, as above, the nearest of the tasks whose nearest was the withdrawn task.
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from core.atomic_file import replace_atomically
from core.distances.store_rows import same_rows


class StoreView(Protocol):
    """What this module reads of a :class:`core.distances.source_store.SourceStore` (declared here, so the store
    can import this module and this module need not import the store)."""

    root: Path
    row_ids: list[str]
    live: np.ndarray
    live_rows: np.ndarray
    digests: np.ndarray

    def exact(self, rows: np.ndarray, weighted: np.ndarray, weights: np.ndarray, offset: float,
              digest: bytes) -> np.ndarray: ...

    def row_target(self, row: int) -> tuple[np.ndarray, np.ndarray, float]: ...

    def target_rows(self) -> np.ndarray: ...

    def source_codes(self, rows: np.ndarray) -> np.ndarray: ...

    def screen_rows(self, queries: np.ndarray, chunk: int = ...) -> np.ndarray: ...


NEAREST = np.dtype([("distance", "<f8"), ("source", "<i8")])
#: sources re-scored exactly for a new task's own nearest neighbour
NEAREST_CANDIDATES = 50
#: earlier targets up to which every (new source, target) pair is re-scored exactly, without the margin rule
EVERY_PAIR_UP_TO = 200
#: earlier targets re-scored per new source at most, the most promising first
PAIRS_PER_SOURCE = 50
#: new tasks screened together (bounds the (rows, group) screening matrix)
GROUP = 64


def read_nearest(store: StoreView) -> np.ndarray | None:
    """The records of every row, or None when ``nearest.bin`` is missing, short or names a withdrawn task as a
    live task's nearest (a writer completes it: :func:`ensure_nearest`)."""
    rows = len(store.row_ids)
    data = _load(store)
    if data is None or len(data) != rows:
        return None
    sources = data["source"][store.live_rows]
    if np.any(sources >= rows) or np.any((sources >= 0) & ~store.live[np.clip(sources, 0, None)]):
        return None
    return data


def ensure_nearest(store: StoreView) -> np.ndarray:
    """The records of every row, completed and repaired where needed (call with the writer lock held)."""
    found = read_nearest(store)
    if found is not None:
        return found
    rows = len(store.row_ids)
    data = _load(store)
    data = np.empty(0, dtype=NEAREST) if data is None else data[:rows].copy()
    stale = np.flatnonzero(data["source"] >= rows)  # names a row that was never completed: recompute
    data = extend_nearest(store, data, len(data))
    data["source"][stale] = -2
    return repair_nearest(store, data)


def extend_nearest(store: StoreView, nearest: np.ndarray, start: int) -> np.ndarray:
    """Records for rows ``start`` onwards (new tasks) and the earlier targets they are nearer to; written."""
    rows = len(store.row_ids)
    out = np.empty(rows, dtype=NEAREST)
    out[:start] = nearest[:start]
    out["distance"][start:], out["source"][start:] = np.inf, -1
    new = np.flatnonzero(store.live[start:]) + start
    errors: list[np.ndarray] = []
    for group in np.array_split(new, max(1, -(-len(new) // GROUP))):
        if len(group):
            _nearest_of(store, group, out, errors)
    earlier = store.live_rows[store.live_rows < start]
    if len(new) and len(earlier):
        seen = np.concatenate(errors) if errors else np.empty(0)
        typical = float(np.median(seen)) if len(seen) else 0.0
        margin = typical + 2.0 * float(np.abs(seen - typical).max()) if len(seen) else np.inf
        _new_sources(store, new, earlier, out, margin, everything=len(earlier) <= EVERY_PAIR_UP_TO)
    _write(store, out)
    return out


def repair_nearest(store: StoreView, nearest: np.ndarray) -> np.ndarray:
    """Recompute the live targets whose nearest is withdrawn or unknown (after a withdrawal); written if any."""
    sources = nearest["source"][store.live_rows]
    stale = (sources == -2) | ((sources >= 0) & ~store.live[np.clip(sources, 0, None)])
    stale |= (sources == -1) & (len(store.live_rows) > 1)
    targets = store.live_rows[stale]
    if len(targets) == 0:
        return nearest
    out = nearest.copy()
    out["distance"][targets], out["source"][targets] = np.inf, -1
    for group in np.array_split(targets, max(1, -(-len(targets) // GROUP))):
        _nearest_of(store, group, out, [])
    _write(store, out)
    return out


def _nearest_of(store: StoreView, targets: np.ndarray, out: np.ndarray, errors: list[np.ndarray]) -> None:
    """Each of ``targets`` (rows) as the target: its nearest live source, screened then re-scored exactly, into
    ``out``; the screening errors (screened - exact) of the re-scored candidates are appended to ``errors``."""
    target_rows = store.target_rows()
    queries = np.asarray(target_rows[targets])
    screened = store.screen_rows(queries[:, :-1]) - queries[:, -1][None]  # + c_t: approximate distances
    dead = ~store.live
    for k, row in enumerate(targets):
        column = screened[:, k].copy()
        column[dead] = np.inf
        column[row] = np.inf
        live_count = len(store.live_rows) - 1
        if live_count <= 0:
            continue
        pool = min(NEAREST_CANDIDATES, live_count)
        chosen = np.argpartition(column, pool - 1)[:pool] if pool < live_count else np.flatnonzero(np.isfinite(column))
        twins = np.flatnonzero(same_rows(store.digests, bytes(store.digests[row])) & store.live)
        chosen = np.union1d(chosen, twins[twins != row])
        weighted, weights, constant = store.row_target(int(row))
        values = store.exact(chosen, weighted, weights, constant, bytes(store.digests[row]))
        usable = values > 0  # twins score 0 by the digest, not by the formula
        errors.append(column[chosen][usable] - values[usable])
        best = np.lexsort((chosen, values))[0]
        out[row] = (values[best], chosen[best])


def _new_sources(store: StoreView, new: np.ndarray, earlier: np.ndarray, out: np.ndarray, margin: float,
                 everything: bool, chunk: int = 2048) -> None:
    """The new rows as sources for the earlier live targets: re-score the pairs that could beat a target's nearest
    (all pairs when ``everything``); update ``out``."""
    extended = np.hstack([store.source_codes(new), np.ones((len(new), 1), dtype=np.float32)]).T.copy()
    target_rows = store.target_rows()
    current = out["distance"]
    excess = np.empty((len(earlier), len(new)), dtype=np.float32)  # screened d(new -> t) - t's nearest
    for begin in range(0, len(earlier), chunk):
        block = earlier[begin:begin + chunk]
        excess[begin:begin + len(block)] = -(np.asarray(target_rows[block]) @ extended) - current[block][:, None]
    pairs: dict[int, set[int]] = {}
    for j in range(len(new)):
        if everything:
            hits = np.arange(len(earlier))
        else:
            hits = np.flatnonzero(excess[:, j] < margin)
            if len(hits) > PAIRS_PER_SOURCE:
                hits = hits[np.argsort(excess[hits, j], kind="stable")[:PAIRS_PER_SOURCE]]
        for i in hits:
            pairs.setdefault(int(earlier[i]), set()).add(int(new[j]))
    for j in new:  # an identical task scores 0, whatever its screened value
        for t in np.flatnonzero(same_rows(store.digests[earlier], bytes(store.digests[j]))):
            pairs.setdefault(int(earlier[t]), set()).add(int(j))
    for target, sources in pairs.items():
        chosen = np.array(sorted(sources))
        weighted, weights, constant = store.row_target(target)
        values = store.exact(chosen, weighted, weights, constant, bytes(store.digests[target]))
        best = np.lexsort((chosen, values))[0]
        if values[best] < current[target] or (values[best] == current[target] and chosen[best] < out["source"][target]):
            out[target] = (values[best], chosen[best])


def _load(store: StoreView) -> np.ndarray | None:
    path = store.root / "nearest.bin"
    if not path.is_file() or path.stat().st_size % NEAREST.itemsize:
        return None
    return np.fromfile(path, dtype=NEAREST)


def _write(store: StoreView, records: np.ndarray) -> None:
    replace_atomically(store.root / "nearest.bin", records.tobytes())
