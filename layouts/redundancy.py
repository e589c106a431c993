"""Redundancy panel: pure figure builders for one explanation result (drop-one, pairwise, trajectory, vs L)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from layouts.genome import EFFECT_SCALE, fmt_distance

_FONT = dict(family="Inter, Helvetica, Arial, sans-serif", size=11)


# ---- pixel budget below the plot area: x tick labels, x-axis title, gap, legend (one entry per line) --------
TOP_PX = 36  # figure title
TICKS_PX = 22  # x tick labels (font 11) under the axis line
XTITLE_STANDOFF_PX = 6  # tick labels -> x-axis title
XTITLE_PX = 16  # one line of x-axis title (font 10)
LEGEND_GAP_PX = 6  # x-axis title -> legend
LEGEND_ROW_PX = 20  # one vertical legend entry (font 10)
LEGEND_PAD_PX = 8
SIDE_PX = 10


def legend_entries(fig: go.Figure) -> int:
    """Traces that draw a legend entry (heatmaps only do when asked to)."""
    return sum(1 for t in fig.data if t.showlegend is True or (t.showlegend is None and t.type != "heatmap"))


def bottom_px(n_legend: int, x_title: bool = True) -> tuple[int, int]:
    """(space under the plot for tick labels and x title, space for the legend) in px; their sum is the margin."""
    axis = TICKS_PX + (XTITLE_STANDOFF_PX + XTITLE_PX if x_title else 0)
    legend = LEGEND_GAP_PX + n_legend * LEGEND_ROW_PX + LEGEND_PAD_PX if n_legend else 0
    return axis, legend


def _base(fig: go.Figure, title: str, plot_height: int = 224, x_title: str | None = None) -> go.Figure:
    """Common frame: the legend is pinned to the figure's bottom edge (right-aligned with the plot, so it may reach
    into the free space under long y labels), under a margin reserved in pixels for the tick labels and the x-axis
    title, so the three never overlap whatever the plot height."""
    n = legend_entries(fig)
    axis, legend = bottom_px(n, x_title is not None)
    fig.update_layout(
        title=dict(text=title, x=0.02, font=dict(size=12)), height=TOP_PX + plot_height + axis + legend,
        margin=dict(l=SIDE_PX, r=SIDE_PX, t=TOP_PX, b=axis + legend),
        plot_bgcolor="white", paper_bgcolor="white", font=_FONT, showlegend=n > 0,
        legend=dict(orientation="v", xref="paper", x=1, xanchor="right", yref="container", y=0,
                    yanchor="bottom", font=dict(size=10), tracegroupgap=0),
    )
    fig.update_xaxes(showline=True, linecolor="#ccc", gridcolor="#eee", zerolinecolor="#bbb", automargin=True)
    fig.update_yaxes(showline=True, linecolor="#ccc", gridcolor="#eee", zerolinecolor="#bbb", automargin=True)
    if x_title is not None:
        # upright tick labels keep their height (TICKS_PX) on a narrow plot; rotated ones would push the title down
        fig.update_xaxes(title=dict(text=x_title, font=dict(size=10), standoff=XTITLE_STANDOFF_PX), tickangle=0)
    return fig


def empty_figure(message: str, height: int = 200) -> go.Figure:
    """A blank figure carrying a centred message (used before a run is shown)."""
    fig = go.Figure()
    fig.add_annotation(text=message, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                       font=dict(size=12, color="#777"))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=20, b=10), plot_bgcolor="white", paper_bgcolor="white")
    return fig


MAX_NAME_CHARS = 26  # longer peak names are shortened in the middle on axis labels (hover keeps them whole)


def short_name(name: str, limit: int = MAX_NAME_CHARS) -> str:
    """``name`` cut to ``limit`` characters by an ellipsis in the middle (both ends stay readable)."""
    if len(name) <= limit:
        return name
    head = (limit - 1) // 2
    return name[:head] + "…" + name[len(name) - (limit - 1 - head):]


def member_labels(result, links: pd.DataFrame | None = None, limit: int | None = None) -> list[str]:
    """``#rank peak (distance)`` for each subset member, in rank order; peak names cut to ``limit`` chars if given."""
    out = []
    for k, name in enumerate(result.peak_names):
        dist = ""
        if links is not None and k < len(links):
            d = fmt_distance(links["distance_to_tss"].iloc[k])
            dist = f" ({d})" if not d.startswith("trans") else " (trans: other chromosome)"
        out.append(f"#{k + 1} {short_name(str(name), limit) if limit else name}{dist}")
    return out


