"""MNIST page glue: stored runs shown at once, Run as a background job (progress, Cancel), gallery clicks.

Flow (mirrors callbacks/jobs.py): choosing L / methods shows whatever the store holds for them -> Run queues
only what is missing (GRIDS is always part of a run: every Wilcoxon test is against it) -> the background
callback runs ``grids_core.mnist_runs.run_and_store`` with live progress -> ``finish`` re-reads the store.
Cancel stops the job process (Dash terminates it); the engine stores results only once a run is complete.
"""

from __future__ import annotations

import logging
import math
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
from dash import ALL, Dash, Input, Output, State, ctx, no_update
from dash.exceptions import PreventUpdate

from callbacks.jobs import single_thread_after_fork
from callbacks.state import AppState
from grids_core.errors import GridsError
from grids_core.mnist import METHODS, load_classifier, load_digits, log_odds_8, perturb
from grids_core.mnist_runs import classifier_path, load_stored, run_and_store, test_images
from grids_core.results import ExplanationResult
from layouts import ids
from layouts import mnist as lay
from layouts.components import alert
from layouts.redundancy import empty_figure

log = logging.getLogger(__name__)
K, SEED = 32, 0  # the setting: k = 32 candidates, seed 0
N_EXAMPLES = 4  # test images in Figure 2


# ------------------------------------------------------------------------------------------ data access


@lru_cache(maxsize=2)
def test_eights(seed: int = SEED) -> np.ndarray:
    """The test images of 8 [n, 784], in the order of every result's ``delta_phi``."""
    X, y = test_images(seed)
    return np.asarray(X, dtype=np.float32)[np.asarray(y) == 1]


@lru_cache(maxsize=1)
def n_digits() -> int:
    """How many 3s and 8s the experiment draws its split from."""
    return int(len(load_digits()[1]))


@lru_cache(maxsize=4)
def _classifier(path: str, mtime_ns: int):
    return load_classifier(path)[0]


def selected_methods(value: list[str] | None) -> list[str]:
    """Ticked methods in registry order, GRIDS first and always (it is the reference of every test)."""
    ticked = set(value or [])
    return [lay.REFERENCE] + [m for m in METHODS if m in ticked and m != lay.REFERENCE]


def parse_l(value) -> int:
    """The slider's L as an int in [8, 128] (GridsError-free: the slider cannot go elsewhere; clamp anyway)."""
    try:
        L = int(value)
    except (TypeError, ValueError):
        L = lay.L_DEFAULT
    return max(lay.L_MIN, min(lay.L_MAX, L))


def stored_results(home: Path, L: int, methods: list[str]) -> dict[str, ExplanationResult]:
    """The stored result of each method for (L, k, seed), leaving out those not run yet."""
    out = {}
    for m in methods:
        got = load_stored(home, L, K, SEED, (m,))
        if got is not None:
            out[m] = got[m]
    return out


def methods_to_run(stored: dict, methods: list[str]) -> tuple[str, ...]:
    """What a Run must compute: nothing if all are stored, else GRIDS plus the missing baselines."""
    missing = [m for m in methods if m not in stored]
    if not missing:
        return ()
    return (lay.REFERENCE,) + tuple(m for m in missing if m != lay.REFERENCE)


def _sigmoid(phi: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(phi, dtype=float)))


def probabilities(home: Path, images: np.ndarray, subsets: dict[str, list[int]]) -> tuple[np.ndarray, dict]:
    """p(8) of each image before, and after each method's pixels are set to 0 (the stored classifier)."""
    path = classifier_path(home, SEED)
    model = _classifier(str(path), path.stat().st_mtime_ns)
    before = _sigmoid(log_odds_8(model, images))
    after = {m: _sigmoid(log_odds_8(model, perturb(images, np.asarray(s, dtype=np.int64)))) for m, s in subsets.items()}
    return before, after


# ------------------------------------------------------------------------------------------ callbacks


