"""MNIST page: GRIDS on a 3-vs-8 digit classifier (the seed's Figures 1 and 2), and its pure figure builders.

Everything here is data -> component / go.Figure; the callbacks (callbacks/mnist.py) fetch the stored runs
and the classifier's probabilities and pass plain numbers in.
"""

from __future__ import annotations

import base64
import math
import struct
import zlib
from collections.abc import Mapping, Sequence

import dash_bootstrap_components as dbc
import numpy as np
import plotly.graph_objects as go
from dash import dcc, html
from plotly.subplots import make_subplots

from grids_core.mnist import IMAGE_SHAPE, METHODS
from layouts.components import fmt_num
from layouts.redundancy import empty_figure

N_PIXELS = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]
REFERENCE = "grids"
L_MIN, L_MAX, L_DEFAULT = 8, 128, 64
P_SIGNIFICANT = 0.05

# ---- component ids of this page (kept here, not in layouts/ids.py) ---------------------------------------
METHODS_ID = "mnist-methods"
L_ID = "mnist-L"
RUN_ID = "mnist-run"
CANCEL_ID = "mnist-cancel"
PROGRESS_WRAP_ID = "mnist-progress-wrap"
PROGRESS_ID = "mnist-progress"
PROGRESS_TEXT_ID = "mnist-progress-text"
ALERT_ID = "mnist-alert"
TRIGGER_ID = "mnist-trigger"  # memory: starts the background run {L, methods, nonce}
DONE_ID = "mnist-done"  # memory: what the background run returned
REFRESH_ID = "mnist-refresh"  # memory: nonce; re-read the store
SHOWN_ID = "mnist-shown"  # memory: {L, methods} of the results on screen (None when none)
SELECTED_ID = "mnist-selected"  # memory: index of the gallery image shown masked
SUMMARY_ID = "mnist-summary"
VIOLIN_ID = "mnist-violin"
TABLE_ID = "mnist-table"
MASKS_ID = "mnist-masks"
EXAMPLES_ID = "mnist-examples"
GALLERY_ID = "mnist-gallery"
DETAIL_ID = "mnist-detail"
THUMB_TYPE = "mnist-thumb"  # pattern-matching id type of the gallery buttons

COLORS = {  # one fixed colour per method, so the table's swatches and the violins always agree
    "grids": "#1f5fa8", "random": "#9ca3af", "saliency": "#e07b39", "ablation": "#2a9d8f", "smoothgrad": "#8e44ad",
    "ig": "#c0392b", "sage": "#d4a017", "lime": "#5d8c1f", "cxplain": "#a04000", "fimap": "#e377c2",
}
_EXTRA_COLORS = ["#8e44ad", "#c0392b", "#16a085", "#d4a017", "#5d6d7e", "#a04000"]
_INK = [[0.0, "#ffffff"], [1.0, "#111827"]]  # pixel 0 = white paper, 1 = dark ink
_MASK_RED = [[0.0, "rgba(220,38,38,0.80)"], [1.0, "rgba(220,38,38,0.80)"]]
_FONT = dict(family="Inter, Helvetica, Arial, sans-serif", size=11)
_GRAPH_CONFIG = {"displaylogo": False, "responsive": True, "toImageButtonOptions": {"format": "svg"},
                 "modeBarButtonsToRemove": ["lasso2d", "select2d", "autoScale2d"]}


def method_color(method: str, order: Sequence[str] = ()) -> str:
    """Stable colour of a method (GRIDS blue; unknown baselines take the next spare colour)."""
    if method in COLORS:
        return COLORS[method]
    extra = [m for m in order if m not in COLORS]
    i = extra.index(method) if method in extra else zlib.crc32(method.encode())
    return _EXTRA_COLORS[i % len(_EXTRA_COLORS)]


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


# ------------------------------------------------------------------------------------------ pure image helpers


def as_image(x: Sequence[float] | np.ndarray) -> np.ndarray:
    """A flat 784-vector (or 28x28 array) as a float 28x28 image."""
    a = np.asarray(x, dtype=float)
    if a.size != N_PIXELS:
        raise ValueError(f"expected {N_PIXELS} pixels, got {a.size}")
    return a.reshape(IMAGE_SHAPE)


