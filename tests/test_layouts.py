"""Pure figure builders of the dashboard (no server): geometry, downsampling, listing, locus parsing."""

from __future__ import annotations

import math

import numpy as np
import pytest
from dash import dcc

from grids_core.errors import GridsError, SettingsError, UnknownNameError
from grids_core.links import linkage_table
from grids_core.results import ExplanationResult
from layouts import ids
from layouts.genome import (
    CHAR_PX,
    HIC_MAX_WIDTH,
    MAX_COVERAGE_POINTS,
    METHOD_COLORS,
    MIN_WIDTH,
    PLOT_PX,
    TRUTH_COLORS,
    GenomeView,
    Locus,
    Overlay,
    arc_xy,
    chrom_list,
    downsample_coverage,
    effect_colors,
    gene_locus,
    genome_figure,
    genomic_ticks,
    hic_pair_xy,
    hic_triangle,
    layout_gene_labels,
    parse_locus,
    shown_method,
    split_links,
)
from layouts.pages import Choices, browser_page
from layouts.redundancy import (
    drop_one_figure,
    effect_vs_l_figure,
    pairwise_figure,
    pairwise_matrix,
    trajectory_figure,
)

GENE, CELL = "GAD1", "VIP"


@pytest.fixture(scope="module")
def bundle(small_sim):
    return small_sim[0]


def fake_result(bundle, subset: list[int], method: str = "grids", gene: str = GENE, cell: str = CELL) -> ExplanationResult:
    """A result with known effects (no model needed)."""
    n = len(subset)
    drop = np.linspace(0.3, -0.05, n)
    pw = np.add.outer(drop, drop) + 0.1
    np.fill_diagonal(pw, drop)
    return ExplanationResult(
        run_id=f"{method}0123456789ab"[:16], bundle_id=bundle.bundle_id, model_id="m", gene=gene, cell_type=cell,
        method=method, settings={"L": n, "k": 32, "seed": 0, "beta": 0.0, "value": 0.0, "sign": 1.0, "window": None},
        subset=list(subset), peak_names=bundle.peaks["name"].iloc[subset].tolist(), drop_one=drop.tolist(),
        single=(drop / 2).tolist(), pairwise=pw.tolist(), trajectory=[0.0, -0.5, -0.8], objective=-0.8,
        baseline_objective=0.0, heldout={"n_cells": 10, "delta": -0.4},
    )


def planted(bundle) -> list[int]:
    t = bundle.truth
    return t[(t["gene"] == GENE) & (t["cell_type"] == CELL)]["peak_index"].astype(int).tolist()


# ---- locus parsing --------------------------------------------------------------------------------
def test_parse_locus_region_and_gene(bundle):
    loc = parse_locus("chr2:170,500,001-171,200,000", bundle, {"chr2": 242_193_529})
    assert loc == Locus("chr2", 170_500_000, 171_200_000)
    assert loc.label() == "chr2:170,500,001-171,200,000"
    assert parse_locus(loc.label(), bundle) == loc  # labels round-trip
    g = bundle.gene_row(GENE)
    gl = parse_locus("gad1", bundle)  # gene names are case-insensitive
    assert gl.chrom == g["chrom"] and gl.start <= g["tss"] < gl.end
    assert parse_locus("chr2", bundle, {"chr2": 242_193_529}) == Locus("chr2", 0, 242_193_529)  # all of it
    whole = parse_locus("chr2", bundle)  # without chromosome sizes: as far as the bundle's peaks and genes reach
    assert whole.start == 0 and whole.end == max(bundle.peaks.loc[bundle.peaks["chrom"] == "chr2", "end"].max(),
                                                 bundle.genes.loc[bundle.genes["chrom"] == "chr2", "end"].max())


