"""Small reusable pieces of the pages: alerts, summary cards, option lists, table column definitions."""

from __future__ import annotations

import math

import dash_bootstrap_components as dbc
import pandas as pd
from dash import html

from grids_core.links import direction_words, locality_rows
from layouts.genome import fmt_distance


def alert(message: str | list, color: str = "danger", **kw) -> dbc.Alert:
    """An in-place message (errors a user can cause are shown like this, never as a traceback)."""
    return dbc.Alert(message, color=color, className="grids-alert", dismissable=True, **kw)


def fmt_num(x, spec: str = "+.4g") -> str:
    """Number or an em dash for missing values."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return "—"
    return "—" if math.isnan(x) else format(x, spec)


def gene_options(genes: list[str], markers: list[tuple[str, str]], quality: dict[str, float]) -> list[dict]:
    """Gene dropdown options: the bundle's marker genes first, then every other gene of the bundle."""
    by_gene: dict[str, list[str]] = {}
    for cell, gene in markers:
        cells = by_gene.setdefault(gene, [])
        if cell:
            cells.append(cell)
    present = set(genes)
    out = []
    for gene, cells in by_gene.items():
        if gene in present:
            r = quality.get(gene)
            rs = f" · r={r:.2f}" if r is not None and not math.isnan(r) else ""
            of = f" of {', '.join(cells)}" if cells else ""
            out.append({"label": f"★ {gene} — marker{of}{rs}", "value": gene, "search": gene})
    for gene in sorted(present - set(by_gene), key=str.upper):
        r = quality.get(gene)
        rs = f" · r={r:.2f}" if r is not None and not math.isnan(r) else ""
        out.append({"label": f"{gene}{rs}", "value": gene, "search": gene})
    return out


METHOD_BLURBS = {  # one short phrase per method for dropdowns; the registry's full text is the hover title
    "grids": "subset search",
    "saliency": "gradient × (v − x)",
    "smoothgrad": "noise-averaged saliency",
    "ig": "integrated gradients",
    "ablation": "exact one-peak ablation",
    "random": "random subset (control)",
    "sage": "Shapley-style importance",
    "lime": "local linear surrogate",
    "cxplain": "learned masked-loss importance",
    "fimap": "learned continuous mask",
    "correlation": "peak–gene Pearson r, ±500 kb",
}


def method_options(registry: dict[str, str], exclude: str | None = None) -> list[dict]:
    """Dropdown options 'name — short phrase' with the full description as the option's hover title."""
    return [{"label": f"{m} — {METHOD_BLURBS[m]}" if m in METHOD_BLURBS else m, "value": m, "title": d}
            for m, d in registry.items() if m != exclude]


def cell_options(cell_types: list[str], markers: list[tuple[str, str]], gene: str | None) -> list[dict]:
    """Cell-type options; types paired with ``gene`` as a marker are starred and listed first."""
    paired = {c for c, g in markers if g == gene}
    first = [c for c in cell_types if c in paired]
    rest = [c for c in cell_types if c not in paired]
    return [{"label": f"★ {c} — marker pair", "value": c} for c in first] + [{"label": c, "value": c} for c in rest]


def provenance_banner(manifest: dict) -> html.Div:
    """One line telling which layers are simulated and which are real."""
    prov = manifest.get("provenance", {})
    sim = [k for k, v in prov.items() if v == "simulated"]
    mixed = [k for k, v in prov.items() if v == "mixed"]
    real = [k for k, v in prov.items() if v == "real"]
    parts = []
    if sim:
        parts.append(html.Span([html.B("Simulated: "), ", ".join(sim)], className="prov-sim"))
    if mixed:
        parts.append(html.Span([html.B(" Mixed: "), ", ".join(mixed)], className="prov-mixed"))
    if real:
        parts.append(html.Span([html.B(" Real: "), ", ".join(real)], className="prov-real"))
    if not parts:
        parts = [html.Span("Provenance of the layers is not recorded in this bundle.")]
    return html.Div(parts, className="prov-banner", id="provenance-banner")


