"""What to train with: k catalogue tasks, nearest first, no controls, no two sharing images, with licences."""
from __future__ import annotations

import json

import streamlit as st

from core.distances.registry import DISTANCES
from core.report.cotrain import USES, plan_for, plan_table, with_verdict
from ui import session
from ui.common import distance_choice, footer, need_fingerprint, page_setup
from ui.resources import get_cotrain_effects
from ui.text import csv_bytes, md
from ui.verdict import show_verdict

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
found = session.ranking(catalogue, fingerprint, distance)
ranking, verdict = found.table, found.verdict
plan = with_verdict(plan, verdict, ranking)
show_verdict(verdict)
st.markdown("The plan follows the ranking, so it is only as good as the ranking above.")
for warning in plan["warnings"]:
    st.warning(md(warning))
table = plan_table(plan)

st.markdown(f"Train **{md(fingerprint.name)}** together with these catalogue tasks: nearest first by "
            f"{DISTANCES[distance].label.split(':')[0]} (public task → your task), never a non-medical control, "
            "never two tasks built on the same images.")
totals = plan["totals"]
a, b, c = st.columns(3)
a.metric("tasks", totals["tasks"])
b.metric("images", f"{totals['images']:,}")
c.metric("classes", totals["classes"])
#: the plan's columns as shown: (column, header, help)
PLAN_COLUMNS = [("order", "order", "1 = nearest to your task"), ("task", "public task", None),
                ("note", "caution", "a planned task that a set of unrelated everyday images is as near to is not "
                                    "distinguishable from unrelated images"),
                ("licence", "licence", "short form: open / research-only / not verified"),
                ("licence_stated", "licence as stated by the source", None), ("images", "images", None),
                ("n_classes", "classes (n)", None), ("classes", "classes (images)", None),
                ("modality", "modality", None),
                ("paper_cotrain", "what the paper measured when co-training with it", None),
                ("upstream", "original dataset", None), ("citation", "please cite", None),
                ("distance", "raw distance", "bKLD, public task → yours; lower = closer")]
present = [(c, h, t) for c, h, t in PLAN_COLUMNS if c in table.columns]
display = table[[c for c, _, _ in present]].rename(columns={c: h for c, h, _ in present})
st.dataframe(display, hide_index=True, key="cotrain_table", column_config={
    h: (st.column_config.NumberColumn(h, format="%.4f", help=t) if c == "distance"
        else st.column_config.Column(h, help=t)) for c, h, t in present})
for note in plan["notes"]:
    for info in catalogue.tasks:  # notes name tasks by id: show their names
        note = note.replace(info.id, info.name)
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
        skipped = [{"public task": catalogue.task(row["task_id"]).name, "why": row["reason"]}
                   for row in plan["skipped"]]
        st.dataframe(skipped, hide_index=True, key="cotrain_skipped")

one, two = st.columns(2)
one.download_button("Download plan (JSON)", json.dumps(plan, indent=1).encode(), file_name="cotrain_plan.json",
                    mime="application/json", key="download_plan_json")
two.download_button("Download plan (CSV)", csv_bytes(table), file_name="cotrain_plan.csv",
                    mime="text/csv", key="download_plan_csv")
footer()
