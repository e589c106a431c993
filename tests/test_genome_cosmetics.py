"""Genome figure cosmetics: the Hi-C row has a distance axis with units, and the legend (with 0, 1 or 3 overlay
methods) lies in its own band, clear of the title line and the modebar, above the tracks."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from grids_core.links import linkage_table
from layouts.genome import (
    HIC_TICKS_PX,
    LEGEND_GAP_PX,
    LEGEND_PAD_PX,
    LEGEND_ROW_PX,
    TITLE_PX,
    GenomeView,
    Locus,
    Overlay,
    distance_ticks,
    fmt_span,
    gene_locus,
    genome_figure,
    legend_names,
)
from layouts.pages import GRAPH_CONFIG
from tests.test_layouts import CELL, GENE, fake_result, planted
from tests.test_mnist_page import CHROMIUM, CHROMIUM_ARGS, PLOTLY_JS, inside, overlap

OVERLAYS = ("saliency", "random", "ablation")
# graph widths (px) of the browser page in a 1280 and a 1920 px window; the plot is 240 px narrower (margins)
GRAPH_WIDTHS = (980, 1620)
MODEBAR_PX = 25  # plotly's modebar: 4 px from the top, buttons ~20 px


@pytest.fixture(scope="module")
def bundle(small_sim):
    return small_sim[0]


def _figure(bundle, n_overlays: int, locus: Locus | None = None):
    links = linkage_table(bundle, fake_result(bundle, planted(bundle)[:5]))
    overlays = [Overlay(m, linkage_table(bundle, fake_result(bundle, planted(bundle)[k:k + 3], method=m)))
                for k, m in enumerate(OVERLAYS[:n_overlays])]
    return genome_figure(GenomeView(bundle=bundle, locus=locus or gene_locus(bundle, GENE), gene=GENE, cell_type=CELL,
                                    links=links, overlays=overlays))


def _hic_yaxis(fig):
    return fig.layout[f"yaxis{len(fig._grid_ref)}"]


def _hic_label(fig):
    (label,) = [a for a in fig.layout.annotations if a.text and a.text.startswith("Hi-C") and a.x < 0]
    return label


# ---- Hi-C distance axis ---------------------------------------------------------------------------
@pytest.mark.parametrize(("span", "text"), [
    (800_802, ["0", "200 kb", "400 kb", "600 kb", "800 kb"]),
    (1_533_914, ["0", "500 kb", "1 Mb", "1.5 Mb"]),
    (9_000_000, ["0", "2 Mb", "4 Mb", "6 Mb", "8 Mb"]),
    (40_000, ["0", "10 kb", "20 kb", "30 kb", "40 kb"]),
])
def test_distance_ticks_carry_their_unit(span, text):
    vals, labels = distance_ticks(span)
    assert labels == text and vals[0] == 0 and vals[-1] <= span
    assert fmt_span(750) == "750 bp" and fmt_span(2_500_000) == "2.5 Mb"


def test_hic_row_has_a_distance_axis_with_units(bundle):
    fig = _figure(bundle, 0)
    ya = _hic_yaxis(fig)
    assert ya.showticklabels and ya.tickmode == "array" and ya.side == "left"
    ticks = list(ya.ticktext)
    assert len(ticks) >= 3 and len(set(ticks)) == len(ticks)
    assert ticks[0] == "0" and all(t.endswith((" kb", " Mb")) for t in ticks[1:]), ticks  # never "500k"/"1M"
    assert 0 <= min(ya.tickvals) and max(ya.tickvals) <= ya.range[1]
    # the row says what its height is, and its label moves left of the tick labels
    label = _hic_label(fig)
    assert "distance" in label.text and label.xshift <= -HIC_TICKS_PX
    widest = max(len(t) for t in ticks) * 5.5 + ya.ticklen + 4  # 9 px digits ~5 px, tick mark, gap
    assert widest <= HIC_TICKS_PX
    # the hover says the same word
    (hic,) = [t for t in fig.data if t.type == "heatmap"]
    assert "distance %{y" in hic.hovertemplate


def test_hic_row_without_triangle_has_no_ticks_and_keeps_its_label_in_place(bundle):
    g = bundle.gene_row(GENE)
    wide = _figure(bundle, 0, Locus(g["chrom"], 0, 242_193_529))
    assert not _hic_yaxis(wide).showticklabels and not _hic_label(wide).xshift


# ---- legend band ------------------------------------------------------------------------------------
def _rows(names: list[str], plot_px: float, char_px: float = 5.0) -> int:
    """Rows of plotly's horizontal legend: one row when all fit, else a grid of the widest entry."""
    widths = [40 + 5 + char_px * len(n) for n in names]
    if sum(widths) <= plot_px:
        return 1
    return -(-len(names) // max(1, int(plot_px // max(widths))))


@pytest.mark.parametrize("n_overlays", [0, 1, 3])
def test_legend_lies_between_title_line_and_tracks(bundle, n_overlays):
    fig = _figure(bundle, n_overlays)
    lay = fig.layout
    names = legend_names(fig)
    assert sum(n.endswith("links (below)") for n in names) == n_overlays
    assert any(n.startswith("planted") for n in names) and any(n.startswith("TADs") for n in names)
    # pinned to the figure (not the plot) just below the title line, which also holds the modebar
    lg, title = lay.legend, lay.title
    assert lg.orientation == "h" and lg.yref == "container" and lg.yanchor == "top"
    assert (1 - lg.y) * lay.height == pytest.approx(TITLE_PX) and TITLE_PX >= MODEBAR_PX + 4
    assert title.yref == "container" and title.yanchor == "top" and (1 - title.y) * lay.height + 18 <= TITLE_PX
    assert lg.traceorder == "normal"  # no legend-group blocks stacked into extra rows
    # the top margin holds title line + legend rows at the plot width of a 1280 px window (and so of wider ones)
    for graph_px in GRAPH_WIDTHS:
        plot_px = graph_px - lay.margin.l - lay.margin.r
        need = TITLE_PX + _rows(names, plot_px) * LEGEND_ROW_PX + LEGEND_PAD_PX + LEGEND_GAP_PX
        assert lay.margin.t >= need, (graph_px, lay.margin.t, need)


def test_legend_band_adds_to_the_height_not_the_tracks(bundle):
    """Overlays add legend rows above the tracks; the tracks keep their pixels (gene labels were fitted to them)."""
    plot_h = set()
    for n in (0, 1, 3):
        lay = _figure(bundle, n).layout
        plot_h.add(lay.height - lay.margin.t - lay.margin.b)
    assert len(plot_h) == 1


# ---- drawn by plotly.js -----------------------------------------------------------------------------
@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """Debian's chromium with the flags that work here (never `playwright install`)."""
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


_RENDER_JS = """async ([spec, width, config, yid]) => {
  const gd = document.getElementById('g');
  gd.style.width = width + 'px';
  spec.layout.width = width;
  await Plotly.newPlot(gd, spec.data, spec.layout, {...config, responsive: false, displayModeBar: true});
  const box = el => { const r = el.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  const all = sel => Array.from(gd.querySelectorAll(sel)).map(box);
  const s = gd._fullLayout._size;
  const hic = Array.from(gd.querySelectorAll('g.annotation')).filter(a => a.textContent.startsWith('Hi-C'));
  return {paper: box(gd.querySelector('svg.main-svg')), legend: box(gd.querySelector('g.legend')),
          title: box(gd.querySelector('.g-gtitle text')), modebar: box(gd.querySelector('.modebar')),
          plot: [s.l, s.t, s.l + s.w, s.t + s.h], hicTicks: all('.' + yid + 'tick text'),
          hicLabel: hic.map(box), colorbars: all('g.colorbar')};
}"""


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium at /usr/bin/chromium")
@pytest.mark.parametrize("n_overlays", [0, 1, 3])
def test_rendered_legend_title_modebar_and_hic_axis_apart(page, bundle, n_overlays):
    """In the graph widths of a 1280 and a 1920 px window: legend, title and modebar never overlap, the legend
    ends above the tracks and needs no more room than reserved; the Hi-C ticks sit between row label and plot."""
    fig = _figure(bundle, n_overlays)
    yid = "y" + str(len(fig._grid_ref))
    page.set_content("<html><body style='margin:0'><div id='g'></div></body></html>")
    page.add_script_tag(path=str(PLOTLY_JS))
    for width in GRAPH_WIDTHS:
        r = page.evaluate(_RENDER_JS, [json.loads(fig.to_json()), width, GRAPH_CONFIG, yid])
        paper, legend, title, modebar, plot = r["paper"], r["legend"], r["title"], r["modebar"], r["plot"]
        assert not overlap(legend, modebar) and not overlap(legend, title) and not overlap(title, modebar), r
        assert inside(legend, paper) and inside(title, paper)
        assert legend[3] <= plot[1], (width, legend, plot)  # above the first track
        assert plot[1] == pytest.approx(fig.layout.margin.t, abs=1), (width, plot)  # reserved band was enough
        ticks, (label,) = r["hicTicks"], r["hicLabel"]
        assert ticks and all(t[2] <= plot[0] and not overlap(t, label) for t in ticks), (width, ticks, label)
        assert inside(label, paper)
        assert not any(overlap(t, cb) for t in ticks for cb in r["colorbars"])


def test_legend_names_follow_plotly_order(bundle):
    names = legend_names(_figure(bundle, 3))
    kinds = ["overlay" if n.endswith("(below)") else "truth" if n.startswith("planted") else "tads" for n in names]
    assert kinds == sorted(kinds, key=["overlay", "truth", "tads"].index)  # overlays, planted, TADs
    assert pd.Series(names).is_unique


def test_overlays_that_chose_the_same_peaks_stay_visible(bundle):
    """Two overlay methods with the same links draw nested arcs (each shallower), not one over the other."""
    links = linkage_table(bundle, fake_result(bundle, planted(bundle)[:3], method="random"))
    fig = genome_figure(GenomeView(bundle=bundle, locus=gene_locus(bundle, GENE), gene=GENE, cell_type=CELL,
                                   overlays=[Overlay("random", links), Overlay("saliency", links.assign(method="saliency"))]))
    depth: dict[str, float] = {}
    for t in fig.data:
        if t.name in ("random links (below)", "saliency links (below)") and t.y is not None and len(t.y) > 1:
            depth[t.name] = min(depth.get(t.name, 0.0), min(y for y in t.y if y is not None))
    assert set(depth) == {"random links (below)", "saliency links (below)"}
    first, second = depth["random links (below)"], depth["saliency links (below)"]
    assert first < 0.9 * first < second < 0  # the second overlay's arcs at least a tenth shallower
