"""Which features drive the bKLD between the user's task and a chosen catalogue task, in human terms: the ImageNet
classes each feature supports, the user's images that activate it most, and where the two histograms differ."""
from __future__ import annotations

import numpy as np
import streamlit as st

from core.distances.registry import DEFAULT_DISTANCE, DISTANCES, WITH_CONTRIBUTIONS
from core.report.feature_meaning import bin_contributions, feature_classes
from core.report.views import contributions_frame, feature_histograms
from ui import figures, session
from ui.common import footer, need_fingerprint, page_setup
from ui.resources import get_classifier

SHOWN = 5  # top features explained one by one
#: the feature table's headers in words
FEATURE_COLUMNS = {"feature": "feature", "contribution": "part of the distance", "share": "share of the distance",
                   "cumulative_share": "share, running total", "classes": "ImageNet classes it points to"}
catalogue = page_setup("Why similar?")
fingerprint = need_fingerprint()
values = session.ranking(catalogue, fingerprint, DEFAULT_DISTANCE).to_user
nearest_first = [catalogue.ids[i] for i in values.argsort()]
nearest_first = [i for i in nearest_first if i in catalogue.candidate_ids] + \
    [i for i in nearest_first if i not in catalogue.candidate_ids]  # controls last, as in the recommendations
preselected = st.session_state.get(session.SELECTED_TASK)
index = nearest_first.index(preselected) if preselected in nearest_first else 0
task_id = st.selectbox("Catalogue task (source; nearest first, type to search)", nearest_first, index=index,
                       format_func=lambda i: catalogue.task(i).name, key="why_task")
st.session_state[session.SELECTED_TASK] = task_id
variant = st.radio("bKLD", WITH_CONTRIBUTIONS, horizontal=True, key="why_distance",
                   format_func=lambda v: DISTANCES[v].short)
source = catalogue.fingerprints[task_id]
every = session.part(catalogue, fingerprint, ("contributions", variant))
frame, total, half = contributions_frame(fingerprint, source, variant, top=20,
                                         contributions=every[catalogue.ids.index(task_id)])
weight, names = get_classifier(catalogue.probe)
frame = frame.merge(feature_classes(weight, names, frame["feature"].tolist()), on="feature")
top_share = float(frame["cumulative_share"].iloc[SHOWN - 1])
st.markdown(f"**The {SHOWN} features below make {top_share:.0%} of the distance {total:.4f}** "
            f"({fingerprint.name} ← {catalogue.task(task_id).name}); the 20 largest make "
            f"{frame['cumulative_share'].iloc[-1]:.0%}; {half} of {fingerprint.n_features} features make half of it"
            + (": a few features drive it." if half <= 20 else ": the difference is spread over many features."))
st.plotly_chart(figures.contributions(frame, total), key="contributions_chart")
st.caption("Each feature is named by the ImageNet classes the backbone's own classifier weights it towards most "
           "(column f of classifier.weight; for the 'preact' probe the classifier sees relu6 of this channel). They "
           "hint at the visual pattern (texture, shape, colour), not at a medical finding.")
sample = session.image_sample()
if sample is None:
    st.info("Your images are not available in this session (a loaded fingerprint holds no pixels), so the images "
            "that activate each feature cannot be shown.")
bins = DISTANCES[variant].n_bins
edges = catalogue.edges
for row in frame.head(SHOWN).itertuples():
    feature = int(row.feature)
    st.markdown(f"**f{feature}** · {row.share:.1%} of the distance · ImageNet classes: {row.classes}")
    left, right = st.columns([2, 3])
    if sample is not None:
        top = sample.top_for(feature, 6)
        left.image([sample.thumbnails[i] for i in top], width=64,
                   caption=[f"{sample.features[i, feature]:.2f}" for i in top])
        left.caption(f"Your {len(top)} images (of {len(sample.thumbnails)} sampled, this session only) that "
                     "activate it most; value under each.")
    terms = bin_contributions(fingerprint.counts[feature], source.counts[feature], bins)
    marked_bins = [int(b) for b in np.argsort(terms)[::-1][:5] if terms[b] > 0]
    histogram = feature_histograms(fingerprint, source, feature, bins, float(edges.lo[feature]),
                                   float(edges.hi[feature]))
    starts = histogram.loc[histogram["task"] == "your task", "bin_start"].to_numpy()
    right.plotly_chart(figures.histograms(histogram, feature, [float(starts[b]) for b in marked_bins],
                                          f"f{feature}: both histograms; shaded = the 5 bins adding most"),
                       key=f"histogram_{feature}")
with st.expander("All 20 top features"):
    st.dataframe(frame.rename(columns=FEATURE_COLUMNS), hide_index=True, key="contributions_table")
footer()
