"""Genome-browser figure: pure builders (bundle + result data -> plotly figure), no Dash, no engine calls.

One figure, stacked tracks sharing one genomic x-axis: cytoband strip (own chromosome-wide axis), gene
models, enhancer-promoter arcs (GRIDS above the axis, overlay methods mirrored below), peaks with the
selected subset coloured by drop-one effect, planted enhancers (simulated bundles), pseudobulk ATAC
coverage per cell type, and a Hi-C triangle with TAD outlines.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import plotly.colors as pcolors
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from grids_core.errors import SettingsError, UnknownNameError, suggest
from grids_core.genome import natural_chrom_key

MAX_COVERAGE_POINTS = 2000
MIN_WIDTH = 1_000
DEFAULT_FLANK = 250_000
MAX_AUTO_SPAN = 3_000_000
EFFECT_SCALE = [  # signed effect: blue (negative) - grey (0, still visible on white) - red (positive)
    [0.0, "rgb(33,102,172)"], [0.25, "rgb(103,169,207)"], [0.5, "rgb(190,190,190)"],
    [0.75, "rgb(239,138,98)"], [1.0, "rgb(178,24,43)"],
]
TARGET_COLOR = "#c0392b"
OTHER_COLOR = "#8a94a6"
GENE_COLOR = "#1f3a5f"
HIGHLIGHT_GENE = "#c0392b"
TRUTH_COLORS = {"promoter": "#d95f02", "enhancer-A": "#1b9e77", "enhancer-B": "#7570b3", "decoy": "#b0b0b0"}
# overlay methods: hues kept clear of the planted-truth colours (orange, green, purple, grey) and of the blue-red
# effect scale, so a method's arcs never read as planted enhancers
METHOD_COLORS = ("#e7298a", "#e6ab02", "#17becf", "#8c510a", "#bcbd22", "#252525", "#f781bf", "#4d004b")
OVERLAY_DEPTH_STEP = 0.15  # overlay k's arcs reach 1 - 0.15 k of the first overlay's depth (at least 1/4)
TRUTH_DRAW_ORDER = ("decoy", "promoter", "enhancer-A", "enhancer-B")  # decoys first: planted members drawn on top
HIC_MAX_WIDTH = 10_000_000  # wider views: the ~2 Mb Hi-C blocks shrink to a sliver, so say "zoom in" instead
HIC_MIN_BINS = 4  # narrower views (in Hi-C bins) have no triangle to speak of
PLOT_PX = 800  # assumed plot width (px) when fitting labels; conservative: real plots are usually wider
CHAR_PX = 6.0  # width of a gene-label character (px, 9 px font); the bold target label is a bit wider
GENE_ROW_PX = 23  # pitch of one gene row (label above a gene model) in px
MAX_GENE_ROWS = 6
# title line at the top of the figure, shared with plotly's modebar (top right, ~25 px); the legend band lies
# below it and above the tracks, so legend, title and modebar never overlap
TITLE_PX = 30
LEGEND_ROW_PX = 19  # one row of the horizontal legend (font 10)
LEGEND_PAD_PX = 10  # the legend box's own padding
LEGEND_GAP_PX = 12  # plotly keeps its auto-margin pad (12 px) between a container-anchored legend and the plot
LEGEND_PLOT_PX = 740  # plot width the legend rows are reserved for (that of a 1280 px window)
LEGEND_CHAR_PX = 5.4  # width of a legend character (px, 10 px font)
LEGEND_SYMBOL_PX = 45  # symbol, its gap to the text and the gap to the next entry
HIC_TICKS_PX = 40  # the Hi-C row's distance tick labels, between its row label and the plot
STAIN_COLORS = {
    "gneg": "#ffffff", "gpos25": "#c8c8c8", "gpos50": "#969696", "gpos75": "#5a5a5a", "gpos100": "#000000",
    "acen": "#c0392b", "gvar": "#dcdcdc", "stalk": "#6e7fa3",
}
_LOCUS_RE = re.compile(r"^\s*([A-Za-z0-9_.]+)\s*:\s*([\d,]+)\s*(?:-\s*([\d,]+))?\s*$")
_NUMBERED = re.compile(r"^(.*?)(\d+)$")


# ---- loci ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Locus:
    """A genomic window, 0-based half-open internally; shown 1-based inclusive like UCSC/IGV."""

    chrom: str
    start: int
    end: int

    @property
    def width(self) -> int:
        return self.end - self.start

    def label(self) -> str:
        """``chr2:170,000,001-171,000,000`` (1-based, commas)."""
        return f"{self.chrom}:{self.start + 1:,}-{self.end:,}"

    def igv(self) -> str:
        """IGV locus string (1-based, no commas)."""
        return f"{self.chrom}:{self.start + 1}-{self.end}"


def parse_locus(text: str | None, bundle, chrom_sizes: dict[str, int] | None = None) -> Locus:
    """Parse a gene name or ``chr:start-end`` (1-based, commas allowed); raise a GridsError with a fix."""
    text = (text or "").strip()
    if not text:
        raise SettingsError("Enter a gene name (e.g. GAD1) or a region like chr2:170,500,000-171,200,000.")
    sizes = dict(chrom_sizes or {})
    m = _LOCUS_RE.match(text)
    if m is None and ":" in text:
        raise SettingsError(
            f"Cannot read locus {text!r}: write chrom:start-end, e.g. chr2:170,500,000-171,200,000."
        )
    chroms = set(sizes) | set(bundle.peaks["chrom"].unique()) | set(bundle.genes["chrom"].unique())
    if m is None and text in chroms:  # a bare chromosome: all of it
        ends = [int(bundle.peaks.loc[bundle.peaks["chrom"] == text, "end"].max() or 0),
                int(bundle.genes.loc[bundle.genes["chrom"] == text, "end"].max() or 0)]
        return _clamp(Locus(text, 0, sizes.get(text) or max(ends)), sizes.get(text))
    if m is None:
        try:
            return gene_locus(bundle, bundle.gene_name(text))
        except UnknownNameError:
            raise UnknownNameError(
                f"No gene or chromosome {text!r} in this bundle." + suggest(text, bundle.gene_names)
                + " Type a gene (e.g. GAD1), a chromosome (chr2) or a region (chr2:170,500,000-171,200,000)."
            ) from None
    chrom, a, b = m.group(1), m.group(2), m.group(3)
    if chrom not in chroms:
        alt = chrom if chrom.lower().startswith("chr") else f"chr{chrom}"
        fix = suggest(alt, sorted(chroms)) or f" Known chromosomes: {', '.join(sorted(chroms)[:6])}, ..."
        raise UnknownNameError(f"Unknown chromosome {chrom!r} in locus {text!r}." + fix)
    start = int(a.replace(",", ""))
    if b is None:  # a single position: centre a 20 kb window on it
        start, end = start - 10_000, start + 10_000
    else:
        end = int(b.replace(",", ""))
    if end < start:
        raise SettingsError(f"Locus {text!r} ends before it starts: write the smaller coordinate first.")
    size = sizes.get(chrom)
    if size is not None and start > size:
        raise SettingsError(f"Locus {text!r} starts beyond the end of {chrom} ({size:,} bp).")
    return _clamp(Locus(chrom, max(0, start - 1), end), size)


def _clamp(locus: Locus, size: int | None) -> Locus:
    start, end = locus.start, locus.end
    if end - start < MIN_WIDTH:
        mid = (start + end) // 2
        start, end = mid - MIN_WIDTH // 2, mid + MIN_WIDTH // 2
    if start < 0:  # shift, not cut, so a widened view keeps MIN_WIDTH at the chromosome's ends too
        start, end = 0, end - start
    if size is not None and end > size:
        start, end = max(0, start - (end - size)), size
    return Locus(locus.chrom, int(start), int(end))


def gene_locus(bundle, gene: str, subset_mids: list[int] | None = None, flank: int = DEFAULT_FLANK) -> Locus:
    """Default view of a gene: gene body and TSS +/- flank, widened to show its in-cis subset peaks."""
    g = bundle.gene_row(gene)
    tss = int(g["tss"])
    lo, hi = min(int(g["start"]), tss - flank), max(int(g["end"]), tss + flank)
    for mid in subset_mids or []:
        if abs(mid - tss) <= MAX_AUTO_SPAN // 2:
            lo, hi = min(lo, mid), max(hi, mid)
    pad = int(0.04 * (hi - lo))
    return _clamp(Locus(str(g["chrom"]), lo - pad, hi + pad), None)


# ---- pure geometry ------------------------------------------------------------------------------
def downsample_coverage(
    starts: np.ndarray, ends: np.ndarray, values: np.ndarray, lo: int, hi: int, max_points: int = MAX_COVERAGE_POINTS
) -> tuple[np.ndarray, np.ndarray]:
    """Step line of per-peak values in [lo, hi): exact rectangles if they fit, else per-bin maxima.

    Returns x, y with ``len(x) <= max_points``; maxima keep narrow strong peaks visible when binned.
    """
    starts, ends, values = (np.asarray(a) for a in (starts, ends, values))
    keep = (ends > lo) & (starts < hi)
    s, e, v = np.clip(starts[keep], lo, hi), np.clip(ends[keep], lo, hi), values[keep].astype(float)
    if len(s) * 4 + 2 <= max_points:
        order = np.argsort(s, kind="stable")
        s, e, v = s[order], e[order], v[order]
        x = np.column_stack([s, s, e, e]).ravel()
        y = np.column_stack([np.zeros_like(v), v, v, np.zeros_like(v)]).ravel()
        return np.concatenate([[lo], x, [hi]]).astype(float), np.concatenate([[0.0], y, [0.0]])
    n_bins = max(1, max_points // 2)
    edges = np.linspace(lo, hi, n_bins + 1)
    first = np.clip(np.searchsorted(edges, s, side="right") - 1, 0, n_bins - 1)
    last = np.clip(np.searchsorted(edges, e, side="left") - 1, 0, n_bins - 1)
    binned = np.zeros(n_bins)
    span = last - first
    for k in range(int(span.max()) + 1 if len(span) else 0):  # peaks are short: usually 1-2 passes
        sel = span >= k
        np.maximum.at(binned, first[sel] + k, v[sel])
    x = np.column_stack([edges[:-1], edges[1:]]).ravel()
    y = np.repeat(binned, 2)
    return x, y


def arc_xy(x0: float, x1: float, height: float, n: int = 41) -> tuple[np.ndarray, np.ndarray]:
    """Half-ellipse from (x0, 0) to (x1, 0) with apex ``height`` (negative = mirrored below)."""
    t = np.linspace(0.0, math.pi, n)
    cx, rx = (x0 + x1) / 2.0, (x1 - x0) / 2.0
    return cx - rx * np.cos(t), height * np.sin(t)


def hic_pair_xy(i: int, j: int, start: int, bin_size: int) -> tuple[float, float]:
    """Centre of the rotated cell of bins (i, j): x = midpoint of the two bins, y = their separation (bp)."""
    i, j = min(i, j), max(i, j)
    return start + (i + j + 1) * bin_size / 2.0, float((j - i) * bin_size)


def hic_triangle(
    matrix: np.ndarray, start: int, bin_size: int, lo: int, hi: int, max_cols: int = 320, max_sep: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rotated (45 deg) Hi-C triangle on a regular grid: x (genomic), y (separation, bp), z = log1p(contacts).

    A grid point (x, y) shows the pair of positions (x - y/2, x + y/2); NaN outside the matrix.
    """
    n = matrix.shape[0]
    max_sep = int(max_sep if max_sep is not None else hi - lo)
    step = max(bin_size / 2.0, (hi - lo) / max_cols)
    xs = np.arange(lo + step / 2.0, hi, step)
    ys = np.arange(step / 2.0, max_sep + step, step) if max_sep > 0 else np.array([step / 2.0])
    X, Y = np.meshgrid(xs, ys)
    i = np.floor((X - Y / 2.0 - start) / bin_size).astype(np.int64)
    j = np.floor((X + Y / 2.0 - start) / bin_size).astype(np.int64)
    ok = (i >= 0) & (j < n) & (i <= j)
    z = np.full(X.shape, np.nan, dtype=np.float32)
    z[ok] = np.log1p(np.asarray(matrix, dtype=float)[i[ok], j[ok]])
    return xs, ys, z


