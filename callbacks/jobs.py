"""Run / Cancel / progress: a Dash background callback around grids_core.jobs.run_explanation.

Flow: Run -> ``submit`` validates the form and computes the run id; a stored result is shown at once,
otherwise the job goes into the session store (it survives a reload) -> ``dispatch`` -> the background
callback runs the engine (or, after a reload, follows the process already running it) with live
progress -> ``finish`` shows the result or the error in place. Cancel sets the cancel token the engine
polls (and Dash also stops the job process).
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from dataclasses import asdict

from dash import Dash, Input, Output, State, callback_context, dcc, no_update
from dash.exceptions import PreventUpdate

from callbacks.jobboard import JobBoard
from callbacks.navigation import encode_query, int_or
from callbacks.state import AppState
from grids_core import jobs
from grids_core.errors import CancelledError, GridsError, SettingsError
from grids_core.explain.gene import ExplainRequest
from layouts import ids
from layouts.components import alert

log = logging.getLogger(__name__)
POLL_S = 0.3


def _int(value, name: str, lo: int = 0) -> int:
    if value in (None, ""):
        raise SettingsError(f"{name} is empty: enter a whole number ≥ {lo}.")
    try:
        out = int(value)
    except (TypeError, ValueError):
        raise SettingsError(f"{name} must be a whole number (got {value!r}).") from None
    if out < lo or float(value) != out:
        raise SettingsError(f"{name} must be a whole number ≥ {lo} (got {value!r}).")
    return out


def request_from_form(gene, cell_type, method, L, k, value, sign, beta, seed, window_kb) -> ExplainRequest:
    """Build and validate the engine request from the form (errors say which field and how to fix it)."""
    if not gene:
        raise SettingsError("Choose a gene first.")
    if not cell_type:
        raise SettingsError("Choose a cell type first.")
    try:
        beta_f = float(beta if beta is not None else 0.0)
    except (TypeError, ValueError):
        raise SettingsError(f"β must be a number ≥ 0 (got {beta!r}).") from None
    window = None
    if window_kb not in (None, ""):
        try:
            window = int(round(float(window_kb) * 1000))
        except (TypeError, ValueError):
            raise SettingsError(f"The cis window must be a number of kb (got {window_kb!r}).") from None
        if window <= 0:  # said here in the form's unit (the engine's own check speaks bp)
            raise SettingsError(f"The cis window must be a positive number of kb, or empty for genome-wide "
                                f"(got {window_kb!r}).")
    req = ExplainRequest(
        gene=str(gene), cell_type=str(cell_type), method=str(method or "grids"), L=_int(L, "L", 1), k=_int(k, "k", 1),
        value=float(value if value is not None else 0.0), sign=float(sign if sign is not None else 1.0), beta=beta_f,
        seed=_int(seed if seed is not None else 0, "seed", 0), window=window,
    )
    req.validate()
    return req


def request_from_dict(d: dict) -> ExplainRequest:
    """Rebuild a request that went through JSON (the browser turns 0.0 into 0; the run key needs the types)."""
    casts = {"L": int, "k": int, "seed": int, "max_sweeps": int, "value": float, "sign": float, "beta": float}
    kw = {k: (casts[k](v) if k in casts and v is not None else v) for k, v in d.items()}
    if kw.get("window") is not None:
        kw["window"] = int(kw["window"])
    return ExplainRequest(**kw)


def resolve_request(state: AppState, req: ExplainRequest) -> str:
    """Canonicalise names like the engine does and return the run id (raises GridsError on unknown names)."""
    c = state.ctx()
    req.gene = c.bundle.gene_name(req.gene)
    req.cell_type = c.bundle.check_cell_type(req.cell_type)
    from callbacks.state import method_registry

    methods = method_registry()
    if req.method not in methods:
        raise SettingsError(f"Unknown method {req.method!r}; available: {', '.join(methods)}.")
    return jobs.request_key(c, req)


def check_fits(state: AppState, req: ExplainRequest) -> None:
    """Refuse, before a job starts, an L that the candidate pool cannot hold (the job would only fail)."""
    from grids_core.explain.gene import check_pool

    check_pool(state.ctx().bundle, req)


def execute_job(state: AppState, board: JobBoard, trigger: dict, report) -> dict:
    """Body of the background callback: run (or follow) the job and say how it ended."""
    rid = trigger["run_id"]
    req = request_from_dict(trigger["request"])
    store = state.ctx().store
    if store.get(rid) is not None:
        return {"run_id": rid, "status": "done", "stored": True}
    rec = board.get(rid)
    board.subscribe(rid, trigger.get("tab"))
    if trigger.get("reattach") and rec and rec.get("state") == "running" and not board.alive(rid):
        # a page load found its job's process gone (out of memory, killed): say so, never recompute silently
        return {"run_id": rid, "status": "failed",
                "message": "the process running this search ended unexpectedly (out of memory or killed); press Run "
                           "to try again"}
    what = {"gene": req.gene, "cell_type": req.cell_type, "method": req.method, "L": req.L}
    while not board.claim(rid, what):
        # another process runs it (the page was reloaded, or another page asked first): follow that process
        while board.alive(rid):
            if board.follower_replaced(rid, trigger.get("tab")):  # this page was reloaded: its new load follows
                return {"run_id": rid, "status": "superseded"}
            rec = board.get(rid) or {}
            report(float(rec.get("frac", 0.0)), str(rec.get("msg", "")))
            time.sleep(POLL_S)
        rec = board.get(rid) or {}
        if store.get(rid) is not None:
            return {"run_id": rid, "status": "done", "stored": False}
        if rec.get("state") in ("cancelled", "failed"):
            return {"run_id": rid, "status": rec["state"], "message": rec.get("msg", "")}
        # the other process died without a result: claim it again and run it here
    last = {"t": 0.0, "c": 0.0}

    def progress(frac: float, msg: str) -> None:
        now = time.monotonic()
        if now - last["t"] >= 0.2 or frac >= 1.0:
            last["t"] = now
            board.progress(rid, frac, msg)
            report(frac, msg)

    def cancel() -> bool:
        now = time.monotonic()
        if now - last["c"] < 0.1:
            return False
        last["c"] = now
        return board.cancel_requested(rid)

    try:
        result, stored = jobs.run_explanation(state.settings, req, progress=progress, cancel=cancel)
    except CancelledError as exc:
        board.finish(rid, "cancelled", str(exc))
        return {"run_id": rid, "status": "cancelled", "message": str(exc)}
    except GridsError as exc:
        board.finish(rid, "failed", str(exc))
        return {"run_id": rid, "status": "failed", "message": str(exc)}
    except Exception as exc:  # noqa: BLE001 - shown in place, logged with the traceback
        log.exception("run %s failed", rid)
        msg = f"The run failed unexpectedly ({type(exc).__name__}: {exc}). See the server log for details."
        board.finish(rid, "failed", msg)
        return {"run_id": rid, "status": "failed", "message": msg}
    board.finish(rid, "done")
    return {"run_id": result.run_id, "status": "done", "stored": stored}


def end_of_job(done: dict, request: dict, gene, cell, method, L) -> tuple:
    """(run to show or no_update, message) when a job ends; the form shows (gene, cell, method, L) now.

    A run is shown only while the form still asks for it: if the user moved to another gene, cell type,
    method or L while it ran, the view stays and the message links to the finished run instead.
    """
    rid = done.get("run_id")
    if done.get("status") == "cancelled":
        return no_update, alert("Run cancelled: the search was stopped and nothing was stored.", color="warning")
    if done.get("status") != "done":
        return no_update, alert(f"Run failed: {done.get('message', 'unknown error')}")
    asked = (request.get("gene"), request.get("cell_type"), request.get("method", "grids"), request.get("L"))
    if asked == (gene, cell, method, int_or(L, None)):
        return rid, alert(f"Run {rid} finished.", color="success", duration=4000)
    href = "/" + encode_query(asked[0], asked[1], asked[2], asked[3], None, rid)
    return no_update, alert([f"Run {rid} ({asked[0]} in {asked[1]}, {asked[2]}, L = {asked[3]}) finished while "
                             "the form asked for another view; ", dcc.Link("show it", href=href), "."],
                            color="info")


def single_thread_after_fork(state: AppState) -> None:
    """In a forked job process, run torch single-threaded (OpenMP pools inherited through fork deadlock), and
    end with the app: a job outliving a killed app kept its listening socket, so the app could not restart."""
    if os.getpid() != state.pid:
        import torch

        torch.set_num_threads(1)
        _die_with_parent()


def _die_with_parent(poll_s: float = 1.0) -> None:
    """End this process soon after its parent (the app) dies: a watcher thread sees it re-parented. (Linux's
    PR_SET_PDEATHSIG would fire when the request thread that forked the job ends, not the app.)"""
    import threading

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(1)

    threading.Thread(target=watch, name="die-with-app", daemon=True).start()


def job_board(state: AppState) -> JobBoard:
    """The job board the web process and the job processes share (under the app's cache directory)."""
    return JobBoard(state.settings.cache_dir / "jobs")


def register(app: Dash, state: AppState, manager, board: JobBoard) -> None:
    """Wire Run, the background job, progress, Cancel and the end-of-job display."""
    form = [State(i, "value") for i in (ids.GENE, ids.CELL, ids.METHOD, ids.L, ids.K, ids.VALUE, ids.SIGN, ids.BETA,
                                        ids.SEED, ids.WINDOW)]

    @app.callback(
        Output(ids.JOB, "data", allow_duplicate=True),
        Output(ids.VIEW_RUN, "data", allow_duplicate=True),
        Output(ids.JOB_ALERT, "children", allow_duplicate=True),
        Input(ids.RUN_BTN, "n_clicks"),
        *form,
        prevent_initial_call=True,
    )
    def submit(n_clicks, *values):
        """Validate; show a stored result at once, else queue the job (kept in the session store)."""
        if not n_clicks:
            raise PreventUpdate
        try:
            req = request_from_form(*values)
            rid = resolve_request(state, req)
        except GridsError as exc:
            return no_update, no_update, alert(str(exc))
        if state.result(rid) is not None:
            return no_update, rid, alert(f"Loaded stored run {rid}.", color="success", duration=4000)
        try:
            check_fits(state, req)
        except GridsError as exc:
            return no_update, no_update, alert(str(exc))
        job = {"run_id": rid, "request": asdict(req), "status": "running", "submitted": time.time(),
               "tab": uuid.uuid4().hex}  # this page (kept over reloads: the store lives in the tab's session)
        return job, no_update, None

    @app.callback(Output(ids.JOB_TRIGGER, "data"), Input(ids.JOB, "data"))
    def dispatch(job):
        """Start (or, after a reload, re-attach to) the background job when the session has one running."""
        if not job or job.get("status") != "running":
            raise PreventUpdate
        return {"run_id": job["run_id"], "request": job["request"], "nonce": time.time(), "tab": job.get("tab"),
                "reattach": callback_context.triggered_id is None}  # a page load, not Run

    @app.callback(
        Output(ids.JOB_DONE, "data"),
        Input(ids.JOB_TRIGGER, "data"),
        background=True,
        manager=manager,
        progress=[Output(ids.PROGRESS, "value"), Output(ids.PROGRESS, "label"), Output(ids.PROGRESS_TEXT, "children")],
        progress_default=[0, "", ""],
        running=[
            (Output(ids.RUN_BTN, "disabled"), True, False),
            (Output(ids.CANCEL_BTN, "disabled"), False, True),
            (Output(ids.PROGRESS_WRAP, "style"), {"display": "block"}, {"display": "none"}),
        ],
        cancel=[Input(ids.CANCEL_BTN, "n_clicks")],
        prevent_initial_call=True,
    )
    def run_job(set_progress, trigger):
        if not trigger:
            raise PreventUpdate
        single_thread_after_fork(state)

        def report(frac: float, msg: str) -> None:
            pct = int(round(100 * max(0.0, min(1.0, frac))))
            set_progress([pct, f"{pct}%", msg])

        report(0.0, "starting…")
        return execute_job(state, board, trigger, report)

    @app.callback(
        Output(ids.VIEW_RUN, "data", allow_duplicate=True),
        Output(ids.JOB, "data", allow_duplicate=True),
        Output(ids.JOB_ALERT, "children", allow_duplicate=True),
        Input(ids.JOB_DONE, "data"),
        State(ids.JOB, "data"),
        *[State(i, "value") for i in (ids.GENE, ids.CELL, ids.METHOD, ids.L)],
        prevent_initial_call=True,
    )
    def finish(done, job, *shown):
        """Show the finished run, or say in place why there is none."""
        if not done:
            raise PreventUpdate
        job = dict(job or {})
        if job.get("run_id") not in (None, done.get("run_id")):
            raise PreventUpdate  # an older job ended after a newer one started
        if done["status"] == "superseded":  # a copy of this page (a duplicated tab) follows the run now
            return no_update, no_update, alert("This run is now followed in another window of this page; reload to "
                                               "follow it here.", color="info")
        job["status"] = done["status"]
        view_run, message = end_of_job(done, job.get("request") or {}, *shown)
        return view_run, job, message

    @app.callback(
        Output(ids.JOB, "data", allow_duplicate=True),
        Output(ids.JOB_ALERT, "children", allow_duplicate=True),
        Input(ids.CANCEL_BTN, "n_clicks"),
        State(ids.JOB, "data"),
        prevent_initial_call=True,
    )
    def cancel(n_clicks, job):
        """Set the cancel token the engine polls; the job ends as 'cancelled'."""
        if not n_clicks or not job or job.get("status") != "running":
            raise PreventUpdate
        job = {**job, "status": "cancelled"}
        if board.others_watching(job["run_id"], job.get("tab")):  # another page shows this run: it goes on for them
            return job, alert("You left this run; another page is following it, so it goes on and will be stored "
                              "(the Runs page can stop it for everyone).", color="warning")
        board.request_cancel(job["run_id"])
        return job, alert("Run cancelled: the search was stopped and nothing was stored.", color="warning")
