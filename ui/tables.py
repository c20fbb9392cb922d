"""Tables the pages share, with their column set-up: the report layer gives the frame, these render it."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core.catalogue.thumbnails import source_link
from core.report.cotrain import licence_short
from ui.common import task_filter

#: what the grey reference rows are, for the table's caption and the "rank" cell
REFERENCE_LABEL = "reference"


def _grey_references(frame: pd.DataFrame, reference: pd.Series, flagged: pd.Series):
    """A Styler that greys the non-medical reference rows and marks (brown text) the medical rows they outrank."""
    def style(row: pd.Series) -> list[str]:
        if reference.loc[row.name]:
            return ["color: #8a8a8a; background-color: #f2f2f2; font-style: italic"] * len(row)
        if flagged.loc[row.name]:
            return ["color: #a05a00"] * len(row)
        return [""] * len(row)
    return frame.style.apply(style, axis=1)


#: the ranking's columns as a clinician reads them: (column, header, help)
RANKING_COLUMNS = [
    ("place", "rank", "1 = closest public task to yours; 'reference' = a set of everyday non-medical images shown "
                      "at its place for scale"),
    ("task", "public task", None),
    ("note", "caution", "a medical task ranked below a set of unrelated everyday images is not distinguishable "
                        "from them for your task"),
    ("scale", "closer than … of catalogue pairs", "share of pairs of different catalogue tasks that are farther "
                                                  "apart than this task is from yours (100 % = nearer than any two "
                                                  "different public tasks)"),
    ("first_place", "first place", "share of re-draws of your images in which this task comes first (bootstrap: "
                                   "your images are re-drawn at random and everything is measured again)"),
    ("rank_holds", "rank holds", "share of re-draws of your images in which this task keeps its rank"),
    ("second_opinion_rank", "second opinion",
     "the task's rank under VDNA, another way of comparing the same histograms"),
    ("modality", "modality", None), ("anatomy", "anatomy", None), ("classes", "classes", None),
    ("images", "images", None),
    ("licence_short", "licence", "short form: open / research-only / not verified (a reading of what the source "
                                 "states, not legal advice)"),
    ("licence", "licence as stated", "hover a cell for the full text"),
    ("where", "where to get it", "the public copy the catalogue's images came from"),
    ("caution", "shares images", "tasks built on the same images"),
    ("measured_gain_nearest", "measured gain for nearest task",
     "measured on this catalogue: AUROC gain of pretraining on this source before fine-tuning on the catalogue task "
     "nearest to yours (rank 1), mean over seeds; empty for that task itself"),
    ("measured_spread_nearest", "± (spread over seeds)", "standard deviation of that gain over the training seeds"),
    ("measured_gain_mean", "measured gain, mean over targets",
     "measured on this catalogue: this source's mean AUROC gain over every catalogue target it was measured on"),
    ("paper_evidence", "what the paper measured (as a source)", None),
    ("distance", "raw distance", "bKLD, directed (public task → yours); lower = closer. Values carry an offset of "
                                 "your task's own, so compare them only within this table"),
    ("interval_low", "raw distance, 95 % low", "lower end of the distance over re-draws of your images"),
    ("interval_high", "raw distance, 95 % high", "upper end of the distance over re-draws of your images"),
]
PERCENT_COLUMNS = {"scale", "first_place", "rank_holds"}


def recommendation_table(ranked: pd.DataFrame, scale: pd.Series | None = None,
                         sources: dict[str, str] | None = None) -> None:
    """The ranking with the non-medical controls at their place as greyed reference rows
    (core.report.verdict.ranked_with_references), a modality filter and a name search, every column named in
    words with its explanation on hover; the raw distance is the last columns (narrow)."""
    frame = ranked.assign(licence_short=ranked["licence"].map(licence_short))
    if sources is not None:
        frame["where"] = [source_link(sources.get(i, "")) for i in ranked["task_id"]]
    if scale is not None:
        frame["scale"] = scale.to_numpy()
    frame["place"] = [REFERENCE_LABEL if ref else str(rank) for ref, rank in
                      zip(frame["reference_control"], frame["rank"])]
    frame["task"] = frame["task"].where(~frame["reference_control"], frame["task"] + " — reference point")
    shown = task_filter(frame, "recommendations")
    reference = shown["reference_control"]
    present = [(c, h, t) for c, h, t in RANKING_COLUMNS if c in shown.columns]
    display = shown[[c for c, _, _ in present]].rename(columns={c: h for c, h, _ in present})
    config = {}
    for column, header, tip in present:
        if column in PERCENT_COLUMNS:
            config[header] = st.column_config.ProgressColumn(header, min_value=0.0, max_value=1.0, format="percent",
                                                             help=tip)
        elif column == "where":
            config[header] = st.column_config.LinkColumn(header, help=tip, display_text="source")
        elif column.startswith("measured_gain"):
            config[header] = st.column_config.NumberColumn(header, format="%+.4f", help=tip)
        elif column == "measured_spread_nearest":
            config[header] = st.column_config.NumberColumn(header, format="%.4f", help=tip)
        elif column.startswith(("distance", "interval")):
            config[header] = st.column_config.NumberColumn(header, format="%.4f", help=tip)
        elif tip:
            config[header] = st.column_config.Column(header, help=tip)
    flagged = (shown["note"] != "") & ~reference
    st.dataframe(_grey_references(display, reference, flagged), hide_index=True, key="recommendation_table",
                 column_config=config)