def genomic_ticks(lo: int, hi: int, n: int = 7, extend: float = 2.0) -> tuple[list[int], list[str], str]:
    """Tick positions, labels and unit for a genomic axis showing [lo, hi).

    The step is a 1/2/5 x 10^k number giving about ``n`` ticks; labels are bp with thousands separators while
    the step is below 1 kb, else Mb with just enough decimals for the step, so labels are always distinct.
    Ticks also cover ``extend`` view widths either side, so a pan shows labels before the figure is redrawn.
    """
    span = max(float(hi - lo), 1.0)
    raw = span / max(n, 1)
    mag = 10.0 ** math.floor(math.log10(raw))
    step = int(next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw * (1 - 1e-9)))
    step = max(step, 1)
    first = max(0, math.floor((lo - extend * span) / step)) * step
    vals = list(range(int(first), int(hi + extend * span) + 1, step))
    if step < 1000:
        return vals, [f"{v:,}" for v in vals], "bp"
    decimals = max(0, -math.floor(math.log10(step / 1e6) + 1e-9))
    return vals, [f"{v / 1e6:,.{decimals}f}" for v in vals], "Mb"


def fmt_span(bp: float) -> str:
    """An unsigned genomic length for axis ticks: 0, 750 bp, 500 kb, 1.5 Mb."""
    bp = float(bp)
    if bp == 0:
        return "0"
    if bp < 1_000:
        return f"{bp:,.0f} bp"
    if bp < 1_000_000:
        return f"{bp / 1e3:,.4g} kb"
    return f"{bp / 1e6:,.4g} Mb"


def tad_label(source: str, simulated: bool, width: int = 34) -> str:
    """Legend name of one TAD source: its own name (the bundle's ``source`` column, e.g. the user's file),
    up to its first comma or parenthesis, shortened to ``width`` characters."""
    if simulated:
        return "TADs (simulated)"
    short = re.split(r",| \(", source, maxsplit=1)[0].strip() or "real"
    return "TADs " + (short if len(short) <= width else short[: width - 1] + "…")


