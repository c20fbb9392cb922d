"""Where a catalogue folder keeps each task's fingerprint (``fingerprints/ID.npz``), and reading one back checked
against the catalogue's identity: the same for every catalogue layout (core.catalogue.store, core.catalogue.large)."""
from __future__ import annotations

from pathlib import Path

from core.errors import CatalogueError, FingerprintFileError
from core.fingerprint.binning import BinEdges
from core.fingerprint.fingerprint import Fingerprint

FINGERPRINTS_FOLDER = "fingerprints"


def fingerprint_path(root: Path, task_id: str) -> Path:
    """The file of task ``task_id``'s fingerprint in catalogue folder ``root``."""
    return Path(root) / FINGERPRINTS_FOLDER / f"{task_id}.npz"


def read_task_fingerprint(root: Path, task_id: str, manifest: dict, edges: BinEdges) -> Fingerprint:
    """Task ``task_id``'s fingerprint, made with the catalogue's ``edges``, weights and probe (``manifest``: its
    catalogue.json); :class:`CatalogueError` saying what is wrong otherwise."""
    try:
        fingerprint = Fingerprint.load(fingerprint_path(root, task_id))
    except FingerprintFileError as err:
        raise CatalogueError(str(err)) from None
    if fingerprint.meta.edges_id != edges.identity or fingerprint.meta.weights_sha256 != \
            manifest["weights_sha256"] or fingerprint.meta.probe != manifest.get("probe"):
        raise CatalogueError(f"{root}: fingerprint of '{task_id}' was made with other edges, weights or probe")
    return fingerprint
