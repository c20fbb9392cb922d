"""Plotly figures for the pages (built from the tables in core.report.views)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from core.report.views import USER_ID

#: one hue per modality family; modalities within a family get shades of it and their own marker shape
FAMILY_HUES = {"x-ray": "#1f77b4", "ct": "#17becf", "mri": "#3f51b5", "mammography": "#9467bd",
               "ultrasound": "#8c564b", "microscopy": "#d62728", "histopathology": "#e377c2",
               "dermoscopy": "#ff7f0e", "fundus photography": "#2ca02c", "control": "#9e9e9e",
               "your task": "#000000"}
EXTRA_HUES = ["#bcbd22", "#7f7f7f", "#aec7e8", "#ffbb78", "#98df8a", "#c5b0d5"]
SYMBOLS = ["circle", "square", "diamond", "triangle-up", "cross", "triangle-down", "pentagon", "hexagon"]
WEBGL_ABOVE = 300  # points; SVG markers slow the browser down past a few hundred


def _shade(hex_colour: str, step: int) -> str:
    """``hex_colour`` lightened by 18 % per ``step`` (0: unchanged)."""
    rgb = [int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)]
    mix = min(0.18 * step, 0.6)
    return "#" + "".join(f"{round(c + (255 - c) * mix):02x}" for c in rgb)


def modality_styles(points: pd.DataFrame) -> dict[str, tuple[str, str]]:
    """modality -> (colour, marker symbol): the family's hue, one shade and one symbol per modality within it."""
    styles, extra = {}, iter(EXTRA_HUES * 10)
    hues = dict(FAMILY_HUES)
    for family, group in points.groupby("family", sort=True):
        hue = hues.setdefault(family, next(extra))
        for step, modality in enumerate(sorted(group["modality"].unique())):
            styles[modality] = (hue, "x" if family == "control" else SYMBOLS[step % len(SYMBOLS)]) if \
                family in ("control", "your task") else (_shade(hue, step), SYMBOLS[step % len(SYMBOLS)])
    return styles


def task_map(points: pd.DataFrame, highlight: str | None = None, colour: str = "modality") -> go.Figure:
    """Tasks at their map coordinates (``points`` from core.report.views.map_annotations): coloured by modality
    (families of colour, controls grey) or by the ``colour`` column; names where 'label' is set; the user's task as a
    star with lines to its nearest tasks ('nearest' 1..3). customdata[0] = task id. WebGL past WEBGL_ABOVE points."""
    catalogue = points[points["task_id"] != USER_ID]
    scatter = go.Scattergl if len(catalogue) > WEBGL_ABOVE else go.Scatter
    figure = go.Figure()
    user = points[points["task_id"] == USER_ID]
    for _, row in catalogue[catalogue["nearest"] > 0].sort_values("nearest").iterrows():
        if len(user):
            figure.add_trace(go.Scatter(x=[user["x"].iloc[0], row["x"]], y=[user["y"].iloc[0], row["y"]],
                                        mode="lines", line={"color": "black", "width": 1.5, "dash": "dot"},
                                        hoverinfo="skip", showlegend=False))
    styles = modality_styles(catalogue)
    groups = catalogue.groupby("modality" if colour == "modality" else colour, sort=True)
    palette = EXTRA_HUES + list(FAMILY_HUES.values())
    for n, (key, group) in enumerate(groups):
        colour_of, symbol = styles.get(key, (palette[n % len(palette)], SYMBOLS[n % len(SYMBOLS)]))
        text_mode = "markers+text" if scatter is go.Scatter and group["label"].str.len().any() else "markers"
        figure.add_trace(scatter(
            x=group["x"], y=group["y"], mode=text_mode, name=str(key), text=group["label"],
            textposition="top center", textfont={"size": 10},
            customdata=group[["task_id", "task", "anatomy", "images", "classes", "licence", "modality"]].values,
            marker={"size": 12, "color": colour_of, "symbol": symbol, "line": {"width": 1, "color": "white"}},
            hovertemplate="<b>%{customdata[1]}</b><br>%{customdata[6]}; %{customdata[2]}<br>images: "
                          "%{customdata[3]}<br>classes: %{customdata[4]}<br>licence: %{customdata[5]}<extra></extra>"))
    if scatter is go.Scattergl:  # WebGL draws no text: name the labelled tasks with annotations
        for _, row in catalogue[catalogue["label"].str.len() > 0].iterrows():
            figure.add_annotation(x=row["x"], y=row["y"], text=row["label"], showarrow=False, yshift=12,
                                  font={"size": 10})
    if len(user):
        figure.add_trace(go.Scatter(x=user["x"], y=user["y"], mode="markers+text", name="your task",
                                    text=user["task"], textposition="bottom center",
                                    customdata=user[["task_id", "task"]].values,
                                    marker={"size": 22, "symbol": "star", "color": "black"},
                                    hovertemplate="<b>%{customdata[1]}</b><extra></extra>"))
    if highlight is not None:
        chosen = points[points["task_id"] == highlight]
        figure.add_trace(go.Scatter(x=chosen["x"], y=chosen["y"], mode="markers", name="selected",
                                    hoverinfo="skip", marker={"size": 26, "symbol": "circle-open",
                                                              "color": "red", "line": {"width": 3}}))
    figure.update_layout(xaxis_title="map x (UMAP of per-target ranks; axes have no units)", yaxis_title="map y",
                         legend_title=colour, height=620, clickmode="event+select",
                         margin={"l": 10, "r": 10, "t": 30, "b": 10})
    return figure


