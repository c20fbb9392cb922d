"""Per-session state: the user's fingerprints (one per probe) and read report, the analysis parts prepared for them,
and a private temporary folder for uploads."""
from __future__ import annotations

from pathlib import Path, PurePosixPath

import streamlit as st

from core.distances.registry import DEFAULT_DISTANCE
from core.fingerprint.fingerprint import Fingerprint
from core.images.dataset import ReadReport
from core.report.analysis import Parts, Points, Ranking, compute_part, part_names
from core.scratch import ScratchFolder

FINGERPRINT = "fingerprint"  # the fingerprint in use (of the probe in use)
#: probe -> fingerprint of the same samples: every probe one forward pass gave (switching probes recomputes nothing)
FINGERPRINTS = "fingerprints"
#: the session's analysis parts (core.report.analysis.Parts) and the fingerprints they belong to
ANALYSIS = "analysis"
REPORT = "report"
DISTANCE = "distance"
SELECTED_TASK = "selected_task"
PROBE = "probe"  # the probe layer in use (Your task, advanced); absent = the catalogue's default
PROBE_WIDGET = "probe_choice"
#: a few of the user's images as thumbnails + features (core.report.feature_meaning), memory only
IMAGE_SAMPLE = "image_sample"
#: (core.report.feature_meaning.SampledImages, backbone): the images read for IMAGE_SAMPLE, their features still to
#: compute (an analysis part, after the first table), memory only
SAMPLED_IMAGES = "sampled_images"
#: the analysis part that computes the features of SAMPLED_IMAGES (one forward pass gives every probe's)
IMAGE_SAMPLE_PART = ("image sample",)


def fingerprint() -> Fingerprint | None:
    """The fingerprint in use: of the chosen probe when the session holds one for it."""
    current = st.session_state.get(FINGERPRINT)
    wanted = st.session_state.get(PROBE)
    others = st.session_state.get(FINGERPRINTS) or {}
    if current is not None and wanted is not None and current.meta.probe != wanted and wanted in others:
        current = st.session_state[FINGERPRINT] = others[wanted]
    return current


def fingerprints() -> dict[str, Fingerprint]:
    """probe -> fingerprint of the session's samples (at least the one in use)."""
    current = st.session_state.get(FINGERPRINT)
    found = dict(st.session_state.get(FINGERPRINTS) or {})
    if current is not None:
        found.setdefault(current.meta.probe, current)
    return found


def report() -> ReadReport | None:
    return st.session_state.get(REPORT)


def set_result(new_fingerprint: Fingerprint, new_report: ReadReport | None,
               other_probes: dict[str, Fingerprint] | None = None) -> None:
    """The new task: its fingerprint in use, read report and the same samples' fingerprints under other probes."""
    st.session_state[FINGERPRINT] = new_fingerprint
    st.session_state[FINGERPRINTS] = {**(other_probes or {}), new_fingerprint.meta.probe: new_fingerprint}
    st.session_state[REPORT] = new_report
    st.session_state.pop(ANALYSIS, None)
    for key in (IMAGE_SAMPLE, SAMPLED_IMAGES):  # belong to the previous task; set again by the caller if any
        st.session_state.pop(key, None)


def clear_result() -> None:
    for key in (FINGERPRINT, FINGERPRINTS, REPORT, IMAGE_SAMPLE, SAMPLED_IMAGES, ANALYSIS):
        st.session_state.pop(key, None)


def set_sampled_images(sampled, backbone) -> None:
    """The images read for 'Why this task?' (core.report.feature_meaning.SampledImages, or None): their features
    are computed in the background after the first table (:func:`image_sample`)."""
    st.session_state.pop(IMAGE_SAMPLE, None)
    st.session_state[SAMPLED_IMAGES] = None if sampled is None else (sampled, backbone)


def image_sample():
    """The user's sampled thumbnails (core.report.feature_meaning.ImageSample) or None (e.g. a loaded fingerprint,
    or features of another probe than the one in use). Waits (with a spinner) for their features when the
    background has not computed them yet."""
    sample, current = st.session_state.get(IMAGE_SAMPLE), fingerprint()
    if current is None:
        return None
    if sample is None and st.session_state.get(SAMPLED_IMAGES) is not None:
        from ui.resources import get_catalogues

        parts = analysis(get_catalogues())
        try:
            if parts.ready(IMAGE_SAMPLE_PART):
                sample = parts.get(IMAGE_SAMPLE_PART)
            else:
                with st.spinner("Preparing your sampled images (computed once for your task)…"):
                    sample = parts.get(IMAGE_SAMPLE_PART)
        except Exception:  # optional: the page says when there are none
            sample = None
        st.session_state[IMAGE_SAMPLE] = sample
        st.session_state.pop(SAMPLED_IMAGES, None)
    if sample is None:
        return None
    return sample.for_probe(current.meta.probe) if getattr(sample, "by_probe", None) else sample