def distance_ticks(span: int, n: int = 5) -> tuple[list[int], list[str]]:
    """Ticks of a distance axis [0, span] (the Hi-C row's height): ``genomic_ticks``' 1/2/5 steps, labelled
    with their unit, as the axis has no title of its own."""
    vals, _, _ = genomic_ticks(0, max(int(span), 1), n=n, extend=0.0)
    return vals, [fmt_span(v) for v in vals]


def legend_names(fig: go.Figure) -> list[str]:
    """Legend entries of ``fig`` in plotly's order (legendrank, then trace order); heatmaps draw none."""
    shown = [(t.legendrank if t.legendrank is not None else 1000, k, t.name or "") for k, t in enumerate(fig.data)
             if t.showlegend is True or (t.showlegend is None and t.type != "heatmap")]
    return [name for *_, name in sorted(shown)]


def legend_band_px(names: list[str], width: float = LEGEND_PLOT_PX) -> int:
    """Height of the band for plotly's horizontal legend of ``names`` in a plot ``width`` px wide: the legend and
    the gap plotly leaves under it (0 without entries).

    Entries that fit in one row keep their own widths; else plotly lays them out in a grid whose columns are as
    wide as the widest entry.
    """
    if not names:
        return 0
    widths = [LEGEND_SYMBOL_PX + LEGEND_CHAR_PX * len(re.sub(r"<[^>]*>", "", n)) for n in names]
    cols = len(widths) if sum(widths) <= width else max(1, int(width // max(widths)))
    return math.ceil(len(widths) / cols) * LEGEND_ROW_PX + LEGEND_PAD_PX + LEGEND_GAP_PX


@dataclass(frozen=True)
class GeneLabelLayout:
    """Row of every gene (0 = top) and, for labelled genes, the label's box in bp (else None)."""

    rows: list[int]
    boxes: list[tuple[float, float] | None]

    @property
    def n_rows(self) -> int:
        return max(self.rows, default=-1) + 1


def layout_gene_labels(
    starts: list[int], ends: list[int], label_bp: list[float], lo: int, hi: int, max_rows: int,
    target: int | None = None, gap: float = 0.0,
) -> GeneLabelLayout:
    """Pack genes into at most ``max_rows`` rows so that no two labels (or a label and a gene) overlap in a row.

    Each gene ``k`` spans [starts[k], ends[k]] (clipped to the view [lo, hi]) and has a label ``label_bp[k]`` bp
    wide centred over it (kept inside the view). Genes are placed left to right in the first row where gene and
    label fit; a gene whose label fits nowhere is drawn unlabelled where its body fits (or in the least crowded
    row). The ``target`` gene is placed first, in row 0, and is always labelled.
    """
    n = len(starts)
    max_rows = max(1, int(max_rows))
    s = np.clip(np.asarray(starts, dtype=float), lo, hi)
    e = np.clip(np.asarray(ends, dtype=float), lo, hi)
    w = np.asarray(label_bp, dtype=float)
    centre = (s + e) / 2.0
    inside = w < (hi - lo)
    centre[inside] = np.clip(centre[inside], lo + w[inside] / 2.0, hi - w[inside] / 2.0)
    box_lo, box_hi = centre - w / 2.0, centre + w / 2.0
    rows, boxes = [0] * n, [None] * n
    row_end = [-math.inf] * max_rows
    blocked: tuple[float, float] | None = None  # the target's extent, reserved in row 0

    def free(r: int, a: float, b: float) -> bool:
        if a <= row_end[r] + gap:
            return False
        return not (r == 0 and blocked is not None and a <= blocked[1] + gap and b + gap >= blocked[0])

    order = sorted(range(n), key=lambda k: (k != target, s[k]))
    for k in order:
        a, b = min(s[k], box_lo[k]), max(e[k], box_hi[k])
        if k == target:
            blocked = (a, b)
            rows[k], boxes[k] = 0, (float(box_lo[k]), float(box_hi[k]))
            continue
        r = next((r for r in range(max_rows) if free(r, a, b)), None)
        if r is not None:
            boxes[k] = (float(box_lo[k]), float(box_hi[k]))
        else:  # no room for the label: the gene alone
            a, b = s[k], e[k]
            r = next((r for r in range(max_rows) if free(r, a, b)), None)
            if r is None:  # crowded: the least filled row that keeps clear of the target
                ok = [r for r in range(max_rows) if r or blocked is None or b < blocked[0] or a > blocked[1]]
                r = min(ok or range(max_rows), key=lambda r: row_end[r])
        rows[k] = r
        row_end[r] = max(row_end[r], b)
    return GeneLabelLayout(rows, boxes)


def split_links(links: pd.DataFrame, locus: Locus) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(drawn, listed): links whose peak lies in the view on the gene's chromosome are drawn; the rest listed."""
    if links is None or links.empty:
        empty = pd.DataFrame(columns=[*(links.columns if links is not None else []), "where"])
        return empty, empty
    same = (links["peak_chrom"] == links["gene_chrom"]) & (links["peak_chrom"] == locus.chrom)
    inside = same & (links["peak_mid"] >= locus.start) & (links["peak_mid"] < locus.end)
    listed = links[~inside].copy()
    listed["where"] = np.where(
        listed["peak_chrom"] != listed["gene_chrom"], "other chromosome",
        np.where(listed["peak_chrom"] != locus.chrom, "other chromosome than view", "outside view"),
    )
    return links[inside].copy(), listed


def fmt_distance(bp) -> str:
    """Signed distance to the TSS in kb/Mb, or 'trans' when on another chromosome."""
    if bp is None or (isinstance(bp, float) and math.isnan(bp)) or pd.isna(bp):
        return "trans (other chromosome)"
    bp = int(bp)
    if abs(bp) >= 1_000_000:
        return f"{bp / 1e6:+.2f} Mb"
    return f"{bp / 1e3:+.1f} kb"


def effect_colors(values: np.ndarray, vmax: float) -> list[str]:
    """Colours of signed effects on the shared diverging scale (0 = white)."""
    vmax = vmax if vmax > 0 else 1.0
    pos = np.clip((np.asarray(values, dtype=float) / vmax + 1.0) / 2.0, 0.0, 1.0)
    pos = np.nan_to_num(pos, nan=0.5)
    return pcolors.sample_colorscale(EFFECT_SCALE, pos.tolist())


# ---- the figure ---------------------------------------------------------------------------------
@dataclass
class Overlay:
    """Another method's links shown mirrored below the GRIDS arcs."""

    method: str
    links: pd.DataFrame
    heldout_delta: float | None = None


@dataclass
class GenomeView:
    """Everything the browser figure draws (all plain data; the callback assembles it)."""

    bundle: object
    locus: Locus
    gene: str | None = None
    cell_type: str | None = None
    links: pd.DataFrame | None = None
    method: str = "grids"
    overlays: list[Overlay] = field(default_factory=list)
    cytobands: pd.DataFrame | None = None
    chrom_size: int | None = None
    height: int | None = None


def _simulated(bundle, layer: str) -> bool:
    prov = getattr(bundle, "manifest", {}).get("provenance", {}).get(layer)
    return prov in ("simulated", "mixed")


def track_plan(view: GenomeView) -> list[tuple[str, float]]:
    """Rows of the figure (name, relative height) for this bundle."""
    b = view.bundle
    rows = [("cytoband", 0.035), ("genes", 0.11), ("arcs", 0.17), ("peaks", 0.05)]
    if b.truth is not None and len(b.truth):
        rows.append(("truth", 0.045))
    for t in (b.coverage_types or []) if b.coverage is not None else []:
        rows.append((f"cov:{t}", 0.04))
    rows.append(("hic", 0.2))
    return rows


def genome_figure(view: GenomeView) -> go.Figure:
    """The stacked-track browser figure for ``view`` (all tracks share the genomic x-axis)."""
    plan = track_plan(view)
    names = [n for n, _ in plan]
    total = sum(h for _, h in plan)
    fig = make_subplots(
        rows=len(plan), cols=1, shared_xaxes=False, vertical_spacing=0.006, row_heights=[h / total for _, h in plan]
    )
    row = {n: k + 1 for k, n in enumerate(names)}
    try:
        return _draw(fig, view, plan, row)
    finally:
        _ANNOTATIONS.pop(id(fig), None)


def _draw(fig: go.Figure, view: GenomeView, plan: list[tuple[str, float]], row: dict[str, int]) -> go.Figure:
    """Fill the subplots of ``genome_figure``."""
    total = sum(h for _, h in plan)
    loc = view.locus
    height = view.height or int(140 + 900 * total)
    _cytoband_track(fig, view, row["cytoband"])
    lo, hi = fig.get_subplot(row["genes"], 1).yaxis.domain
    unlabelled = _gene_track(fig, view, row["genes"], track_px=(hi - lo) * (height - _MARGIN["t"] - _MARGIN["b"]))
    listed = _arc_track(fig, view, row["arcs"])
    _peak_track(fig, view, row["peaks"])
    if "truth" in row:
        _truth_track(fig, view, row["truth"])
    _coverage_tracks(fig, view, {n[4:]: r for n, r in row.items() if n.startswith("cov:")})
    _hic_track(fig, view, row["hic"])

    # shared genomic axis for every row below the cytoband strip
    for k in range(2, len(plan) + 1):
        fig.update_xaxes(
            row=k, col=1, matches="x2" if k > 2 else None, range=[loc.start, loc.end], showticklabels=(k == len(plan)),
            showgrid=False, zeroline=False, showspikes=True, spikemode="across", spikethickness=1,
            spikecolor="#999", spikedash="dot", ticks="outside" if k == len(plan) else "",
        )
    tickvals, ticktext, unit = genomic_ticks(loc.start, loc.end)
    fig.update_xaxes(row=len(plan), col=1, title_text=f"{loc.chrom} position ({unit})", title_standoff=4,
                     tickmode="array", tickvals=tickvals, ticktext=ticktext)
    fig.update_yaxes(showgrid=False, zeroline=False, fixedrange=True)
    for name, r in row.items():
        label = _label_of(view, name)
        if name == "genes" and unlabelled:
            label += f"<br><span style='font-size:9px'>{unlabelled} unlabelled<br>(hover or zoom in)</span>"
        # the Hi-C row's distance ticks sit left of the plot: its label moves left of them
        shift = -HIC_TICKS_PX if name == "hic" and fig.layout[f"yaxis{r}"].showticklabels else 0
        _row_label(fig, r, label, emphasis=(name == f"cov:{view.cell_type}"), xshift=shift)
    fig.update_layout(annotations=_ANNOTATIONS.pop(id(fig), []))
    title = f"{view.gene or ''} {('in ' + view.cell_type) if view.cell_type else ''} — {loc.label()}".strip()
    # legend band between the title line (and modebar) and the tracks; it adds to the height, so the tracks
    # keep the pixels their labels were fitted to. Pinned below the title line, it can only push the tracks
    # down (plotly reserves the margin of a container-anchored legend), never reach the title or the modebar.
    band = legend_band_px(legend_names(fig))
    top = TITLE_PX + band if band else _MARGIN["t"]
    height += top - _MARGIN["t"]
    fig.update_layout(
        height=height, margin={**_MARGIN, "t": top}, plot_bgcolor="white", paper_bgcolor="white",
        hovermode="closest", dragmode="pan", showlegend=True, bargap=0, barmode="overlay",
        legend=dict(orientation="h", traceorder="normal", xref="paper", x=0.0, xanchor="left", yref="container",
                    y=1.0 - TITLE_PX / height, yanchor="top", font=dict(size=10)),
        title=dict(text=title, x=0.01, xref="container", y=1.0 - 4 / height, yref="container", yanchor="top",
                   font=dict(size=13)),
        uirevision=loc.label(), font=dict(family="Inter, Helvetica, Arial, sans-serif", size=11),
        meta={"listed_links": int(len(listed))},
    )
    return fig


_ANNOTATIONS: dict[int, list[dict]] = {}
_MARGIN = dict(l=150, r=90, t=TITLE_PX + 4, b=36)


def _annotations(fig: go.Figure) -> list[dict]:
    """Annotations of a figure under construction, set in one go at the end (adding them one by one is quadratic)."""
    return _ANNOTATIONS.setdefault(id(fig), [])


def shown_method(view: GenomeView) -> str | None:
    """Method of the links drawn above the axis: the links' own ``method`` column, else ``view.method``;
    None when no run is shown (``view.method`` is then only the form's default, not something drawn)."""
    links = view.links
    if links is None:
        return None
    if "method" in links.columns and len(links):
        methods = [str(m) for m in pd.unique(links["method"].dropna())]
        if methods:
            return "/".join(methods)
    return view.method


def _label_of(view: GenomeView, name: str) -> str:
    b = view.bundle
    if name == "cytoband":
        return f"{view.locus.chrom}"
    if name == "genes":
        return "Genes"
    if name == "arcs":
        method = shown_method(view)
        head = f"Links ({method})" if method else "Links <i>(no run)</i>"
        return head + ("<br><span style='font-size:9px'>others mirrored</span>" if view.overlays else "")
    if name == "peaks":
        return "Peaks" + (" <i>(real)</i>" if b.manifest.get("provenance", {}).get("peaks") == "real" else "")
    if name == "truth":
        return "Planted <i>(simulated)</i>"
    if name == "hic":
        # the row's height is the distance between the two contacting bins (HiGlass/pyGenomeTracks triangle)
        return ("Hi-C" + (" <i>(simulated)</i>" if _simulated(b, "hic") else "")
                + "<br><span style='font-size:9px'>height: distance<br>between contacts</span>")
    if name.startswith("cov:"):
        t = name[4:]
        sim = " <i>(sim.)</i>" if _simulated(b, "coverage") else ""
        return f"<b>{t}</b>{sim}" if t == view.cell_type else f"{t}{sim}"
    return name


def _row_label(fig: go.Figure, row: int, text: str, emphasis: bool = False, xshift: int = 0) -> None:
    yaxis = fig.get_subplot(row, 1).yaxis
    lo, hi = yaxis.domain
    _annotations(fig).append(dict(
        text=text, xref="paper", yref="paper", x=-0.005, y=(lo + hi) / 2, xanchor="right", yanchor="middle",
        xshift=xshift,
        showarrow=False, font=dict(size=10, color=TARGET_COLOR if emphasis else "#333"), align="right",
    ))


def _cytoband_track(fig: go.Figure, view: GenomeView, row: int) -> None:
    loc, bands = view.locus, view.cytobands
    size = view.chrom_size or loc.end
    if bands is not None and len(bands):
        bands = bands[bands["chrom"] == loc.chrom]
    if bands is None or bands.empty:
        fig.add_trace(go.Bar(x=[size], base=[0], y=[0], orientation="h", marker_color="#e5e5e5",
                             marker_line=dict(color="#444", width=1), width=0.8, showlegend=False,
                             hoverinfo="skip"), row=row, col=1)
    else:
        size = max(size, int(bands["end"].max()))
        for stain, grp in bands.groupby("stain", sort=False):
            fig.add_trace(go.Bar(
                x=(grp["end"] - grp["start"]).tolist(), base=grp["start"].tolist(), y=[0] * len(grp), orientation="h",
                width=0.8, marker_color=STAIN_COLORS.get(stain, "#dddddd"), marker_line=dict(color="#555", width=0.5),
                showlegend=False, name=str(stain), customdata=grp["band"].tolist(),
                hovertemplate=f"{loc.chrom}%{{customdata}} ({stain})<extra></extra>",
            ), row=row, col=1)
    xref = fig.get_subplot(row, 1).xaxis.plotly_name.replace("axis", "")
    yref = fig.get_subplot(row, 1).yaxis.plotly_name.replace("axis", "")
    fig.add_shape(type="rect", x0=loc.start, x1=max(loc.end, loc.start + size * 0.004), y0=-0.6, y1=0.6,
                  xref=xref, yref=yref, line=dict(color=TARGET_COLOR, width=2), fillcolor="rgba(192,57,43,0.25)")
    fig.update_xaxes(row=row, col=1, range=[0, size], showticklabels=False, fixedrange=True, showgrid=False)
    fig.update_yaxes(row=row, col=1, range=[-0.6, 0.6], showticklabels=False)


def _gene_track(fig: go.Figure, view: GenomeView, row: int, track_px: float) -> int:
    """Gene models packed in rows with non-overlapping labels; returns how many genes are left unlabelled."""
    b, loc = view.bundle, view.locus
    g = b.genes
    g = g[(g["chrom"] == loc.chrom) & (g["end"] > loc.start) & (g["start"] < loc.end)].reset_index(drop=True)
    if g.empty:
        _note(fig, row, empty_track_note("genes", b.genes, loc, name_col="name"))
        fig.update_yaxes(row=row, col=1, range=[-1, 1], showticklabels=False)
        return 0
    bp_per_px = loc.width / PLOT_PX
    names = [str(n) for n in g["name"]]
    target = next((k for k, n in enumerate(names) if n == view.gene), None)
    label_bp = [(len(n) + 1) * CHAR_PX * (1.15 if k == target else 1.0) * bp_per_px for k, n in enumerate(names)]
    max_rows = max(1, min(MAX_GENE_ROWS, int(track_px / GENE_ROW_PX - 0.2)))
    lay = layout_gene_labels(g["start"].tolist(), g["end"].tolist(), label_bp, loc.start, loc.end, max_rows,
                             target=target, gap=2 * CHAR_PX * bp_per_px)
    n_rows = lay.n_rows
    ex = b.exons
    exons = ({k: v[["start", "end"]].to_numpy() for k, v in ex[ex["gene_name"].isin(set(names))].groupby("gene_name")}
             if ex is not None and len(ex) else {})
    arrow_step = loc.width / 45.0
    lines_x: dict[str, list] = {"hi": [], "lo": []}
    lines_y: dict[str, list] = {"hi": [], "lo": []}
    boxes: dict[str, tuple[list, list]] = {"hi": ([], []), "lo": ([], [])}
    arrows: dict[str, dict[str, list]] = {}
    hover_x, hover_y, hover_t = [], [], []
    for k, r in g.iterrows():
        y = -lay.rows[k]
        key = "hi" if k == target else "lo"
        s, e = max(int(r["start"]), loc.start), min(int(r["end"]), loc.end)
        lines_x[key] += [s, e, None]
        lines_y[key] += [y, y, None]
        n_arrows = int((e - s) // arrow_step)
        if n_arrows > 0 and r["strand"] in ("+", "-"):  # no arrows where the strand is unknown
            xs = np.linspace(s, e, n_arrows + 2)[1:-1]
            a = arrows.setdefault(f"{key}{r['strand']}", {"x": [], "y": []})
            a["x"] += xs.tolist()
            a["y"] += [y] * len(xs)
        for e0, e1 in exons.get(names[k], ()):
            bx, by = boxes[key]
            bx += [e0, e0, e1, e1, e0, None]
            by += [y - 0.2, y + 0.2, y + 0.2, y - 0.2, y - 0.2, None]
        tss = int(r["tss"])
        hover_x += [s, (s + e) / 2, e]
        hover_y += [y, y, y]
        text = (f"<b>{names[k]}</b> ({r['strand']})<br>{r['chrom']}:{int(r['start']) + 1:,}-{int(r['end']):,}"
                f"<br>TSS {tss + 1:,}")
        hover_t += [text] * 3
        box = lay.boxes[k]
        if box is not None:
            _annotations(fig).append(dict(
                x=(box[0] + box[1]) / 2, y=y + 0.22, text=f"<b>{names[k]}</b>" if key == "hi" else names[k],
                showarrow=False, font=dict(size=10 if key == "hi" else 9, color=HIGHLIGHT_GENE if key == "hi" else GENE_COLOR),
                xref=_ax(fig, row, "x"), yref=_ax(fig, row, "y"), yanchor="bottom", borderpad=0,
            ))
    for key, color, width in (("lo", GENE_COLOR, 1), ("hi", HIGHLIGHT_GENE, 1.5)):
        if lines_x[key]:
            fig.add_trace(go.Scatter(x=lines_x[key], y=lines_y[key], mode="lines", line=dict(color=color, width=width),
                                     hoverinfo="skip", showlegend=False), row=row, col=1)
        bx, by = boxes[key]
        if bx:
            fig.add_trace(go.Scatter(x=bx, y=by, mode="lines", fill="toself", fillcolor=color, line=dict(color=color, width=1),
                                     hoverinfo="skip", showlegend=False), row=row, col=1)
    for key, a in arrows.items():
        color = HIGHLIGHT_GENE if key.startswith("hi") else GENE_COLOR
        symbol = "triangle-right" if key.endswith("+") else "triangle-left"
        fig.add_trace(go.Scatter(x=a["x"], y=a["y"], mode="markers", marker=dict(symbol=symbol, size=6, color=color),
                                 hoverinfo="skip", showlegend=False), row=row, col=1)
    fig.add_trace(go.Scatter(x=hover_x, y=hover_y, mode="markers", marker=dict(size=10, opacity=0), text=hover_t,
                             hoverinfo="text", showlegend=False, name="genes"), row=row, col=1)
    fig.update_yaxes(row=row, col=1, range=[-(n_rows - 1) - 0.35, 0.85], showticklabels=False)
    return sum(box is None for box in lay.boxes)


def _ax(fig: go.Figure, row: int, axis: str) -> str:
    sub = fig.get_subplot(row, 1)
    name = (sub.xaxis if axis == "x" else sub.yaxis).plotly_name
    return name.replace("axis", "")


def _note(fig: go.Figure, row: int | list[int], text: str, x: float = 0.5, y: float = 0.5, anchor: str = "center",
          yanchor: str = "middle") -> None:
    """Text in a track's own paper-domain position (or in the band of several tracks)."""
    domains = [fig.get_subplot(r, 1).yaxis.domain for r in (row if isinstance(row, list) else [row])]
    lo, hi = min(d[0] for d in domains), max(d[1] for d in domains)
    _annotations(fig).append(dict(text=text, xref="paper", yref="paper", x=x, y=lo + y * (hi - lo), xanchor=anchor,
                                  yanchor=yanchor, showarrow=False, font=dict(size=10, color="#666"), align="left",
                                  bgcolor="rgba(255,255,255,0.85)"))


def effect_scale_title(vmax: float) -> str:
    """Colourbar title of the drop-one scale, which spans ±(this run's largest |effect|)."""
    v = f"{vmax:.2g}".replace("e-0", "e-").replace("e+0", "e")
    return f"drop-one ΔJ<br>scale ±{v}<br>(this run)"


def _effect_max(view: GenomeView) -> float:
    vals = []
    if view.links is not None and len(view.links):
        vals += np.abs(view.links["drop_one"].astype(float)).tolist()
    vmax = float(np.nanmax(vals)) if vals else 0.0
    return vmax if vmax > 0 else 1.0


def _arc_track(fig: go.Figure, view: GenomeView, row: int) -> pd.DataFrame:
    """GRIDS arcs above the axis, overlays mirrored below; returns the links that are listed, not drawn."""
    loc, links = view.locus, view.links
    vmax = _effect_max(view)
    all_listed = []
    has_overlays = bool(view.overlays)
    ymin = -1.1 if has_overlays else -0.1
    tss_x: set[int] = set()
    method = shown_method(view)
    if links is not None and len(links):
        drawn, listed = split_links(links, loc)
        all_listed.append(listed.assign(method=method))
        colors = effect_colors(drawn["drop_one"].to_numpy(), vmax)
        for (_, r), color in zip(drawn.iterrows(), colors, strict=True):
            x0, x1 = int(r["peak_mid"]), int(r["tss"])
            tss_x.add(x1)
            h = min(1.0, 0.25 + 0.75 * abs(x1 - x0) / max(loc.width, 1))
            xs, ys = arc_xy(x0, x1, h)
            eff = float(r["drop_one"]) if pd.notna(r["drop_one"]) else float("nan")
            width = 1.0 + 5.0 * (abs(eff) / vmax if math.isfinite(eff) else 0.0)
            text = _link_hover(r, method)
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color=color, width=width), text=[text] * len(xs),
                                     hoverinfo="text", showlegend=False, name=f"arc {r['peak']}"), row=row, col=1)
        if len(drawn):
            # invisible carrier of the signed colour legend (colorbar) for arcs and subset peaks
            fig.add_trace(go.Scatter(
                x=[loc.start], y=[0], mode="markers", hoverinfo="skip", showlegend=False, name="effect scale",
                marker=dict(size=0.1, color=[0], cmin=-vmax, cmax=vmax, colorscale=EFFECT_SCALE, showscale=True,
                            # the scale is this run's own largest |effect|: say so, or a random subset's ±5e-5
                            # would look as strong as a GRIDS run's ±0.4
                            colorbar=dict(title=dict(text=effect_scale_title(vmax), side="top", font=dict(size=10)),
                                          len=0.22,
                                          y=1.0, yanchor="top", thickness=10, x=1.01, tickfont=dict(size=9))),
            ), row=row, col=1)
    else:
        _note(fig, row, "no run shown — choose gene and cell type, then Run (stored runs load at once)", y=0.6)
    for k, ov in enumerate(view.overlays):
        color = METHOD_COLORS[k % len(METHOD_COLORS)]
        if ov.links is None or ov.links.empty:
            continue
        drawn, listed = split_links(ov.links, loc)
        all_listed.append(listed.assign(method=ov.method))
        ov_max = float(np.nanmax(np.abs(ov.links["drop_one"].astype(float)))) if len(ov.links) else 1.0
        ov_max = ov_max if ov_max > 0 else 1.0
        first = True
        for _, r in drawn.iterrows():
            x0, x1 = int(r["peak_mid"]), int(r["tss"])
            tss_x.add(x1)
            # each overlay a little shallower, so methods that chose the same peaks stay visible as nested arcs
            h = -min(1.0, 0.25 + 0.75 * abs(x1 - x0) / max(loc.width, 1)) * max(0.25, 1.0 - OVERLAY_DEPTH_STEP * k)
            xs, ys = arc_xy(x0, x1, h)
            eff = float(r["drop_one"]) if pd.notna(r["drop_one"]) else 0.0
            fig.add_trace(go.Scatter(
                x=xs, y=ys, mode="lines", line=dict(color=color, width=1.0 + 4.0 * abs(eff) / ov_max),
                text=[_link_hover(r, ov.method)] * len(xs), hoverinfo="text", legendgroup=ov.method,
                showlegend=first, name=f"{ov.method} links (below)", legendrank=500 + k,
            ), row=row, col=1)
            first = False
        if first:  # nothing drawn: still show the method in the legend
            fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", line=dict(color=color), name=f"{ov.method} links (below)",
                                     showlegend=True, legendrank=500 + k), row=row, col=1)
    if tss_x:
        fig.add_trace(go.Scatter(x=sorted(tss_x), y=[0] * len(tss_x), mode="markers", showlegend=False,
                                 marker=dict(symbol="diamond", size=8, color=HIGHLIGHT_GENE), hoverinfo="text",
                                 text=[f"TSS {view.gene} {x + 1:,}" for x in sorted(tss_x)]), row=row, col=1)
    listed = pd.concat(all_listed, ignore_index=True) if all_listed else pd.DataFrame()
    if len(listed):  # one line in a corner, so it covers no arcs; the list itself is under the figure
        where = " or ".join(sorted(set(listed["where"])))
        _note(fig, row, f"<b>{len(listed)} link(s) not drawn</b> ({where}): listed under the figure",
              x=0.995, y=1.0, anchor="right", yanchor="top")
    fig.add_hline(y=0, line=dict(color="#bbb", width=1), row=row, col=1)
    fig.update_yaxes(row=row, col=1, range=[ymin, 1.08], showticklabels=False)
    return listed


