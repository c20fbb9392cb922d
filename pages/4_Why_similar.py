"""Which features drive the bKLD between the user's task and a chosen catalogue task."""
from __future__ import annotations

import streamlit as st

from core.views import contributions_frame, feature_histograms
from ui import figures, session
from ui.common import footer, need_fingerprint, page_setup

catalogue = page_setup("Why similar?")
fingerprint = need_fingerprint()
values, _ = catalogue.distances_to(fingerprint, "bkld-small")
nearest_first = [catalogue.ids[i] for i in values.argsort()]
nearest_first = [i for i in nearest_first if i in catalogue.candidate_ids] + \
    [i for i in nearest_first if i not in catalogue.candidate_ids]  # controls last, as in the recommendations
preselected = st.session_state.get(session.SELECTED_TASK)
index = nearest_first.index(preselected) if preselected in nearest_first else 0
task_id = st.selectbox("Catalogue task (source)", nearest_first, index=index,
                       format_func=lambda i: catalogue.task(i).name, key="why_task")
st.session_state[session.SELECTED_TASK] = task_id
variant = st.radio("bKLD", ["bkld-small", "bkld-large"], horizontal=True, key="why_distance",
                   format_func=lambda v: "small (100 bins, weighted)" if v == "bkld-small" else "large (1000 bins)")
source = catalogue.fingerprints[task_id]
frame, total, half = contributions_frame(fingerprint, source, variant, top=20)
st.plotly_chart(figures.contributions(frame, total), key="contributions_chart")
st.caption(f"The 20 largest of {fingerprint.n_features} per-feature terms w_f·KL_f / Σw; together they make "
           f"{frame['cumulative_share'].iloc[-1]:.0%} of the distance; {half} features make half of it"
           + (": a few features drive it." if half <= 20 else ": the difference is spread over many features."))
st.dataframe(frame, hide_index=True, key="contributions_table")
feature = st.selectbox("Feature to inspect", frame["feature"].tolist(), key="why_feature")
edges = catalogue.edges
bins = 100 if variant == "bkld-small" else 1000
histogram = feature_histograms(fingerprint, source, int(feature), bins, float(edges.lo[feature]),
                               float(edges.hi[feature]))
st.plotly_chart(figures.histograms(histogram, int(feature)), key="histogram_chart")
footer()