def mask_image(subset: Sequence[int]) -> np.ndarray:
    """28x28 float image: 1 at the subset's pixels, NaN elsewhere (NaN is transparent in a heatmap)."""
    m = np.full(N_PIXELS, np.nan)
    m[np.asarray(list(subset), dtype=np.int64)] = 1.0
    return m.reshape(IMAGE_SHAPE)


def masked_image(x: Sequence[float] | np.ndarray, subset: Sequence[int]) -> np.ndarray:
    """The image with exactly the subset's pixels set to 0 (black in MNIST terms), as 28x28."""
    a = np.array(x, dtype=float).reshape(-1)
    a[np.asarray(list(subset), dtype=np.int64)] = 0.0
    return as_image(a)


def png_data_uri(x: Sequence[float] | np.ndarray, scale: int = 1) -> str:
    """A grayscale PNG (dark ink on white) of a [0, 1] image as a data: URI, without Pillow."""
    a = as_image(x)
    g = np.round(255.0 * (1.0 - np.clip(a, 0.0, 1.0))).astype(np.uint8)
    if scale > 1:
        g = np.kron(g, np.ones((scale, scale), dtype=np.uint8))
    h, w = g.shape
    raw = b"".join(b"\x00" + g[r].tobytes() for r in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _p_text(p: float | None) -> str:
    if p is None or not math.isfinite(p):
        return "—"
    if p >= 0.995:
        return ">0.99"
    if p <= 0.005:
        return "<0.01"
    return f"{p:.2f}"


# ---- image grids: sizes in pixels, so titles never collide or leave the figure ------------------------------
HALF_CARD_PX = 440  # narrowest half-width card: the page grid is repeat(auto-fit, minmax(440px, 1fr))
FULL_CARD_PX = 900  # narrowest full-width card at a 1280 px window (about 970 px there)
TITLE_FONT_PX = 10  # subplot titles
_LINE_PX = 14  # height of one subplot-title line at TITLE_FONT_PX, with leading
_CHAR_EM = 0.6  # generous mean glyph width (Inter / Helvetica / Arial), in em
_EDGE_PX = 8  # left, right and bottom margin
_GAP_PX = 8  # between image columns
_MIN_SIDE_PX, _MAX_SIDE_PX = 56, 150


def text_px(text: str, size: float = TITLE_FONT_PX) -> float:
    """Generous width estimate, in px, of the widest line of a plotly text (lines split at ``<br>``)."""
    return max(len(line) for line in text.split("<br>")) * _CHAR_EM * size


def column_px(width: float, cols: int) -> float:
    """Width of one image column when ``cols`` columns share a figure ``width`` px wide."""
    return (width - 2 * _EDGE_PX - (cols - 1) * _GAP_PX) / cols


def panels_per_row(titles: Sequence[str], n: int, width: float) -> int:
    """The most panels (at most ``n``) per row whose titles and images still fit a figure ``width`` px wide."""
    need = max([text_px(t) for t in titles] + [_MIN_SIDE_PX])
    return next((c for c in range(max(n, 1), 1, -1) if column_px(width, c) >= need), 1)


def image_grid(titles: Sequence[str], rows: int, cols: int, width: float) -> go.Figure:
    """Empty rows x cols grid of square image panels laid out in pixels for a figure ``width`` px wide.

    Each row is preceded by a band as tall as the longest title, so titles sit between rows instead of on the
    images; the height follows from the image side (the column width at ``width``, capped). On a wider figure
    the images keep that side and centre in their columns; on a narrower one they shrink under their titles.
    """
    side = min(max(column_px(width, cols), _MIN_SIDE_PX), _MAX_SIDE_PX)
    band = max((t.count("<br>") + 1 for t in titles), default=1) * _LINE_PX + 4
    plot_h = rows * side + (rows - 1) * band
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=list(titles),
                        horizontal_spacing=_GAP_PX / (width - 2 * _EDGE_PX),
                        vertical_spacing=band / plot_h if rows > 1 else 0.0)
    for i in range(1, rows * cols + 1):
        sfx = "" if i == 1 else str(i)
        fig.layout[f"xaxis{sfx}"].update(visible=False, constrain="domain", range=[-0.5, IMAGE_SHAPE[1] - 0.5])
        fig.layout[f"yaxis{sfx}"].update(visible=False, autorange="reversed", scaleanchor=f"x{sfx}",
                                         constrain="domain", constraintoward="top")
    return _frame(fig, round(band + plot_h + _EDGE_PX), None, top=band)


