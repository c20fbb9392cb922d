"""The catalogue on its fixed map with the user's task placed on it; selecting a point opens it in 'Why similar?'."""
from __future__ import annotations

import streamlit as st

from core.distances import symmetrise
from core.families import families_report
from core.taskmap import place_on_map
from core.views import map_frame, selected_task, with_user
from ui import figures, session
from ui.common import footer, page_setup

catalogue = page_setup("Map")
fingerprint = session.fingerprint()
user_xy = None
if fingerprint is not None:
    _, _, full = with_user(catalogue, fingerprint, "bkld-small")
    user_xy = place_on_map(catalogue.coords, symmetrise(full)[-1, :-1])
else:
    st.info("Showing the catalogue alone; add your task on **Your task** to see where it lands.")
points = map_frame(catalogue, catalogue.coords, user_xy, fingerprint.name if fingerprint else "")
colour = st.radio("Colour by", ["modality", "family"], horizontal=True, key="map_colour")
families = families_report(catalogue)
labels = {f"{f['family']}": f"family {f['family']} ({f['label']})" for f in families["families"]}
points["family"] = [labels.get(str(families["assignment"].get(i)), "your task") for i in points["task_id"]]
st.caption(f"Fixed layout: {catalogue.map_method.upper()} of the symmetrised bKLD small between catalogue tasks; "
           "your task is placed at the distance-weighted mean of its 3 nearest tasks. Near = similar. Click a task "
           "to see which features drive its distance to yours.")
event = st.plotly_chart(figures.task_map(points, st.session_state.get(session.SELECTED_TASK), colour), key="task_map",
                        on_select="rerun", selection_mode=("points",))
chosen = selected_task(event, catalogue.ids)
if chosen is not None:
    st.session_state[session.SELECTED_TASK] = chosen
    if fingerprint is not None:
        st.switch_page("pages/4_Why_similar.py")
    st.success(f"Selected: {catalogue.task(chosen).name}")
footer()
