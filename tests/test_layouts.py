"""Pure figure builders of the dashboard (no server): geometry, downsampling, listing, locus parsing."""

from __future__ import annotations

import math

import numpy as np
import pytest

from grids_core.errors import GridsError, SettingsError, UnknownNameError
from grids_core.links import linkage_table
from grids_core.results import ExplanationResult
from layouts.genome import (
    MAX_COVERAGE_POINTS,
    GenomeView,
    Locus,
    Overlay,
    arc_xy,
    downsample_coverage,
    effect_colors,
    gene_locus,
    genome_figure,
    hic_pair_xy,
    hic_triangle,
    pack_rows,
    parse_locus,
    split_links,
)
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
    ],
)
def test_parse_locus_errors_say_how_to_fix(bundle, text, error, words):
    with pytest.raises(error) as info:
        parse_locus(text, bundle, {"chr2": 242_193_529})
    assert words in str(info.value)
    assert isinstance(info.value, GridsError)


def test_tiny_locus_is_widened(bundle):
    loc = parse_locus("chr2:170,000,000", bundle)
    assert loc.width >= 1000 and loc.start <= 170_000_000 <= loc.end


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
    assert "2 link(s) not drawn" in note and p["name"].iloc[other_chrom] in note


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


def test_pack_rows_separates_overlaps():
    rows = pack_rows([0, 50, 200], [100, 150, 300], gap=10)
    assert rows[0] != rows[1] and rows[2] == 0


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