@pytest.mark.parametrize(
    ("text", "error", "words"),
    [
        ("", SettingsError, "Enter a gene"),
        ("chr2:abc-def", SettingsError, "chrom:start-end"),
        ("chr2:2000-1000", SettingsError, "ends before it starts"),
        ("chrZZ:1-1000", UnknownNameError, "Unknown chromosome"),
        ("2:1000-5000", UnknownNameError, "chr2"),  # suggests the chr-prefixed name
        ("chr2:300,000,000-300,001,000", SettingsError, "beyond the end"),
        ("GAD", UnknownNameError, "Did you mean"),
        ("NOTAGENE", UnknownNameError, "a chromosome (chr2) or a region"),  # app words, not a CLI command
    ],
)
def test_parse_locus_errors_say_how_to_fix(bundle, text, error, words):
    with pytest.raises(error) as info:
        parse_locus(text, bundle, {"chr2": 242_193_529})
    assert words in str(info.value) and "grids " not in str(info.value)
    assert isinstance(info.value, GridsError)


def test_tiny_locus_is_widened(bundle):
    loc = parse_locus("chr2:170,000,000", bundle)
    assert loc.width >= 1000 and loc.start <= 170_000_000 <= loc.end
    assert parse_locus("chr2:1-100", bundle) == Locus("chr2", 0, MIN_WIDTH)  # at the chromosome's start: shifted
    end = parse_locus("chr2:242,193,400-242,193,529", bundle, {"chr2": 242_193_529})
    assert end == Locus("chr2", 242_193_529 - MIN_WIDTH, 242_193_529)


# ---- geometry -------------------------------------------------------------------------------------
def test_arcs_start_at_peak_midpoint_and_end_at_tss(bundle):
    sub = planted(bundle)[:4]
    res = fake_result(bundle, sub)
    links = linkage_table(bundle, res)
    loc = gene_locus(bundle, GENE, links["peak_mid"].tolist())
    fig = genome_figure(GenomeView(bundle=bundle, locus=loc, gene=GENE, cell_type=CELL, links=links))
    arcs = {t.name[4:]: t for t in fig.data if (t.name or "").startswith("arc ")}
    assert set(arcs) == set(links["peak"])
    tss = int(bundle.gene_row(GENE)["tss"])
    for _, r in links.iterrows():
        x, y = np.asarray(arcs[r["peak"]].x), np.asarray(arcs[r["peak"]].y)
        j = sub[int(r["rank"]) - 1]
        mid = (int(bundle.peaks["start"].iloc[j]) + int(bundle.peaks["end"].iloc[j])) // 2
        assert x[0] == pytest.approx(mid) and x[-1] == pytest.approx(tss)
        assert y[0] == pytest.approx(0) and y[-1] == pytest.approx(0) and y.max() > 0
        assert "distance to TSS" in arcs[r["peak"]].text[0]


def test_arc_xy_shape():
    x, y = arc_xy(100, 300, -0.5, n=21)
    assert x[0] == pytest.approx(100) and x[-1] == pytest.approx(300)
    assert y.min() == pytest.approx(-0.5) and y[0] == pytest.approx(0)


def test_coverage_downsampled_to_budget_keeps_maxima():
    rng = np.random.default_rng(0)
    starts = np.sort(rng.integers(0, 10_000_000, 20_000))
    ends = starts + rng.integers(200, 2_000, len(starts))
    vals = rng.random(len(starts))
    vals[1234] = 5.0
    x, y = downsample_coverage(starts, ends, vals, 0, 10_000_000)
    assert len(x) == len(y) <= MAX_COVERAGE_POINTS
    assert y.max() == pytest.approx(5.0)  # per-bin maxima never hide a strong narrow peak
    assert np.all(np.diff(x) >= 0)
    # few peaks: exact rectangles
    x2, y2 = downsample_coverage(np.array([10, 50]), np.array([20, 60]), np.array([0.5, 0.7]), 0, 100)
    assert list(x2) == [0, 10, 10, 20, 20, 50, 50, 60, 60, 100]
    assert list(y2) == [0, 0, 0.5, 0.5, 0, 0, 0.7, 0.7, 0, 0]


