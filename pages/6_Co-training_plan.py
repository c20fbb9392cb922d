"""What to train with: k catalogue tasks, nearest first, no controls, no two sharing images, with licences."""
from __future__ import annotations

import json

import streamlit as st

from core.report.cotrain import USES, plan_for, plan_table
from ui.common import distance_choice, footer, need_fingerprint, page_setup
from ui.resources import get_cotrain_effects
from ui.text import csv_bytes, md

catalogue = page_setup("Co-training plan")
fingerprint = need_fingerprint()

left, middle, right = st.columns(3)
distance = distance_choice(left, "cotrain_distance")
n_candidates = len(catalogue.candidate_ids)
k = int(middle.number_input("Tasks to train with (k)", min_value=1, max_value=max(n_candidates, 1),
                            value=min(3, max(n_candidates, 1)), key="cotrain_k"))
use = right.selectbox("Licence must allow", [None, *USES], key="cotrain_use",
                      format_func=lambda u: "any use (no filter)" if u is None else f"{u} use")

effects = get_cotrain_effects()
plan = plan_for(catalogue, fingerprint, distance, k, use, effects)
for warning in plan["warnings"]:
    st.warning(md(warning))
table = plan_table(plan)

st.markdown(f"Train **{md(fingerprint.name)}** together with these catalogue tasks: nearest first by "
            f"{distance} (source → your task), never a non-medical control, never two tasks built on "
            "the same images.")
totals = plan["totals"]
a, b, c = st.columns(3)
a.metric("tasks", totals["tasks"])
b.metric("images", f"{totals['images']:,}")
c.metric("classes", totals["classes"])
shown = ["order", "task", "distance", "licence", "licence_stated", "images", "n_classes", "classes", "modality",
         "paper_cotrain", "upstream", "citation", "task_id"]
st.dataframe(table, hide_index=True, key="cotrain_table", column_order=shown, column_config={
    "distance": st.column_config.NumberColumn(format="%.4f", help="directed: source → your task; lower = closer"),
    "licence": st.column_config.TextColumn("licence", help="short form: open / research-only / not verified"),
    "licence_stated": st.column_config.TextColumn("licence as stated by the source", width="medium"),
    "n_classes": st.column_config.NumberColumn("classes (n)"),
    "paper_cotrain": st.column_config.TextColumn("what the paper measured when co-training with it",
                                                 width="large"),
})
for note in plan["notes"]:
    st.info(md(note))
if effects is None:
    st.caption("The paper's co-training results: paper results not available (expected in ../shared/paper).")
else:
    st.caption("Paper effect: per target, mean AUROC co-trained with the linked paper task minus the target trained "
               "alone (multi_task scenario of the paper's published results, MIT licence); small effects.")
st.caption("Licence short form, first match wins: *not verified* when the stated text admits doubt (not verified, "
           "unknown, per-image licences…), *research-only* when it restricts use, *open* when it names CC0, CC BY, "
           "MIT, BSD or Apache. A filter never passes a licence that is not verified.")
if plan["skipped"]:
    with st.expander(f"Passed over ({len(plan['skipped'])})"):
        st.dataframe(plan["skipped"], hide_index=True, key="cotrain_skipped")

one, two = st.columns(2)
one.download_button("Download plan (JSON)", json.dumps(plan, indent=1).encode(), file_name="cotrain_plan.json",
                    mime="application/json", key="download_plan_json")
two.download_button("Download plan (CSV)", csv_bytes(table), file_name="cotrain_plan.csv",
                    mime="text/csv", key="download_plan_csv")
footer()
