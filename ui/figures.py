"""Plotly figures for the pages (built from the tables in core.views)."""
from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from core.views import USER_ID


def task_map(points: pd.DataFrame, highlight: str | None = None, colour: str = "modality") -> go.Figure:
    """Scatter of tasks coloured by the ``colour`` column (modality, or family when the page adds it); the user's
    task as a large star. customdata[0] = task id."""
    catalogue = points[points["task_id"] != USER_ID]
    figure = px.scatter(catalogue, x="x", y="y", color=colour, symbol="kind",
                        symbol_map={"medical": "circle", "control": "x", "user": "diamond"},
                        custom_data=["task_id", "task", "anatomy", "images", "classes", "licence"],
                        hover_name="task")
    figure.update_traces(marker={"size": 14, "line": {"width": 1, "color": "white"}},
                         hovertemplate="<b>%{customdata[1]}</b><br>anatomy: %{customdata[2]}<br>"
                                       "images: %{customdata[3]}<br>classes: %{customdata[4]}<br>"
                                       "licence: %{customdata[5]}<extra></extra>")
    user = points[points["task_id"] == USER_ID]
    if len(user):
        figure.add_trace(go.Scatter(x=user["x"], y=user["y"], mode="markers+text", name="your task",
                                    text=user["task"], textposition="top center",
                                    customdata=user[["task_id", "task"]].values,
                                    marker={"size": 22, "symbol": "star", "color": "black"},
                                    hovertemplate="<b>%{customdata[1]}</b><extra></extra>"))
    if highlight is not None:
        chosen = points[points["task_id"] == highlight]
        figure.add_trace(go.Scatter(x=chosen["x"], y=chosen["y"], mode="markers", name="selected",
                                    hoverinfo="skip", marker={"size": 28, "symbol": "circle-open",
                                                              "color": "red", "line": {"width": 3}}))
    figure.update_layout(xaxis_title="map x (UMAP of symmetrised bKLD; axes have no units)", yaxis_title="map y",
                         legend_title=f"{colour} / kind", height=560, clickmode="event+select")
    return figure


def heatmap(symmetric: pd.DataFrame, directed: pd.DataFrame) -> go.Figure:
    """Symmetrised distances as colour; hover shows both directed values."""
    hover = [[f"{directed.values[j, i]:.4f}" for i in range(len(directed))] for j in range(len(directed))]
    reverse = [[f"{directed.values[i, j]:.4f}" for i in range(len(directed))] for j in range(len(directed))]
    figure = go.Figure(go.Heatmap(
        z=symmetric.values, x=list(symmetric.columns), y=list(symmetric.index), colorscale="Viridis_r",
        customdata=[[[hover[j][i], reverse[j][i]] for i in range(len(hover))] for j in range(len(hover))],
        colorbar={"title": "symmetrised<br>distance"},
        hovertemplate="row %{y}<br>column %{x}<br>symmetrised: %{z:.4f}<br>"
                      "directed row → column: %{customdata[1]}<br>directed column → row: %{customdata[0]}"
                      "<extra></extra>"))
    figure.update_layout(height=640, xaxis={"tickangle": -40})
    return figure


def contributions(frame: pd.DataFrame, total: float) -> go.Figure:
    """Bars of the top features' contributions and a line of the cumulative share of the distance."""
    labels = [f"f{f}" for f in frame["feature"]]
    figure = go.Figure()
    figure.add_trace(go.Bar(x=labels, y=frame["contribution"], name="contribution", yaxis="y"))
    figure.add_trace(go.Scatter(x=labels, y=frame["cumulative_share"] * 100, name="cumulative share (%)",
                                mode="lines+markers", yaxis="y2"))
    figure.update_layout(title=f"Top features of the distance {total:.4f}", height=420,
                         yaxis={"title": "contribution to bKLD"},
                         yaxis2={"title": "cumulative share of the total", "overlaying": "y", "side": "right",
                                 "rangemode": "tozero", "ticksuffix": " %", "showgrid": False},
                         legend={"orientation": "h", "y": -0.2})
    return figure


def histograms(frame: pd.DataFrame, feature: int) -> go.Figure:
    figure = px.line(frame, x="bin_start", y="probability", color="task", line_shape="hv")
    figure.update_layout(title=f"Feature f{feature}: histograms of both tasks", height=380,
                         xaxis_title="feature value (bins between the catalogue's 5 % and 95 % quantiles)",
                         yaxis_title="share of samples")
    return figure
