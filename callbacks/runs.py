"""Runs page: stored results, filtered; clicking a row opens it in the browser."""

from __future__ import annotations

import threading
import time

from dash import ALL, Dash, Input, Output, State, ctx, no_update
from dash.exceptions import PreventUpdate

from callbacks.jobboard import JobBoard
from callbacks.navigation import encode_query
from callbacks.state import AppState
from grids_core import links
from grids_core.errors import GridsError
from grids_core.links import mode_label
from layouts import ids
from layouts.components import alert, jobs_table

# settings family (a hash of the model and every setting but L and seed, see settings_family) -> the settings
# the Runs page shows; a family never changes, so one stored payload per family is read once per process
_FAMILY_SETTINGS: dict[str, dict] = {}
_FAMILY_LOCK = threading.Lock()
_FAMILY_MAX = 4096


def direction_label(settings: dict) -> str:
    """'close → lower' etc. (as `grids runs` words it), plus the non-default search options ('· faithful')."""
    mode = mode_label(settings)
    return links.direction_label(settings) + (" · " + mode.replace(", ", " · ") if mode else "")


def settings_columns(settings: dict) -> dict:
    """The columns that tell runs of one gene/type/method apart besides L and seed."""
    window = settings.get("window")
    return {"direction": direction_label(settings), "k": settings.get("k"), "beta": settings.get("beta"),
            "window_kb": None if window in (None, 0) else float(window) / 1000}


def _family_columns(store, row: dict) -> dict:
    """Settings columns of a listed run: cached per settings family, else read from its stored payload."""
    key = row.get("family") or f"run:{row['run_id']}"
    with _FAMILY_LOCK:
        hit = _FAMILY_SETTINGS.get(key)
    if hit is not None:
        return hit
    res = store.get(row["run_id"])
    if res is None:  # deleted since it was listed
        return {"direction": None, "k": None, "beta": None, "window_kb": None}
    cols = settings_columns(res.settings)
    with _FAMILY_LOCK:
        if len(_FAMILY_SETTINGS) >= _FAMILY_MAX:
            _FAMILY_SETTINGS.clear()
        _FAMILY_SETTINGS[key] = cols
    return cols


def run_rows(state: AppState, gene=None, cell=None, method=None) -> list[dict]:
    """Summaries of stored runs, newest first, with the settings that tell them apart (direction, k, β, cis
    window); ``model`` says whether the current surrogate made each one (runs of an earlier model of the bundle
    stay listed, marked, instead of looking like this model's)."""
    c = state.ctx()
    rows = c.store.list(gene=gene or None, cell_type=cell or None, method=method or None)
    current = c.model.model_id
    return [{**r, **_family_columns(c.store, r),
             "model": "current" if r["model_id"] == current else f"earlier ({r['model_id'][:8]})",
             "open": "open →"} for r in rows]


JOBS_SHOWN = 20
JOBS_RECENT_S = 24 * 3600  # ended jobs stay listed this long


def listed_jobs(board: JobBoard, now: float) -> list[dict]:
    """Jobs for the list: every running one, and those that ended in the last day (newest first)."""
    rows = [r for r in board.jobs(limit=200)
            if r["alive"] or now - float(r.get("t") or 0) < JOBS_RECENT_S]
    return rows[:JOBS_SHOWN]


def _open_href(row: dict) -> str:
    what = row.get("what") or {}
    return "/" + encode_query(what.get("gene"), what.get("cell_type"), what.get("method"), what.get("L"), None,
                              row["run_id"])


def register(app: Dash, state: AppState, board: JobBoard) -> None:
    """Wire the Runs page: the job list and the stored runs."""

    @app.callback(
        Output(ids.JOBS_WRAP, "children"),
        Output(ids.JOBS_TICK, "disabled"),
        Input(ids.JOBS_TICK, "n_intervals"),
        Input(ids.TABS, "value"),
        Input(ids.RUNS_REFRESH, "n_clicks"),
        Input(ids.JOBS_ALERT, "children"),
    )
    def list_jobs(_tick, tab, _refresh, _alert):
        """Refresh the job list every 2 s while the Runs page is shown (the timer stops on other pages)."""
        if tab != "runs":
            return no_update, True
        now = time.time()
        return jobs_table(listed_jobs(board, now), now, _open_href), False

    @app.callback(
        Output(ids.JOBS_ALERT, "children"),
        Input({"type": "job-cancel", "run": ALL}, "n_clicks"),
        prevent_initial_call=True,
    )
    def cancel_job(clicks):
        """Cancel a listed job: the engine stops at its next check, wherever it runs."""
        trig = ctx.triggered_id
        if not isinstance(trig, dict) or not any(clicks or []) or not ctx.triggered[0].get("value"):
            raise PreventUpdate  # buttons (re)drawn by the list, not clicked
        run_id = trig["run"]
        if not board.alive(run_id):
            return alert(f"Run {run_id[:12]} is no longer running.", color="info", duration=4000)
        board.request_cancel(run_id)
        return alert(f"Cancel sent to run {run_id[:12]}: it stops at its next check and stores nothing.",
                     color="warning", duration=6000)

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