def _link_hover(r: pd.Series, method: str) -> str:
    eff = r["drop_one"]
    eff_s = f"{float(eff):+.4g}" if pd.notna(eff) else "n/a"
    single = r.get("single")
    single_s = f"<br>alone ΔJ: {float(single):+.4g}" if single is not None and pd.notna(single) else ""
    return (f"<b>{method}</b> #{int(r['rank'])}: {r['peak']}<br>{r['peak_chrom']}:{int(r['peak_start']) + 1:,}-"
            f"{int(r['peak_end']):,}<br>→ {r['gene']} TSS {int(r['tss']) + 1:,}<br>distance to TSS: "
            f"{fmt_distance(r['distance_to_tss'])}<br>drop-one ΔJ: {eff_s}{single_s}")


def _peaks_in(view: GenomeView) -> pd.DataFrame:
    p = view.bundle.peaks
    loc = view.locus
    sel = (p["chrom"] == loc.chrom).to_numpy() & (p["end"].to_numpy() > loc.start) & (p["start"].to_numpy() < loc.end)
    return p[sel]


def chrom_list(chroms) -> str:
    """Chromosome names in natural order, runs of 3+ consecutive numbered ones shortened: ``chr1–chr22, chrX``."""
    runs: list[list[str]] = []
    prev = None
    for c in sorted({str(c) for c in chroms}, key=natural_chrom_key):
        m = _NUMBERED.match(c)
        cur = (m.group(1), int(m.group(2))) if m else None
        if cur and prev and cur == (prev[0], prev[1] + 1):
            runs[-1].append(c)
        else:
            runs.append([c])
        prev = cur
    return ", ".join(", ".join(r) if len(r) < 3 else f"{r[0]}–{r[-1]}" for r in runs)


