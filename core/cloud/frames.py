"""The cloud's source stores: one :class:`core.distances.source_store.SourceStore` (bKLD small) per frame
(:func:`core.cloud.ranking.frame_of`) in a folder of the server's disk, ``<folder>/<frame>/``.

A publish adds the task to its frame's store (with the nearest-neighbour maintenance), a withdrawal tombstones it;
neither rebuilds anything. The database stays the record: before a frame's store answers, its live task ids are
compared with the database's (a query of ids), and a store that drifted (a server killed between the database commit
and the store write, another server process on the same database) is brought level by adding the missing tasks and
withdrawing the extra ones; a store that cannot be read is moved aside and rebuilt from the database.
"""
from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

from core.distances.registry import BKLD_SMALL
from core.distances.source_store import SourceStore
from core.errors import CatalogueError
from core.fingerprint.fingerprint import Fingerprint

#: the distance the stores rank by (the default distance; others are ranked in memory for small frames only)
STORE_DISTANCE = BKLD_SMALL.name


def default_folder(database_url: str) -> Path:
    """Where the stores live when the operator names no folder: beside a SQLite file (``cloud.db.stores``); for a
    database server, a new temporary folder (the stores are then built from the database at each start: give
    ``--stores`` a lasting folder on a large cloud)."""
    from sqlalchemy.engine import make_url

    from core.cloud.database import driver_url

    parsed = make_url(driver_url(database_url))
    if parsed.get_backend_name() == "sqlite":
        return Path(f"{Path(parsed.database).resolve()}.stores")
    import tempfile
    return Path(tempfile.mkdtemp(prefix="tfe-cloud-stores-"))


class FrameStores:
    """The stores under ``folder``; every method is safe to call from the server's worker threads."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._stores: dict[str, SourceStore] = {}
        self._locks: dict[str, threading.RLock] = {}
        self._guard = threading.Lock()

    def lock(self, frame: str) -> threading.RLock:
        """The lock that serialises everything done with ``frame``'s store in this process."""
        with self._guard:
            return self._locks.setdefault(frame, threading.RLock())

    def store(self, frame: str, live_ids: list[str], load: Callable[[str], Fingerprint]) -> SourceStore:
        """``frame``'s store holding exactly ``live_ids`` (the database's live tasks of the frame, oldest first);
        ``load(task_id)`` returns a task's fingerprint from the database. Call with :meth:`lock` held."""
        store = self._stores.get(frame)
        if store is None:
            store = self._open(frame, live_ids, load)
        held = set(store.ids)
        wanted = set(live_ids)
        if held != wanted:
            for task_id in [i for i in store.ids if i not in wanted]:
                store.withdraw(task_id)
            missing = [i for i in live_ids if i not in held]
            if missing:
                store.add_many((task_id, load(task_id)) for task_id in missing)
        return store

    def publish(self, frame: str, task_id: str, fingerprint: Fingerprint) -> None:
        """Add a task just committed to the database (a store not yet opened is brought level on first use)."""
        with self.lock(frame):
            store = self._stores.get(frame)
            if store is not None and task_id not in store.ids:
                store.add(fingerprint, task_id)

    def withdraw(self, frame: str, task_id: str) -> None:
        """Tombstone a task just withdrawn in the database."""
        with self.lock(frame):
            store = self._stores.get(frame)
            if store is not None and task_id in store.ids:
                store.withdraw(task_id)

    def _open(self, frame: str, live_ids: list[str], load: Callable[[str], Fingerprint]) -> SourceStore:
        root = self.folder / frame
        try:
            store = SourceStore.open(root)
        except CatalogueError:
            if (root / "store.json").exists():  # unreadable or another format: keep it for a look, build anew
                shutil.move(str(root), str(root.with_name(f"{frame}.unusable-{int(time.time())}")))
            store = SourceStore.open(root, like=load(live_ids[0]), distance=STORE_DISTANCE)
        self._stores[frame] = store
        return store
