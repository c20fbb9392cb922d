"""Symmetrised distances between all catalogue tasks and the user's task, ordered by clustering."""
from __future__ import annotations

import streamlit as st

from core.compare import DISTANCES
from core.views import heatmap_frame
from ui import figures, session
from ui.common import footer, page_setup

catalogue = page_setup("Heatmap")
fingerprint = session.fingerprint()
distance = st.selectbox("Distance", list(DISTANCES), format_func=lambda key: DISTANCES[key],
                        index=list(DISTANCES).index(session.distance()), key="heatmap_distance")
symmetric, directed = heatmap_frame(catalogue, fingerprint, distance)
st.caption("Colour: (d(a→b) + d(b→a)) / 2, rows and columns ordered by average-linkage clustering. Hover for the "
           "two directed values." + ("" if fingerprint else " Add your task on **Your task** to include it."))
st.plotly_chart(figures.heatmap(symmetric, directed), key="heatmap")
with st.expander("Directed values (rows = source, columns = target)"):
    st.dataframe(directed.style.format("{:.4f}"), key="directed_table")
footer()