def member_plot_px(n_members: int) -> int:
    """Plot-area height for ``n_members`` rows of paired bars (24 px a member, at least 140 px)."""
    return max(140, 20 + 24 * n_members)


def drop_one_figure(result, links: pd.DataFrame | None = None) -> go.Figure:
    """Drop-one effect of each member (and its effect alone): small drop-one but large joint effect = redundancy."""
    labels = member_labels(result, links, limit=MAX_NAME_CHARS)
    full = member_labels(result, links)
    fig = go.Figure()
    drop = np.asarray(result.drop_one, dtype=float)
    fig.add_trace(go.Bar(
        y=labels, x=drop, orientation="h", name="drop-one: J(S∖r) − J(S)", customdata=full,
        marker_color=["#b2182b" if v >= 0 else "#2166ac" for v in drop],
        hovertemplate="%{customdata}<br>drop-one ΔJ %{x:+.4g}<extra></extra>",
    ))
    if len(result.single) == len(drop):
        fig.add_trace(go.Bar(
            y=labels, x=np.asarray(result.single, dtype=float), orientation="h", name="alone: J({r}) − J(∅)",
            customdata=full, marker_color="rgba(120,120,120,0.55)",
            hovertemplate="%{customdata}<br>alone ΔJ %{x:+.4g}<extra></extra>",
        ))
    _base(fig, "Members: drop-one effect vs effect alone", plot_height=member_plot_px(len(labels)),
          x_title="ΔJ (objective units)")
    fig.update_layout(barmode="group", bargap=0.25)
    fig.update_yaxes(autorange="reversed", tickfont=dict(size=9))
    return fig


def pairwise_matrix(result, mode: str = "excess") -> np.ndarray:
    """[L, L] joint drop effects; ``excess`` subtracts both drop-one effects (redundant pairs > 0)."""
    pw = np.asarray(result.pairwise, dtype=float)
    if pw.size == 0:
        return pw
    if mode == "joint":
        return pw
    d = np.asarray(result.drop_one, dtype=float)[: pw.shape[0]]
    out = pw - d[:, None] - d[None, :]
    np.fill_diagonal(out, np.nan)
    return out


def pairwise_figure(result, mode: str = "excess", links: pd.DataFrame | None = None) -> go.Figure:
    """Heatmap of pairwise joint-drop effects; members that compensate each other stand out."""
    mat = pairwise_matrix(result, mode)
    if mat.size == 0:
        return empty_figure("no pairwise effects stored for this run")
    if mat.shape[0] < 2:
        return empty_figure(f"Pairwise effects need two or more members:<br>this run has L = {mat.shape[0]}"
                            "<br>(run a larger L to see which members compensate each other)")
    labels = [f"#{k + 1}" for k in range(mat.shape[0])]
    names = member_labels(result, links)
    vmax = float(np.nanmax(np.abs(mat))) if np.isfinite(mat).any() else 1.0
    pw = np.asarray(result.pairwise, dtype=float)
    hover = [[f"{names[i]}<br>{names[j]}<br>joint drop {pw[i, j]:+.4g}<br>"
              f"excess over single drops {pw[i, j] - result.drop_one[i] - result.drop_one[j]:+.4g}"
              for j in range(mat.shape[1])] for i in range(mat.shape[0])]
    fig = go.Figure(go.Heatmap(
        z=mat, x=labels, y=labels, colorscale=EFFECT_SCALE, zmin=-vmax, zmax=vmax, text=hover,
        hovertemplate="%{text}<extra></extra>", hoverongaps=False,
        colorbar=dict(thickness=10, len=0.8, tickfont=dict(size=9), exponentformat="e",
                      title=dict(text="ΔJ<br>blue: redundant<br>red: synergy" if mode == "excess" else "ΔJ",
                                 font=dict(size=9), side="top")),
    ))
    title = ("Pairwise redundancy: J(S∖{i,j}) − J(S) − drop_i − drop_j" if mode == "excess"
             else "Pairwise joint drop: J(S∖{i,j}) − J(S)")
    # the engine evaluates pairs among the first members only (grids.PAIRWISE_MAX)
    partial = (f"the first {mat.shape[0]} of {len(result.drop_one)} members (by drop-one)"
               if mat.shape[0] < len(result.drop_one) else None)
    _base(fig, title, plot_height=244, x_title=partial)
    fig.update_yaxes(autorange="reversed", scaleanchor="x", showgrid=False)
    fig.update_xaxes(showgrid=False)
    return fig


