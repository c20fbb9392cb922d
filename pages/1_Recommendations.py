"""Ranked catalogue tasks as sources for the user's task, with bootstrap uncertainty and the paper's evidence."""
from __future__ import annotations

import streamlit as st

from core.catalogue.families import families_report, family_of
from core.catalogue.validity import summary_line
from core.report.recommend import (
    SECOND_OPINION,
    bootstrap_for,
    how_close,
    knowledge_tables,
    recommendations,
    second_opinion,
)
from ui import session
from ui.common import distance_choice, footer, need_fingerprint, page_setup
from ui.tables import recommendation_table

catalogue = page_setup("Recommendations")
fingerprint = need_fingerprint()

distance = distance_choice(st, "distance_choice")
st.session_state[session.DISTANCE] = distance

key = f"bootstrap:{distance}"
if key not in st.session_state:
    with st.spinner("Bootstrapping over your samples…"):
        st.session_state[key] = bootstrap_for(catalogue, fingerprint, distance)
bootstrap = st.session_state[key]

full_table = recommendations(catalogue, fingerprint, distance, bootstrap)
table = full_table[full_table["kind"] != "control"]
controls = full_table[full_table["kind"] == "control"]
top = table.iloc[0]
st.markdown(f"Nearest source for **{fingerprint.name}**: **{top['task']}** ({top['modality']}).")
closeness = how_close(catalogue, full_table, fingerprint, distance)
(st.caption if closeness.close else st.warning)(closeness.message)
opinion = second_opinion(full_table)
if opinion["agree"] is not None:
    verdict = ("both agree" if opinion["agree"] else
               f"{SECOND_OPINION.upper()} puts **{opinion['second_opinion_first']}** first")
    st.markdown(f"Second opinion ({SECOND_OPINION.upper()}, other maths on the same histograms): {verdict}. "
                f"The second source is {opinion['margin_pct']:.1f} % farther than the first.")
report = catalogue.validity.get("probes", {}).get(catalogue.probe, {}).get(distance)
if report:
    st.caption(f"How far this ranking can be trusted, measured on the catalogue ({distance}, probe "
               f"{catalogue.probe}): {summary_line(report)}. Details: Catalogue explorer → Validity report.")
families = families_report(catalogue)
family = family_of(catalogue, fingerprint, families)
st.markdown(f"Your task's family: **family {family['family']}** ({family['label']}; {', '.join(family['tasks'])}). "
            f"Families: {families['k']} clusters of the symmetrised per-target ranks of bKLD small, cut by the "
            f"{families['criterion']}; "
            f"adjusted Rand index against modality {families['adjusted_rand_index']:.2f}.")
if bootstrap is not None:
    st.caption(f"Uncertainty: {bootstrap.n_resamples} bootstrap resamples of your {fingerprint.meta.n_samples:,} "
               "samples. *rank holds* = share of resamples in which the task keeps its rank; *first place* = share in "
               "which it is the nearest. These shares speak only of sampling noise in your images: a first place "
               "in 100 % of resamples does not mean the distance picked the right source.")
else:
    st.caption("This fingerprint was loaded from a file, so no per-sample bootstrap is possible.")

recommendation_table(table)
with st.expander(f"Non-medical controls ({len(controls)}): reference points, not candidate sources"):
    st.markdown(
        "The controls show what a task from another world looks like: they give the distances a scale. They are "
        "never ranked as candidates. If a control comes out *nearer* than every real candidate, your images share "
        "low-level statistics with tiny, blurry pictures (8 × 8 digits, 25 × 25 faces), or no catalogue task is "
        "close; bKLD softmaxes only the source histogram, so it rewards sources whose histograms pile up where "
        "yours has mass.")
    best_candidate = float(table["distance"].iloc[0])
    shown_controls = controls[["task", "distance", "modality"]].assign(
        closer_than_best_candidate=controls["distance"] < best_candidate)
    st.dataframe(shown_controls, hide_index=True, key="controls_table")
st.download_button("Download as CSV", full_table.to_csv(index=False).encode(), file_name="recommendations.csv",
                   mime="text/csv", key="download_csv")

st.subheader("What to borrow: the paper's measurements for the linked tasks")
st.caption("For catalogue tasks linked to a task of the paper: per scenario (architecture, pretraining data, "
           "augmentation policy, co-training data), measured AUROC and its change over training without transfer.")
for _, row in table.iterrows():
    tables = knowledge_tables(catalogue, row["task_id"])
    if not tables:
        continue
    info = catalogue.task(row["task_id"])
    with st.expander(f"#{row['rank']} {row['task']} — paper task: {info.paper_task} ({info.paper_link})"):
        for title, frame in tables.items():
            st.markdown(f"**{title}**")
            st.dataframe(frame, hide_index=True)
st.caption(catalogue.knowledge.get("attribution", ""))
footer()
