"""Symmetrised distances between catalogue tasks and the user's task, clustered; large catalogues show one task and
its nearest ones, the full matrix one click away."""
from __future__ import annotations

import streamlit as st

from core.report.views import HEATMAP_FOCUS_ABOVE, HEATMAP_NEAREST, USER_ID, heatmap_view
from ui import figures, session
from ui.common import distance_choice, footer, page_setup

catalogue = page_setup("Heatmap")
fingerprint = session.fingerprint()
left, middle = st.columns(2)
distance = distance_choice(left, "heatmap_distance")
colour = middle.radio("Colour", ["rank", "distance"], horizontal=True, key="heatmap_colour",
                      format_func=lambda c: "symmetrised distance" if c == "distance" else
                      "rank among each target's sources (removes each target's offset; the map's scale)")
total = len(catalogue.tasks) + (fingerprint is not None)
around, nearest = None, None
if total > HEATMAP_FOCUS_ABOVE:
    choices = ([USER_ID] if fingerprint is not None else []) + catalogue.ids
    names = {USER_ID: f"{fingerprint.name} (yours)" if fingerprint else ""} | \
        {t.id: t.name for t in catalogue.tasks}
    one, two, three = st.columns([3, 2, 2])
    around = one.selectbox("Centre on (type to search)", choices, format_func=names.get, key="heatmap_around")
    nearest = int(two.number_input("Nearest tasks shown", 5, 100, HEATMAP_NEAREST, step=5, key="heatmap_nearest"))
    if three.toggle(f"Show all {total} tasks", key="heatmap_all"):
        around = None
found = session.ranking(catalogue, fingerprint, distance) if fingerprint is not None else None
view = heatmap_view(catalogue, fingerprint, distance, around, nearest, colour,
                    None if found is None else (found.to_user, found.from_user))
shown = len(view.symmetric)
st.caption(f"{shown} of {view.total} tasks" + (f" (the centre task and its {shown - 1} nearest)" if view.focus else "")
           + ". Colour: (d(a→b) + d(b→a)) / 2" + (" of the per-target ranks" if colour == "rank" else "")
           + f", range {view.lo:.4g}–{view.hi:.4g} from the off-diagonal values (2nd–98th percentile; the blank "
           "diagonal is each task with itself). Rows and columns ordered by average-linkage clustering; the bar on "
           "the left is the modality family. Light cells = near (similar), dark = far. Hover for both directed "
           "values."
           + ("" if fingerprint else " Add your task on **Your task** to include it."))
st.plotly_chart(figures.heatmap(view), key="heatmap")
with st.expander("Directed values (rows = source, columns = target)"):
    st.dataframe(view.directed.style.format("{:.4f}"), key="directed_table")
footer()