def trajectory_figure(result) -> go.Figure:
    """Objective J after each search step, with the unperturbed baseline."""
    traj = np.asarray(result.trajectory, dtype=float)
    if traj.size == 0:
        return empty_figure("no trajectory stored for this run")
    fig = go.Figure(go.Scatter(x=np.arange(len(traj)), y=traj, mode="lines+markers", name="J(S) per step",
                               line=dict(color="#1f3a5f"), marker=dict(size=4)))
    if math.isfinite(result.baseline_objective):
        fig.add_hline(y=result.baseline_objective, line=dict(dash="dot", color="#999"),
                      annotation_text="J(∅) baseline", annotation_font_size=9)
    one = len(traj) == 1
    _base(fig, f"Objective trajectory ({result.method})",
          x_title="step (one: this method picks its whole subset at once)" if one else "step")
    # steps are whole numbers: a short trajectory (a baseline's single point) gets one tick per step, not 0.2, 0.4…
    if len(traj) <= 12:
        fig.update_xaxes(tickmode="linear", tick0=0, dtick=1, range=[-0.5, len(traj) - 0.5])
    fig.update_yaxes(title=dict(text="J (lower = stronger)", font=dict(size=10)))
    return fig


def effect_vs_l_figure(runs: list[dict], current_run: str | None = None) -> go.Figure:
    """Held-out effect of stored runs of one gene/type/method against subset size L."""
    df = pd.DataFrame(runs)
    if df.empty or "L" not in df or df["L"].nunique() < 2:
        have = "" if df.empty else f"<br>(stored so far: L = {', '.join(str(v) for v in sorted(df['L'].dropna().unique()))})"
        return empty_figure(f"Effect vs L needs stored runs at two or more L —<br>run other L values to draw it{have}")
    df = df.dropna(subset=["L", "heldout_delta"]).sort_values("L")
    mean = df.groupby("L")["heldout_delta"].mean()
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=mean.index, y=mean.values, mode="lines", name="mean over seeds",
                             line=dict(color="#1f3a5f")))
    fig.add_trace(go.Scatter(x=df["L"], y=df["heldout_delta"], mode="markers", name="stored runs",
                             marker=dict(color="#8a94a6", size=7), text=df["run_id"],
                             hovertemplate="L=%{x}<br>held-out Δ %{y:+.4g}<br>run %{text}<extra></extra>"))
    cur = df[df["run_id"] == current_run]
    if len(cur):
        fig.add_trace(go.Scatter(x=cur["L"], y=cur["heldout_delta"], mode="markers", name="this run",
                                 marker=dict(color="#c0392b", size=11, symbol="diamond")))
    _base(fig, "Held-out effect vs subset size L", x_title="L")
    levels = sorted(int(v) for v in df["L"].unique())
    if len(levels) <= 12:  # whole L values only (L = 1 and 2 would otherwise get ticks at 1.2, 1.4, …)
        fig.update_xaxes(tickmode="array", tickvals=levels)
    fig.update_yaxes(title=dict(text="held-out Δ prediction", font=dict(size=10)))
    return fig
