"""Fixes from a review of the app: graphs keep their height when the window is resized, Runs rows tell their
settings apart and fit 1280 px, a run of an earlier surrogate is flagged, units and scales are stated, and the
small redundancy panels say what they cannot show.

The browser half (``-m browser``) reuses tests/test_app_browser.py's served app and Chromium settings.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from callbacks.browser import build_view
from callbacks.runs import run_rows
from callbacks.state import AppState
from grids_core.explain.gene import ExplainRequest
from grids_core.jobs import run_explanation
from grids_core.settings import Settings
from grids_core.store import ResultStore
from layouts.components import RUN_COLUMNS, fmt_relative, heldout_card, run_summary
from layouts.genome import effect_scale_title
from layouts.redundancy import effect_vs_l_figure, pairwise_figure, trajectory_figure

try:  # the served app and Chromium settings of the browser tests (that module skips itself without Chromium)
    from tests.test_app_browser import (  # noqa: F401 - fixtures, used by name
        ARTIFACTS,
        browser_context_args,
        browser_type_launch_args,
        server,
    )
except pytest.skip.Exception:  # pragma: no cover - CI installs Chromium
    ARTIFACTS = None

needs_chromium = pytest.mark.skipif(ARTIFACTS is None, reason="browser tests need Debian's chromium")

GENE, CELL = "GAD1", "VIP"
OLD_MODEL = "0123456789ab"
# (L, k, value, sign, beta, window bp, method): the Runs page must tell all of these apart
VARIANTS = [
    (5, 16, 0.0, 1.0, 0.0, None, "grids"),
    (4, 8, 1.0, -1.0, 0.5, 300_000, "grids"),
    (3, 16, 0.0, 1.0, 0.0, None, "random"),
]


def _text(node) -> str:
    """All text of a Dash component tree."""
    if node is None:
        return ""
    if isinstance(node, str | int | float):
        return str(node)
    if isinstance(node, list | tuple):
        return " ".join(_text(c) for c in node)
    return _text(getattr(node, "children", None))


def _classes(node) -> list[str]:
    if isinstance(node, list | tuple):
        return [c for n in node for c in _classes(n)]
    if node is None or isinstance(node, str | int | float):
        return []
    return [getattr(node, "className", None) or ""] + _classes(getattr(node, "children", None))


def _make_runs(bundle_dir: Path) -> list[str]:
    """The VARIANTS computed and stored in ``bundle_dir``'s store, plus a copy of the first run that an earlier
    surrogate (another model id) made; returns their run ids, that copy last."""
    settings = Settings(bundle_dir=bundle_dir)
    ids = []
    for L, k, value, sign, beta, window, method in VARIANTS:
        req = ExplainRequest(GENE, CELL, method=method, L=L, k=k, value=value, sign=sign, beta=beta, window=window)
        res, _ = run_explanation(settings, req)
        ids.append(res.run_id)
    store = ResultStore(settings.store_path)
    old = replace(store.get(ids[0]), run_id="0ld0000000000000", model_id=OLD_MODEL, created="2000-01-01T00:00:00")
    store.put(old)
    return [*ids, old.run_id]


@pytest.fixture(scope="module")
def review(small_bundle_dir, tmp_path_factory):
    """(state, run ids) on a private copy of the small bundle."""
    dst = tmp_path_factory.mktemp("review") / "bundle"
    shutil.copytree(small_bundle_dir, dst, ignore=shutil.ignore_patterns("results.sqlite*", "cache"))
    run_ids = _make_runs(dst)
    return AppState(Settings(bundle_dir=dst)), run_ids


# ---- Runs page -------------------------------------------------------------------------------------
def test_runs_rows_tell_direction_k_beta_and_window_apart(review, monkeypatch):
    state, run_ids = review
    rows = {r["run_id"]: r for r in run_rows(state, GENE, CELL)}
    plain, other, rnd, old = (rows[i] for i in run_ids)
    assert (plain["direction"], plain["k"], plain["beta"], plain["window_kb"]) == ("close → lower", 16, 0.0, None)
    assert (other["direction"], other["k"], other["beta"], other["window_kb"]) == ("open → raise", 8, 0.5, 300.0)
    assert rnd["method"] == "random" and rnd["direction"] == "close → lower"
    assert old["model"] == "earlier (01234567)" and plain["model"] == "current"
    # the settings are read once per settings family: listing again opens no stored payload
    monkeypatch.setattr(ResultStore, "get", lambda *a, **k: pytest.fail("payload read again"))
    again = {r["run_id"]: r for r in run_rows(state, GENE, CELL)}
    assert again[run_ids[1]]["direction"] == "open → raise"


def test_runs_columns_show_the_settings_and_fit_1280_px():
    fields = [c["field"] for c in RUN_COLUMNS]
    assert {"direction", "k", "beta", "window_kb", "model", "open"} <= set(fields)
    # 1280 px window: 16 px page padding each side, 2 px grid border
    assert sum(c["minWidth"] for c in RUN_COLUMNS) <= 1280 - 2 * 16 - 2


# ---- a run of an earlier surrogate ---------------------------------------------------------------------
def test_run_of_an_earlier_model_is_flagged_in_the_summary(review):
    state, run_ids = review
    current = state.ctx().model.model_id
    old = build_view(state, run_ids[-1], None, [], GENE, CELL)["summary"]
    text = _text(old)
    assert "earlier surrogate" in text and OLD_MODEL in text and current in text and "Press Run" in text
    assert "model-warning" in " ".join(_classes(old))
    now = build_view(state, run_ids[0], None, [], GENE, CELL)["summary"]
    assert "earlier surrogate" not in _text(now) and "model-warning" not in " ".join(_classes(now))
    res = state.result(run_ids[0])
    assert "earlier surrogate" not in _text(run_summary(res))  # no current model given: nothing to compare
    assert "earlier surrogate" in _text(run_summary(res, current_model="ffffffffffff"))


# ---- units, precision, scales ----------------------------------------------------------------------------
def test_heldout_card_states_units_precision_and_what_the_median_is_over(review):
    state, run_ids = review
    res = state.result(run_ids[0])
    tiny = replace(res, heldout={**res.heldout, "relative": -8.2e-6})
    text = _text(heldout_card(tiny))
    assert "mean prediction before (counts per 10k)" in text and "Δ (after − before, counts per 10k)" in text
    assert "-0.00082 %" in text and "-0.0%" not in text and "−0.0 %" not in text
    assert "median distance to the TSS (peaks on its chromosome)" in text
    assert fmt_relative(-0.942) == "-94.2 %" and fmt_relative(0) == "0 %" and fmt_relative(None) == "—"


def test_drop_one_colour_scale_states_its_range(review):
    state, run_ids = review
    fig = build_view(state, run_ids[0], None, [], GENE, CELL)["figure"]
    (scale,) = [t for t in fig.data if t.name == "effect scale"]
    vmax = float(np.nanmax(np.abs(state.links(run_ids[0])["drop_one"].astype(float))))
    assert scale.marker.cmax == pytest.approx(vmax)
    assert f"±{vmax:.2g}" in scale.marker.colorbar.title.text and "this run" in scale.marker.colorbar.title.text
    assert "±5.4e-5" in effect_scale_title(5.4e-5) and "±0.42" in effect_scale_title(0.4213)


# ---- small panels ------------------------------------------------------------------------------------------
def test_pairwise_panel_explains_l1_and_steps_are_whole_numbers():
    one = SimpleNamespace(pairwise=[[0.3]], drop_one=[0.3], peak_names=["p"])
    for mode in ("excess", "joint"):
        fig = pairwise_figure(one, mode)
        assert not fig.data and "two or more members" in fig.layout.annotations[0].text
    baseline = trajectory_figure(SimpleNamespace(trajectory=[2.0], baseline_objective=2.5, method="random"))
    ax = baseline.layout.xaxis
    assert (ax.tickmode, ax.tick0, ax.dtick, tuple(ax.range)) == ("linear", 0, 1, (-0.5, 0.5))
    assert "at once" in ax.title.text
    longer = trajectory_figure(SimpleNamespace(trajectory=list(np.linspace(2, 1, 30)), baseline_objective=2.5,
                                               method="grids"))
    assert longer.layout.xaxis.dtick is None and longer.layout.xaxis.title.text == "step"
    runs = [{"run_id": "a", "L": 1, "heldout_delta": -0.1}, {"run_id": "b", "L": 2, "heldout_delta": -0.3}]
    assert tuple(effect_vs_l_figure(runs, "b").layout.xaxis.tickvals) == (1, 2)


# ---- in Chromium -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def served(server):
    """The served app with the review's runs in its store."""
    return {**server, "runs": _make_runs(Path(server["bundle"]))}