def marker_hint(gene: str, cell: str | None, markers: list[tuple[str, str]]) -> html.Div | None:
    """A line when ``gene`` is a marker of other cell types than ``cell`` (e.g. the gene changed, the type kept)."""
    paired = [ct for ct, g in markers if g == gene]
    if not paired or cell in paired:
        return None
    return html.Div(f"{gene} is a marker of {', '.join(paired)} (★ in Cell type); {cell or 'the cell type chosen'} "
                    "is not one of its marker pairs.", className="muted small")


def quality_note(gene: str, r: float, predictable: bool, cell: str | None = None,
                 r_type: float | None = None, threshold: float = 0.3) -> html.Div:
    """Surrogate quality of the gene: a badge, or a warning when the surrogate cannot predict it (pooled over
    cell types, ``r``, or within the chosen ``cell`` type, ``r_type``, on held-out cells)."""
    if r is None or (isinstance(r, float) and math.isnan(r)):
        return html.Div(f"Surrogate quality of {gene}: not recorded in the model.", className="muted small")
    if not predictable:
        return dbc.Alert(
            f"The surrogate cannot predict {gene} well (held-out r = {r:.2f}): its explanations describe the model, "
            "not the biology. Treat the arcs with caution.", color="warning", className="grids-alert small",
        )
    in_type = f", {r_type:.2f} within {cell}" if cell and r_type is not None and not math.isnan(r_type) else ""
    if cell and r_type is not None and not (r_type >= threshold):
        why = (f"within {cell} it is {r_type:.2f}" if not math.isnan(r_type)
               else f"within {cell} its held-out expression or prediction is constant")
        return dbc.Alert(
            f"The surrogate predicts {gene} across cell types (held-out r = {r:.2f}) but not its variation inside "
            f"{cell}: {why}. Explanations of {gene} in {cell} describe the model, not the biology.",
            color="warning", className="grids-alert small",
        )
    return html.Div([dbc.Badge("predictable", color="success", className="me-1"),
                     f" surrogate held-out r = {r:.2f} for {gene}{in_type}"], className="small")


def model_warning(result, current_model: str | None) -> dbc.Alert | None:
    """A warning when the run shown was made by another surrogate than the one the app has loaded."""
    if not current_model or not result.model_id or result.model_id == current_model:
        return None
    return dbc.Alert([
        html.B("Earlier surrogate. "),
        f"This run was made by an earlier surrogate model ({result.model_id}), not the current one ({current_model}): "
        "its links, drop-one effects and held-out numbers come from that model. Press Run to recompute them with "
        "the current model (the same settings give a new run; this one stays stored).",
    ], color="warning", className="grids-alert small model-warning")


def run_summary(result, stored: bool | None = None, current_model: str | None = None) -> html.Div:
    """Header line of the run shown: id, method, settings, runtime, held-out effect; with ``current_model`` (the
    id of the surrogate the app has loaded) a warning under it when an earlier surrogate made the run."""
    s = result.settings
    direction, effect = direction_words(s)
    window = s.get("window")
    bits = [
        html.B(f"{result.gene} in {result.cell_type}"),
        f" · {result.method} · L={s.get('L')}" + (f" k={s.get('k')}" if result.method == "grids" else "")
        + f" β={s.get('beta')} seed={s.get('seed')}",
        f" · {direction} peaks to {effect} expression",
        f" · window {int(window) // 1000} kb" if window else " · genome-wide",
        f" · run {result.run_id}",
        f" · {result.runtime_s:.1f} s" + (" (stored)" if stored else ""),
    ]
    warning = model_warning(result, current_model)
    if warning is None:
        return html.Div(bits, className="run-summary")
    return html.Div([html.Div(bits, className="run-summary"), warning])


COUNT_UNIT = "counts per 10k"  # the RNA layer is log1p(counts per 10,000 UMIs); held-out means are expm1 of it