def _add_image(fig: go.Figure, img: np.ndarray, row: int, col: int, name: str, overlay: np.ndarray | None = None,
               opacity: float = 1.0) -> None:
    fig.add_trace(go.Heatmap(z=img, colorscale=_INK, zmin=0, zmax=1, showscale=False, name=name, opacity=opacity,
                             hovertemplate="row %{y}, col %{x}: %{z:.2f}<extra>" + name + "</extra>"), row=row, col=col)
    if overlay is not None:
        fig.add_trace(go.Heatmap(z=overlay, colorscale=_MASK_RED, zmin=0, zmax=1, showscale=False, name=f"{name} mask",
                                 hovertemplate="row %{y}, col %{x}: switched off<extra></extra>"), row=row, col=col)


def _frame(fig: go.Figure, height: int, title: str | None = None, top: int = 40) -> go.Figure:
    fig.update_layout(height=height, margin=dict(l=_EDGE_PX, r=_EDGE_PX, t=top, b=_EDGE_PX), plot_bgcolor="white",
                      paper_bgcolor="white", font=_FONT, showlegend=False,
                      title=dict(text=title, x=0.01, font=dict(size=12)) if title else None)
    fig.update_annotations(font=dict(size=TITLE_FONT_PX))
    return fig


# ------------------------------------------------------------------------------------------------ figures


def delta_phi_figure(deltas: Mapping[str, Sequence[float]], L: int | None = None) -> go.Figure:
    """Figure 1: per-method distribution (violin + box + points) of Δφ over the test images of 8."""
    order = list(deltas)
    fig = go.Figure()
    for m in order:
        y = np.asarray(deltas[m], dtype=float)
        color = method_color(m, order)
        fig.add_trace(go.Violin(
            y=y, name=m, points="all", pointpos=0, jitter=0.45, scalemode="width", width=0.8,
            box=dict(visible=True, width=0.28, fillcolor="rgba(255,255,255,0.85)", line=dict(color="#1f2937", width=1)),
            meanline=dict(visible=True, color="#1f2937", width=1),
            marker=dict(size=3, color="rgba(31,41,55,0.45)"), line=dict(color=color, width=1.2),
            fillcolor=_rgba(color, 0.45), hoveron="points",
            hovertemplate=f"{m}<br>Δφ = %{{y:.2f}}<extra></extra>",
        ))
    fig.add_hline(y=0, line=dict(color="#9ca3af", width=1, dash="dot"))
    n = len(next(iter(deltas.values()))) if deltas else 0
    title = f"Δφ = φ(p(x)) − φ(p(x masked)) on {n} test 8s" + (f" · L = {L} pixels set to 0" if L else "")
    _frame(fig, 360, title)
    fig.update_yaxes(title_text="Δφ (log-odds of 8 removed)", showline=True, linecolor="#ccc", gridcolor="#eee",
                     zerolinecolor="#bbb")
    fig.update_xaxes(showline=True, linecolor="#ccc")
    return fig


def _grid_cell(k: int, per_row: int) -> tuple[int, int]:
    """1-based (row, col) of the k-th (0-based) panel in rows of ``per_row``."""
    return k // per_row + 1, k % per_row + 1


