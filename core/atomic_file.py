"""Replacing a file so that a reader sees the old bytes or the new ones, never half of them, even after a crash."""
from __future__ import annotations

import os
from pathlib import Path


def replace_atomically(path: Path, payload: bytes) -> None:
    """Write ``payload`` to a temporary file beside ``path``, flush it to disk (fsync), then rename it over ``path``.
    One writer at a time: the temporary name is fixed (``.NAME.tmp``), so callers hold their writer lock."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "wb") as handle:
        handle.write(payload)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
