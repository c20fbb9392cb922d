"""Ranked catalogue tasks as sources for the user's task, with bootstrap uncertainty and the paper's evidence."""
from __future__ import annotations

import streamlit as st

from core.catalogue.knowledge import SCENARIOS
from core.catalogue.validity import summary_line
from core.report.measured import caption as measured_caption
from core.report.measured import measured_gains
from core.report.next_steps import next_steps
from core.report.recommend import POLICY_FIGURE, knowledge_tables, second_opinion
from core.report.verdict import EXPORT_COLUMNS, LEVELS, ranked_with_references
from ui import session
from ui.common import distance_choice, footer, need_fingerprint, page_setup
from ui.resources import get_paper_repetitions, get_transfer_results
from ui.tables import recommendation_table
from ui.task_images import example_strip
from ui.text import csv_bytes, md
from ui.verdict import TERMS, show_verdict

catalogue = page_setup("Recommendations")
fingerprint = need_fingerprint()

distance = distance_choice(st, "distance_choice")
st.session_state[session.DISTANCE] = distance

ranking = session.ranking(catalogue, fingerprint, distance)
bootstrap, full_table, verdict = ranking.bootstrap, ranking.table, ranking.verdict
show_verdict(verdict)
table = full_table[full_table["kind"] != "control"]
top = table.iloc[0]
st.markdown(f"Closest public task to **{fingerprint.name}**: **{top['task']}** ({top['modality']}). The grey rows "
            "are reference points: sets of everyday, non-medical images. A medical task ranked below one of them "
            "is not distinguishable from unrelated images for your task.")
measured = get_transfer_results()
ranked = ranked_with_references(full_table)
ranked = ranked.merge(measured_gains(measured, list(ranked["task_id"])), on="task_id", how="left")
if measured is not None:
    st.caption(measured_caption(measured, top["task"]))
recommendation_table(ranked, scale=ranking.scale,
                     sources={t.id: t.source for t in catalogue.tasks})
st.markdown("**What the closest public tasks' images look like**")
for task_id in table["task_id"].head(3):
    example_strip(catalogue, task_id)
st.download_button("Download the ranking (CSV)", csv_bytes(ranked_with_references(full_table)[EXPORT_COLUMNS]),
                   file_name="recommendations.csv", mime="text/csv", key="download_csv")

with st.expander("Details: how firm the ranking is, second opinion, families, validity"):
    closeness = ranking.closeness
    st.markdown(closeness.message)
    st.caption(TERMS["twin distance"])
    opinion = second_opinion(full_table)
    if opinion["agree"] is not None:
        said = ("both agree" if opinion["agree"] else f"it puts **{md(opinion['second_opinion_first'])}** first")
        margin = (f"The second source is {opinion['margin_pct']:.1f} % farther than the first."
                  if opinion["margin_pct"] is not None else "The first source is identical to your task (distance 0).")
        st.markdown(f"Second opinion (VDNA): {said}. {margin}")
        st.caption(TERMS["VDNA"])
    report = catalogue.validity.get("probes", {}).get(catalogue.probe, {}).get(distance)
    if report:
        st.markdown(f"How far this ranking can be trusted, measured on the catalogue itself: {summary_line(report)}. "
                    "More in Catalogue explorer → Validity report.")
    placed = session.part(catalogue, fingerprint, ("placement",))
    families, family = placed.families, placed.family
    members = md(", ".join(catalogue.task(i).name for i in family["tasks"]))
    st.markdown(f"Your task's family: **{md(family['label'])}** ({members}); {families['k']} "
                f"families in the catalogue, agreement with modality (adjusted Rand index, 1 = same grouping, "
                f"0 = chance): {families['adjusted_rand_index']:.2f}.")
    st.caption(TERMS["family"])
    if bootstrap is not None:
        st.caption(f"{TERMS['bootstrap']} Here: {bootstrap.n_resamples} re-draws of your "
                   f"{fingerprint.meta.n_samples:,} samples. *rank holds* = share of re-draws in which the task "
                   "keeps its rank; *first place* = share in which it is the nearest. They speak only of sampling "
                   "noise in your images, not of whether the measure picked the right source.")
    else:
        st.caption("This fingerprint was loaded from a file: it keeps no per-image data, so your images cannot be "
                   "re-drawn and the verdict reads the margins alone.")
    st.caption(TERMS["bKLD"])

st.subheader("Next steps: what to try first")
if verdict.strength >= LEVELS.index("weak"):
    st.warning("The match is weak, so these suggestions come from tasks that may not resemble yours: treat them as "
               "ideas to test, not as evidence for your task.")
elif verdict.level == "several about equally close":
    st.info("Several public tasks are about equally close: the suggestions below come from the nearest ones the "
            "paper measured; weigh them together.")
st.caption("From the paper's own experiments on the public tasks nearest to yours that it measured: what helped "
           "most when that task was trained, by how much (AUROC, 0.5 = chance, 1 = perfect) and how sure.")
steps = next_steps(catalogue, full_table, get_paper_repetitions())
if not steps:
    st.caption("None of the nearest public tasks was measured by the paper.")
for task_steps in steps:
    st.markdown(f"**Because your images resemble {task_steps.task}** (the paper's task *{task_steps.paper_task}*):")
    st.markdown("\n".join(f"- {sentence}" for sentence in task_steps.sentences.values()))
    with st.expander(f"Evidence for {task_steps.task}: the paper's measurements"):
        for scenario, frame in task_steps.evidence.items():
            st.markdown(f"**{SCENARIOS[scenario].capitalize()}: best sources when {task_steps.paper_task} was "
                        "trained**")
            st.dataframe(frame, hide_index=True)
        row = full_table[full_table["task"] == task_steps.task]
        for title, frame in knowledge_tables(catalogue, row["task_id"].iloc[0]).items():
            if "augmentation policy: most applied" in title or "nearest paper tasks" in title:
                st.markdown(f"**{title.capitalize()}**")
                st.dataframe(frame, hide_index=True)
        st.caption(POLICY_FIGURE)
st.caption(catalogue.knowledge.get("attribution", ""))
footer()
