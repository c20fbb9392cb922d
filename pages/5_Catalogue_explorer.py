"""The catalogue alone, for teaching: tasks, licences, map, heatmap, nearest neighbours and the paper's evidence."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core.catalogue.validity import candidates_table, report_table, transfer_table
from core.distances.maths import symmetrise
from core.report.recommend import knowledge_tables
from core.report.views import (
    HEATMAP_FOCUS_ABOVE,
    TABLE_ROWS_SHOWN,
    USER_ID,
    heatmap_view,
    map_annotations,
    map_frame,
    selected_task,
    task_labels,
)
from ui import figures
from ui.common import footer, page_setup, task_filter
from ui.resources import FOCUS, get_transfer_results, get_whole_catalogue, neighbourhood
from ui.text import md

catalogue = page_setup("Catalogue explorer")
whole = get_whole_catalogue() if catalogue.neighbourhood_of else catalogue  # every task's metadata
st.markdown(f"{len(whole.tasks):,} tasks: {sum(t.kind == 'medical' for t in whole.tasks):,} public medical "
            f"tasks and {sum(t.kind == 'control' for t in whole.tasks):,} non-medical controls (what 'far away' "
            f"looks like). Backbone {catalogue.backbone}, {catalogue.protocol['n']:,} samples per task.")
def _paper_name(task) -> str:
    entry = catalogue.knowledge.get("tasks", {}).get(task.id)
    return entry["paper_task"]["printable"] if entry else ""


labels = task_labels(whole.tasks)  # names, numbered where two tasks share one
tasks = pd.DataFrame([{"task": labels[t.id], "modality": t.modality, "anatomy": t.anatomy,
                       "classes": ", ".join(f"{k} ({v})" for k, v in t.classes.items()), "images": t.n_images,
                       "kind": t.kind, "licence": t.licence, "source": t.source, "upstream": t.upstream,
                       "shares images with": ", ".join(labels[i] for i in t.shares_images_with
                                                       if i in labels),
                       "paper task": _paper_name(t)}
                      for t in whole.tasks])
listed = task_filter(tasks, "catalogue")
if len(listed) > TABLE_ROWS_SHOWN:
    st.caption(f"The first {TABLE_ROWS_SHOWN:,} of {len(listed):,} tasks are listed; search or choose a modality "
               "above to find the others.")
listed = listed.head(TABLE_ROWS_SHOWN)
st.dataframe(listed, hide_index=True, key="catalogue_table")
if catalogue.neighbourhood_of:  # a large catalogue: the tabs show one neighbourhood
    # with a fingerprint, the one every page shows (already made) comes first (USER_ID stands for it; None would
    # show as an empty menu), then the tasks listed above
    options = ([USER_ID] if catalogue.neighbourhood_of["around"] is None else []) + \
        [whole.tasks[i].id for i in listed.index]
    focus = st.session_state.get(FOCUS)
    if focus in whole.ids and focus not in options:  # chosen on the map, or before the filter changed
        options.append(focus)
    st.session_state["explorer_focus"] = focus if focus in whole.ids else options[0]  # follows the map's clicks
    focus = st.selectbox("Neighbourhood of", options, key="explorer_focus",
                         help="Your task (once you have a fingerprint) or a task listed above; the search above the "
                              "table finds the others.",
                         format_func=lambda i: "your task" if i == USER_ID else labels[i],
                         on_change=lambda: st.session_state.update({FOCUS: st.session_state["explorer_focus"]}))
    if focus != USER_ID:
        catalogue = neighbourhood(whole, around=focus)
    centre = "your task" if focus == USER_ID else f"'{md(labels[focus])}'"
    st.caption(f"The tabs below show the neighbourhood of {centre}: it and the "
               f"{catalogue.neighbourhood_of['size']} medical tasks nearest it, with the nearest controls.")

map_tab, heat_tab, neighbour_tab, validity_tab = st.tabs(["Map", "Heatmap", "Nearest sources", "Validity report"])
with map_tab:
    chosen_id = st.session_state.get("explorer_task")
    around = symmetrise(catalogue.bkld_small)[catalogue.ids.index(chosen_id)] if chosen_id in catalogue.ids else None
    points = map_annotations(map_frame(catalogue, catalogue.coords), around, lines_to=0)
    event = st.plotly_chart(figures.task_map(points, chosen_id), key="catalogue_map",
                            on_select="rerun", selection_mode=("points",))
    chosen = selected_task(event, catalogue.ids)
    if chosen:
        st.session_state["explorer_task"] = chosen
with heat_tab:
    focus = st.session_state.get("explorer_task", catalogue.ids[0])
    st.caption(f"{'All tasks' if len(catalogue.ids) <= HEATMAP_FOCUS_ABOVE else 'The target task and its nearest'}"
               "; the Heatmap page offers the full matrix and more.")
    st.plotly_chart(figures.heatmap(heatmap_view(catalogue, None, around=focus)), key="catalogue_heatmap")
with neighbour_tab:
    default = st.session_state.get("explorer_task", catalogue.ids[0])
    target = st.selectbox("Target task", catalogue.ids, index=catalogue.ids.index(default),
                          format_func=labels.get, key="explorer_target")
    column = catalogue.bkld_small[:, catalogue.ids.index(target)]
    ranking = pd.DataFrame({"source": [labels[t.id] for t in catalogue.tasks], "modality": [t.modality for t in
                            catalogue.tasks], "bKLD small (source → target)": column})
    measured = get_transfer_results()
    if measured is not None and target in measured.targets:
        ranking["measured gain (this catalogue)"] = [measured.gain(i, target) for i in catalogue.ids]
    ranking = ranking[[i != target for i in catalogue.ids]].sort_values("bKLD small (source → target)")
    st.dataframe(ranking.head(50), hide_index=True, key="explorer_ranking")
    for title, frame in knowledge_tables(catalogue, target).items():
        st.markdown(f"**{title}**")
        st.dataframe(frame, hide_index=True)
with validity_tab:
    report = catalogue.validity
    if not report:
        st.info("This catalogue has no validity report: run python -m core catalogue validate --write")
    else:
        about = report["about"].replace(" See core/catalogue/validity.py for each figure's definition.", "")
        st.markdown(f"**Can the ranking be trusted?** {about} (each figure is defined in the project's README).")
        st.markdown(f"Default ({report['default_probe']}, {report['default_distance']}): {report['summary']}.")
        st.dataframe(pd.DataFrame(report_table(report)), hide_index=True, key="validity_table")
        explained = report["probes"][report["default_probe"]][report["default_distance"]]["controls_nearer"]
        for task_id, why in explained.get("explanations", {}).items():
            st.caption(f"A control is nearer for **{md(catalogue.task(task_id).name)}**: {md(why)}")
        st.markdown("**Candidates the default was chosen from** (bKLD small; measured when the catalogue was built)")
        st.dataframe(pd.DataFrame(candidates_table(report)), hide_index=True, key="candidates_table")
        transfer = report.get("measured_transfer")
        if transfer:
            st.markdown(f"**Does the ranking predict measured transfer?** ({transfer['label']}, "
                        f"{len(transfer['targets'])} targets) {transfer['about']}")
            st.dataframe(pd.DataFrame(transfer_table(report)), hide_index=True, key="transfer_table")
footer()
