"""Why this public task, for the user's images: the features on which the chosen task explains the user's images
better than the typical catalogue task does (so the answer changes with the task), each named by the ImageNet
classes it points to, the user's images that activate it most, and both histograms at a readable resolution."""
from __future__ import annotations

import numpy as np
import streamlit as st

from core.distances.registry import DEFAULT_DISTANCE, DISTANCES, WITH_CONTRIBUTIONS
from core.report.feature_meaning import bin_contributions, feature_classes
from core.report.views import distinctive_features, feature_histograms, readable_histograms, task_labels
from ui import figures, session
from ui.common import footer, need_fingerprint, page_setup
from ui.resources import get_classifier
from ui.text import md

SHOWN = 5  # top features explained one by one
#: the feature table's headers in words
FEATURE_COLUMNS = {"feature": "feature", "contribution": "this task's part of the distance",
                   "median_contribution": "typical task's part", "advantage": "how much better this task explains it",
                   "share_of_advantage": "share of this task's advantage", "classes": "ImageNet classes it points to",
                   "top_class": "main ImageNet class"}
catalogue = page_setup("Why this task?")
fingerprint = need_fingerprint()
values = session.ranking(catalogue, fingerprint, DEFAULT_DISTANCE).to_user
nearest_first = [catalogue.ids[i] for i in values.argsort()]
nearest_first = [i for i in nearest_first if i in catalogue.candidate_ids] + \
    [i for i in nearest_first if i not in catalogue.candidate_ids]  # controls last, as in the recommendations
preselected = st.session_state.get(session.SELECTED_TASK)
index = nearest_first.index(preselected) if preselected in nearest_first else 0
labels = task_labels(catalogue.tasks)  # names, numbered where two tasks share one
task_id = st.selectbox("Public task (nearest first, type to search)", nearest_first, index=index,
                       format_func=labels.get, key="why_task")
st.session_state[session.SELECTED_TASK] = task_id
variant = st.radio("Distance", WITH_CONTRIBUTIONS, horizontal=True, key="why_distance",
                   format_func=lambda v: DISTANCES[v].short,
                   help="bKLD: how much of your images' feature histograms a public task's histograms fail to "
                        "explain; small uses 100 bins and weights features, large 1,000 bins, unweighted.")
source = catalogue.fingerprints[task_id]
name = labels[task_id]
every = session.part(catalogue, fingerprint, ("contributions", variant))  # all tasks', prepared once
frame, versus_median = distinctive_features(catalogue, fingerprint, task_id, variant, top=20, contributions=every)
weight, names = get_classifier(catalogue.probe)
frame = frame.merge(feature_classes(weight, names, frame["feature"].tolist()), on="feature")
nearer = versus_median < 0
among = f"the {len(catalogue.ids)} in this neighbourhood" if catalogue.neighbourhood_of else \
    f"all {len(catalogue.ids)}"
st.markdown(f"**What sets {md(name)} apart for your images.** It is "
            + ("nearer to" if nearer else "farther from") + " your images than the typical public task "
            f"(the median of {among}). The features below are the ones on which it explains your "
            f"images better than the typical task does; the {SHOWN} first carry "
            f"{frame['share_of_advantage'].head(SHOWN).sum():.0%} of its advantage. Choose another task above and "
            "they change.")
st.plotly_chart(figures.advantages(frame), key="contributions_chart")
st.caption("Each feature is one value of the pretrained network for every image; it is named by the everyday "
           "(ImageNet) picture classes the network's own classifier links it to most. Those names hint at a visual "
           "pattern (texture, shape, brightness), never at a medical finding.")
sample = session.image_sample()
if sample is None:
    st.info("Your images are not available in this session (a loaded fingerprint holds no pixels), so the images "
            "that activate each feature cannot be shown.")
bins = DISTANCES[variant].n_bins
edges = catalogue.edges
for row in frame.head(SHOWN).itertuples():
    feature = int(row.feature)
    st.markdown(f"**Feature {feature}** · {row.share_of_advantage:.0%} of the advantage · ImageNet classes: "
                f"{row.classes}")
    left, right = st.columns([2, 3])
    if sample is not None:
        top = sample.top_for(feature, 6)
        left.image([sample.thumbnails[i] for i in top], width=64,
                   caption=[f"{sample.features[i, feature]:.2f}" for i in top])
        left.caption(f"Your {len(top)} images (of {len(sample.thumbnails)} sampled, this session only) that "
                     "activate it most; value under each.")
    terms = bin_contributions(fingerprint.counts[feature], source.counts[feature], bins)
    marked_bins = {int(b) for b in np.argsort(terms)[::-1][:5] if terms[b] > 0}
    histogram = readable_histograms(feature_histograms(fingerprint, source, feature, bins, float(edges.lo[feature]),
                                                       float(edges.hi[feature])))
    right.plotly_chart(figures.histograms(histogram, feature, marked_bins,
                                          f"Feature {feature}: how often each value occurs, your images and {name}"),
                       key=f"histogram_{feature}")
right_caption = ("Histograms over the range where either has values, at most 50 bars; shaded: where the two "
                 "differ most.")
st.caption(right_caption)
with st.expander("All 20 features"):
    st.dataframe(frame.rename(columns=FEATURE_COLUMNS), hide_index=True, key="contributions_table")
footer()