def empty_track_note(kind: str, table: pd.DataFrame, loc: Locus, name_col: str | None = None) -> str:
    """Why a track of the bundle's ``kind`` (rows of ``table``: chrom, start, end) is empty at ``loc``: none on
    this chromosome (and the chromosomes that have some), or none in this window (and the nearest one)."""
    on = table[table["chrom"] == loc.chrom]
    if on.empty:
        if table.empty:
            return f"this bundle has no {kind}"
        return f"no {kind} of this bundle on {loc.chrom} — its {kind} lie on {chrom_list(table['chrom'].unique())}"
    left = loc.start - on["end"].where(on["end"] <= loc.start)  # distance of each one left of the view
    right = on["start"].where(on["start"] >= loc.end) - loc.end
    dist = pd.concat([left, right], axis=1).min(axis=1)
    k = dist.idxmin()
    side = "left" if pd.notna(left[k]) and left[k] == dist[k] else "right"
    what = f"{on.at[k, name_col]}, " if name_col else ""
    return (f"no {kind} of this bundle in {loc.label()} — nearest: {what}"
            f"{fmt_span(max(1.0, float(f'{dist[k]:.2g}')))} to the {side}")


def _tss(view: GenomeView) -> tuple[int | None, int]:
    if not view.gene:
        return None, 1
    g = view.bundle.gene_row(view.gene)
    return (int(g["tss"]) if g["chrom"] == view.locus.chrom else None), (-1 if g["strand"] == "-" else 1)


