"""One writer at a time per catalogue folder, and what a killed writer left behind put right.

Every write of a catalogue folder ``.../NAME`` (add, refresh, build, validity report) runs under an exclusive
``fcntl.flock`` on the lock file ``.../.NAME.lock`` beside it, and a read-modify-write (``catalogue add``) holds it
from the read to the last rename, so two concurrent writers both land, one after the other. The lock belongs to the
open file, so the kernel releases it when its process dies (``kill -9`` included): a lock is never left stale, and
the lock file itself is never removed (removing it would let two writers hold locks on two different files).

While the lock is held, nobody else is writing, so the leftovers of killed runs can be judged safely:

- ``.NAME.new-*``: a staging folder of a write that never finished; removed.
- ``.NAME.old-*`` with ``NAME`` present: the previous catalogue of a write that finished its two renames but was
  killed before removing it; removed.
- ``.NAME.old-*`` with ``NAME`` missing: a write killed between its two renames; the previous catalogue is renamed
  back to ``NAME`` (never replaced by a fresh copy of the shipped catalogue).
"""
from __future__ import annotations

import errno
import fcntl
import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.errors import CatalogueError

#: seconds a writer waits for another one to finish before giving up (TFE_CATALOGUE_LOCK_TIMEOUT_S overrides it)
DEFAULT_LOCK_TIMEOUT_S = 120.0
_POLL_S = 0.05
_held = threading.local()  # {lock path: depth} held by this thread (a writer calling another writer of one folder)


def lock_path(root: Path) -> Path:
    """The lock file of catalogue folder ``root``: ``.NAME.lock`` beside it."""
    root = Path(root).absolute()
    return root.parent / f".{root.name}.lock"


def lock_timeout_s() -> float:
    """How long a writer waits for the lock: TFE_CATALOGUE_LOCK_TIMEOUT_S (seconds) or DEFAULT_LOCK_TIMEOUT_S."""
    try:
        return max(0.0, float(os.environ.get("TFE_CATALOGUE_LOCK_TIMEOUT_S", DEFAULT_LOCK_TIMEOUT_S)))
    except ValueError:
        return DEFAULT_LOCK_TIMEOUT_S


def _holder_pid(descriptor: int) -> str:
    """The pid the current holder wrote into the lock file ('unknown' when it has not written it yet)."""
    try:
        text = os.pread(descriptor, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return "unknown"
    return text if text.isdigit() else "unknown"


@contextmanager
def writer_lock(root: Path, timeout_s: float | None = None) -> Iterator[list[str]]:
    """Hold the writer lock of catalogue folder ``root`` (waiting up to ``timeout_s``, default
    :func:`lock_timeout_s`), after putting right what killed writers left (see the module docstring). Yields the
    notes about what was restored or removed (one line each). Re-entrant within one thread.

    Raises CatalogueError "catalogue X is being written by another process (pid N); try again" when the lock stays
    held, or when the lock file cannot be created (read-only location)."""
    root = Path(root).absolute()
    path = lock_path(root)
    depths = _held.__dict__.setdefault("depths", {})
    if depths.get(path):
        depths[path] += 1
        try:
            yield []
        finally:
            depths[path] -= 1
        return
    try:
        root.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
    except OSError as err:
        raise CatalogueError(f"catalogue {root}: cannot create its lock file {path} "
                             f"({err.strerror or err}); is the folder writable?") from None
    try:
        deadline = time.monotonic() + (lock_timeout_s() if timeout_s is None else timeout_s)
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as err:
                if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    raise CatalogueError(f"catalogue {root} is being written by another process (pid "
                                         f"{_holder_pid(descriptor)}); try again") from None
                time.sleep(_POLL_S)
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        depths[path] = 1
        try:
            yield clean_leftovers(root)
        finally:
            del depths[path]
    finally:
        os.close(descriptor)  # releases the lock


def _retired(root: Path) -> list[Path]:
    return [p for p in root.parent.glob(f".{root.name}.old-*") if p.is_dir() and not p.is_symlink()]


def clean_leftovers(root: Path) -> list[str]:
    """Restore or remove what killed writers of ``root`` left beside it; call only while holding its writer lock.
    Returns one note per action, for the user."""
    root = Path(root).absolute()
    if not root.parent.is_dir():
        return []
    notes = []
    for staging in sorted(root.parent.glob(f".{root.name}.new-*")):
        if staging.is_dir() and not staging.is_symlink():
            shutil.rmtree(staging, ignore_errors=True)
            notes.append(f"removed {staging.name}, left by an interrupted write of {root.name}")
    retired = _retired(root)
    if retired and not root.exists():
        def written_at(folder: Path) -> float:
            manifest = folder / "catalogue.json"
            return manifest.stat().st_mtime if manifest.is_file() else float("-inf")

        newest = max(retired, key=written_at)
        os.rename(newest, root)
        retired.remove(newest)
        notes.append(f"restored {root} from {newest.name}: a write was interrupted between its two renames; "
                     "the catalogue is as it was before that write")
    for folder in retired:
        shutil.rmtree(folder, ignore_errors=True)
        notes.append(f"removed {folder.name}, the previous copy of {root.name} left by an interrupted write")
    return notes


def recover(root: Path, timeout_s: float | None = None) -> list[str]:
    """Put right what killed writers of ``root`` left (under its writer lock); the notes of what was done."""
    with writer_lock(root, timeout_s) as notes:
        return notes