def global_masks_figure(subsets: Mapping[str, Sequence[int]], background: np.ndarray | None = None) -> go.Figure:
    """The global mask per method: its L pixels in red on a faint mean test 8 (28x28 each), in a full-width card."""
    order = list(subsets)
    titles = [f"{m}<br>{len(subsets[m])} px" for m in order]
    per_row = panels_per_row(titles, len(order), FULL_CARD_PX)
    fig = image_grid(titles, math.ceil(max(len(order), 1) / per_row), per_row, FULL_CARD_PX)
    bg = as_image(background) if background is not None else None
    for k, m in enumerate(order):
        row, col = _grid_cell(k, per_row)
        if bg is not None:
            _add_image(fig, bg, row, col, "mean test 8", opacity=0.35)
        fig.add_trace(go.Heatmap(z=mask_image(subsets[m]), colorscale=_MASK_RED, zmin=0, zmax=1, showscale=False,
                                 name=f"{m} mask", meta=m,
                                 hovertemplate="row %{y}, col %{x}<extra>" + m + "</extra>"), row=row, col=col)
    return fig


def masked_examples_figure(images: np.ndarray, subsets: Mapping[str, Sequence[int]],
                           p_before: Sequence[float] | None = None,
                           p_after: Mapping[str, Sequence[float]] | None = None,
                           labels: Sequence[str] | None = None) -> go.Figure:
    """Figure 2: a row of original test 8s, then one row per method with its pixels set to 0 (shown red).

    Titles are two lines (name, then p(8)) so that four columns fit a half-width card.
    """
    imgs = [as_image(x) for x in np.asarray(images, dtype=float).reshape(-1, N_PIXELS)]
    order = list(subsets)
    rows, cols = 1 + len(order), max(len(imgs), 1)
    labels = list(labels or [f"test 8 #{i}" for i in range(len(imgs))])
    titles = [labels[i] + (f"<br>p(8) {_p_text(p_before[i])}" if p_before is not None else "") for i in range(cols)]
    for m in order:
        for i in range(cols):
            titles.append(m + (f"<br>p(8) {_p_text(p_after[m][i])}" if p_after is not None and m in p_after else ""))
    fig = image_grid(titles, rows, cols, HALF_CARD_PX)
    for i, img in enumerate(imgs, start=1):
        _add_image(fig, img, 1, i, "original")
        for r, m in enumerate(order, start=2):
            _add_image(fig, masked_image(img, subsets[m]), r, i, m, overlay=mask_image(subsets[m]))
    return fig


def masked_detail_figure(image: np.ndarray, subsets: Mapping[str, Sequence[int]], p_before: float | None = None,
                         p_after: Mapping[str, float] | None = None, label: str = "test 8") -> go.Figure:
    """One test image, original and masked by every method, titled with p(8) before -> after.

    The panels wrap into as many rows as a half-width card needs for every title to fit.
    """
    order = list(subsets)
    titles = [f"{label}<br>p(8) {_p_text(p_before)}"]
    for m in order:
        pa = p_after.get(m) if p_after else None
        titles.append(f"{m}<br>p(8) {_p_text(p_before)} → {_p_text(pa)}" if pa is not None else m)
    per_row = panels_per_row(titles, len(titles), HALF_CARD_PX)
    fig = image_grid(titles, math.ceil(len(titles) / per_row), per_row, HALF_CARD_PX)
    img = as_image(image)
    _add_image(fig, img, 1, 1, "original")
    for k, m in enumerate(order, start=1):
        row, col = _grid_cell(k, per_row)
        _add_image(fig, masked_image(img, subsets[m]), row, col, m, overlay=mask_image(subsets[m]))
    return fig


# ------------------------------------------------------------------------------------------ tables and text


def _get(h: Mapping, key: str) -> float:
    try:
        return float(h.get(key, float("nan")))
    except (TypeError, ValueError):
        return float("nan")


def table_rows(results: Mapping[str, object]) -> list[dict]:
    """One row per method from stored results: medians, Wilcoxon GRIDS > method, accuracy drop, now-3, train J."""
    rows = []
    for m, r in results.items():
        h = dict(getattr(r, "heldout", {}) or {})
        w = dict(h.get("wilcoxon") or {})
        d = np.asarray(h.get("delta_phi", []), dtype=float)
        rows.append({
            "method": m,
            "n": int(d.size),
            "median_dphi": float(np.median(d)) if d.size else _get(h, "median_delta_phi"),
            "mean_dphi": float(np.mean(d)) if d.size else _get(h, "mean_delta_phi"),
            "median_difference": _get(w, "median_difference") if w else float("nan"),
            "p_value": _get(w, "p_value") if w else float("nan"),
            "accuracy_drop": _get(h, "accuracy_drop"),
            "fraction_now_3": _get(h, "fraction_now_3"),
            "train_J": float(getattr(r, "objective", float("nan"))),
            "runtime_s": float(getattr(r, "runtime_s", float("nan"))),
        })
    return rows


