"""Plotly figures for the pages (built from the tables in core.report.views)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.report.views import USER_ID
from core.text import plotly_literal

#: one hue per modality family from Paul Tol's colour-blind-safe "muted" scheme (nine hues that stay apart for the
#: common colour-vision deficiencies), so two families never share a hue; modalities within a family get shades of
#: it and their own marker shape; the controls are greys with their own symbols
FAMILY_HUES = {"x-ray": "#332288", "ct": "#88CCEE", "mri": "#44AA99", "mammography": "#117733",
               "ultrasound": "#999933", "microscopy": "#DDCC77", "histopathology": "#CC6677",
               "dermoscopy": "#882255", "fundus photography": "#AA4499", "control": "#777777",
               "your task": "#000000"}
EXTRA_HUES = ["#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7"]  # Okabe-Ito, for other families
#: the two controls: different greys and symbols, so they are told apart without colour
CONTROL_STYLES = [("#444444", "x"), ("#9a9a9a", "cross")]
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
            if family == "control":
                styles[modality] = CONTROL_STYLES[step % len(CONTROL_STYLES)]
            elif family == "your task":
                styles[modality] = (hue, SYMBOLS[step % len(SYMBOLS)])
            else:
                styles[modality] = (_shade(hue, step), SYMBOLS[step % len(SYMBOLS)])
    return styles


def label_positions(x: np.ndarray, y: np.ndarray) -> list[str]:
    """A text position per point that points its label away from its nearest neighbour (a simple declutter:
    neighbour above -> label below, to the right -> label on the left, ...). Coordinates are scaled to the map's
    extent first."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 2:
        return ["top center"] * len(x)
    span = [max(float(np.ptp(v)), 1e-9) for v in (x, y)]
    px_, py_ = x / span[0], y / span[1]
    positions = []
    rel_x = (px_ - px_.min()) if len(px_) else px_
    for i in range(len(x)):
        d = np.hypot(px_ - px_[i], py_ - py_[i])
        d[i] = np.inf
        j = int(np.argmin(d))
        dx, dy = px_[j] - px_[i], py_[j] - py_[i]
        if rel_x[i] < 0.2:  # near the left edge: the label goes right, inside the plot
            positions.append("middle right" if abs(dy) < abs(dx) or dx <= 0 else
                             ("bottom right" if dy > 0 else "top right"))
        elif rel_x[i] > 0.8:  # near the right edge: left
            positions.append("middle left" if abs(dy) < abs(dx) or dx >= 0 else
                             ("bottom left" if dy > 0 else "top left"))
        elif abs(dy) >= abs(dx):
            positions.append("bottom center" if dy > 0 else "top center")
        else:
            positions.append("middle left" if dx > 0 else "middle right")
    return positions