def heatmap(view) -> go.Figure:
    """``view`` (core.report.views.HeatmapView): colour from the off-diagonal range, blank diagonal, a modality side bar
    on the left; hover shows both directed values."""
    from plotly.subplots import make_subplots

    labels, d = list(view.symmetric.index), view.directed.values
    n = len(labels)
    custom = np.stack([d.T, d], axis=-1)  # [row, column] -> (column -> row, row -> column)
    families = sorted(set(view.modality))
    figure = make_subplots(rows=1, cols=2, shared_yaxes=True, column_widths=[0.03, 0.97], horizontal_spacing=0.005)
    hues = [FAMILY_HUES.get(f, EXTRA_HUES[i % len(EXTRA_HUES)]) for i, f in enumerate(families)]
    steps = max(len(families), 1)
    scale = [[edge, hue] for i, hue in enumerate(hues) for edge in (i / steps, (i + 1) / steps)]
    figure.add_trace(go.Heatmap(z=[[families.index(m)] for m in view.modality], y=labels, x=["modality"],
                                colorscale=scale or "Greys", zmin=-0.5, zmax=steps - 0.5, showscale=False,
                                hovertext=[[m] for m in view.modality],
                                hovertemplate="%{y}<br>%{hovertext}<extra></extra>"),
                     row=1, col=1)
    figure.add_trace(go.Heatmap(
        z=view.symmetric.values, x=labels, y=labels, colorscale="Cividis_r", zmin=view.lo, zmax=view.hi,
        customdata=custom, colorbar={"title": "symmetrised"}, hoverongaps=False,
        hovertemplate="row %{y}<br>column %{x}<br>shown: %{z:.4f}<br>directed row → column: %{customdata[1]:.4f}"
                      "<br>directed column → row: %{customdata[0]:.4f}<extra></extra>"), row=1, col=2)
    size = max(560, min(1400, 16 * n + 260))
    figure.update_layout(height=size, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                         plot_bgcolor="#f4f4f4")
    figure.update_xaxes(tickangle=-45, showticklabels=n <= 80, row=1, col=2)
    figure.update_yaxes(showticklabels=n <= 80, autorange="reversed", row=1, col=1)
    return figure


def contributions(frame: pd.DataFrame, total: float) -> go.Figure:
    """Bars of the top features' contributions and a line of the cumulative share of the distance."""
    labels = [f"f{f}" + (f" · {c}" if c else "") for f, c in
              zip(frame["feature"], frame["top_class"] if "top_class" in frame else [""] * len(frame))]
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


def histograms(frame: pd.DataFrame, feature: int, marked: list[float] | None = None,
               title: str | None = None) -> go.Figure:
    """Both tasks' histograms of one feature overlaid; ``marked``: bin starts of the bins that contribute most to the
    feature's KL term (shaded)."""
    figure = px.line(frame, x="bin_start", y="probability", color="task", line_shape="hv")
    starts = sorted(frame["bin_start"].unique())
    width = (starts[1] - starts[0]) if len(starts) > 1 else 1.0
    for start in marked or []:
        figure.add_vrect(x0=start, x1=start + width, fillcolor="#ffb000", opacity=0.35, line_width=0)
    figure.update_layout(title=title or f"Feature f{feature}: histograms of both tasks", height=320,
                         xaxis_title="feature value (bins between the catalogue's 5 % and 95 % quantiles)",
                         yaxis_title="share of samples", margin={"l": 10, "r": 10, "t": 40, "b": 10},
                         legend={"orientation": "h", "y": -0.3})
    return figure
