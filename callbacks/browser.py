"""Browser page glue: locus, figure, overlays, redundancy panel, linkage table and downloads."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from dash import Dash, Input, Output, State, ctx, dcc, no_update
from dash.exceptions import PreventUpdate

from callbacks.state import AppState, method_registry
from grids_core.errors import GridsError
from grids_core.evaluate import type_r
from grids_core.links import export_text, reading_notes
from grids_core.results import settings_family
from grids_core.train import PREDICTABLE_R
from layouts import ids
from layouts.components import (
    alert,
    cell_options,
    heldout_card,
    listed_links_table,
    marker_hint,
    method_options,
    overlay_table,
    quality_note,
    run_summary,
)
from layouts.genome import GenomeView, Locus, Overlay, gene_locus, genome_figure, parse_locus, split_links
from layouts.redundancy import (
    drop_one_figure,
    effect_vs_l_figure,
    empty_figure,
    pairwise_figure,
    trajectory_figure,
)

_RANGE_KEY = re.compile(r"^xaxis(\d+)\.range(?:\[(0|1)\])?$")
_AUTO_KEY = re.compile(r"^xaxis(\d+)\.autorange$")


def shown_result(state: AppState, run_id: str | None, gene: str | None, cell: str | None):
    """The stored result to draw, only if it belongs to the selected gene and cell type."""
    res = state.result(run_id) if run_id else None
    if res is not None and gene and cell and (res.gene != gene or res.cell_type != cell):
        return None
    return res


def effective_locus(state: AppState, locus_label: str | None, gene: str | None, res,
                    extra: list[pd.DataFrame] | None = None) -> Locus | None:
    """The locus to draw: the locus store if set, else the gene's default window (with its in-cis links)."""
    b = state.ctx().bundle
    if locus_label:
        return parse_locus(locus_label, b, state.chrom_sizes())
    if not gene:
        return None
    tables = ([state.links(res.run_id)] if res is not None else []) + list(extra or [])
    mids = [int(m) for t in tables for m in t.loc[t["peak_chrom"] == t["gene_chrom"], "peak_mid"]]
    return gene_locus(b, gene, mids)


def overlay_rows(state: AppState, res, gene: str, cell: str, methods: list[str]) -> tuple[list[Overlay], list[dict]]:
    """Stored runs of the overlay methods (same gene/type, preferring the same L and seed) and their summary."""
    overlays, rows = [], []
    L = res.settings.get("L") if res else None
    seed = res.settings.get("seed") if res else None
    base = set(res.subset) if res else set()
    for m in methods or []:
        rid = state.find_run(gene, cell, m, L, seed, any_l=True, objective_of=res.settings if res else None)
        if rid is None:
            rows.append({"method": m, "run_id": None,
                         "note": f"no stored {m} run for {gene} in {cell} with this run's perturbation, goal, β and "
                                 "window — choose it as Method and press Run"})
            continue
        other = state.result(rid)
        links = state.links(rid)
        overlays.append(Overlay(m, links, (other.heldout or {}).get("delta")))
        sub = set(other.subset)
        rows.append({
            "method": m, "run_id": rid, "L": other.settings.get("L"), "n": len(sub),
            "overlap": len(sub & base) if res else "—",
            "jaccard": (len(sub & base) / len(sub | base)) if res and (sub | base) else None,
            "heldout_delta": (other.heldout or {}).get("delta"), "recall": (other.truth or {}).get("recall"),
        })
    return overlays, rows


def build_view(state: AppState, run_id, locus_label, overlay_methods, gene, cell) -> dict:
    """Everything the browser view shows for one state of the page (pure apart from reading the store)."""
    out: dict = {"alert": None}
    b = state.ctx().bundle
    res = shown_result(state, run_id, gene, cell)
    overlays, rows = overlay_rows(state, res, gene, cell, overlay_methods) if gene and cell else ([], [])
    extra = [ov.links for ov in overlays]
    try:
        locus = effective_locus(state, locus_label, gene, res, extra)
    except GridsError as exc:
        out["alert"] = alert(f"{exc} Showing the gene's default window instead.", color="warning")
        locus = effective_locus(state, None, gene, res, extra)
    if locus is None:
        out.update(figure=empty_figure("Choose a gene to see its locus.", 300), locus_text="", summary=None,
                   listed=None, overlay=None)
        return out
    links = state.links(res.run_id) if res is not None else None
    sizes = state.chrom_sizes()
    fig = genome_figure(GenomeView(
        bundle=b, locus=locus, gene=gene, cell_type=cell, links=links, method=res.method if res else "grids",
        overlays=overlays, cytobands=state.cytobands(), chrom_size=sizes.get(locus.chrom),
    ))
    listed = []
    if links is not None:
        listed.append(split_links(links, locus)[1].assign(method=res.method))
    for ov in overlays:
        listed.append(split_links(ov.links, locus)[1].assign(method=ov.method))
    listed_df = pd.concat(listed, ignore_index=True) if listed else None
    out.update(
        figure=fig, locus_text=locus.label(),
        summary=([run_summary(res, current_model=state.ctx().model.model_id)]
                 + ([alert(res.quality_warning(), color="warning")] if not res.predictable else [])
                 + [alert(note, color="info") for note in reading_notes(links, res.settings, res.truth)]
                 if res is not None else None),
        listed=listed_links_table(listed_df) if listed_df is not None and len(listed_df) else None,
        overlay=overlay_table(rows) if rows else None,
    )
    return out