def test_coverage_tracks_in_figure_respect_budget(bundle):
    g = bundle.gene_row(GENE)
    loc = Locus(g["chrom"], 0, 242_000_000)  # a whole chromosome
    fig = genome_figure(GenomeView(bundle=bundle, locus=loc, gene=GENE, cell_type=CELL))
    cov = [t for t in fig.data if (t.name or "").endswith(" coverage")]
    assert len(cov) == len(bundle.coverage_types)
    assert all(len(t.x) <= MAX_COVERAGE_POINTS for t in cov)


def test_hic_pair_maps_to_its_rotated_cell():
    n, start, bins = 40, 1_000_000, 20_000
    rng = np.random.default_rng(1)
    m = rng.poisson(5, (n, n)).astype(float)
    m = np.triu(m) + np.triu(m, 1).T
    i, j = 7, 19
    m[i, j] = m[j, i] = 999.0
    x, y = hic_pair_xy(i, j, start, bins)
    assert x == pytest.approx(start + (i + j + 1) * bins / 2) and y == pytest.approx((j - i) * bins)
    lo, hi = start, start + n * bins
    xs, ys, z = hic_triangle(m, start, bins, lo, hi, max_cols=10_000)
    ix, iy = int(np.argmin(np.abs(xs - x))), int(np.argmin(np.abs(ys - y)))
    assert z[iy, ix] == pytest.approx(np.log1p(999.0))
    # the diagonal bin k sits at the bottom, centred on the bin
    x0, y0 = hic_pair_xy(3, 3, start, bins)
    assert y0 == 0 and x0 == pytest.approx(start + 3.5 * bins)
    assert z[0, int(np.argmin(np.abs(xs - x0)))] == pytest.approx(np.log1p(m[3, 3]))


def test_links_outside_view_or_on_other_chromosome_are_listed(bundle):
    g = bundle.gene_row(GENE)
    p = bundle.peaks
    inside = planted(bundle)[:2]
    other_chrom = int(np.flatnonzero((p["chrom"] != g["chrom"]).to_numpy())[0])
    mids = bundle.peak_midpoints()
    same = (p["chrom"] == g["chrom"]).to_numpy()
    far = int(np.argmax(np.where(same, np.abs(mids - g["tss"]), -1)))
    res = fake_result(bundle, inside + [other_chrom, far])
    links = linkage_table(bundle, res)
    span = int(np.abs(mids[inside] - g["tss"]).max()) + 10_000
    loc = Locus(g["chrom"], int(g["tss"]) - span, int(g["tss"]) + span)
    assert abs(mids[far] - g["tss"]) > span
    drawn, listed = split_links(links, loc)
    assert set(drawn["peak"]) == set(p["name"].iloc[inside])
    assert set(listed["peak"]) == {p["name"].iloc[other_chrom], p["name"].iloc[far]}
    assert set(listed["where"]) == {"other chromosome", "outside view"}
    fig = genome_figure(GenomeView(bundle=bundle, locus=loc, gene=GENE, cell_type=CELL, links=links))
    assert fig.layout.meta["listed_links"] == 2
    note = " ".join(a.text for a in fig.layout.annotations if a.text)
    assert "2 link(s) not drawn</b> (other chromosome or outside view)" in note


def test_simulated_layers_are_labelled_and_truth_drawn(bundle):
    res = fake_result(bundle, planted(bundle)[:3])
    links = linkage_table(bundle, res)
    fig = genome_figure(GenomeView(bundle=bundle, locus=gene_locus(bundle, GENE), gene=GENE, cell_type=CELL,
                                   links=links, overlays=[Overlay("random", links.iloc[:2])]))
    text = " ".join(a.text for a in fig.layout.annotations if a.text)
    assert "Hi-C <i>(simulated)</i>" in text and "Planted <i>(simulated)</i>" in text and "(sim.)" in text
    names = {t.name for t in fig.data}
    assert any(n and n.startswith("planted ") and "simulated" in n for n in names)
    assert "random links (below)" in names
    below = [t for t in fig.data if t.name == "random links (below)"]
    assert all(np.nanmax(np.asarray(t.y, dtype=float)) <= 0 for t in below)  # mirrored under the axis