def _p_fmt(p: float) -> str:
    if not math.isfinite(p):
        return "—"
    return f"{p:.1e}" if p < 1e-3 else f"{p:.3f}"


def pvalue_table(rows: Sequence[dict]) -> html.Table:
    """The comparison table (one row per method; the reference row has no test)."""
    head = ["method", "median Δφ", "mean Δφ", "median(GRIDS − m)", "Wilcoxon p (GRIDS > m)", "accuracy drop",
            "now classified 3", "train J", "time (s)"]
    body = []
    for r in rows:
        ref = r["method"] == REFERENCE
        p = r["p_value"]
        p_cell = html.Td("reference" if ref else _p_fmt(p), className="num",
                         style={"fontWeight": 600} if math.isfinite(p) and p < P_SIGNIFICANT else None)
        body.append(html.Tr([
            html.Td(html.Span(r["method"], style={"borderLeft": f"4px solid {method_color(r['method'])}",
                                                  "paddingLeft": "5px"})),
            html.Td(fmt_num(r["median_dphi"], ".3f"), className="num"),
            html.Td(fmt_num(r["mean_dphi"], ".3f"), className="num"),
            html.Td("" if ref else fmt_num(r["median_difference"], "+.3f"), className="num"),
            p_cell,
            html.Td(fmt_num(r["accuracy_drop"], ".0%"), className="num"),
            html.Td(fmt_num(r["fraction_now_3"], ".0%"), className="num"),
            html.Td(fmt_num(r["train_J"], ".3f"), className="num"),
            html.Td(fmt_num(r["runtime_s"], ".2f"), className="num"),
        ]))
    th = {"whiteSpace": "normal", "verticalAlign": "bottom"}
    return html.Table([html.Thead(html.Tr([html.Th(h, style=th) for h in head])), html.Tbody(body)],
                      className="dense-table", id=TABLE_ID + "-table")


def _tie_tolerance(ref_median: float) -> float:
    return max(0.05 * abs(ref_median), 0.05)


def verdict(ref: dict, other: dict) -> str:
    """'better' (Wilcoxon p < 0.05), 'worse' (other's median Δφ clearly higher) or 'tie' for GRIDS vs one method."""
    p = other["p_value"]
    if math.isfinite(p) and p < P_SIGNIFICANT and other["median_difference"] > 0:
        return "better"
    if other["median_dphi"] - ref["median_dphi"] > _tie_tolerance(ref["median_dphi"]):
        return "worse"
    return "tie"


