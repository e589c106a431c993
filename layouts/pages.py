"""Page layouts: the app shell (navigation, stores), Browser, Runs and IGV pages. No callbacks here."""

from __future__ import annotations

from dataclasses import dataclass, field

import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import dcc, html

from layouts import ids
from layouts.components import LINK_COLUMNS, RUN_COLUMNS, provenance_banner
from layouts.mnist import mnist_page
from layouts.redundancy import empty_figure

PAGES = {"browser": "/", "runs": "/runs", "igv": "/igv", "mnist": "/mnist"}

GRAPH_CONFIG = {
    "displaylogo": False,
    "scrollZoom": True,
    "responsive": True,
    "toImageButtonOptions": {"format": "png", "filename": "grids_browser", "scale": 2},
    # the locus bar's Reset returns to the gene's view and keeps the locus box and link in step; Plotly's own
    # reset (home) button moved the axes behind their back
    "modeBarButtonsToRemove": ["lasso2d", "select2d", "autoScale2d", "resetScale2d"],
}
# while the genome figure is redrawn (over 600 ms: a run just finished, a loaded server), the spinner sits over the
# current figure, dimmed; dcc.Loading's default hides it, which left a blank white area of the figure's height
REDRAW_OVERLAY = {"visibility": "visible", "opacity": 0.45}
SMALL_GRAPH_CONFIG = {"displaylogo": False, "toImageButtonOptions": {"format": "svg"}}
# AG Grid's theming API (the "ag-theme-alpine" class no longer styles it): 12 px text and tighter cells, as the
# rest of the page, so the tables fit their columns
GRID_THEME = {"function": "themeQuartz.withParams({fontSize: 12, headerFontSize: 12, spacing: 6})"}
RUNS_GRID_THEME = {"function": "themeQuartz.withParams({fontSize: 12, headerFontSize: 12, spacing: 6, "
                               "cellHorizontalPaddingScale: 0.6})"}


@dataclass
class Choices:
    """What the controls offer (built by the callbacks from the bundle, the model and the method registry)."""

    genes: list[dict] = field(default_factory=list)
    cells: list[dict] = field(default_factory=list)
    methods: list[dict] = field(default_factory=list)
    default_gene: str | None = None
    default_cell: str | None = None
    manifest: dict = field(default_factory=dict)
    bundle_label: str = ""
    error: str | None = None


def shell(choices: Choices) -> html.Div:
    """The whole app: header, tabs, the four pages (shown one at a time) and the stores."""
    header = html.Header([
        html.Div([html.Span("GRIDS", className="brand"),
                  html.Span("subset explanations of an ATAC → RNA surrogate", className="tagline")], className="brand-box"),
        dcc.Tabs(id=ids.TABS, value="browser", className="nav-tabs-lite", children=[
            dcc.Tab(label="Browser", value="browser"),
            dcc.Tab(label="Runs", value="runs"),
            dcc.Tab(label="IGV", value="igv"),
            dcc.Tab(label="MNIST", value="mnist"),
        ]),
        html.Div(choices.bundle_label, className="bundle-label"),
    ], className="app-header")
    app_alert = html.Div(
        dbc.Alert(choices.error, color="danger", className="grids-alert") if choices.error else None, id=ids.APP_ALERT
    )
    return html.Div([
        dcc.Location(id=ids.URL, refresh=False),
        dcc.Store(id=ids.JOB, storage_type="session"),
        dcc.Store(id=ids.JOB_TRIGGER, storage_type="memory"),
        dcc.Store(id=ids.JOB_DONE, storage_type="memory"),
        dcc.Store(id=ids.VIEW_RUN, storage_type="memory"),
        dcc.Store(id=ids.LOCUS, storage_type="memory"),
        dcc.Download(id=ids.DOWNLOAD),
        html.Div(id=ids.EXPORT_DUMMY, style={"display": "none"}),
        header,
        provenance_banner(choices.manifest),
        app_alert,
        html.Main([
            html.Div(browser_page(choices), id=ids.PAGE_BROWSER),
            html.Div(runs_page(choices), id=ids.PAGE_RUNS, style={"display": "none"}),
            html.Div(igv_page(), id=ids.PAGE_IGV, style={"display": "none"}),
            html.Div(mnist_page(), id=ids.PAGE_MNIST, style={"display": "none"}),
        ]),
    ], className="app")


def _field(label: str, control, hint: str | None = None) -> html.Div:
    for_id = control.id if isinstance(control, dcc.Input) else None  # a text/number box: its label names it
    return html.Div([html.Label(label, htmlFor=for_id, className="field-label"), control,
                     html.Div(hint, className="field-hint") if hint else None], className="field")


