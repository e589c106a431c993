"""Members panel (drop-one vs alone): the x-axis title, its tick labels and the legend never overlap."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from layouts import redundancy as red
from tests.test_mnist_page import CHROMIUM, CHROMIUM_ARGS, inside, overlap, render_boxes

LONG = "_chr18_26903393_26903517_atac_peak_with_a_long_name"


def _result(n: int, suffix: str = "") -> SimpleNamespace:
    names = [f"REMOv1.GRCh38-2980{90 + k}.{k + 1}{suffix}" for k in range(n)]
    return SimpleNamespace(peak_names=names, drop_one=np.linspace(0.49, -0.02, n), single=np.linspace(-0.5, 0.1, n))


def _links(n: int) -> pd.DataFrame:
    return pd.DataFrame({"distance_to_tss": np.linspace(-337_700, 16_700, n)})


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """Debian's chromium with the flags that work here (never `playwright install`)."""
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


def test_bottom_margin_stacks_ticks_title_gap_and_legend():
    """The margin under the plot is the x-axis block plus the legend block, and the legend is pinned to the
    figure's bottom edge, so the legend's top lies a computed gap below the x-axis title."""
    for n in (1, 4, 12, 40):
        fig = red.drop_one_figure(_result(n), _links(n))
        axis, legend = red.bottom_px(2)
        assert red.legend_entries(fig) == 2 and fig.layout.showlegend
        assert fig.layout.margin.b == axis + legend
        lg = fig.layout.legend
        assert (lg.yref, lg.y, lg.yanchor, lg.orientation) == ("container", 0, "bottom", "v")
        drawn_legend = 2 * red.LEGEND_ROW_PX + red.LEGEND_PAD_PX
        title_bottom = red.TICKS_PX + red.XTITLE_STANDOFF_PX + red.XTITLE_PX  # px under the plot area
        assert fig.layout.margin.b - drawn_legend - title_bottom == red.LEGEND_GAP_PX > 0
        assert fig.layout.xaxis.title.standoff == red.XTITLE_STANDOFF_PX and fig.layout.xaxis.tickangle == 0


def test_height_grows_with_the_number_of_members():
    heights = [red.drop_one_figure(_result(n)).layout.height for n in (1, 5, 10, 20, 40)]
    assert heights == sorted(heights) and len(set(heights[1:])) == 4
    for n in (5, 40):
        fig = red.drop_one_figure(_result(n))
        m = fig.layout.margin
        assert fig.layout.height - m.t - m.b == red.member_plot_px(n) >= 24 * n  # ~24 px of bars per member


def test_long_peak_names_are_shortened_on_the_axis_only():
    fig = red.drop_one_figure(_result(3, LONG), _links(3))
    full = red.member_labels(_result(3, LONG), _links(3))
    for label, whole in zip(fig.data[0].y, full, strict=True):
        name = label.split(" ")[1]
        assert len(name) == red.MAX_NAME_CHARS and "…" in name and whole.startswith(label.split("…")[0])
        assert label.endswith(whole[whole.rindex(" (") :])  # the distance survives
    assert list(fig.data[0].customdata) == full and "%{customdata}" in fig.data[0].hovertemplate
    assert red.short_name("chr1:100-200") == "chr1:100-200"


def test_other_panels_reserve_room_for_their_legends():
    """Trajectory and effect-vs-L use the same frame; the heatmap has no legend and no legend band."""
    res = SimpleNamespace(trajectory=[2.0, 1.0, 0.5], baseline_objective=2.5, method="grids", pairwise=np.eye(3),
                          drop_one=[0.1, 0.2, 0.3], peak_names=["a", "b", "c"])
    traj = red.trajectory_figure(res)
    assert traj.layout.margin.b == sum(red.bottom_px(1)) and traj.layout.legend.yref == "container"
    pw = red.pairwise_figure(res)
    assert red.legend_entries(pw) == 0 and pw.layout.margin.b == red.TICKS_PX and not pw.layout.showlegend
    runs = [{"run_id": "a", "L": 5, "heldout_delta": -0.1}, {"run_id": "b", "L": 10, "heldout_delta": -0.3}]
    assert red.effect_vs_l_figure(runs, "b").layout.margin.b == sum(red.bottom_px(3))


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium at /usr/bin/chromium")
@pytest.mark.parametrize("n, suffix", [(1, ""), (10, ""), (10, LONG), (40, LONG)])
def test_rendered_axis_title_ticks_and_legend_apart(page, n, suffix):
    """Drawn by plotly.js in the card widths of a 1500 and a 1280 px window: tick labels, x-axis title and legend
    are stacked without overlap, all inside the figure, and the plot keeps a usable width."""
    fig = red.drop_one_figure(_result(n, suffix), _links(n))
    for width in (385, 477):
        r = render_boxes(page, fig, width)
        paper, (xtitle,), (legend,) = r["paper"], r["xtitle"], r["legend"]
        ticks_bottom = max(t[3] for t in r["xticks"])
        assert ticks_bottom <= xtitle[1] and xtitle[3] + red.LEGEND_GAP_PX <= legend[1], (width, xtitle, legend)
        for part in [xtitle, legend, *r["xticks"], *r["yticks"], *r["title"]]:
            assert inside(part, paper), (width, part)
            assert part is legend or not overlap(part, legend), (width, part)
        xt = sorted(r["xticks"])
        assert all(a[2] <= b[0] for a, b in zip(xt, xt[1:], strict=False)), xt  # tick labels side by side
        plot_left = max(t[2] for t in r["yticks"])
        assert paper[2] - plot_left >= 0.4 * width  # long names do not squeeze the bars away


def test_pairwise_heatmap_says_when_it_covers_the_first_members_only():
    res = _result(6)
    res.pairwise = np.outer(res.drop_one[:3], np.ones(3)) + 0.01  # the engine's top block for a large L
    fig = red.pairwise_figure(res, "joint")
    assert fig.data[0].z.shape == (3, 3) and list(fig.data[0].x) == ["#1", "#2", "#3"]
    assert fig.layout.xaxis.title.text == "the first 3 of 6 members (by drop-one)"
    res.pairwise = np.outer(res.drop_one, np.ones(6))
    assert red.pairwise_figure(res, "joint").layout.xaxis.title.text is None