def register(app: Dash, state: AppState) -> None:
    """Wire the MNIST page (the background job uses the app's background-callback manager)."""
    home = Path(state.settings.home)

    @app.callback(
        Output(lay.SUMMARY_ID, "children"),
        Output(lay.VIOLIN_ID, "figure"),
        Output(lay.TABLE_ID, "children"),
        Output(lay.MASKS_ID, "figure"),
        Output(lay.EXAMPLES_ID, "figure"),
        Output(lay.SHOWN_ID, "data"),
        Input(ids.TABS, "value"),
        Input(lay.L_ID, "value"),
        Input(lay.METHODS_ID, "value"),
        Input(lay.REFRESH_ID, "data"),
        State(lay.SHOWN_ID, "data"),
    )
    def show(tab, L_value, methods_value, _refresh, shown_before):
        """Whatever the store holds for this L and these methods, at once; say what is missing. Only while the
        page is open (the other pages do not pay for it), and not again on returning to an unchanged page."""
        L, methods = parse_l(L_value), selected_methods(methods_value)
        if tab != "mnist" or (ctx.triggered_id == ids.TABS and shown_before):  # L and methods change on this page only
            raise PreventUpdate
        try:
            results = stored_results(home, L, methods)
        except GridsError as exc:
            results, problem = {}, str(exc)
        else:
            problem = None
        if lay.REFERENCE not in results:
            first = "" if classifier_path(home, SEED).exists() else "; the first run also trains the classifier, about 30 s"
            msg = problem or f"No stored run for L = {L} yet. Press Run to compute it ({', '.join(methods)}{first})."
            note = alert(msg, color="danger" if problem else "info")
            blank = empty_figure(f"no stored run for L = {L}: press Run", 360)
            return (note, blank, None, empty_figure("masks appear after a run", 210),
                    empty_figure("examples appear after a run", 300), None)
        shown = [m for m in methods if m in results]
        results = {m: results[m] for m in shown}
        rows = lay.table_rows(results)
        grids = results[lay.REFERENCE]
        lines = lay.comparison_text(rows, n_digits(), grids.heldout.get("test_accuracy"), L)
        missing = [m for m in methods if m not in results]
        summary = [lay.summary_block(lines)]
        if missing:
            summary.append(alert(f"Not stored yet for L = {L}: {', '.join(missing)}. Press Run to add them.",
                                 color="info"))
        eights = test_eights()
        subsets = {m: list(r.subset) for m, r in results.items()}
        violin = lay.delta_phi_figure({m: r.heldout.get("delta_phi", []) for m, r in results.items()}, L)
        masks = lay.global_masks_figure(subsets, background=eights.mean(axis=0))
        examples_x = eights[:N_EXAMPLES]
        try:
            p0, p1 = probabilities(home, examples_x, subsets)
        except (GridsError, OSError) as exc:  # results without their classifier: show the images anyway
            log.warning("no probabilities for the examples: %s", exc)
            p0, p1 = None, None
        examples = lay.masked_examples_figure(examples_x, subsets, p0, p1,
                                              labels=[f"test 8 #{i}" for i in range(len(examples_x))])
        return summary, violin, lay.pvalue_table(rows), masks, examples, {"L": L, "methods": shown}

    @app.callback(
        Output(lay.GALLERY_ID, "children"),
        Input(ids.TABS, "value"),
        State(lay.GALLERY_ID, "children"),
        State(lay.SELECTED_ID, "data"),
    )
    def fill_gallery(tab, children, selected):
        """Thumbnails of the test 8s, built once, when the MNIST page is first opened."""
        if tab != "mnist" or children:
            raise PreventUpdate
        return lay.gallery(test_eights(), selected=selected or 0)

    @app.callback(
        Output(lay.SELECTED_ID, "data"),
        Output({"type": lay.THUMB_TYPE, "index": ALL}, "style"),
        Input({"type": lay.THUMB_TYPE, "index": ALL}, "n_clicks"),
        prevent_initial_call=True,
    )
    def select(clicks):
        """A click on a thumbnail selects that test image (and outlines it)."""
        trig = ctx.triggered_id
        if not isinstance(trig, dict) or not ctx.triggered or not ctx.triggered[0].get("value"):
            raise PreventUpdate  # thumbnails being created, not clicked
        i = int(trig["index"])
        styles = [lay.THUMB_SELECTED if j == i else lay.THUMB_STYLE for j in range(len(clicks))]
        return i, styles

    @app.callback(
        Output(lay.DETAIL_ID, "figure"),
        Input(lay.SELECTED_ID, "data"),
        Input(lay.SHOWN_ID, "data"),
    )
    def detail(selected, shown):
        """The selected test 8, masked by every method shown, with p(8) before -> after."""
        if not shown:
            return empty_figure("pick an image after a run", 200)
        eights = test_eights()
        i = int(selected or 0)
        if not 0 <= i < len(eights):
            return empty_figure(f"no test image #{i}", 200)
        try:
            results = stored_results(home, int(shown["L"]), list(shown["methods"]))
            subsets = {m: list(r.subset) for m, r in results.items()}
            p0, p1 = probabilities(home, eights[i : i + 1], subsets)
        except (GridsError, OSError) as exc:
            return empty_figure(f"cannot show test 8 #{i}: {exc}", 200)
        return lay.masked_detail_figure(eights[i], subsets, float(p0[0]), {m: float(v[0]) for m, v in p1.items()},
                                        label=f"test 8 #{i}")

    @app.callback(
        Output(lay.TRIGGER_ID, "data"),
        Output(lay.REFRESH_ID, "data", allow_duplicate=True),
        Output(lay.ALERT_ID, "children", allow_duplicate=True),
        Input(lay.RUN_ID, "n_clicks"),
        State(lay.L_ID, "value"),
        State(lay.METHODS_ID, "value"),
        prevent_initial_call=True,
    )
    def submit(n_clicks, L_value, methods_value):
        """Stored for this L and these methods: show it at once; otherwise start a run of what is missing."""
        if not n_clicks:
            raise PreventUpdate
        L, methods = parse_l(L_value), selected_methods(methods_value)
        try:
            todo = methods_to_run(stored_results(home, L, methods), methods)
        except GridsError as exc:
            return no_update, no_update, alert(str(exc))
        if not todo:
            return no_update, time.time(), alert(f"Stored run for L = {L} shown.", color="success", duration=4000)
        return {"L": L, "methods": list(todo), "nonce": time.time()}, no_update, None

    @app.callback(
        Output(lay.DONE_ID, "data"),
        Input(lay.TRIGGER_ID, "data"),
        background=True,
        progress=[Output(lay.PROGRESS_ID, "value"), Output(lay.PROGRESS_ID, "label"),
                  Output(lay.PROGRESS_TEXT_ID, "children")],
        progress_default=[0, "", ""],
        running=[
            (Output(lay.RUN_ID, "disabled"), True, False),
            (Output(lay.CANCEL_ID, "disabled"), False, True),
            (Output(lay.L_ID, "disabled"), True, False),
            (Output(lay.PROGRESS_WRAP_ID, "style"), {"display": "block"}, {"display": "none"}),
        ],
        cancel=[Input(lay.CANCEL_ID, "n_clicks")],
        prevent_initial_call=True,
    )
    def run_job(set_progress, trigger):
        """Run (or load) the experiment for the missing methods, reporting progress."""
        if not trigger:
            raise PreventUpdate
        single_thread_after_fork(state)
        last = {"t": 0.0}

        def report(frac: float, msg: str) -> None:
            now = time.monotonic()
            if now - last["t"] >= 0.2 or frac >= 1.0:
                last["t"] = now
                pct = int(round(100 * max(0.0, min(1.0, float(frac)))))
                set_progress([pct, f"{pct}%", msg])

        report(0.0, "starting…")
        L, methods = int(trigger["L"]), tuple(trigger["methods"])
        t0 = time.perf_counter()
        try:
            run_and_store(home, L=L, k=K, seed=SEED, methods=methods, progress=report)
        except GridsError as exc:
            return {"status": "failed", "message": str(exc), "L": L, "nonce": trigger.get("nonce")}
        except Exception as exc:  # noqa: BLE001 - shown in place, logged with the traceback
            log.exception("MNIST run failed")
            return {"status": "failed", "L": L, "nonce": trigger.get("nonce"),
                    "message": f"The run failed unexpectedly ({type(exc).__name__}: {exc}). See the server log."}
        return {"status": "done", "L": L, "methods": list(methods), "seconds": time.perf_counter() - t0,
                "nonce": trigger.get("nonce")}

    @app.callback(
        Output(lay.REFRESH_ID, "data", allow_duplicate=True),
        Output(lay.ALERT_ID, "children", allow_duplicate=True),
        Input(lay.DONE_ID, "data"),
        prevent_initial_call=True,
    )
    def finish(done):
        """Show the fresh results, or say in place why there are none."""
        if not done:
            raise PreventUpdate
        if done.get("status") != "done":
            return no_update, alert(f"MNIST run failed: {done.get('message', 'unknown error')}")
        secs = done.get("seconds")
        took = f" in {secs:.0f} s" if isinstance(secs, int | float) and math.isfinite(secs) else ""
        return time.time(), alert(f"Run for L = {done['L']} ({', '.join(done.get('methods', []))}) finished{took}.",
                                  color="success", duration=5000)

    @app.callback(
        Output(lay.ALERT_ID, "children", allow_duplicate=True),
        Input(lay.CANCEL_ID, "n_clicks"),
        prevent_initial_call=True,
    )
    def cancelled(n_clicks):
        """Cancel stops the job process; nothing of the interrupted run is stored."""
        if not n_clicks:
            raise PreventUpdate
        return alert("MNIST run cancelled: nothing of it was stored.", color="warning")