def controls(choices: Choices) -> html.Aside:
    """Left column: what to explain and how; Run / Cancel with the progress bar."""
    # no min/max/step limits: a value outside them would reach the server as None (silently the default);
    # request_from_form checks every field and says what is wrong
    # no debounce: Dash 4's dcc.Input compares a debounced value with the one of its last blur, so a value set
    # by a callback (a reload, a Runs-page link) and then typed back by the user was silently dropped
    num = {"type": "number", "className": "num-input"}
    return html.Aside([
        html.H5("Explain"),
        _field("Gene", dcc.Dropdown(id=ids.GENE, options=choices.genes, value=choices.default_gene, clearable=False,
                                    placeholder="gene (markers first)")),
        html.Div(id=ids.GENE_INFO, className="gene-info"),
        _field("Cell type", dcc.Dropdown(id=ids.CELL, options=choices.cells, value=choices.default_cell,
                                         clearable=False, placeholder="cell type")),
        _field("Method", dcc.Dropdown(id=ids.METHOD, options=choices.methods, value="grids", clearable=False)),
        html.Div([
            _field("L (subset size)", dcc.Input(id=ids.L, value=10, **num)),
            _field("k (candidates)", dcc.Input(id=ids.K, value=32, **num)),
        ], className="field-row"),
        _field("Perturbation", dcc.RadioItems(id=ids.VALUE, value=0.0, inline=True, className="radio-row", options=[
            {"label": "close peaks", "value": 0.0}, {"label": "open peaks", "value": 1.0}])),
        _field("Goal", dcc.RadioItems(id=ids.SIGN, value=1.0, inline=True, className="radio-row", options=[
            {"label": "lower expression", "value": 1.0}, {"label": "raise", "value": -1.0}])),
        html.Div([
            _field("β (specificity)", dcc.Input(id=ids.BETA, value=0.0, step="any", **num)),
            _field("seed", dcc.Input(id=ids.SEED, value=0, **num)),
        ], className="field-row"),
        _field("cis window (kb)", dcc.Input(id=ids.WINDOW, value=None, step="any", placeholder="genome-wide", **num),
               "only peaks within this distance of the TSS"),
        html.Div([
            html.Button("Run", id=ids.RUN_BTN, n_clicks=0, className="btn btn-primary"),
            html.Button("Cancel", id=ids.CANCEL_BTN, n_clicks=0, disabled=True, className="btn btn-outline-danger"),
        ], className="button-row"),
        html.Div([
            dbc.Progress(id=ids.PROGRESS, value=0, label="", striped=True, animated=True, className="grids-progress"),
            html.Div(id=ids.PROGRESS_TEXT, className="progress-text"),
        ], id=ids.PROGRESS_WRAP, style={"display": "none"}),
        html.Div(id=ids.JOB_ALERT),
    ], className="controls")


