"""The catalogue on its fixed map with the user's task placed on it; selecting a point opens it in 'Why this task?'."""
from __future__ import annotations

import streamlit as st

from core.catalogue.families import families_report
from core.report.views import MAP_LABEL_ALL_UP_TO, map_annotations, map_frame, map_ranks, selected_task
from ui import figures, pages, session
from ui.common import footer, page_setup
from ui.text import md

catalogue = page_setup("Map")
fingerprint = session.fingerprint()
user_xy, to_user = None, None
if fingerprint is not None:
    placed = session.part(catalogue, fingerprint, ("placement",))
    to_user, user_xy = placed.ranks, placed.xy
else:
    st.info("Showing the catalogue alone; add your task on **Your task** to see where it lands.")
points = map_frame(catalogue, catalogue.coords, user_xy, fingerprint.name if fingerprint else "")
selected = st.session_state.get(session.SELECTED_TASK)
if to_user is None and selected in catalogue.ids:  # no task of yours: label around the selected task
    to_user = map_ranks(catalogue, task_id=selected)
points = map_annotations(points, to_user, lines_to=3 if fingerprint is not None else 0)
colour = st.radio("Colour by", ["modality", "cluster"], horizontal=True, key="map_colour",
                  format_func=lambda c: "modality" if c == "modality" else "task family (clusters)")
if colour == "cluster":
    families = placed.families if fingerprint is not None else families_report(catalogue)
    labels = {f"{f['family']}": f"family {f['family']} ({f['label']})" for f in families["families"]}
    points["cluster"] = [labels.get(str(families["assignment"].get(i)), "your task") for i in points["task_id"]]
n = len(catalogue.tasks)
st.caption(f"Fixed layout: {catalogue.map_method.upper()} of the per-target ranks of bKLD small between the {n} "
           "catalogue tasks; your task (star) is placed at the rank-weighted mean of its 3 nearest tasks, "
           "dotted lines lead to them. Near = similar. Colours: one colour-blind-safe hue per modality family "
           "(shades and shapes per modality), the two non-medical controls in two greys with their own symbols. "
           "bKLD: how much one task's feature histograms fail to explain another's; UMAP: a method that lays "
           "tasks out on a plane so that near stays near. "
           + ("Every task is named. " if n <= MAP_LABEL_ALL_UP_TO else
              "The tasks nearest yours (or the selected one) are named; hover for the others. ")
           + "Click a task to see which features drive its distance to yours.")
event = st.plotly_chart(figures.task_map(points, selected, colour), key="task_map",
                        on_select="rerun", selection_mode=("points",))
chosen = selected_task(event, catalogue.ids)
if chosen is not None:
    st.session_state[session.SELECTED_TASK] = chosen
    if fingerprint is not None:
        st.switch_page(pages.WHY_SIMILAR)
    st.success(f"Selected: {md(catalogue.task(chosen).name)}")
footer()