GEOMETRY = """() => {
  const box = s => document.querySelector(s).getBoundingClientRect();
  const graphs = {};
  for (const id of ['genome-graph', 'drop-one-graph', 'pairwise-graph', 'trajectory-graph']) {
    const gd = document.querySelector('#' + id + ' .js-plotly-plot');
    graphs[id] = {height: gd.getBoundingClientRect().height, figure: gd._fullLayout.height,
                  width: gd.getBoundingClientRect().width, container: box('#' + id).width};
  }
  return {graphs, genomeBottom: box('#genome-graph').bottom, redundancyTop: box('.redundancy-grid').top};
}"""

REDRAW = """() => { for (const gd of document.querySelectorAll('.js-plotly-plot'))
  if (gd.offsetParent) window.Plotly.react(gd, gd.data, gd.layout, {responsive: true}); }"""


def _check_heights(page, heights: dict, tag: str) -> None:
    g = page.evaluate(GEOMETRY)
    for gid, want in heights.items():
        got = g["graphs"][gid]
        assert abs(got["height"] - want) <= 2, (tag, gid, got, want)
        assert abs(got["width"] - got["container"]) <= 4, (tag, gid, got)  # and it follows the page width
    assert g["redundancyTop"] >= g["genomeBottom"], (tag, g)