def locus_from_relayout(relayout: dict | None, current: Locus | None) -> Locus | None | bool:
    """New locus after a zoom/pan of the genomic axis; None = reset to default; False = not a genomic change."""
    if not relayout or current is None:
        return False
    lo = hi = None
    for key, val in relayout.items():
        if _AUTO_KEY.match(key) and int(_AUTO_KEY.match(key).group(1)) >= 2:
            return None
        m = _RANGE_KEY.match(key)
        if not m or int(m.group(1)) < 2:
            continue
        if m.group(2) is None and isinstance(val, list | tuple) and len(val) == 2:
            lo, hi = val
        elif m.group(2) == "0":
            lo = val
        elif m.group(2) == "1":
            hi = val
    if lo is None or hi is None:
        return False
    lo, hi = int(round(float(lo))), int(round(float(hi)))
    if hi <= lo:
        return False
    new = Locus(current.chrom, max(0, lo), hi)
    if abs(new.start - current.start) < 2 and abs(new.end - current.end) < 2:
        return False
    return new


def register(app: Dash, state: AppState) -> None:
    """Wire the Browser page."""

    @app.callback(
        Output(ids.CELL, "options"),
        Output(ids.GENE_INFO, "children"),
        Input(ids.GENE, "value"),
        Input(ids.CELL, "value"),
    )
    def gene_changed(gene, cell):
        """Suggest the marker cell types of the gene and say how well the surrogate predicts it."""
        c, err = state.try_ctx()
        if c is None:
            return [], alert(err)
        markers = c.bundle.marker_pairs()
        opts = cell_options(c.bundle.cell_types, markers, gene)
        if not gene:
            return opts, None
        try:
            name = c.bundle.gene_name(gene)
        except GridsError as exc:
            return opts, alert(str(exc))
        r_type = type_r(c.model.model, c.bundle, name, np.flatnonzero(c.bundle.cell_mask(cell, "test"))) \
            if cell in c.bundle.cell_types else None
        return opts, [quality_note(name, c.model.gene_r(name), c.model.predictable(name), cell, r_type, PREDICTABLE_R),
                      marker_hint(name, cell, markers)]

    @app.callback(Output(ids.OVERLAY, "options"), Input(ids.METHOD, "value"))
    def method_changed(method):
        """Overlay choices: every other method of the engine's registry (navigation.sync drops the view's own
        method from the chosen ones, and keeps them in the URL)."""
        return method_options(method_registry(), exclude=method)

    @app.callback(
        Output(ids.GENOME_GRAPH, "figure"),
        Output(ids.LOCUS_INPUT, "value"),
        Output(ids.RUN_SUMMARY, "children"),
        Output(ids.LISTED_LINKS, "children"),
        Output(ids.OVERLAY_SUMMARY, "children"),
        Output(ids.LOCUS_ALERT, "children"),
        Input(ids.VIEW_RUN, "data"),
        Input(ids.LOCUS, "data"),
        Input(ids.OVERLAY, "value"),
        Input(ids.GENE, "value"),
        Input(ids.CELL, "value"),
    )
    def render(run_id, locus_label, overlay_methods, gene, cell):
        try:
            v = build_view(state, run_id, locus_label, overlay_methods, gene, cell)
        except GridsError as exc:
            return empty_figure(str(exc), 300), no_update, None, None, None, alert(str(exc))
        return v["figure"], v["locus_text"], v["summary"], v["listed"], v["overlay"], v["alert"]

    @app.callback(
        Output(ids.LOCUS, "data", allow_duplicate=True),
        Output(ids.LOCUS_ALERT, "children", allow_duplicate=True),
        Input(ids.LOCUS_GO, "n_clicks"),
        Input(ids.LOCUS_INPUT, "n_submit"),
        Input(ids.LOCUS_RESET, "n_clicks"),
        State(ids.LOCUS_INPUT, "value"),
        prevent_initial_call=True,
    )
    def locus_typed(_go, _submit, _reset, text):
        """Locus box (gene or chr:start-end) and Reset. Apart from ``locus_zoomed``: Dash drops the answer of a
        callback that fires again before it returns, and Plotly reports relayouts at any time (resize, autosize),
        which would swallow a typed locus or its error."""
        if ctx.triggered_id == ids.LOCUS_RESET:
            return None, None
        try:
            loc = parse_locus(text, state.ctx().bundle, state.chrom_sizes())
        except GridsError as exc:
            return no_update, alert(str(exc))
        return loc.label(), None

    @app.callback(
        Output(ids.LOCUS, "data", allow_duplicate=True),
        Output(ids.LOCUS_ALERT, "children", allow_duplicate=True),
        Input(ids.GENOME_GRAPH, "relayoutData"),
        State(ids.LOCUS, "data"),
        State(ids.GENE, "value"),
        State(ids.VIEW_RUN, "data"),
        State(ids.CELL, "value"),
        prevent_initial_call=True,
    )
    def locus_zoomed(relayout, current, gene, run_id, cell):
        """Zoom/pan of the figure's genomic axis moves the locus (other relayouts change nothing)."""
        try:
            res = shown_result(state, run_id, gene, cell)
            cur = effective_locus(state, current, gene, res)
        except GridsError:
            raise PreventUpdate from None
        new = locus_from_relayout(relayout, cur)
        if new is False:
            raise PreventUpdate
        return (new.label() if new is not None else None), None

    @app.callback(
        Output(ids.DROP_ONE_GRAPH, "figure"),
        Output(ids.PAIRWISE_GRAPH, "figure"),
        Output(ids.TRAJECTORY_GRAPH, "figure"),
        Output(ids.EFFECT_L_GRAPH, "figure"),
        Output(ids.HELDOUT_CARD, "children"),
        Output(ids.LINK_TABLE, "rowData"),
        Input(ids.VIEW_RUN, "data"),
        Input(ids.PAIRWISE_MODE, "value"),
        Input(ids.GENE, "value"),
        Input(ids.CELL, "value"),
    )
    def panels(run_id, mode, gene, cell):
        """Redundancy panel and linkage table of the run shown."""
        try:
            res = shown_result(state, run_id, gene, cell)
        except GridsError as exc:
            e = empty_figure(str(exc))
            return e, e, e, e, alert(str(exc)), []
        if res is None:
            e = empty_figure("no run shown")
            return e, e, e, e, None, []
        links = state.links(res.run_id)
        family = settings_family(res.model_id, res.settings)  # same model and settings except L and seed
        runs = state.ctx().store.list(gene=res.gene, cell_type=res.cell_type, method=res.method, family=family)
        table = links.astype(object).where(links.notna(), None).to_dict("records")
        return (drop_one_figure(res, links), pairwise_figure(res, mode or "excess", links), trajectory_figure(res),
                effect_vs_l_figure(runs, res.run_id), heldout_card(res), table)

    @app.callback(
        Output(ids.DOWNLOAD, "data"),
        Output(ids.JOB_ALERT, "children", allow_duplicate=True),
        *[Input(i, "n_clicks") for i in ids.DOWNLOAD_FORMATS],
        State(ids.VIEW_RUN, "data"),
        State(ids.GENE, "value"),
        State(ids.CELL, "value"),
        prevent_initial_call=True,
    )
    def download(*args):
        """The linkage table in the chosen format (the engine's exporters: same rows as the table)."""
        run_id, gene, cell = args[-3:]
        fmt = ids.DOWNLOAD_FORMATS.get(ctx.triggered_id)
        if fmt is None or not any(args[:-3]):
            raise PreventUpdate
        res = shown_result(state, run_id, gene, cell)
        if res is None:
            return no_update, alert("Nothing to download yet: run or open a result first.", color="warning")
        text = export_text(state.links(res.run_id), fmt)
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"grids_{res.gene}_{res.cell_type}_{res.method}_{res.run_id}")
        name = f"{stem}.{fmt}"
        return dcc.send_string(text, name), no_update

    app.clientside_callback(
        """
        function(nPng, nSvg) {
            const trig = (window.dash_clientside.callback_context.triggered_id || '');
            const gd = document.querySelector('#GRAPH_ID .js-plotly-plot');
            if (!gd || !window.Plotly || !(nPng || nSvg)) { return window.dash_clientside.no_update; }
            const fmt = trig === 'SVG_ID' ? 'svg' : 'png';
            const title = ((gd.layout || {}).title || {}).text || 'grids_browser';
            const name = 'grids_' + title.replace(/[^A-Za-z0-9_.-]+/g, '_').replace(/_+/g, '_').slice(0, 80);
            window.Plotly.downloadImage(gd, {format: fmt, filename: name, width: gd.clientWidth,
                                             height: gd.clientHeight, scale: fmt === 'png' ? 2 : 1});
            return fmt + ':' + Date.now();
        }
        """.replace("GRAPH_ID", ids.GENOME_GRAPH).replace("SVG_ID", ids.EXPORT_SVG),
        Output(ids.EXPORT_DUMMY, "children"),
        Input(ids.EXPORT_PNG, "n_clicks"),
        Input(ids.EXPORT_SVG, "n_clicks"),
        prevent_initial_call=True,
    )
