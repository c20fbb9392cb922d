"""Heavy shared objects, created once per server process (``st.cache_resource``)."""
from __future__ import annotations

import os
import threading
from concurrent.futures import Future

import streamlit as st

from core.catalogue.large import LargeCatalogue
from core.catalogue.store import DEFAULT_CATALOGUE, Catalogue, load_catalogue
from core.distances.registry import DEFAULT_DISTANCE
from core.features.backbones import LoadedBackbone, load_backbone
from core.features.inference import engine_for
from core.report.analysis import warm
from core.report.cotrain import DEFAULT_PAPER, read_cotrain_effects

#: environment variable naming another catalogue folder for the app (e.g. a synthetic 150-task one for tests)
CATALOGUE_VARIABLE = "TFE_CATALOGUE"


def catalogue_root() -> str:
    """The catalogue folder the app uses: $TFE_CATALOGUE when set, else the shipped one."""
    return os.environ.get(CATALOGUE_VARIABLE) or str(DEFAULT_CATALOGUE)


def get_catalogue(probe: str | None = None) -> Catalogue:
    """The catalogue made with ``probe`` (None: the shipped default) from :func:`catalogue_root`; the default
    probe named by its name is the same object as None. A large catalogue (core.catalogue.large) gives the
    session's neighbourhood (:func:`neighbourhood`)."""
    shipped = _load(catalogue_root(), None)
    if isinstance(shipped, LargeCatalogue):
        return neighbourhood(shipped.for_probe(probe))
    return shipped if probe in (None, shipped.probe) else _load(catalogue_root(), probe)


def get_whole_catalogue() -> Catalogue | LargeCatalogue:
    """The app's catalogue as loaded: every task's metadata also when it is large."""
    return _load(catalogue_root(), None)


#: session key of the task a large catalogue's views are centred on when the session has no fingerprint
FOCUS = "explorer_task"


def neighbourhood(large: LargeCatalogue, around: str | None = None) -> Catalogue:
    """The part of a large catalogue the pages show: the neighbourhood of the session's fingerprint, else of task
    ``around`` (default: the explorer's or the map's selected task, else the first medical task)."""
    from ui import session

    fingerprint = session.fingerprint()
    if around is None and fingerprint is not None and fingerprint.meta.probe == large.probe:
        return large.neighbourhood(fingerprint)
    ids = set(large.ids)
    around = next((i for i in (around, st.session_state.get(FOCUS), st.session_state.get(session.SELECTED_TASK))
                   if i in ids), None) or next((t.id for t in large.tasks if t.kind == "medical"), large.ids[0])
    return large.neighbourhood(around=around)


def get_catalogues() -> dict[str, Catalogue]:
    """probe -> catalogue, for the shipped probe and every alternate one (each loaded once per process)."""
    shipped = get_catalogue()
    return {shipped.probe: shipped, **{probe: get_catalogue(probe) for probe in shipped.alternate_probes()}}


@st.cache_resource(show_spinner="Loading the catalogue…")
def _load(root: str, probe: str | None) -> Catalogue | LargeCatalogue:
    """Loaded and prepared once per server process, root and probe."""
    catalogue = load_catalogue(root).for_probe(probe)
    if isinstance(catalogue, LargeCatalogue):
        return catalogue  # metadata and store only; what a page shows is a neighbourhood
    catalogue.bank(DEFAULT_DISTANCE)  # prepare the default distance's source terms once per server process
    warm(catalogue)  # and the catalogue's figures every user's first ranking reads
    return catalogue


#: probe -> the backbone being loaded in a background thread (:func:`preload`), until get_backbone holds it
_loading: dict[str | None, Future] = {}
_loaded: set[str | None] = set()  # probes whose backbone get_backbone has handed to its cache
_loading_lock = threading.Lock()
_first_uses_started = threading.Event()


def _backbone_loading(probe: str | None) -> Future:
    """The backbone of ``probe`` being loaded in a thread of its own, started on the first ask."""
    with _loading_lock:
        future = _loading.get(probe)
        if future is None:
            future = _loading[probe] = Future()

            def load() -> None:
                try:
                    backbone = load_backbone(probe=probe)
                    engine_for(backbone)  # export and check the ONNX model here too, not during the first fingerprint
                    future.set_result(backbone)
                except BaseException as err:  # handed to get_backbone, which raises it to the page
                    future.set_exception(err)

            threading.Thread(target=load, name="backbone-preload").start()  # not a daemon: never cut short mid-load
        return future


def preload(probe: str | None = None) -> None:
    """Start, once per server process and in the background, what a first click on "Compute fingerprint" and the
    first page visits would otherwise wait for: the backbone of ``probe`` (seconds: timm and torch imported, the
    ONNX export checked against PyTorch), Streamlit's emoji pattern (half a second, compiled the first time a
    message holds a non-ASCII character) and pandas' table styler (its templates, for the Recommendations table).
    Returns at once."""
    if probe not in _loaded:
        _backbone_loading(probe)
    with _loading_lock:
        if _first_uses_started.is_set():
            return
        _first_uses_started.set()

    def warm_first_uses() -> None:
        import re

        import pandas.io.formats.style  # noqa: F401 (compiles its templates on import)
        from streamlit.emojis import EMOJI_EXTRACTION_REGEX
        re.compile(EMOJI_EXTRACTION_REGEX)  # kept in the re module's cache, which re.search uses

    threading.Thread(target=warm_first_uses, name="first-use-preload", daemon=True).start()


@st.cache_resource(show_spinner="Loading the backbone (real ImageNet weights, verified by sha256)…")
def get_backbone(probe: str | None = None) -> LoadedBackbone:
    """The default backbone with the fastest backend available (ONNX Runtime on the CPU when installed: exported
    and checked against PyTorch on first use); waits for the :func:`preload` of it when one is running."""
    future = _backbone_loading(probe)
    try:
        return future.result()
    finally:  # held by the cache from now on (a failed load is tried again on the next call)
        with _loading_lock:
            if _loading.get(probe) is future:
                del _loading[probe]
            if not future.exception():
                _loaded.add(probe)


@st.cache_resource(show_spinner="Reading the paper's co-training results…")
def get_cotrain_effects(paper: str = str(DEFAULT_PAPER)) -> dict | None:
    """The paper's measured co-training effects per paper task, or None when the paper folder is not there."""
    return read_cotrain_effects(paper)


@st.cache_resource(show_spinner="Reading the backbone's ImageNet classifier…")
def get_classifier(probe: str | None = None) -> tuple:
    """(classifier weight (1000, m) float32, 1,000 ImageNet class names) of the backbone, once per process."""
    from core.report.feature_meaning import classifier_weight, imagenet_class_names
    return classifier_weight(get_backbone(probe)), imagenet_class_names()


@st.cache_resource(show_spinner="Reading the paper's per-repetition results…")
def get_paper_repetitions(paper: str = str(DEFAULT_PAPER)) -> dict:
    """The paper's per-repetition transfer results per scenario (empty when the paper folder is not there)."""
    from core.report.next_steps import read_repetitions
    return read_repetitions(paper)


def get_transfer_results():
    """The gains measured on the app's catalogue (``transfer/results.json``), or None when it ships none."""
    return _transfer_results(catalogue_root())


@st.cache_resource(show_spinner="Reading the measured transfer results…")
def _transfer_results(root: str):
    from pathlib import Path

    from core.transfer.results import load_results
    return load_results(Path(root) / "transfer" / "results.json")