def fmt_relative(x) -> str:
    """A relative change in per cent: one decimal, or two significant digits when smaller than 0.1 % (a random
    subset's −0.00082 % must not read as "−0.0 %")."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return "—"
    if math.isnan(x):
        return "—"
    if x == 0:
        return "0 %"
    if abs(x) < 0.001:
        return f"{100 * x:+.2g} %"
    return f"{100 * x:+.1f} %"


def heldout_card(result) -> html.Div:
    """Held-out effect, locality and (simulated bundles) recovery of the planted enhancers."""
    h = result.heldout or {}
    rows = [
        ("held-out cells", h.get("n_cells", "—")),
        (f"mean prediction before ({COUNT_UNIT})", fmt_num(h.get("mean_before"), ".4g")),
        (f"mean prediction after ({COUNT_UNIT})", fmt_num(h.get("mean_after"), ".4g")),
        (f"mean measured ({COUNT_UNIT})", fmt_num(h.get("mean_observed"), ".4g")),
        (f"Δ (after − before, {COUNT_UNIT})", fmt_num(h.get("delta"))),
        ("relative Δ (of the mean before)", fmt_relative(h.get("relative"))),
        ("objective J(S) / J(∅)", f"{fmt_num(result.objective)} / {fmt_num(result.baseline_objective)}"),
        ("surrogate r (gene, all types)", fmt_num(result.gene_r, ".2f")),
    ]
    if "r_in_type" in h:
        rows.append((f"surrogate r in {result.cell_type}", fmt_num(h.get("r_in_type"), ".2f")))
    if not result.predictable:
        rows.append(("", "⚠ not predictable"))
    rows += locality_rows(result.locality or {})
    table = [html.Tr([html.Td(k), html.Td(str(v), className="num")]) for k, v in rows]
    children = [html.H6("Held-out effect"), html.Table(html.Tbody(table), className="kv"),
                html.Div("Predicted expression of the held-out cells of this type, as counts per 10,000 UMIs "
                         "(the RNA layer is log1p of it). The relative Δ is of the predicted mean; the measured mean "
                         "of the same cells shows how well that prediction is calibrated.", className="muted small")]
    t = result.truth
    if t:
        trows = [
            ("planted members", t.get("n_planted", "—")),
            ("hits", t.get("hits", "—")),
            ("recall", fmt_num(t.get("recall"), ".2f")),
            ("precision", fmt_num(t.get("precision"), ".2f")),
            ("decoys selected", t.get("decoys_selected", "—")),
        ]
        if "auprc" in t:
            trows.append(("AUPRC of the per-peak ranking", fmt_num(t["auprc"], ".3f")))
        children += [html.H6(["Ground truth ", html.I("(simulated)")]),
                     html.Table(html.Tbody([html.Tr([html.Td(k), html.Td(str(v), className="num")]) for k, v in trows]),
                                className="kv")]
    return html.Div(children, className="card-lite")


def listed_links_table(listed: pd.DataFrame) -> html.Div:
    """Links that are not drawn (peak outside the view or on another chromosome), never silently dropped."""
    if listed is None or listed.empty:
        return html.Div()
    head = html.Tr([html.Th(c) for c in ("method", "rank", "peak", "position (1-based)", "distance to TSS", "drop-one ΔJ",
                                         "why")])
    body = [
        html.Tr([
            html.Td(r["method"]), html.Td(int(r["rank"])), html.Td(r["peak"]),
            html.Td(f"{r['peak_chrom']}:{int(r['peak_start']) + 1:,}-{int(r['peak_end']):,}"),
            html.Td("trans" if pd.isna(r["distance_to_tss"]) else fmt_distance(r["distance_to_tss"])),
            html.Td(fmt_num(r["drop_one"]), className="num"), html.Td(r["where"]),
        ])
        for _, r in listed.iterrows()
    ]
    return html.Details([
        html.Summary(f"Links not drawn in this view: {len(listed)} (outside the window or on another chromosome)"),
        html.Table([html.Thead(head), html.Tbody(body)], className="dense-table"),
    ], open=True, className="listed-links")


def overlay_table(rows: list[dict]) -> html.Div:
    """Per overlay method: its stored run, overlap with the shown run, held-out effect."""
    if not rows:
        return html.Div()
    head = html.Tr([html.Th(c) for c in ("method", "run", "L", "links", "overlap", "Jaccard", "held-out Δ", "recall")])
    body = []
    for r in rows:
        if r.get("run_id") is None:
            body.append(html.Tr([html.Td(r["method"]), html.Td(r.get("note", "not stored"), colSpan=7, className="muted")]))
            continue
        body.append(html.Tr([
            html.Td(r["method"]), html.Td(r["run_id"]), html.Td(r.get("L", "—")), html.Td(r.get("n", "—")),
            html.Td(r.get("overlap", "—")), html.Td(fmt_num(r.get("jaccard"), ".2f")),
            html.Td(fmt_num(r.get("heldout_delta")), className="num"), html.Td(fmt_num(r.get("recall"), ".2f")),
        ]))
    return html.Div([html.H6("Method overlay (arcs mirrored below the axis)"),
                     html.Table([html.Thead(head), html.Tbody(body)], className="dense-table")], className="overlay-box")


LINK_COLUMNS = [
    {"field": "rank", "headerName": "#", "width": 60, "filter": "agNumberColumnFilter", "pinned": "left"},
    {"field": "peak", "headerName": "peak", "width": 190},
    {"field": "peak_chrom", "headerName": "chrom", "width": 85},
    {"field": "peak_start", "headerName": "start", "filter": "agNumberColumnFilter",
     "valueFormatter": {"function": "d3.format(',')(params.value)"}},
    {"field": "peak_end", "headerName": "end", "filter": "agNumberColumnFilter",
     "valueFormatter": {"function": "d3.format(',')(params.value)"}},
    {"field": "distance_to_tss", "headerName": "dist. to TSS (bp)", "width": 140, "filter": "agNumberColumnFilter",
     "valueFormatter": {"function": "params.value == null ? 'trans' : d3.format(',')(params.value)"}},
    {"field": "drop_one", "headerName": "drop-one ΔJ", "filter": "agNumberColumnFilter",
     "valueFormatter": {"function": "params.value == null ? '' : d3.format('+.4g')(params.value)"}},
    {"field": "single", "headerName": "alone ΔJ", "filter": "agNumberColumnFilter",
     "valueFormatter": {"function": "params.value == null ? '' : d3.format('+.4g')(params.value)"}},
    {"field": "gene", "headerName": "gene", "width": 90},
    {"field": "tss", "headerName": "TSS", "valueFormatter": {"function": "d3.format(',')(params.value)"}},
    {"field": "strand", "headerName": "strand", "width": 70},
    {"field": "cell_type", "headerName": "cell type", "width": 90},
    {"field": "method", "headerName": "method", "width": 90},
    {"field": "run_id", "headerName": "run", "width": 150},
]

_NUM = "agNumberColumnFilter"

# Runs page: min widths for 12 px text in tight cells (GRID_THEME, RUNS_GRID_THEME) with headers that wrap and
# filter buttons shown on hover (style.css), so every column, "open →" included, fits a 1280 px window (they
# add up to 1,234 px); narrower windows scroll the grid sideways
RUN_COLUMNS = [
    {"field": "created", "headerName": "created (UTC)", "sort": "desc", "minWidth": 116,  # ISO text sorts as time
     "valueFormatter": {"function": "params.value ? params.value.slice(0, 16).replace('T', ' ') : ''"}},
    {"field": "gene", "headerName": "gene", "minWidth": 70},
    {"field": "cell_type", "headerName": "cell type", "minWidth": 70},
    {"field": "method", "headerName": "method", "minWidth": 84},
    {"field": "direction", "headerName": "perturbation", "minWidth": 100, "tooltipField": "direction",
     "headerTooltip": "peaks closed or opened → expression lowered or raised"},
    {"field": "L", "headerName": "L", "filter": _NUM, "minWidth": 44, "headerTooltip": "subset size"},
    {"field": "k", "headerName": "k", "filter": _NUM, "minWidth": 44, "headerTooltip": "candidates per step"},
    {"field": "beta", "headerName": "β", "filter": _NUM, "minWidth": 46, "headerTooltip": "specificity weight",
     "valueFormatter": {"function": "params.value == null ? '' : d3.format('.3~g')(params.value)"}},
    {"field": "window_kb", "headerName": "cis window", "filter": _NUM, "minWidth": 88,
     "headerTooltip": "only peaks within this distance of the TSS",
     "valueFormatter": {"function": "params.value == null ? 'genome-wide' : d3.format(',.4~g')(params.value) + ' kb'"}},
    {"field": "seed", "headerName": "seed", "filter": _NUM, "minWidth": 50},
    {"field": "heldout_delta", "headerName": "held-out Δ", "minWidth": 88, "filter": _NUM,  # a random subset's −7.8e-5 stays short
     "valueFormatter": {"function": "params.value == null ? '' : (params.value !== 0 && Math.abs(params.value) < 1e-3"
                                    " ? d3.format('+.3~e')(params.value) : d3.format('+.4g')(params.value))"}},
    {"field": "recall", "headerName": "recall (sim.)", "minWidth": 60, "filter": _NUM,
     "valueFormatter": {"function": "params.value == null ? '' : d3.format('.2f')(params.value)"}},
    {"field": "runtime_s", "headerName": "runtime (s)", "minWidth": 64, "filter": _NUM,
     "valueFormatter": {"function": "params.value == null ? '' : d3.format('.1f')(params.value)"}},
    {"field": "run_id", "headerName": "run id", "minWidth": 124},
    {"field": "model", "headerName": "surrogate", "minWidth": 122, "tooltipField": "model",
     "cellStyle": {"function": "params.value === 'current' ? {} : {'color': '#a15c00'}"}},
    {"field": "open", "headerName": "", "minWidth": 64, "maxWidth": 80, "sortable": False, "filter": False,
     "resizable": False, "cellStyle": {"color": "#1f5fa8", "cursor": "pointer"}},
]


JOB_STATES = {"running": ("running", "primary"), "done": ("finished", "success"), "cancelled": ("cancelled", "warning"),
              "failed": ("failed", "danger"), "stopped": ("stopped (its process ended)", "secondary")}


def fmt_age(seconds: float) -> str:
    """'45 s', '3 min', '2 h 5 min', '3 d' (how long ago / how long running)."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d"


