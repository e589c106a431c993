"""Runs page: stored results, filtered; clicking a row opens it in the browser."""

from __future__ import annotations

from dash import Dash, Input, Output, State, no_update
from dash.exceptions import PreventUpdate

from callbacks.navigation import encode_query
from callbacks.state import AppState
from grids_core.errors import GridsError
from layouts import ids


def run_rows(state: AppState, gene=None, cell=None, method=None) -> list[dict]:
    """Summaries of stored runs, newest first; ``model`` says whether the current surrogate made each one
    (runs of an earlier model of the bundle stay listed, marked, instead of looking like this model's)."""
    c = state.ctx()
    rows = c.store.list(gene=gene or None, cell_type=cell or None, method=method or None)
    current = c.model.model_id
    return [{**r, "model": "current" if r["model_id"] == current else f"earlier ({r['model_id'][:8]})",
             "open": "open →"} for r in rows]


def register(app: Dash, state: AppState) -> None:
    """Wire the Runs page."""

    @app.callback(
        Output(ids.RUNS_TABLE, "rowData"),
        Input(ids.RUNS_GENE, "value"),
        Input(ids.RUNS_CELL, "value"),
        Input(ids.RUNS_METHOD, "value"),
        Input(ids.RUNS_REFRESH, "n_clicks"),
        Input(ids.TABS, "value"),
        Input(ids.VIEW_RUN, "data"),
    )
    def list_runs(gene, cell, method, _refresh, tab, _run):
        if tab != "runs":
            raise PreventUpdate
        try:
            return run_rows(state, gene, cell, method)
        except GridsError:
            return []

    @app.callback(
        Output(ids.URL, "pathname", allow_duplicate=True),
        Output(ids.URL, "search", allow_duplicate=True),
        Input(ids.RUNS_TABLE, "cellClicked"),
        State(ids.RUNS_TABLE, "rowData"),
        prevent_initial_call=True,
    )
    def open_run(cell, rows):
        """Open the clicked run in the browser page (its settings fill the form)."""
        if not cell:
            raise PreventUpdate
        run_id = cell.get("rowId")
        row = next((r for r in rows or [] if r.get("run_id") == run_id), None)
        if row is None:
            return no_update, no_update
        return "/", encode_query(row["gene"], row["cell_type"], row["method"], row.get("L"), None, run_id)
