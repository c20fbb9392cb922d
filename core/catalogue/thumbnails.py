"""Example thumbnails of public tasks, shipped only where the stated licence clearly allows redistribution.

``python -m core catalogue thumbnails ../shared/data/catalogue --out data/catalogue`` makes up to 6 thumbnails (at most
96 px on the long side, PNG) per task whose stated licence is clear (:func:`redistributable`), the same ones every
run (classes in turn, evenly spaced through each class's sorted files), into ``thumbnails/TASK/`` and records
the files, licence and attribution under the task's ``thumbnails`` entry in the catalogue's ``SOURCES.json``. Every
other task gets no thumbnails: the app shows where the data can be obtained instead (:func:`source_link`).
"""
from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from core.report.cotrain import OPEN, licence_short

#: thumbnails per task and their longest side in pixels
PER_TASK = 6
MAX_SIDE = 96
#: words in a stated licence that leave doubt even when it names an open licence (second-hand or hedged readings)
HEDGES = ("as listed", "as stated", "as commonly stated", "not re-checked", "not verified", "states none",
          "per-image", "unknown")
#: what each clear licence asks for when the images are shown (recorded with the files)
REQUIREMENTS = {"MIT": "keep the copyright and permission notice of the source repository's LICENSE",
                "CC BY": "credit the creators, link the licence and say what was changed"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


def redistributable(licence: str) -> bool:
    """True only when the stated licence is open (CC0, CC BY, MIT, BSD, Apache, public domain) and the text has no
    hedge: conservative, a reading of what the source states, not legal advice."""
    text = (licence or "").lower()
    return licence_short(licence) == OPEN and not any(hedge in text for hedge in HEDGES)


def source_link(source: str) -> str | None:
    """Where the copy of the data came from, as a link (GitHub ``owner/name[@commit]``), or None."""
    repo = (source or "").split("@")[0].strip()
    if repo.count("/") == 1 and " " not in repo:
        return f"https://github.com/{repo}"
    return None


def pick_files(task_folder: Path, n: int = PER_TASK) -> list[Path]:
    """``n`` images of a task folder, the same every time: classes (first-level folders, sorted) in turn, each
    class's sorted files taken evenly spaced."""
    classes = sorted(p for p in task_folder.iterdir() if p.is_dir()) or [task_folder]
    per_class = [sorted(p for p in c.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES) for c in classes]
    picked: list[Path] = []
    for round_ in range(n):
        for files in per_class:
            if len(picked) == n:
                return picked
            take = n // len(per_class) + 1
            step = max(1, len(files) // take)
            if round_ * step < len(files):
                picked.append(files[round_ * step])
    return picked


def make_thumbnail(path: Path, out: Path) -> None:
    """``path`` reduced to at most MAX_SIDE px on its long side, as PNG at ``out`` (no metadata carried over)."""
    with Image.open(path) as image:
        image = image.convert("RGB") if image.mode not in ("L", "RGB") else image.copy()
    image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    out.parent.mkdir(parents=True, exist_ok=True)
    image.save(out, format="PNG", optimize=True)


def make_thumbnails(task_folders: Path, catalogue: Path, log=print) -> dict[str, list[str]]:
    """Thumbnails for every redistributable task of ``task_folders`` (with SOURCES.json) into ``catalogue/thumbnails``;
    records them in ``catalogue/SOURCES.json``. Returns {task id: file names relative to the catalogue}."""
    sources = json.loads((task_folders / "SOURCES.json").read_text())
    manifest_path = catalogue / "SOURCES.json"
    manifest = json.loads(manifest_path.read_text())
    made = {}
    for task_id, entry in sorted(sources["tasks"].items()):
        stored = manifest["tasks"].setdefault(task_id, dict(entry))
        if not redistributable(entry.get("licence", "")):
            stored.pop("thumbnails", None)
            continue
        files = []
        for index, path in enumerate(pick_files(task_folders / task_id)):
            relative = f"thumbnails/{task_id}/{index}.png"
            make_thumbnail(path, catalogue / relative)
            files.append(relative)
        licence = entry["licence"]
        stored["thumbnails"] = {
            "files": files, "licence": licence,
            "attribution": f"{entry.get('upstream', task_id)}; copy from {source_link(entry.get('source_repo', ''))}"
                           f" ({licence})",
            "changes": f"reduced to at most {MAX_SIDE} px on the long side, saved as PNG",
            "requires": next((v for k, v in REQUIREMENTS.items() if k.lower() in licence.lower()), "")}
        made[task_id] = files
        log(f"{task_id}: {len(files)} thumbnails ({licence})")
    manifest_path.write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    return made


def thumbnails_of(catalogue_root: Path, task_id: str) -> tuple[list[Path], dict]:
    """(thumbnail paths, their licence record) of a task from the catalogue's SOURCES.json; ([], {}) when none."""
    try:
        manifest = json.loads((Path(catalogue_root) / "SOURCES.json").read_text())
    except (OSError, ValueError):
        return [], {}
    record = manifest.get("tasks", {}).get(task_id, {}).get("thumbnails") or {}
    paths = [Path(catalogue_root) / f for f in record.get("files", []) if (Path(catalogue_root) / f).is_file()]
    return paths, record
