"""Temporary folders that a killed run cannot leave behind for good.

A run's scratch folder (extracted archives, uploads) is claimed with an exclusive ``fcntl.flock`` on a lock file
inside it, held for as long as the folder is in use. The kernel drops the lock when the process dies, even on
``kill -9``, so the next run can tell an abandoned folder (lock free) from a live one (lock held) and removes only the
abandoned ones: no pid files, no guessing from ages.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
import time
from pathlib import Path

_OWNER = ".owner.lock"
#: a folder without an owner lock younger than this may be one being created right now; older ones are abandoned
_UNCLAIMED_GRACE_S = 300.0


class ScratchFolder:
    """A fresh temporary folder (``PREFIX*`` in ``parent``, default the system's temporary folder), claimed for this
    process until :meth:`remove`. Creating one first removes the abandoned folders of killed runs with that prefix."""

    def __init__(self, prefix: str, parent: Path | None = None) -> None:
        remove_abandoned(prefix, parent)
        self.path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
        self._descriptor: int | None = os.open(self.path / _OWNER, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def remove(self) -> None:
        """Delete the folder and release the claim (idempotent)."""
        if self._descriptor is not None:
            shutil.rmtree(self.path, ignore_errors=True)
            os.close(self._descriptor)
            self._descriptor = None


def remove_abandoned(prefix: str, parent: Path | None = None) -> list[Path]:
    """Remove folders ``PREFIX*`` in ``parent`` whose owner is gone (owner lock free, or no lock file and older than
    a few minutes); returns what was removed. Folders of live runs are left alone."""
    folder = Path(parent or tempfile.gettempdir())
    removed = []
    try:
        candidates = [p for p in folder.glob(f"{prefix}*") if p.is_dir() and not p.is_symlink()]
    except OSError:
        return removed
    for candidate in candidates:
        if _abandoned(candidate):
            shutil.rmtree(candidate, ignore_errors=True)
            removed.append(candidate)
    return removed


def _abandoned(folder: Path) -> bool:
    try:
        descriptor = os.open(folder / _OWNER, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        try:
            return time.time() - folder.stat().st_mtime > _UNCLAIMED_GRACE_S
        except OSError:
            return False
    except OSError:
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False  # held: a live run owns it
    finally:
        os.close(descriptor)
    return True