#: catalogues up to this many tasks get every part of every probe prepared in the background after a fingerprint
PREPARE_EVERYTHING_UP_TO = 40
#: above it, only the first parts of the probe in use (points and ranking at the chosen distance, map placement,
#: contributions)
FIRST_PARTS = 4


def analysis(catalogues: dict) -> Parts | None:
    """The session's analysis parts (core.report.analysis): made for the session's fingerprints on first use and
    prepared in a background thread, the probe in use and the chosen distance first; parts a page asks for
    meanwhile are computed at once or waited for, never twice. ``catalogues``: probe -> catalogue (loaded by the
    caller, in the script's thread). None without a fingerprint."""
    found = fingerprints()
    current = fingerprint()
    if current is None:
        return None
    held = st.session_state.get(ANALYSIS)
    if held is not None and held[0] == {p: id(f) for p, f in found.items()}:
        return held[1]
    usable = {p: f for p, f in found.items() if p in catalogues}
    sampled = st.session_state.get(SAMPLED_IMAGES)

    def compute(key):
        if key == IMAGE_SAMPLE_PART:
            from core.report.feature_meaning import sample_features
            return sample_features(*sampled)
        probe, name = key
        return compute_part(catalogues[probe], usable[probe], name, lambda other: parts.get((probe, other)))

    parts = Parts(compute)
    order = [current.meta.probe] + [p for p in usable if p != current.meta.probe]
    planned = [(p, name) for p in order for name in part_names(distance())]
    shown = catalogues[current.meta.probe]
    if len(shown.ids) > PREPARE_EVERYTHING_UP_TO or shown.neighbourhood_of:  # a large catalogue's neighbourhood too
        # every part of a large catalogue holds GBs (bKLD large and VDNA keep 1,000 bins per task): prepare what the
        # first pages show, compute the rest when asked
        planned = [(current.meta.probe, name) for name in part_names(distance())[:FIRST_PARTS]]
    if sampled is not None:  # the images' features right after the first table's verdict
        planned.insert(2, IMAGE_SAMPLE_PART)
    parts.prepare_all(planned)
    st.session_state[ANALYSIS] = ({p: id(f) for p, f in found.items()}, parts)
    return parts


def part(catalogue, target: Fingerprint, name: tuple):
    """One part of the analysis (core.report.analysis.part_names) of ``target`` against ``catalogue``: from the
    session's prepared parts when ``target`` is the fingerprint in use, waiting (with a spinner) when it is being
    prepared; computed directly otherwise."""
    from ui.resources import get_catalogues

    parts = analysis(get_catalogues()) if target is fingerprint() else None
    if parts is None or catalogue.probe != target.meta.probe:
        return compute_part(catalogue, target, name)
    key = (target.meta.probe, name)
    if parts.ready(key):
        return parts.get(key)
    with st.spinner("Preparing this view (computed once for your task)…"):
        return parts.get(key)


def ranking(catalogue, target: Fingerprint, name: str) -> Ranking:
    """The ranking, bootstrap, closeness and verdict for distance ``name`` (core.report.analysis.Ranking)."""
    return part(catalogue, target, ("ranking", name))


def points(catalogue, target: Fingerprint, name: str) -> Points:
    """The ranked table for distance ``name`` before its bootstrap (core.report.analysis.Points): what a page can
    show while the bootstrap and verdict are still being prepared."""
    return part(catalogue, target, ("points", name))


def ranking_if_ready(catalogue, target: Fingerprint, name: str) -> Ranking | None:
    """The ranking for distance ``name`` when it is ready, else None: it is being prepared in the background (started
    now if nothing was preparing it). Computed at once for a target that is not the session's."""
    from ui.resources import get_catalogues

    parts = analysis(get_catalogues()) if target is fingerprint() else None
    if parts is None or catalogue.probe != target.meta.probe:
        return ranking(catalogue, target, name)
    key = (target.meta.probe, ("ranking", name))
    parts.start(key)
    return parts.get(key) if parts.ready(key) else None


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