def _literal_columns(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """A copy of ``frame`` whose text ``columns`` (those present) are :func:`core.text.plotly_literal`."""
    present = [c for c in columns if c in frame.columns]
    return frame.assign(**{c: frame[c].map(lambda v: plotly_literal(v) if isinstance(v, str) else v)
                           for c in present})


def task_map(points: pd.DataFrame, highlight: str | None = None, colour: str = "modality") -> go.Figure:
    """Tasks at their map coordinates (``points`` from core.report.views.map_annotations): coloured by modality
    (families of colour, controls grey) or by the ``colour`` column; names where 'label' is set; the user's task as a
    star with lines to its nearest tasks ('nearest' 1..3). customdata[0] = task id. WebGL past WEBGL_ABOVE points."""
    points = _literal_columns(points, ("task", "label", "anatomy", "classes", "licence", "modality"))
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
    positions = dict(zip(catalogue.index, label_positions(catalogue["x"], catalogue["y"])))
    groups = catalogue.groupby("modality" if colour == "modality" else colour, sort=True)
    palette = EXTRA_HUES + list(FAMILY_HUES.values())
    for n, (key, group) in enumerate(groups):
        colour_of, symbol = styles.get(key, (palette[n % len(palette)], SYMBOLS[n % len(SYMBOLS)]))
        text_mode = "markers+text" if scatter is go.Scatter and group["label"].str.len().any() else "markers"
        figure.add_trace(scatter(
            x=group["x"], y=group["y"], mode=text_mode, name=str(key), text=group["label"],
            textposition=[positions[i] for i in group.index], textfont={"size": 10},
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
    figure.update_layout(legend_title="modality" if colour == "modality" else "task family", height=620,
                         clickmode="event+select", margin={"l": 10, "r": 10, "t": 30, "b": 10})
    span_x = float(np.ptp(points["x"])) or 1.0
    span_y = float(np.ptp(points["y"])) or 1.0
    figure.update_xaxes(showticklabels=False, showgrid=False, zeroline=False,
                        range=[points["x"].min() - 0.08 * span_x, points["x"].max() + 0.08 * span_x],
                        title="tasks near each other on the map have similar images (the axes have no units)")
    figure.update_yaxes(showticklabels=False, showgrid=False, zeroline=False, title=None,
                        range=[points["y"].min() - 0.06 * span_y, points["y"].max() + 0.06 * span_y])
    return figure


def heatmap(view) -> go.Figure:
    """``view`` (core.report.views.HeatmapView): colour from the off-diagonal range, blank diagonal, a modality side bar
    on the left; hover shows both directed values."""
    from plotly.subplots import make_subplots

    labels, d = [plotly_literal(label) for label in view.symmetric.index], view.directed.values
    n = len(labels)
    custom = np.stack([d.T, d], axis=-1)  # [row, column] -> (column -> row, row -> column)
    families = sorted(set(view.modality))
    figure = make_subplots(rows=1, cols=2, shared_yaxes=True, column_widths=[0.03, 0.97], horizontal_spacing=0.005)
    hues = [FAMILY_HUES.get(f, EXTRA_HUES[i % len(EXTRA_HUES)]) for i, f in enumerate(families)]
    steps = max(len(families), 1)
    scale = [[edge, hue] for i, hue in enumerate(hues) for edge in (i / steps, (i + 1) / steps)]
    figure.add_trace(go.Heatmap(z=[[families.index(m)] for m in view.modality], y=labels, x=["modality"],
                                colorscale=scale or "Greys", zmin=-0.5, zmax=steps - 0.5, showscale=False,
                                hovertext=[[plotly_literal(m)] for m in view.modality],
                                hovertemplate="%{y}<br>%{hovertext}<extra></extra>"),
                     row=1, col=1)
    figure.add_trace(go.Heatmap(
        z=view.symmetric.values, x=labels, y=labels, colorscale="Cividis_r", zmin=view.lo, zmax=view.hi,
        customdata=custom, colorbar={"title": "distance<br>light = near<br>dark = far"}, hoverongaps=False,
        hovertemplate="row %{y}<br>column %{x}<br>shown: %{z:.4f}<br>directed row → column: %{customdata[1]:.4f}"
                      "<br>directed column → row: %{customdata[0]:.4f}<extra></extra>"), row=1, col=2)
    size = max(560, min(1400, 16 * n + 260))
    figure.update_layout(height=size, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                         plot_bgcolor="#f4f4f4")
    figure.update_xaxes(tickangle=-45, showticklabels=n <= 80, row=1, col=2)
    figure.update_yaxes(showticklabels=n <= 80, autorange="reversed", row=1, col=1)
    return figure


#: colour-blind-safe pair (Okabe-Ito blue and orange) for "your task" against a public task
YOURS, THEIRS = "#0072B2", "#E69F00"


def advantages(frame: pd.DataFrame) -> go.Figure:
    """Bars: per feature, how much better the chosen task explains the user's images than the typical task
    (``core.report.views.distinctive_features``), labelled by the feature's ImageNet classes; the exact values on
    hover."""
    labels = [f"{f} · {c}" if c else str(f) for f, c in
              zip(frame["feature"], frame["top_class"] if "top_class" in frame else [""] * len(frame))]
    figure = go.Figure(go.Bar(
        x=frame["share_of_advantage"] * 100, y=labels, orientation="h", marker_color=YOURS,
        customdata=np.stack([frame["contribution"], frame["median_contribution"]], axis=1),
        hovertemplate="%{y}<br>%{x:.1f} % of the advantage<br>this task: %{customdata[0]:.5f}<br>"
                      "typical task: %{customdata[1]:.5f}<extra></extra>"))
    figure.update_layout(title="Features on which this task explains your images better than the typical task",
                         height=max(320, 22 * len(frame) + 120), margin={"l": 10, "r": 10, "t": 50, "b": 40},
                         xaxis={"title": "share of this task's advantage over the typical task", "ticksuffix": " %"},
                         yaxis={"autorange": "reversed", "title": None})
    return figure


def histograms(frame: pd.DataFrame, feature: int, marked_bins: set[int] | None = None,
               title: str | None = None) -> go.Figure:
    """Both tasks' histograms of one feature as overlaid bars (``core.report.views.readable_histograms``: at most 50
    over the occupied range); bars holding one of ``marked_bins`` (original bins that add most to the feature's
    term) are shaded."""
    # built in one constructor call from numpy arrays: trace by trace and update by update, with pandas columns
    # converted one by one, plotly took 37 ms per chart, 5 charts per visit of "Why this task?"
    bars = [{"type": "bar", "x": ((rows["bin_start"] + rows["bin_end"]) / 2).to_numpy(),
             "y": (rows["probability"] * 100).to_numpy(), "width": (rows["bin_end"] - rows["bin_start"]).to_numpy(),
             "name": plotly_literal(task), "marker": {"color": colour}, "opacity": 0.6,
             "hovertemplate": "value %{x:.2f}: %{y:.1f} % of images<extra></extra>"}
            for (task, rows), colour in zip(frame.groupby("task", sort=False), (YOURS, THEIRS))]
    groups = frame.drop_duplicates(["bin_start"])
    # the shaded bars as add_vrect draws them, given in one go (add_vrect one at a time cost 20 ms each)
    shaded = [{"type": "rect", "xref": "x", "yref": "y domain", "x0": row.bin_start, "x1": row.bin_end, "y0": 0,
               "y1": 1, "fillcolor": "#999999", "opacity": 0.25, "line": {"width": 0}}
              for row in groups.itertuples()
              if marked_bins and any(row.bin <= b <= row.last_bin for b in marked_bins)]
    return go.Figure(data=bars, layout={
        "shapes": shaded, "title": {"text": title or f"Feature {feature}: both histograms"}, "height": 320,
        "barmode": "overlay", "xaxis": {"title": {"text": "feature value"}},
        "yaxis": {"title": {"text": "share of images"}, "ticksuffix": " %"},
        "margin": {"l": 10, "r": 10, "t": 40, "b": 10}, "legend": {"orientation": "h", "y": -0.3}})
