"""Bits every page shows: the page header and the 'no fingerprint yet' hint."""
from __future__ import annotations

import streamlit as st

from core.catalogue.store import CITATION
from core.distances.registry import DISTANCES
from ui import pages, session
from ui.resources import get_catalogue
from ui.text import md


def page_setup(title: str):
    """Show the page's title and return the catalogue (or stop with a message when it cannot be loaded)."""
    st.title(title)
    try:
        catalogue = get_catalogue(probe=session.probe())
    except Exception as err:  # a broken catalogue must say what to do, not show a traceback
        st.error(f"The catalogue could not be loaded: {md(err)}")
        st.stop()
    if catalogue.neighbourhood_of:
        neighbourhood_note(catalogue)
    return catalogue


def neighbourhood_note(catalogue) -> None:
    """What a page of a large catalogue shows: a neighbourhood, not the whole."""
    about = catalogue.neighbourhood_of
    centre = "your task" if about["around"] is None else f"'{md(catalogue.task(about['around']).name)}'"
    st.caption(f"This catalogue holds {about['total']:,} tasks; this page shows the neighbourhood of {centre}: the "
               f"{about['size']} medical tasks nearest it by bKLD small (found among all of them by the source "
               "store) and the nearest non-medical controls. Other distances rank within this neighbourhood.")


#: seconds between refreshes of the sidebar's progress bar: each refresh is a fragment run, and runs in quick
#: succession starve the background thread that prepares the parts of the interpreter's lock
PROGRESS_EVERY_S = 2.0


def analysis_progress() -> None:
    """While the session's analysis parts are prepared in the background: a bar in the sidebar, refreshed every
    :data:`PROGRESS_EVERY_S`; when the last part is ready the page reruns once (and the bar goes)."""
    held = st.session_state.get(session.ANALYSIS)
    if held is None or held[1].progress()[0] >= held[1].progress()[1]:
        return
    parts = held[1]

    @st.fragment(run_every=PROGRESS_EVERY_S)
    def bar() -> None:
        done, total = parts.progress()
        if done >= total:
            st.rerun()
        st.progress(done / total, text=f"Preparing the other views and distances for your task: {done} of {total} "
                                       "ready (pages open at once when their part is ready)")

    with st.sidebar:
        bar()


def need_fingerprint():
    """The session's fingerprint, or a hint with a link and a stop."""
    fingerprint = session.fingerprint()
    if fingerprint is None:
        st.info("No task yet: add your images (or a shared fingerprint) on the **Your task** page first. "
                "The **Catalogue explorer** works without one.")
        st.page_link(pages.YOUR_TASK, label="Go to Your task", icon=":material/arrow_forward:")
        st.stop()
    return fingerprint


def distance_choice(container, key: str) -> str:
    """A menu of every distance in the registry (their labels), starting at the session's distance."""
    names = list(DISTANCES)
    chosen = container.selectbox("Distance", names, format_func=lambda name: DISTANCES[name].label,
                                 index=names.index(session.distance()), key=key)
    return chosen


def footer() -> None:
    analysis_progress()
    st.caption(f"Method: {CITATION} Distances are directed (source → your task); lower means more transferable. "
               "The paper's effect sizes are small: treat ranks as suggestions with uncertainty.")


def probe_choice(catalogue) -> None:
    """Advanced: the backbone layer the features come from (one catalogue ships per probe). Changing it drops a
    fingerprint made with another probe, which could not be compared."""
    from core.features.backbones import registry

    spec = registry().get(catalogue.backbone)
    shipped = get_catalogue()
    available = [shipped.probe, *shipped.alternate_probes()]
    st.session_state[session.PROBE_WIDGET] = catalogue.probe  # the widget shows the catalogue in use

    def adopt() -> None:
        st.session_state[session.PROBE] = st.session_state[session.PROBE_WIDGET]

    with st.expander("Advanced: probe layer"):
        chosen = st.selectbox("Layer whose pooled values are the features", available, key=session.PROBE_WIDGET,
                              on_change=adopt, format_func=lambda p: f"{p} (default)" if p == shipped.probe else p)
        if spec is not None and chosen in spec.probes:
            st.caption(f"{chosen}: {spec.probes[chosen].about}.")
        st.caption("The default was chosen by the catalogue's validity report (Catalogue explorer); "
                   "'postact' is the paper's kind of layer, kept for comparison.")
    fingerprint = session.fingerprint()  # the same samples' fingerprint of the chosen probe, when the session has it
    if fingerprint is not None and fingerprint.meta.probe != chosen:
        session.clear_result()
        st.info(f"Your fingerprint was made with probe '{md(fingerprint.meta.probe)}'; compute it again with "
                f"'{chosen}' (fingerprints of different probes cannot be compared).")


def task_filter(frame, key: str, modality_column: str = "modality", name_column: str = "task"):
    """A modality-family multiselect and a name search above a table; returns the rows that pass
    (core.report.views.filter_tasks). Shows how many rows are hidden."""
    from core.catalogue.validity import modality_family
    from core.report.views import filter_tasks

    families = sorted({modality_family(m) for m in frame[modality_column]})
    left, right = st.columns([3, 2])
    chosen = left.multiselect("Modality (empty: all)", families, key=f"{key}_modality")
    search = right.text_input("Search by name", key=f"{key}_search")
    shown = filter_tasks(frame, chosen, search, modality_column, name_column)
    if len(shown) < len(frame):
        st.caption(f"{len(shown)} of {len(frame)} rows match the filter.")
    return shown
