"""The verdict at the head of every page that shows the ranking: computed once per session and distance
(core.report.verdict), shown as one coloured sentence with the levels one hover away."""
from __future__ import annotations

import time
from collections.abc import Callable

import streamlit as st

from core.distances.bootstrap import DEFAULT_RESAMPLES
from core.report.verdict import LEVEL_MEANINGS, LEVELS, Verdict
from ui import session
from ui.text import md

#: the longest Your task waits for its verdict after drawing the table (then the sidebar's progress bar runs the page
#: again once every part is ready)
VERDICT_WAIT_S = 60.0
#: the plain explanations of technical terms, shown where the terms appear (help= tooltips and captions)
TERMS = {
    "bKLD": "bKLD (binned Kullback-Leibler divergence): how much of your images' feature histograms a public "
            "task's histograms fail to explain; lower = more alike.",
    "bootstrap": "Bootstrap: your images are re-drawn at random many times and everything is measured again; "
                 "what holds in most re-draws does not hang on a few images.",
    "probe layer": "Probe layer: the layer of the pretrained network whose values describe each image.",
    "VDNA": "VDNA: another way of comparing the same histograms (a second opinion).",
    "P2L": "P2L: compares the average feature values only, not their histograms.",
    "family": "Family: a group of catalogue tasks that are nearest to one another.",
    "twin distance": "Twin distance: what the measure gives for a task identical to yours (its floor).",
}


def bootstrap_of(catalogue, fingerprint, distance: str):
    """The session's bootstrap over the catalogue's candidates for ``distance`` (computed once per session)."""
    return session.ranking(catalogue, fingerprint, distance).bootstrap


def verdict_of(catalogue, fingerprint, distance: str, table=None) -> Verdict:
    """The verdict for the session's fingerprint (computed once per session, with its ranking)."""
    return session.ranking(catalogue, fingerprint, distance).verdict


def show_verdict_when_ready(catalogue, fingerprint, distance: str) -> Callable[[], None]:
    """The verdict once the session's ranking at ``distance`` (with its bootstrap) is ready; until then a line that
    says it is being weighed. Returns what the page calls last, after everything else is drawn: a wait for the
    ranking (up to :data:`VERDICT_WAIT_S`), then the page runs again with the verdict. A click elsewhere ends the
    wait at once (Streamlit stops a run at its next element, and the wait draws one four times a second); unlike
    a polling fragment, the wait leaves the background thread that computes the ranking the interpreter's lock."""
    found = session.ranking_if_ready(catalogue, fingerprint, distance)
    if found is not None:
        show_verdict(found.verdict)
        return lambda: None
    slot = st.empty()
    message = (f"**Verdict — being weighed.** Your images are re-drawn {DEFAULT_RESAMPLES} times to see whether the "
               "first place holds; the distances below are final.")
    slot.info(message, icon=":material/hourglass_top:")

    def wait() -> None:
        deadline = time.monotonic() + VERDICT_WAIT_S
        while time.monotonic() < deadline:
            if session.ranking_if_ready(catalogue, fingerprint, distance) is not None:
                st.rerun()
            time.sleep(0.25)
            slot.info(message, icon=":material/hourglass_top:")  # where a click stops this run

    return wait


def show_verdict(verdict: Verdict) -> None:
    """The verdict sentence, coloured by level, with what every level means a hover away."""
    box = {"strong": st.success, "several about equally close": st.info, "weak": st.warning,
           "nothing close": st.error}[verdict.level]
    box(f"**Verdict — {verdict.level}.** {md(verdict.sentence)}", icon=":material/gavel:")
    legend = "; ".join(f"{level}: {LEVEL_MEANINGS[level]}" for level in LEVELS)
    st.caption(f"Verdict levels, strongest first: {', '.join(LEVELS)}.", help=legend)
