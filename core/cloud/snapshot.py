"""``pull``: the cloud's tasks that are comparable with a local catalogue, written as a catalogue folder (the format
:func:`core.catalogue.store.load_catalogue` reads), so that ``python -m core compare mine.npz --catalogue DIR`` ranks
them on your machine and your fingerprint never leaves it.

The local catalogue (by default the shipped one) supplies the bin edges and decides which tasks are comparable (same
backbone, probe, weights, edges, pipeline). Every downloaded fingerprint goes through the strict validator and must
match the digest the server lists. The cards, publishers and experiences go to ``cloud.json`` beside the catalogue
files (task names, modality, terms of reuse also into ``catalogue.json``). A folder is only replaced when it holds
an earlier pull (``cloud.json``); the write is atomic (:func:`core.catalogue.store.write_catalogue`)."""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

from core.catalogue.store import MAP_MATRIX, Catalogue, load_catalogue, stored_matrices, write_catalogue
from core.cloud.client import CloudClient, CloudClientError
from core.cloud.ranking import describe_frame, frame_of, task_info
from core.errors import CatalogueError, FingerprintFileError
from core.fingerprint.fingerprint import Fingerprint, check_comparable

MARKER = "cloud.json"


def pull(client: CloudClient, directory: Path, local_catalogue: Path, probe: str | None = None,
         log=lambda message: None) -> Catalogue:
    """Write the comparable cloud tasks into ``directory`` as a catalogue; returns it loaded."""
    from core.catalogue.taskmap import fit_map

    directory = Path(directory)
    if directory.exists() and (not directory.is_dir() or (any(directory.iterdir())
                                                         and not (directory / MARKER).is_file())):
        raise CatalogueError(f"{directory}: exists and is not an earlier pull (no {MARKER}); choose a new folder")
    local = load_catalogue(local_catalogue).for_probe(probe)
    reference = local.fingerprints[local.ids[0]]
    tasks = client.tasks(frame_of(reference.meta))
    if not tasks:
        raise CloudClientError(f"{client.url} has no published task made like {local.root} "
                               f"({describe_frame(reference.meta)})")
    fingerprints = {}
    for task in tasks:
        data = client.fingerprint(task["id"])
        if hashlib.sha256(data).hexdigest() != task["fingerprint"]["sha256"]:
            raise CloudClientError(f"{client.url}: the fingerprint of task {task['id']} does not match its listed "
                                   "digest; refused")
        try:
            fingerprint = Fingerprint.from_bytes(data, f"{client.url} task {task['id']}")
        except FingerprintFileError as err:
            raise CloudClientError(str(err)) from None
        check_comparable(fingerprint, reference)
        fingerprints[task["id"]] = fingerprint.renamed(task["card"]["name"])
        log(f"pulled {task['id']} ({len(data):,} bytes)")
    infos = [task_info(task) for task in tasks]
    matrices = stored_matrices([fingerprints[t.id] for t in infos])
    coords, method = fit_map(matrices[MAP_MATRIX])
    pulled_at = datetime.now(timezone.utc).isoformat()
    manifest = {"backbone": local.backbone, "weights_sha256": local.weights_sha256, "probe": local.probe,
                "protocol": local.protocol, "map_method": method,
                "built": {"by": "python -m core cloud pull", "server": client.url, "pulled_at": pulled_at,
                          "edges_from": str(local.root)}}
    record = {"server": client.url, "pulled_at": pulled_at,
              "tasks": {t["id"]: {key: t[key] for key in ("card", "publisher", "published_at", "experiences",
                                                           "fingerprint")} for t in tasks}}
    write_catalogue(directory, manifest, local.edges, infos, fingerprints, matrices, coords,
                    extra_files={MARKER: (json.dumps(record, indent=1, sort_keys=True) + "\n").encode()})
    return load_catalogue(directory)