@pytest.mark.parametrize(("first", "second"), [(1920, 1280), (1280, 1920)])
@pytest.mark.browser
@needs_chromium
def test_graphs_keep_their_height_when_the_window_is_resized(page, served, first, second):
    """A resize used to collapse the genome figure to 2 px (plotly's resize drops layout.height and sizes its svg
    container to 100 % of a parent without a height), letting the redundancy panels draw over the tracks."""
    page.set_viewport_size({"width": first, "height": 1000})
    page.goto(served["url"] + f"?gene={GENE}&cell={CELL}&method=grids&L=5&run={served['runs'][0]}")
    page.wait_for_function("() => ((document.querySelector('#genome-graph .js-plotly-plot') || {}).data || [])"
                           ".some(t => (t.name || '').startsWith('arc '))", timeout=30_000)
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(1000)
    g = page.evaluate(GEOMETRY)["graphs"]
    heights = {gid: v["figure"] for gid, v in g.items()}
    assert heights["genome-graph"] > 400 and all(v > 100 for v in heights.values())
    _check_heights(page, heights, "fresh")
    page.set_viewport_size({"width": second, "height": 900})
    page.wait_for_timeout(3000)
    _check_heights(page, heights, "resized")
    # the collapse came from a full redraw after the resize (timing-dependent on a busy machine): force one
    page.evaluate(REDRAW)
    page.wait_for_timeout(1000)
    _check_heights(page, heights, "resized + redrawn")
    page.set_viewport_size({"width": first, "height": 1000})
    page.wait_for_timeout(3000)
    _check_heights(page, heights, "back")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"review_resize_{first}_{second}.png"), full_page=True)


@pytest.mark.browser
@needs_chromium
def test_runs_page_fits_1280_and_shows_the_settings(page, served):
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(served["url"] + "runs")
    page.wait_for_selector("#runs-table .ag-center-cols-container .ag-row", timeout=20_000)
    page.wait_for_function("n => document.querySelectorAll('#runs-table .ag-center-cols-container .ag-row').length >= n",
                           arg=len(served["runs"]), timeout=20_000)
    page.wait_for_timeout(500)
    fit = page.evaluate("""() => {
      const g = document.querySelector('#runs-table'), right = g.getBoundingClientRect().right;
      const vp = g.querySelector('.ag-body-horizontal-scroll-viewport');
      const cut = Array.from(g.querySelectorAll('.ag-cell-value, .ag-header-cell-text'))
        .filter(c => c.scrollWidth > c.clientWidth + 1).map(c => c.innerText);
      const open = g.querySelector('.ag-header-cell[col-id=open]').getBoundingClientRect().right;
      return {scroll: vp.scrollWidth - vp.clientWidth, cut, open, right};
    }""")
    assert fit["scroll"] <= 0 and fit["cut"] == [] and fit["open"] <= fit["right"], fit
    text = page.inner_text("#runs-table")
    for words in ("perturbation", "cis window", "close → lower", "open → raise", "genome-wide", "300 kb",
                  "earlier (01234567)", "open →"):
        assert words in text, words
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "review_runs_1280.png"), full_page=True)


@pytest.mark.browser
@needs_chromium
def test_browser_warns_when_an_earlier_surrogate_made_the_run(page, served):
    old, current = served["runs"][-1], served["runs"][0]
    page.goto(served["url"] + f"?gene={GENE}&cell={CELL}&method=grids&L=5&run={old}")
    page.wait_for_function("r => (document.querySelector('#run-summary') || {innerText: ''}).innerText.includes('run ' + r)",
                           arg=old, timeout=30_000)
    warning = page.locator("#run-summary .model-warning")
    assert warning.is_visible() and OLD_MODEL in warning.inner_text() and "earlier surrogate" in warning.inner_text()
    page.goto(served["url"] + f"?gene={GENE}&cell={CELL}&method=grids&L=5&run={current}")
    page.wait_for_function("r => (document.querySelector('#run-summary') || {innerText: ''}).innerText.includes('run ' + r)",
                           arg=current, timeout=30_000)
    assert page.locator("#run-summary .model-warning").count() == 0