def test_effect_colours_are_signed():
    red, grey, blue = effect_colors(np.array([1.0, 0.0, -1.0]), 1.0)
    assert red != blue and grey not in (red, blue)
    r, _, b = (int(v) for v in red[4:-1].split(","))
    assert r > b


def _bottom_axis(fig):
    return fig.layout[max((k for k in fig.layout if k.startswith("xaxis")), key=lambda k: int(k[5:] or 1))]


def _notes(fig) -> str:
    return " ".join(a.text for a in fig.layout.annotations if a.text)


@pytest.mark.parametrize(
    ("lo", "hi"),
    [(26_900_000, 26_900_000 + MIN_WIDTH), (248_955_000, 248_956_000), (26_592_569, 27_219_042),
     (24_000_000, 29_000_000), (0, 80_373_285), (0, 248_956_422), (123_456, 140_000)],
)
def test_tick_labels_are_distinct_at_every_span(lo, hi):
    vals, text, unit = genomic_ticks(lo, hi)
    shown = [t for v, t in zip(vals, text, strict=True) if lo <= v <= hi]
    assert 3 <= len(shown) <= 12
    assert len(set(text)) == len(text)  # distinct, also beyond the view (seen while panning)
    assert unit == ("bp" if hi - lo < 10_000 else "Mb")
    scale = 1 if unit == "bp" else 1e6
    for v, t in zip(vals, text, strict=True):  # each label reads back as its own position
        assert float(t.replace(",", "")) * scale == pytest.approx(v)


def test_figure_ticks_distinct_at_min_width_and_whole_chromosome(bundle):
    g = bundle.gene_row(GENE)
    for loc in (Locus(g["chrom"], int(g["tss"]), int(g["tss"]) + MIN_WIDTH), Locus(g["chrom"], 0, 242_193_529)):
        ax = _bottom_axis(genome_figure(GenomeView(bundle=bundle, locus=loc, gene=GENE, cell_type=CELL)))
        shown = [t for v, t in zip(ax.tickvals, ax.ticktext, strict=True) if loc.start <= v <= loc.end]
        assert len(shown) >= 3 and len(set(shown)) == len(shown)
        assert ax.showticklabels and "position (" in ax.title.text


def test_gene_label_layout_never_overlaps_and_keeps_target():
    rng = np.random.default_rng(3)
    starts = np.sort(rng.integers(0, 2_000_000, 300)).tolist()
    ends = [s + int(rng.integers(1_000, 200_000)) for s in starts]
    widths = [float(rng.integers(40_000, 120_000)) for _ in starts]
    target = 137
    lay = layout_gene_labels(starts, ends, widths, 0, 2_000_000, max_rows=4, target=target)
    assert lay.n_rows <= 4 and lay.rows[target] == 0 and lay.boxes[target] is not None
    labelled = [k for k, b in enumerate(lay.boxes) if b is not None]
    assert 5 < len(labelled) < len(starts)  # crowded: some labels left out, but not all
    for i in labelled:
        b = lay.boxes[i]
        assert b[1] - b[0] == pytest.approx(widths[i]) and 0 <= b[0] and b[1] <= 2_000_000  # kept inside the view
        for j in labelled:
            if i < j and lay.rows[i] == lay.rows[j]:
                c = lay.boxes[j]
                assert b[1] < c[0] or c[1] < b[0], (i, j)


def _label_boxes(fig, bundle, loc):
    """(row y, x0, x1) of every gene label, measured like the figure does (bp per character at this span)."""
    names = set(bundle.genes["name"])
    out = []
    for a in fig.layout.annotations:
        text = (a.text or "").replace("<b>", "").replace("</b>", "")
        if a.xref != "paper" and text in names:
            half = (len(text) + 1) * CHAR_PX * loc.width / PLOT_PX / 2
            out.append((a.y, a.x - half, a.x + half, text))
    return out