def _peak_track(fig: go.Figure, view: GenomeView, row: int) -> None:
    p = _peaks_in(view)
    if p.empty:
        _note(fig, row, empty_track_note("peaks", view.bundle.peaks, view.locus))
    tss, sign = _tss(view)
    mids = ((p["start"] + p["end"]) // 2).to_numpy()
    dist = [fmt_distance((m - tss) * sign) if tss is not None else "—" for m in mids]
    text = [f"{n}<br>{c}:{s + 1:,}-{e:,}<br>distance to TSS: {d}"
            for n, c, s, e, d in zip(p["name"], p["chrom"], p["start"], p["end"], dist, strict=True)]
    fig.add_trace(go.Bar(
        x=mids.tolist(), y=[0.45] * len(p), width=(p["end"] - p["start"]).tolist(), base=[0.0] * len(p),
        marker=dict(color="#9aa3b0", line=dict(color="#9aa3b0", width=1)), hoverinfo="text", text=text,
        textposition="none", showlegend=False, name="peaks",
    ), row=row, col=1)
    links = view.links
    if links is not None and len(links):
        drawn, _ = split_links(links, view.locus)
        if len(drawn):
            vmax = _effect_max(view)
            colors = effect_colors(drawn["drop_one"].to_numpy(), vmax)
            method = shown_method(view)
            fig.add_trace(go.Bar(
                x=drawn["peak_mid"].tolist(), y=[1.0] * len(drawn), base=[0.0] * len(drawn),
                width=[max(int(w), int(view.locus.width / 400)) for w in (drawn["peak_end"] - drawn["peak_start"])],
                marker=dict(color=colors, line=dict(color="#222", width=0.6)), hoverinfo="text", textposition="none",
                text=[_link_hover(r, method) for _, r in drawn.iterrows()], name=f"{method} subset",
                showlegend=False,
            ), row=row, col=1)
    fig.update_yaxes(row=row, col=1, range=[0, 1.05], showticklabels=False)


def _truth_track(fig: go.Figure, view: GenomeView, row: int) -> None:
    t = view.bundle.truth
    t = t[(t["gene"] == view.gene) & (t["cell_type"] == view.cell_type)] if view.gene and view.cell_type else t.iloc[:0]
    if t.empty:
        _note(fig, row, f"no planted enhancers for {view.gene or '—'} in {view.cell_type or '—'} (simulated truth)")
        fig.update_yaxes(row=row, col=1, range=[0, 1], showticklabels=False)
        return
    p = view.bundle.peaks.iloc[t["peak_index"].to_numpy()].reset_index(drop=True)
    here = (p["chrom"] == view.locus.chrom).to_numpy()
    if not here.any():
        _note(fig, row, f"planted enhancers for {view.gene} in {view.cell_type} lie on {p['chrom'].iloc[0]}, "
                        f"not {view.locus.chrom}")
        fig.update_yaxes(row=row, col=1, range=[0, 1], showticklabels=False)
        return
    p, t = p[here].reset_index(drop=True), t[here].reset_index(drop=True)
    chosen = set(view.links["peak"]) if view.links is not None and len(view.links) else set()
    method = shown_method(view)
    tss, sign = _tss(view)
    groups = [*TRUTH_DRAW_ORDER, *(g for g in TRUTH_COLORS if g not in TRUTH_DRAW_ORDER)]
    for group in groups:  # decoys first, so planted members are drawn over any decoy next to them
        color = TRUTH_COLORS[group]
        sel = (t["group"] == group).to_numpy()
        if not sel.any():
            continue
        pp, tt = p[sel], t[sel]
        mids = ((pp["start"] + pp["end"]) // 2).to_numpy()
        labels = {"promoter": "promoter", "decoy": "decoy (drives nothing)"}.get(group, f"{group} (OR group)")
        text = [f"planted {labels} — simulated<br>{n}<br>{c}:{s + 1:,}-{e:,}<br>distance to TSS: "
                f"{fmt_distance((m - tss) * sign) if tss is not None else '—'}<br>"
                f"{'selected by ' + method if n in chosen else 'not selected'}"
                for n, c, s, e, m in zip(tt["peak"], pp["chrom"], pp["start"], pp["end"], mids, strict=True)]
        fig.add_trace(go.Bar(
            x=mids.tolist(), y=[0.8] * len(pp), base=[0.1] * len(pp),
            width=[max(int(w), int(view.locus.width / 300)) for w in (pp["end"] - pp["start"])],
            marker=dict(color=color, line=dict(color=color, width=1)), name=f"planted {group} (simulated)",
            legendgroup=f"truth-{group}", hoverinfo="text", text=text, textposition="none",
            legendrank=1000 + list(TRUTH_COLORS).index(group),  # legend keeps promoter, A, B, decoy order
        ), row=row, col=1)
        hit = [m for m, n in zip(mids, tt["peak"], strict=True) if n in chosen]
        if hit:
            fig.add_trace(go.Scatter(x=hit, y=[0.5] * len(hit), mode="markers", hoverinfo="skip", showlegend=False,
                                     legendgroup=f"truth-{group}",  # hidden with its group's legend item
                                     marker=dict(symbol="star", size=9, color="#111")), row=row, col=1)
    fig.update_yaxes(row=row, col=1, range=[0, 1], showticklabels=False)


def _hic_missing(loc: Locus, entry: dict | None, on_chrom: list[tuple[str, int, int]]) -> str | None:
    """Why the Hi-C triangle is not drawn at ``loc`` and what to do (None: it is drawn)."""
    if entry is None:
        if not on_chrom:
            return f"no Hi-C data on {loc.chrom} in this bundle"
        mid = (loc.start + loc.end) / 2
        gene, s, e = min(on_chrom, key=lambda t: min(abs(t[1] - mid), abs(t[2] - mid)))
        return f"no Hi-C bins in view — nearest Hi-C: {Locus(loc.chrom, s, e).label()} (around {gene})"
    if loc.width > HIC_MAX_WIDTH:
        return (f"Hi-C not drawn at {loc.width / 1e6:,.0f} Mb: zoom in to below {HIC_MAX_WIDTH / 1e6:,.0f} Mb "
                f"to see Hi-C")
    min_width = HIC_MIN_BINS * int(entry["bin_size"])
    if loc.width < min_width:
        return (f"Hi-C bins are {entry['bin_size'] / 1e3:,.0f} kb: zoom out to at least {min_width / 1e3:,.0f} kb "
                f"to see Hi-C")
    return None


def _coverage_tracks(fig: go.Figure, view: GenomeView, rows: dict[str, int]) -> None:
    b, loc = view.bundle, view.locus
    if not rows:
        return
    p = _peaks_in(view)
    idx = p.index.to_numpy()
    types = list(b.coverage_types)
    if not len(idx):
        _note(fig, list(rows.values()), "no ATAC coverage in view: coverage is measured at the bundle's peaks, "
                                        "and none lie here")
    ymax = float(np.max(b.coverage[:, idx])) if len(idx) else 1.0
    ymax = ymax if ymax > 0 else 1.0
    for t, r in rows.items():
        vals = b.coverage[types.index(t), idx] if len(idx) else np.array([])
        x, y = downsample_coverage(p["start"].to_numpy(), p["end"].to_numpy(), vals, loc.start, loc.end)
        x, y = np.round(x).astype(np.int32), y.astype(np.float32)  # compact binary JSON (coordinates < 2^31)
        target = t == view.cell_type
        color = TARGET_COLOR if target else OTHER_COLOR
        fig.add_trace(go.Scatter(
            x=x, y=y, mode="lines", fill="tozeroy", line=dict(color=color, width=0.8),
            fillcolor="rgba(192,57,43,0.55)" if target else "rgba(138,148,166,0.45)", showlegend=False,
            name=f"{t} coverage", hovertemplate=f"{t}: %{{y:.2f}} of cells open<br>%{{x:,.0f}}<extra></extra>",
        ), row=r, col=1)
        fig.update_yaxes(row=r, col=1, range=[0, ymax * 1.05], showticklabels=False)


def _hic_track(fig: go.Figure, view: GenomeView, row: int) -> None:
    b, loc = view.bundle, view.locus
    max_sep = loc.width
    entry = None
    on_chrom = []
    for gene, h in (b.hic or {}).items():
        if h["chrom"] != loc.chrom:
            continue
        end = h["start"] + h["matrix"].shape[0] * h["bin_size"]
        on_chrom.append((gene, h["start"], end))
        if h["start"] < loc.end and end > loc.start and (entry is None or gene == view.gene):
            entry = h
    # an invisible anchor: plotly draws no axis (here: the shared genomic tick labels) for a subplot without traces
    fig.add_trace(go.Scatter(x=[loc.start, loc.end], y=[0, 0], mode="markers", marker=dict(opacity=0),
                             hoverinfo="skip", showlegend=False, name="axis anchor"), row=row, col=1)
    why = _hic_missing(loc, entry, on_chrom)
    if why is None:
        xs, ys, z = hic_triangle(entry["matrix"], entry["start"], entry["bin_size"], loc.start, loc.end, max_sep=max_sep)
        if np.isfinite(z).any():
            lo, hi = fig.get_subplot(row, 1).yaxis.domain
            fig.add_trace(go.Heatmap(
                x=xs, y=ys, z=z, colorscale="YlOrRd", name="Hi-C", hoverongaps=False,
                zmin=float(np.nanpercentile(z, 5)), zmax=float(np.nanpercentile(z, 99.5)),
                colorbar=dict(title=dict(text="log1p<br>contacts", side="top", font=dict(size=10)), len=hi - lo,
                              y=hi, yanchor="top", thickness=10, x=1.045, tickfont=dict(size=9)),
                hovertemplate="midpoint %{x:,.0f}<br>distance %{y:,.0f} bp<br>log1p(contacts) %{z:.2f}<extra>Hi-C</extra>",
            ), row=row, col=1)
        else:
            why = "no Hi-C bins in range of this view — pan towards the gene or zoom out"
    if why is not None:
        _note(fig, row, why, y=0.7)
    tads = b.tads
    tads = tads[(tads["chrom"] == loc.chrom) & (tads["end"] > loc.start) & (tads["start"] < loc.end)] if len(tads) else tads
    if tads is None or tads.empty:
        _note(fig, row, "no TAD data at this locus", y=0.4)
    else:
        sources = tads["source"].astype(str) if "source" in tads else pd.Series("", index=tads.index)
        for i, ((sim, source), grp) in enumerate(tads.groupby([tads["simulated"].astype(int), sources], sort=True)):
            xs_l, ys_l = [], []
            for s, e in grp[["start", "end"]].itertuples(index=False):
                xs_l += [s, (s + e) / 2, e, None]
                ys_l += [0, e - s, 0, None]
            fig.add_trace(go.Scatter(
                x=xs_l, y=ys_l, mode="lines", name=tad_label(source, bool(sim)), legendgroup=f"tads-{i}",
                legendrank=2000 + i,
                line=dict(color="#2c3e50" if sim else "#2471a3", width=1.2, dash="dot" if sim else "solid"),
                hoverinfo="skip",
            ), row=row, col=1)
    # distance between the contacting bins, in kb/Mb; left of the plot (the right holds the colour bars), where the
    # row label makes room for them (fixed pixels, so they fit at any figure width); no automargin: the labels fit
    # the left margin, and its push would widen the top margin past the legend band
    tickvals, ticktext = distance_ticks(max_sep)
    fig.update_yaxes(row=row, col=1, range=[0, max_sep], showticklabels=why is None, tickmode="array",
                     tickvals=tickvals, ticktext=ticktext, ticks="outside" if why is None else "", ticklen=3,
                     tickfont=dict(size=9, color="#444"), side="left", automargin=False)