def browser_page(choices: Choices) -> html.Div:
    """Controls on the left; locus bar, genome figure, redundancy panel and linkage table on the right."""
    locus_bar = html.Div([
        dcc.Input(id=ids.LOCUS_INPUT, type="text", debounce=True, placeholder="gene or chr2:170,500,000-171,200,000",
                  className="locus-input", n_submit=0),
        html.Button("Go", id=ids.LOCUS_GO, n_clicks=0, className="btn btn-sm btn-secondary"),
        html.Button("Reset view", id=ids.LOCUS_RESET, n_clicks=0, className="btn btn-sm btn-outline-secondary"),
        html.Button("PNG", id=ids.EXPORT_PNG, n_clicks=0, className="btn btn-sm btn-outline-secondary",
                    title="download the current view as PNG"),
        html.Button("SVG", id=ids.EXPORT_SVG, n_clicks=0, className="btn btn-sm btn-outline-secondary",
                    title="download the current view as SVG"),
        # every method to start with, so overlays from a link are valid before the method's own is taken out
        html.Div(dcc.Dropdown(id=ids.OVERLAY, options=choices.methods, value=[], multi=True,
                              placeholder="overlay other methods…"), className="overlay-dropdown"),
    ], className="locus-bar")
    redundancy = html.Div([
        html.Div(dcc.Graph(id=ids.DROP_ONE_GRAPH, figure=empty_figure("drop-one effects appear after a run"),
                           config=SMALL_GRAPH_CONFIG), className="panel"),
        html.Div([
            dcc.RadioItems(id=ids.PAIRWISE_MODE, value="excess", inline=True, className="radio-row small", options=[
                {"label": "redundancy (excess)", "value": "excess"}, {"label": "joint drop", "value": "joint"}]),
            dcc.Graph(id=ids.PAIRWISE_GRAPH, figure=empty_figure("pairwise effects appear after a run"),
                      config=SMALL_GRAPH_CONFIG),
        ], className="panel"),
        html.Div(dcc.Graph(id=ids.TRAJECTORY_GRAPH, figure=empty_figure("objective trajectory"),
                           config=SMALL_GRAPH_CONFIG), className="panel"),
        html.Div(dcc.Graph(id=ids.EFFECT_L_GRAPH, figure=empty_figure("effect vs L"), config=SMALL_GRAPH_CONFIG),
                 className="panel"),
        html.Div(id=ids.HELDOUT_CARD, className="panel"),
    ], className="redundancy-grid")
    table = html.Div([
        html.Div([
            html.H5("Linkage table", className="inline"),
            html.Span("download:", className="muted small"),
            html.Button("TSV", id=ids.DL_TSV, n_clicks=0, className="btn btn-sm btn-outline-primary"),
            html.Button("CSV", id=ids.DL_CSV, n_clicks=0, className="btn btn-sm btn-outline-primary"),
            html.Button("BEDPE", id=ids.DL_BEDPE, n_clicks=0, className="btn btn-sm btn-outline-primary"),
            html.Button("UCSC interact", id=ids.DL_INTERACT, n_clicks=0, className="btn btn-sm btn-outline-primary"),
            html.Button("BED (peaks)", id=ids.DL_BED, n_clicks=0, className="btn btn-sm btn-outline-primary"),
        ], className="table-head"),
        dag.AgGrid(
            id=ids.LINK_TABLE, rowData=[], columnDefs=LINK_COLUMNS, className="ag-theme-alpine grids-grid",
            defaultColDef={"sortable": True, "filter": True, "resizable": True, "floatingFilter": True, "width": 115},
            dashGridOptions={"theme": GRID_THEME, "domLayout": "autoHeight", "animateRows": False, "rowHeight": 28,
                             "headerHeight": 30,
                             "floatingFiltersHeight": 28, "localeText": {"noRowsToShow": "No run shown yet."}},
        ),
    ], className="table-box")
    return html.Div([
        controls(choices),
        html.Section([
            locus_bar,
            html.Div(id=ids.LOCUS_ALERT),
            html.Div(id=ids.RUN_SUMMARY),
            dcc.Loading(dcc.Graph(id=ids.GENOME_GRAPH, config=GRAPH_CONFIG, figure=empty_figure("loading…", 300),
                                  className="genome-graph"), delay_show=600, type="dot",
                        overlay_style=REDRAW_OVERLAY),
            html.Div(id=ids.LISTED_LINKS),
            html.Div(id=ids.OVERLAY_SUMMARY),
            html.H5("Redundancy"),
            redundancy,
            table,
        ], className="view"),
    ], className="browser-layout")


def runs_page(choices: Choices) -> html.Div:
    """Stored results with filters; clicking a row opens it in the browser."""
    return html.Div([
        html.H5("Jobs"),
        html.Div("Searches started from this app, newest first; a running one can be cancelled here, also after the "
                 "tab that started it was closed.", className="muted small"),
        html.Div(id=ids.JOBS_ALERT),
        html.Div(id=ids.JOBS_WRAP),
        dcc.Interval(id=ids.JOBS_TICK, interval=2000, disabled=True),
        html.H5("Stored runs"),
        html.Div([
            dcc.Dropdown(id=ids.RUNS_GENE, options=[o["value"] for o in choices.genes], placeholder="gene", clearable=True),
            dcc.Dropdown(id=ids.RUNS_CELL, options=[o["value"] for o in choices.cells], placeholder="cell type",
                         clearable=True),
            dcc.Dropdown(id=ids.RUNS_METHOD, options=choices.methods, placeholder="method", clearable=True),
            html.Button("Refresh", id=ids.RUNS_REFRESH, n_clicks=0, className="btn btn-sm btn-outline-secondary"),
        ], className="filter-row"),
        html.Div("Click a row to open that run in the browser.", className="muted small"),
        dag.AgGrid(
            id=ids.RUNS_TABLE, rowData=[], columnDefs=RUN_COLUMNS, className="ag-theme-alpine grids-grid runs-grid",
            # flex widths fill the page without sizeColumnsToFit, which warns (#29) while the page is hidden
            defaultColDef={"sortable": True, "filter": True, "resizable": True, "minWidth": 46, "flex": 1,
                           "wrapHeaderText": True, "autoHeaderHeight": True},
            dashGridOptions={"theme": RUNS_GRID_THEME, "domLayout": "autoHeight", "rowHeight": 28, "pagination": True,
                             "paginationPageSize": 25, "tooltipShowDelay": 300,
                             "paginationPageSizeSelector": [25, 50, 100],
                             "localeText": {"noRowsToShow": "No stored runs match."}},
            getRowId="params.data.run_id",
        ),
    ], className="page-pad")


def igv_page() -> html.Div:
    """IGV (dash-bio) on the same locus, with tracks and a reference the app serves itself."""
    return html.Div([
        html.Div(id=ids.IGV_INFO, className="muted small"),
        html.Div(id=ids.IGV_CONTAINER, className="igv-box"),
    ], className="page-pad")