@pytest.mark.parametrize("span", [600_000, 3_000_000, None])  # None: the whole chromosome
def test_gene_labels_do_not_overlap_and_hover_names_every_gene(bundle, span):
    g = bundle.gene_row(GENE)
    tss = int(g["tss"])
    loc = Locus(g["chrom"], 0, 242_193_529) if span is None else Locus(g["chrom"], tss - span // 2, tss + span // 2)
    fig = genome_figure(GenomeView(bundle=bundle, locus=loc, gene=GENE, cell_type=CELL))
    boxes = _label_boxes(fig, bundle, loc)
    assert any(name == GENE for *_, name in boxes)  # the target gene is always labelled
    for i, (y, a0, a1, n) in enumerate(boxes):
        for y2, b0, b1, m in boxes[i + 1:]:
            assert y != y2 or a1 < b0 or b1 < a0, (n, m)
    genes = bundle.genes
    in_view = genes[(genes["chrom"] == loc.chrom) & (genes["end"] > loc.start) & (genes["start"] < loc.end)]
    hover = " ".join(next(t for t in fig.data if t.name == "genes").text)
    assert all(f"<b>{n}</b>" in hover for n in in_view["name"])
    gene_rows = {y for y, *_ in boxes}
    assert len(gene_rows) <= 6
    # rows far enough apart that a ~12 px label fits between its gene and the gene models of the row above
    ya = fig.layout.yaxis2
    px = (ya.domain[1] - ya.domain[0]) * (fig.layout.height - fig.layout.margin.t - fig.layout.margin.b)
    unit = px / (ya.range[1] - ya.range[0])
    exon_y = np.concatenate([np.asarray(t.y, dtype=float) for t in fig.data if t.type == "scatter" and t.fill == "toself" and t.yaxis == "y2"])
    half = float(np.nanmax(np.abs(exon_y - np.round(exon_y))))
    for y, *_ in boxes:
        offset = y - round(y)
        assert offset * unit + 12 <= (1 - half) * unit
        assert (ya.range[1] - offset) * unit >= 12  # the top row's labels stay inside the track
    if span is None and len(boxes) < len(in_view):
        assert "unlabelled" in _notes(fig)


def test_hic_row_says_why_it_is_empty(bundle):
    g = bundle.gene_row(GENE)
    tss = int(g["tss"])
    wide = genome_figure(GenomeView(bundle=bundle, locus=Locus(g["chrom"], 0, 242_193_529), gene=GENE, cell_type=CELL))
    assert f"zoom in to below {HIC_MAX_WIDTH // 1_000_000} Mb to see Hi-C" in _notes(wide)
    assert not any(t.type == "heatmap" for t in wide.data)
    narrow = genome_figure(GenomeView(bundle=bundle, locus=Locus(g["chrom"], tss, tss + MIN_WIDTH), gene=GENE,
                                      cell_type=CELL))
    assert "zoom out to at least" in _notes(narrow) and not any(t.type == "heatmap" for t in narrow.data)
    blocks = [(h["start"], h["start"] + h["matrix"].shape[0] * h["bin_size"]) for h in bundle.hic.values()
              if h["chrom"] == g["chrom"]]
    away = max(e for _, e in blocks) + 5_000_000  # same chromosome, beyond every Hi-C block
    off = genome_figure(GenomeView(bundle=bundle, locus=Locus(g["chrom"], away, away + 1_000_000)))
    assert "no Hi-C bins in view" in _notes(off) and "nearest Hi-C" in _notes(off)
    none = genome_figure(GenomeView(bundle=bundle, locus=Locus("chrUn", 1_000_000, 2_000_000)))
    assert "no Hi-C data on chrUn" in _notes(none)
    assert _bottom_axis(none).showticklabels and len(none.data)  # the axis is drawn even with no Hi-C
    normal = genome_figure(GenomeView(bundle=bundle, locus=gene_locus(bundle, GENE), gene=GENE, cell_type=CELL))
    assert any(t.type == "heatmap" for t in normal.data) and "see Hi-C" not in _notes(normal)
    (hic,) = [t for t in normal.data if t.type == "heatmap"]
    assert hic.showscale is not False and "contacts" in hic.colorbar.title.text  # the colours have a scale
    # separation ticks only where a triangle is drawn
    assert _hic_yaxis(normal).showticklabels and not _hic_yaxis(wide).showticklabels
    assert not _hic_yaxis(narrow).showticklabels


def test_empty_tracks_say_the_bundle_has_no_data_there(bundle):
    g = bundle.gene_row(GENE)
    chrom = g["chrom"]
    last = max(int(bundle.peaks.loc[bundle.peaks["chrom"] == chrom, "end"].max()),
               int(bundle.genes.loc[bundle.genes["chrom"] == chrom, "end"].max()))
    far = Locus(chrom, last + 5_000_000, last + 6_000_000)  # same chromosome, beyond every peak and gene
    off = _notes(genome_figure(GenomeView(bundle=bundle, locus=far, gene=GENE, cell_type=CELL)))
    assert f"no peaks of this bundle in {far.label()} — nearest: 5" in off and "Mb to the left" in off
    assert f"no genes of this bundle in {far.label()} — nearest: " in off
    assert "no ATAC coverage in view" in off
    chroms = sorted(set(bundle.peaks["chrom"]))
    other = genome_figure(GenomeView(bundle=bundle, locus=Locus("chrY", 1_000_000, 2_000_000), gene=GENE, cell_type=CELL))
    assert f"no peaks of this bundle on chrY — its peaks lie on {chrom_list(chroms)}" in _notes(other)
    assert "no genes of this bundle on chrY — its genes lie on chr2" in _notes(other)
    normal = _notes(genome_figure(GenomeView(bundle=bundle, locus=gene_locus(bundle, GENE), gene=GENE, cell_type=CELL)))
    assert "of this bundle" not in normal and "no ATAC coverage" not in normal


def test_chrom_list_is_natural_and_short():
    assert chrom_list(["chr2", "chrX", "chr10", "chr1", "chr3", "chr11", "chr2"]) == "chr1–chr3, chr10, chr11, chrX"
    assert chrom_list(["chr22", "chr21"]) == "chr21, chr22"


def _hic_yaxis(fig):
    return fig.layout[f"yaxis{len(fig._grid_ref)}"]


def _rgb(hexcol: str) -> np.ndarray:
    return np.array([int(hexcol[i:i + 2], 16) for i in (1, 3, 5)], dtype=float)


def test_method_colours_are_disjoint_from_truth_colours():
    assert not {c.lower() for c in METHOD_COLORS} & {c.lower() for c in TRUTH_COLORS.values()}
    for m in METHOD_COLORS:  # not merely different strings: visibly different colours
        assert min(np.linalg.norm(_rgb(m) - _rgb(t)) for t in TRUTH_COLORS.values()) > 60, m


def test_planted_members_drawn_over_decoys(bundle):
    fig = genome_figure(GenomeView(bundle=bundle, locus=gene_locus(bundle, GENE), gene=GENE, cell_type=CELL))
    order = [t.name for t in fig.data if (t.name or "").startswith("planted ")]
    assert "planted decoy (simulated)" in order and len(order) >= 3
    decoy = order.index("planted decoy (simulated)")
    assert decoy == 0  # every planted member (promoter, enhancer-A, enhancer-B) is drawn after, on top
    assert {n.split()[1] for n in order[1:]} <= {"promoter", "enhancer-A", "enhancer-B"}
    # a whole other chromosome shows none of this gene's planted peaks
    g = bundle.gene_row(GENE)
    other = next(c for c in bundle.peaks["chrom"].unique() if c != g["chrom"])
    far = genome_figure(GenomeView(bundle=bundle, locus=Locus(other, 0, 50_000_000), gene=GENE, cell_type=CELL))
    assert not any((t.name or "").startswith("planted ") for t in far.data)


def test_links_row_names_the_method_drawn(bundle):
    res = fake_result(bundle, planted(bundle)[:3], method="saliency")
    links = linkage_table(bundle, res)
    loc = gene_locus(bundle, GENE)
    # the form says grids, the shown run is saliency: the row names saliency
    view = GenomeView(bundle=bundle, locus=loc, gene=GENE, cell_type=CELL, links=links, method="grids")
    assert shown_method(view) == "saliency"
    text = _notes(genome_figure(view))
    assert "Links (saliency)" in text and "Links (grids)" not in text
    # no run shown: no claim about a method
    empty = _notes(genome_figure(GenomeView(bundle=bundle, locus=loc, gene=GENE, cell_type=CELL, method="grids")))
    assert "Links (grids)" not in empty and "Links <i>(no run)</i>" in empty


# ---- redundancy panel -----------------------------------------------------------------------------
def test_redundancy_figures(bundle):
    res = fake_result(bundle, planted(bundle)[:5])
    links = linkage_table(bundle, res)
    fig = drop_one_figure(res, links)
    assert len(fig.data[0].x) == 5 and "#1" in fig.data[0].y[0]
    ex = pairwise_matrix(res, "excess")
    assert np.isnan(np.diag(ex)).all() and ex[0, 1] == pytest.approx(0.1)
    assert pairwise_figure(res, "joint").data[0].z[0][0] == pytest.approx(res.drop_one[0])
    assert len(trajectory_figure(res).data[0].y) == 3
    one = effect_vs_l_figure([{"run_id": "a", "L": 10, "heldout_delta": -0.1}])
    assert "run other L" in one.layout.annotations[0].text
    many = effect_vs_l_figure([{"run_id": "a", "L": 5, "heldout_delta": -0.1},
                               {"run_id": "b", "L": 10, "heldout_delta": -0.3}], current_run="b")
    assert [t.name for t in many.data] == ["mean over seeds", "stored runs", "this run"]
    assert math.isclose(many.data[2].y[0], -0.3)


def test_each_legend_item_toggles_only_its_own_layer(bundle):
    """Plotly hides a whole legendgroup on one click: every planted group and each TAD source is a group of its
    own, and a group's selection stars belong to it."""
    res = fake_result(bundle, planted(bundle)[:3])
    fig = genome_figure(GenomeView(bundle=bundle, locus=gene_locus(bundle, GENE), gene=GENE, cell_type=CELL,
                                   links=linkage_table(bundle, res)))
    shown = [t for t in fig.data if t.showlegend is not False and t.name and t.legendgroup]
    groups = [t.legendgroup for t in shown if t.name.startswith(("planted ", "TADs "))]
    assert len(groups) >= 4 and len(set(groups)) == len(groups)
    stars = [t for t in fig.data if t.type == "scatter" and t.marker.symbol == "star"]
    assert stars and all(s.legendgroup in groups and s.legendgroup.startswith("truth-") for s in stars)


def test_tads_are_labelled_by_their_own_source(bundle):
    """A prepared bundle's TADs come from the user's file: the legend names it (it said GM12878 for any file)."""
    import dataclasses

    tads = bundle.tads.copy()
    real = tads["simulated"].astype(int) == 0
    tads.loc[real, "source"] = "my_domains.bed"
    view = GenomeView(bundle=dataclasses.replace(bundle, tads=tads), locus=gene_locus(bundle, GENE), gene=GENE,
                      cell_type=CELL)
    names = [t.name for t in genome_figure(view).data if t.name and t.name.startswith("TADs")]
    assert "TADs my_domains.bed" in names and not any("GM12878" in n for n in names)


def test_genome_figure_stays_visible_under_the_redraw_spinner():
    """dcc.Loading hides its children while the spinner shows: a slow redraw (right after a run) left a blank area."""
    (loading,) = [c for c in browser_page(Choices())._traverse()
                  if isinstance(c, dcc.Loading) and getattr(c.children, "id", None) == ids.GENOME_GRAPH]
    assert loading.overlay_style["visibility"] == "visible" and loading.overlay_style["opacity"] < 1
