"""Per-session state: the user's fingerprint and read report, and a private temporary folder for uploads."""
from __future__ import annotations

from pathlib import Path, PurePosixPath

import streamlit as st

from core.distances.registry import DEFAULT_DISTANCE
from core.fingerprint.fingerprint import Fingerprint
from core.images.dataset import ReadReport
from core.scratch import ScratchFolder

FINGERPRINT = "fingerprint"
REPORT = "report"
DISTANCE = "distance"
SELECTED_TASK = "selected_task"
PROBE = "probe"  # the probe layer in use (Your task, advanced); absent = the catalogue's default
PROBE_WIDGET = "probe_choice"
#: a few of the user's images as thumbnails + features (core.report.feature_meaning), memory only
IMAGE_SAMPLE = "image_sample"


def fingerprint() -> Fingerprint | None:
    return st.session_state.get(FINGERPRINT)


def report() -> ReadReport | None:
    return st.session_state.get(REPORT)


def set_result(new_fingerprint: Fingerprint, new_report: ReadReport | None) -> None:
    st.session_state[FINGERPRINT] = new_fingerprint
    st.session_state[REPORT] = new_report
    st.session_state.pop(IMAGE_SAMPLE, None)  # belongs to the previous task; set again by the caller if any
    for key in [k for k in st.session_state if str(k).startswith("bootstrap:")]:
        del st.session_state[key]


def clear_result() -> None:
    for key in (FINGERPRINT, REPORT, IMAGE_SAMPLE):
        st.session_state.pop(key, None)


def image_sample():
    """The user's sampled thumbnails (core.report.feature_meaning.ImageSample) or None (e.g. a loaded fingerprint)."""
    return st.session_state.get(IMAGE_SAMPLE)


def probe() -> str | None:
    return st.session_state.get(PROBE)


def distance() -> str:
    return st.session_state.get(DISTANCE, DEFAULT_DISTANCE)


class UploadFolder:
    """A private temporary folder for one computation; removed on exit whatever happens."""

    def __enter__(self) -> Path:
        self.scratch = ScratchFolder("tfe-upload-")  # also removes folders left by killed app processes
        self.path = self.scratch.path / "upload"  # beside the owner lock, which is not an upload
        self.path.mkdir()
        return self.path

    def __exit__(self, *exc) -> None:
        self.scratch.remove()


def safe_relative(name: str) -> PurePosixPath | None:
    """An uploaded file's relative path if it is safe to write below the upload folder, else None."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or not path.parts or ":" in path.parts[0]:
        return None
    return path


def write_uploads(files: list, folder: Path) -> list[tuple[str, str]]:
    """Write uploaded files below ``folder`` keeping their relative paths; returns refused (name, reason)."""
    refused = []
    names = [f.name for f in files]
    common = _common_top_folder(names)
    for uploaded in files:
        relative = safe_relative(uploaded.name)
        if relative is None:
            refused.append((uploaded.name, "unsafe path (absolute or '..') refused"))
            continue
        if common and len(relative.parts) > 1:
            relative = PurePosixPath(*relative.parts[1:])  # the dropped folder itself is not a class
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(uploaded.getvalue())
    return refused


def _common_top_folder(names: list[str]) -> bool:
    """True when every uploaded path starts with the same folder (the folder the user dropped)."""
    tops = {PurePosixPath(n.replace("\\", "/")).parts[0] for n in names if "/" in n.replace("\\", "/")}
    return len(tops) == 1 and all("/" in n.replace("\\", "/") for n in names)
