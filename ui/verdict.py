"""The verdict at the head of every page that shows the ranking: computed once per session and distance
(core.report.verdict), shown as one coloured sentence with the levels one hover away."""
from __future__ import annotations

import streamlit as st

from core.report.recommend import bootstrap_for, recommendations
from core.report.verdict import LEVEL_MEANINGS, LEVELS, Verdict, verdict_from_catalogue

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
    """The session's bootstrap over the catalogue's candidates for ``distance`` (computed once)."""
    key = f"bootstrap:{distance}"
    if key not in st.session_state:
        with st.spinner("Re-drawing your images to see how firm the ranking is…"):
            st.session_state[key] = bootstrap_for(catalogue, fingerprint, distance)
    return st.session_state[key]


def verdict_of(catalogue, fingerprint, distance: str, table=None) -> Verdict:
    """The verdict for the session's fingerprint (uses the session's bootstrap), computed once per distance (the
    key starts with 'bootstrap:' so that a new fingerprint drops it with the bootstrap, ui.session.set_result)."""
    key = f"bootstrap:verdict:{distance}"
    if key not in st.session_state:
        bootstrap = bootstrap_of(catalogue, fingerprint, distance)
        if table is None:
            table = recommendations(catalogue, fingerprint, distance, bootstrap)
        with st.spinner("Weighing the evidence for the verdict…"):
            st.session_state[key] = verdict_from_catalogue(catalogue, table, fingerprint, distance, bootstrap)
    return st.session_state[key]


def show_verdict(verdict: Verdict) -> None:
    """The verdict sentence, coloured by level, with what every level means a hover away."""
    box = {"strong": st.success, "several about equally close": st.info, "weak": st.warning,
           "nothing close": st.error}[verdict.level]
    box(f"**Verdict — {verdict.level}.** {verdict.sentence}", icon=":material/gavel:")
    legend = "; ".join(f"{level}: {LEVEL_MEANINGS[level]}" for level in LEVELS)
    st.caption(f"Verdict levels, strongest first: {', '.join(LEVELS)}.", help=legend)