def comparison_text(rows: Sequence[dict], n_digits: int | None = None, test_accuracy: float | None = None,
                    L: int | None = None) -> list[str]:
    """Plain sentences, derived from the numbers, on how GRIDS compares on test Δφ and on the training objective."""
    by = {r["method"]: r for r in rows}
    ref = by.get(REFERENCE)
    if ref is None:
        return ["GRIDS is not among the results shown, so there is nothing to compare against."]
    where = f"On this {n_digits:,}-digit subset" if n_digits else "On this data"
    acc = f" (classifier test accuracy {test_accuracy:.1%})" if test_accuracy is not None and math.isfinite(
        test_accuracy) else ""
    lines = [f"{where}{acc}, L = {L} pixels set to 0 are learned on training 8s and evaluated on "
             f"{ref['n']} test 8s." if L else f"{where}{acc}."]
    others = [r for r in rows if r["method"] != REFERENCE]
    if not others:
        lines.append(f"GRIDS alone: median Δφ {ref['median_dphi']:.2f}; tick a baseline to compare.")
        return lines
    groups: dict[str, list[dict]] = {"better": [], "tie": [], "worse": []}
    for r in others:
        groups[verdict(ref, r)].append(r)
    parts = []
    if groups["better"]:
        parts.append("GRIDS removes more evidence for 8 than " + ", ".join(
            f"{r['method']} (median Δφ {ref['median_dphi']:.2f} vs {r['median_dphi']:.2f}, p = {_p_fmt(r['p_value'])})"
            for r in groups["better"]))
    if groups["tie"]:
        parts.append("GRIDS is not significantly better than " + ", ".join(
            f"{r['method']} (median Δφ {ref['median_dphi']:.2f} vs {r['median_dphi']:.2f}, "
            f"one-sided p = {_p_fmt(r['p_value'])})" for r in groups["tie"]))
    if groups["worse"]:
        parts.append("GRIDS does worse than " + ", ".join(
            f"{r['method']} (median Δφ {ref['median_dphi']:.2f} vs {r['median_dphi']:.2f}, "
            f"{r['median_dphi'] - ref['median_dphi']:.2f} lower)" for r in groups["worse"]))
    lines.append("On test Δφ: " + "; ".join(parts) + ".")
    best = min(others, key=lambda r: r["train_J"] if math.isfinite(r["train_J"]) else math.inf)
    if math.isfinite(ref["train_J"]) and math.isfinite(best["train_J"]):
        if ref["train_J"] < best["train_J"]:
            lines.append(f"GRIDS reaches the lowest training objective J (mean log-odds of 8 over training 8s): "
                         f"{ref['train_J']:.3f} vs {best['train_J']:.3f} for the best baseline ({best['method']}).")
        elif ref["train_J"] > best["train_J"]:
            lines.append(f"{best['method']} reaches a lower training objective than GRIDS: {best['train_J']:.3f} vs "
                         f"{ref['train_J']:.3f}.")
        else:
            lines.append(f"GRIDS and {best['method']} reach the same training objective ({ref['train_J']:.3f}).")
    return lines


def summary_block(lines: Sequence[str]) -> html.Div:
    """The comparison sentences as a small card."""
    return html.Div([html.P(line, style={"margin": "2px 0"}) for line in lines], className="run-summary",
                    id=SUMMARY_ID + "-text")


# ------------------------------------------------------------------------------------------------- gallery

THUMB_STYLE = {"padding": "1px", "border": "2px solid transparent", "background": "#fff", "borderRadius": "3px",
               "cursor": "pointer", "lineHeight": 0}
THUMB_SELECTED = {**THUMB_STYLE, "border": "2px solid #1f5fa8"}


def gallery(images: np.ndarray, selected: int | None = 0) -> list[html.Button]:
    """Clickable thumbnails of the test 8s (buttons with pattern-matching ids)."""
    out = []
    for i, x in enumerate(np.asarray(images, dtype=float).reshape(-1, N_PIXELS)):
        out.append(html.Button(
            html.Img(src=png_data_uri(x), width=40, height=40, alt=f"test 8 #{i}",
                     style={"imageRendering": "pixelated"}),
            id={"type": THUMB_TYPE, "index": i}, n_clicks=0, title=f"test 8 #{i}: click to mask it with every method",
            style=THUMB_SELECTED if i == selected else THUMB_STYLE,
        ))
    return out


# -------------------------------------------------------------------------------------------------- layout


def method_options(methods: Sequence[str]) -> list[dict]:
    """Checklist options; GRIDS is the reference of every test and cannot be unticked."""
    return [{"label": f" {m}" + (" (reference)" if m == REFERENCE else ""), "value": m, "disabled": m == REFERENCE}
            for m in methods]


def engine_methods() -> list[str]:
    """The MNIST method registry's names, GRIDS first (new baselines show up here by themselves)."""
    return [REFERENCE] + [m for m in METHODS if m != REFERENCE]


