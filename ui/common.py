"""Bits every page shows: the page header and the 'no fingerprint yet' hint."""
from __future__ import annotations

import streamlit as st

from core.catalogue import CITATION
from ui import session
from ui.resources import get_catalogue


def page_setup(title: str):
    """Show the page's title and return the catalogue (or stop with a message when it cannot be loaded)."""
    st.title(title)
    try:
        return get_catalogue()
    except Exception as err:  # a broken catalogue must say what to do, not show a traceback
        st.error(f"The catalogue could not be loaded: {err}")
        st.stop()


def need_fingerprint():
    """The session's fingerprint, or a hint with a link and a stop."""
    fingerprint = session.fingerprint()
    if fingerprint is None:
        st.info("No task yet: add your images (or a shared fingerprint) on the **Your task** page first. "
                "The **Catalogue explorer** works without one.")
        st.page_link("pages/0_Your_task.py", label="Go to Your task", icon=":material/arrow_forward:")
        st.stop()
    return fingerprint


def footer() -> None:
    st.caption(f"Method: {CITATION} Distances are directed (source → your task); lower means more transferable. "
               "The paper's effect sizes are small: treat ranks as suggestions with uncertainty.")
