"""Tables the pages share, with their column set-up: the report layer gives the frame, these render it."""
from __future__ import annotations

import streamlit as st

from core.report.cotrain import licence_short
from ui.common import task_filter


def recommendation_table(table) -> None:
    """The ranked candidates (no controls) with a modality filter, a name search and the column help."""
    columns = ["rank", "task", "distance", "second_opinion_rank", "interval_low", "interval_high", "rank_holds",
               "first_place", "modality", "anatomy", "classes", "images", "licence_short", "licence", "caution",
               "paper_evidence"]
    shown = task_filter(table.assign(licence_short=table["licence"].map(licence_short)), "recommendations")
    shown = shown[[c for c in columns if c in shown.columns]]
    st.dataframe(shown, hide_index=True, key="recommendation_table", column_config={
        "distance": st.column_config.NumberColumn(format="%.4f", help="directed: source → your task; lower = closer"),
        "second_opinion_rank": st.column_config.NumberColumn("VDNA rank",
                                                             help="the task's rank under VDNA (second opinion)"),
        "interval_low": st.column_config.NumberColumn("95 % low", format="%.4f"),
        "interval_high": st.column_config.NumberColumn("95 % high", format="%.4f"),
        "rank_holds": st.column_config.ProgressColumn("rank holds", min_value=0.0, max_value=1.0, format="percent"),
        "first_place": st.column_config.ProgressColumn("first place", min_value=0.0, max_value=1.0, format="percent"),
        "paper_evidence": st.column_config.TextColumn("what the paper measured (as a source)", width="large"),
        "licence_short": st.column_config.TextColumn("licence", help="short form: open / research-only / not verified"),
        "licence": st.column_config.TextColumn("licence as stated", width="small",
                                               help="hover a cell for the full text"),
    })