def mnist_page(methods: Sequence[str] | None = None) -> html.Div:
    """Controls on the left; Figure 1 (Δφ violins), the p-value table, masks, Figure 2 and the gallery on the right."""
    methods = list(methods) if methods is not None else engine_methods()
    graph = dict(config=_GRAPH_CONFIG)
    controls = html.Aside([
        html.H5("MNIST 3 vs 8"),
        html.P("The sanity check: which pixels, switched off together, turn an 8 into a 3? GRIDS and the baselines "
               "each pick L pixels on training 8s; the test 8s measure how much evidence for 8 they remove.",
               className="muted small"),
        html.Div([html.Label("Methods", className="field-label"),
                  dcc.Checklist(id=METHODS_ID, options=method_options(methods), value=list(methods),
                                labelStyle={"display": "block", "fontSize": "12px"})], className="field"),
        html.Div([html.Label("L (pixels switched off)", className="field-label"),
                  dcc.Slider(id=L_ID, min=L_MIN, max=L_MAX, step=8, value=L_DEFAULT,
                             marks={v: str(v) for v in (8, 32, 64, 96, 128)})], className="field"),
        html.Div("k = 32 candidates, seed 0; pixels set to 0.", className="field-hint"),
        html.Div([
            html.Button("Run", id=RUN_ID, n_clicks=0, className="btn btn-primary"),
            html.Button("Cancel", id=CANCEL_ID, n_clicks=0, disabled=True, className="btn btn-outline-danger"),
        ], className="button-row"),
        html.Div([
            dbc.Progress(id=PROGRESS_ID, value=0, label="", striped=True, animated=True, className="grids-progress"),
            html.Div(id=PROGRESS_TEXT_ID, className="progress-text"),
        ], id=PROGRESS_WRAP_ID, style={"display": "none"}),
        html.Div(id=ALERT_ID),
        html.Div("A stored run appears as soon as its L and methods are chosen; Run computes what is missing "
                 "(the first run also trains the classifier, about 30 s).", className="field-hint"),
    ], className="controls")
    two = {"display": "grid", "gridTemplateColumns": "repeat(auto-fit, minmax(440px, 1fr))", "gap": "8px"}
    view = html.Section([
        html.Div(id=SUMMARY_ID),
        html.Div([
            html.Div(dcc.Graph(id=VIOLIN_ID, figure=empty_figure("Δφ distributions appear after a run", 360), **graph),
                     className="panel"),
            html.Div([html.H6("GRIDS vs each method on the test 8s"), html.Div(id=TABLE_ID, style={"overflowX": "auto"}),
                      html.Div("Δφ = φ(p(x)) − φ(p(x masked)), φ = log-odds of 8. p: paired one-sided Wilcoxon "
                               "signed-rank test that GRIDS's Δφ is larger. Accuracy drop and 'now classified 3' "
                               "are over the test 8s; train J = mean log-odds of 8 over training 8s after masking "
                               "(lower is better).", className="muted small", style={"marginTop": "6px"})],
                     className="panel card-lite"),
        ], style=two),
        html.H5("Global mask per method"),
        html.Div(dcc.Graph(id=MASKS_ID, figure=empty_figure("masks appear after a run", 210), **graph),
                 className="panel"),
        html.Div([
            html.Div([html.H5("Four test 8s, masked (Figure 2)"),
                      html.Div(dcc.Graph(id=EXAMPLES_ID, figure=empty_figure("examples appear after a run", 300),
                                         **graph), className="panel")]),
            html.Div([html.H5("Gallery of test 8s"),
                      html.Div("Click an image to see it masked by every method, with p(8) before → after.",
                               className="muted small"),
                      html.Div(id=GALLERY_ID, style={"display": "flex", "flexWrap": "wrap", "gap": "2px",
                                                     "maxHeight": "236px", "overflowY": "auto", "margin": "4px 0",
                                                     "background": "#fff", "border": "1px solid #e3e6eb",
                                                     "padding": "3px"}),
                      html.Div(dcc.Graph(id=DETAIL_ID, figure=empty_figure("pick an image after a run", 200),
                                         **graph), className="panel")]),
        ], style=two),
    ], className="view")
    return html.Div([
        dcc.Store(id=TRIGGER_ID, storage_type="memory"),
        dcc.Store(id=DONE_ID, storage_type="memory"),
        dcc.Store(id=REFRESH_ID, storage_type="memory"),
        dcc.Store(id=SHOWN_ID, storage_type="memory"),
        dcc.Store(id=SELECTED_ID, storage_type="memory", data=0),
        controls,
        view,
    ], className="browser-layout", id="mnist-page")