def jobs_table(rows: list[dict], now: float, open_href) -> html.Div:
    """The job list of the Runs page: what runs (or ran) from this app, its progress, and Cancel / open.

    ``rows`` are job-board records (``JobBoard.jobs``); ``open_href(row)`` is the browser link of a finished run.
    """
    if not rows:
        return html.Div("No searches started from this app recently.", className="muted small")
    body = []
    for r in rows:
        what = r.get("what") or {}
        label, color = JOB_STATES.get(str(r.get("state")), (str(r.get("state")), "secondary"))
        pct = int(round(100 * float(r.get("frac") or 0.0)))
        if r.get("state") == "running":
            status = html.Div([dbc.Progress(value=pct, label=f"{pct}%", className="grids-progress job-progress"),
                               html.Div(str(r.get("msg") or ""), className="muted small")])
            action = html.Button("Cancel", id={"type": "job-cancel", "run": r["run_id"]}, n_clicks=0,
                                 className="btn btn-sm btn-outline-danger")
        else:
            status = html.Div([dbc.Badge(label, color=color),
                               html.Span(f" {r.get('msg')}" if r.get("msg") else "", className="small")])
            action = (html.A("open →", href=open_href(r)) if r.get("state") == "done" else None)
        started = r.get("started") or r.get("t") or now
        body.append(html.Tr([
            html.Td(what.get("gene", "—")), html.Td(what.get("cell_type", "—")), html.Td(what.get("method", "—")),
            html.Td(what.get("L", "—")), html.Td(status, className="job-status"),
            html.Td(f"{fmt_age(now - float(started))} ago"), html.Td(html.Code(r["run_id"][:12])), html.Td(action),
        ]))
    head = html.Thead(html.Tr([html.Th(x) for x in ("gene", "cell type", "method", "L", "state", "started", "run",
                                                    "")]))
    return dbc.Table([head, html.Tbody(body)], size="sm", hover=True, className="jobs-table")
