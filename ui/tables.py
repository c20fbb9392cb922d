"""Tables the pages share, with their column set-up: the report layer gives the frame, these render it."""
from __future__ import annotations

import streamlit as st

from core.report.cotrain import licence_short
from ui.common import task_filter

#: the measured-gain columns of :func:`core.report.measured.measured_gains` ("measured on this catalogue")
MEASURED_GAIN_COLUMNS = {
    "measured_gain_nearest": st.column_config.NumberColumn(
        "measured gain for nearest task", format="%+.4f",
        help="measured on this catalogue: AUROC gain of pretraining on this source before fine-tuning on the "
             "catalogue task nearest to yours (rank 1), mean over seeds; empty for that task itself"),
    "measured_spread_nearest": st.column_config.NumberColumn("± (std over seeds)", format="%.4f"),
    "measured_gain_mean": st.column_config.NumberColumn(
        "measured gain, mean over targets", format="%+.4f",
        help="measured on this catalogue: this source's mean AUROC gain over every catalogue target it was "
             "measured on"),
}


def recommendation_table(table) -> None:
    """The ranked candidates (no controls) with a modality filter, a name search and the column help."""
    columns = ["rank", "task", "distance", "second_opinion_rank", "interval_low", "interval_high", "rank_holds",
               "first_place", "modality", "anatomy", "classes", "images", "licence_short", "licence", "caution",
               "measured_gain_nearest", "measured_spread_nearest", "measured_gain_mean", "paper_evidence"]
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
        **MEASURED_GAIN_COLUMNS,
        "paper_evidence": st.column_config.TextColumn("what the paper measured (as a source)", width="large"),
        "licence_short": st.column_config.TextColumn("licence", help="short form: open / research-only / not verified"),
        "licence": st.column_config.TextColumn("licence as stated", width="small",
                                               help="hover a cell for the full text"),
    })
