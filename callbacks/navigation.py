"""Pages and URL state: tab <-> path, and gene / cell type / method / L / locus / run / overlays <-> query string."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode

from dash import Dash, Input, Output, State, ctx, no_update

from callbacks.state import AppState, method_registry
from grids_core.errors import GridsError
from layouts import ids
from layouts.components import alert
from layouts.pages import PAGES

HIDDEN, SHOWN = {"display": "none"}, {"display": "block"}
FORM_SETTINGS = (ids.K, ids.VALUE, ids.SIGN, ids.BETA, ids.SEED, ids.WINDOW)  # the form fields the URL does not carry
PAGE_IDS = {"browser": ids.PAGE_BROWSER, "runs": ids.PAGE_RUNS, "igv": ids.PAGE_IGV, "mnist": ids.PAGE_MNIST}


def page_of(pathname: str | None) -> str:
    """Tab value for a path ('/', '/runs', '/igv', '/mnist'; anything else is the browser)."""
    path = (pathname or "/").rstrip("/") or "/"
    for page, p in PAGES.items():
        if p == path:
            return page
    return "browser"


def encode_query(gene=None, cell=None, method=None, L=None, locus=None, run=None, overlay=None) -> str:
    """Bookmarkable query string of the browser view (empty values left out; overlay methods comma-joined)."""
    overlay = ",".join(overlay) if isinstance(overlay, list | tuple) else overlay
    pairs = [(k, v) for k, v in (("gene", gene), ("cell", cell), ("method", method), ("L", L), ("locus", locus),
                                 ("run", run), ("overlay", overlay)) if v not in (None, "")]
    return ("?" + urlencode(pairs, safe=":,")) if pairs else ""


def decode_query(search: str | None) -> dict[str, str]:
    """Query string -> {key: first value}."""
    q = parse_qs((search or "").lstrip("?"), keep_blank_values=False)
    return {k: v[0] for k, v in q.items() if v}


def overlay_of(text: str | None, method: str | None) -> list[str]:
    """Overlay methods named in a query string value: known methods other than the view's own, in order, once."""
    known, out = method_registry(), []
    for m in (text or "").split(","):
        m = m.strip()
        if m and m in known and m != (method or "grids") and m not in out:
            out.append(m)
    return out


def int_or(value, default):
    """``int(value)``, or ``default`` when it is not a number."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def register(app: Dash, state: AppState, defaults: tuple[str | None, str | None]) -> None:
    """Wire the tab router and the URL <-> controls synchronisation."""

    @app.callback(
        Output(ids.TABS, "value"),
        Output(ids.URL, "pathname"),
        *[Output(pid, "style") for pid in PAGE_IDS.values()],
        Input(ids.TABS, "value"),
        Input(ids.URL, "pathname"),
    )
    def route(tab, pathname):
        """A tab click sets the path; a path (bookmark, back button) selects the tab."""
        if ctx.triggered_id == ids.TABS:
            page, path = tab, PAGES.get(tab, "/")
            path = path if path != (pathname or "/") else no_update
        else:  # an unknown path (a typo, an old bookmark) opens the Browser at its own path
            page = page_of(pathname)
            path = no_update if (pathname or "/").rstrip("/") in ("", *PAGES.values()) else "/"
        styles = [SHOWN if p == page else HIDDEN for p in PAGE_IDS]
        return (page if page != tab else no_update), path, *styles

    form_outputs = [Output(i, "value") for i in (ids.GENE, ids.CELL, ids.METHOD, ids.L, ids.K, ids.VALUE, ids.SIGN,
                                                  ids.BETA, ids.SEED, ids.WINDOW)]

    @app.callback(
        Output(ids.URL, "search"),
        *form_outputs,
        Output(ids.VIEW_RUN, "data", allow_duplicate=True),
        Output(ids.LOCUS, "data", allow_duplicate=True),
        Output(ids.APP_ALERT, "children", allow_duplicate=True),
        Output(ids.OVERLAY, "value", allow_duplicate=True),
        Input(ids.URL, "search"),
        Input(ids.GENE, "value"),
        Input(ids.CELL, "value"),
        Input(ids.METHOD, "value"),
        Input(ids.L, "value"),
        Input(ids.VIEW_RUN, "data"),
        Input(ids.LOCUS, "data"),
        Input(ids.OVERLAY, "value"),
        *[Input(i, "value") for i in FORM_SETTINGS],
        State(ids.JOB, "data"),
        prevent_initial_call="initial_duplicate",
    )
    def sync(search, gene, cell, method, L, run, locus, overlay, k, value, sign, beta, seed, window, job):
        """Read the URL on load / navigation; otherwise write the view into it and pick the stored run to show."""
        trig = ctx.triggered_id
        n_form = len(form_outputs)
        keep = [no_update] * n_form
        rest = (k, value, sign, beta, seed, window)  # the form fields the URL does not carry
        if trig in (None, ids.URL):
            problem = _unknown_names(state, decode_query(search))
            if problem:  # a hand-edited or stale bookmark: say what was wrong, show the default view
                *view, over = _from_url(state, "", None, None, method, L, rest, defaults, n_form, None)
                return (*view, alert(problem), over)
            *view, over = _from_url(state, search, gene, cell, method, L, rest, defaults, n_form, job)
            q = _canonical_names(state, decode_query(search))
            return (*view, _missing_run(q, view[-2]) or _other_run(state, q, view[-2]) or no_update, over)
        overlay_out = no_update
        if trig in (ids.GENE, ids.CELL, ids.METHOD, ids.L, *FORM_SETTINGS):  # the run of exactly these settings
            run = form_run(state, gene, cell, method, L, *rest)
            if trig == ids.GENE:
                locus = None
            if method in (overlay or []):  # the view's own method is no overlay
                overlay = overlay_out = [m for m in overlay if m != method]
        new = encode_query(gene, cell, method, L, locus, run, overlay)
        search_out = new if new != (search or "") else no_update
        if trig in (ids.VIEW_RUN, ids.LOCUS, ids.OVERLAY):
            return search_out, *keep, no_update, no_update, no_update, no_update
        return search_out, *keep, run, locus, no_update, overlay_out


def _unknown_names(state: AppState, q: dict[str, str]) -> str | None:
    """Message for a gene / cell type / method in the URL that this bundle does not have (else None)."""
    try:
        b = state.ctx().bundle
        if q.get("gene"):
            b.gene_index(q["gene"])
        if q.get("cell"):
            b.check_cell_type(q["cell"])
    except GridsError as exc:
        return f"{exc} (from the link's query string; showing the default view)"
    methods = method_registry()
    if q.get("method") and q["method"] not in methods:
        return f"Unknown method {q['method']!r} in the link; available: {', '.join(methods)}."
    return None


def _canonical_names(state: AppState, q: dict[str, str]) -> dict[str, str]:
    """The query with the bundle's own gene and cell-type names (a link may give a gene id or another case, as the
    CLI accepts; the form's dropdowns hold the bundle's names). Unknown names are left for _unknown_names."""
    try:
        b = state.ctx().bundle
        if q.get("gene"):
            q = {**q, "gene": b.gene_name(q["gene"])}
        if q.get("cell"):
            q = {**q, "cell": b.check_cell_type(q["cell"])}
    except GridsError:
        pass
    return q


def _other_run(state: AppState, q: dict[str, str], shown: str | None):
    """An alert when the link's run is of another gene or cell type than the link also names (the run wins)."""
    res = state.result(shown) if shown and q.get("run") == shown else None
    named = [(k, q[k], v) for k, v in (("gene", res.gene if res else None), ("cell", res.cell_type if res else None))
             if q.get(k) and v and q[k] != v]
    if not named:
        return None
    said = " and ".join(f"{k} {linked}" for k, linked, _ in named)
    return alert(f"The link's run {shown} is {res.gene} in {res.cell_type}; it is shown, although the link also names "
                 f"{said}.", color="warning")


def _missing_run(q: dict[str, str], shown: str | None):
    """An alert when the link names a run this bundle's store does not hold (else None)."""
    wanted = q.get("run")
    if not wanted or wanted == shown:  # _from_url shows the linked run whenever the store has it
        return None
    instead = f"showing the newest stored run of the view ({shown})" if shown else "no run is shown"
    return alert(f"Run {wanted} from the link is not stored for this bundle; {instead}.", color="warning")


def _form_of(settings: dict, gene: str, cell: str, method: str) -> list:
    """Form values (gene, cell, method, L, k, value, sign, beta, seed, window kb) of a run's settings."""
    window = settings.get("window")
    return [gene, cell, method, settings.get("L"), settings.get("k"), float(settings.get("value", 0.0)),
            float(settings.get("sign", 1.0)), settings.get("beta"), settings.get("seed"),
            (int(window) / 1000 if window else None)]


def form_run(state: AppState, gene, cell, method, L, k, value, sign, beta, seed, window) -> str | None:
    """The stored run that Run would show for exactly these form values (None: not stored, or the form is invalid),
    so a view never shows a run of other settings (direction, k, beta, ...) than its form."""
    from callbacks.jobs import request_from_form, resolve_request  # jobs imports this module

    try:
        rid = resolve_request(state, request_from_form(gene, cell, method, L, k, value, sign, beta, seed, window))
        return rid if state.result(rid) is not None else None
    except GridsError:
        return None


def _from_url(state: AppState, search, gene, cell, method, L, rest, defaults, n_form, job=None):
    """Controls, run, locus and overlay methods from a query string (bookmark, Runs page link, reload).

    A link with ``run`` shows that run and its settings; without it, the run the form's settings name (if
    stored): the URL's gene, cell type, method and L with the form's other fields.
    """
    q = _canonical_names(state, decode_query(search))
    req = (job or {}).get("request") or {}
    if (job or {}).get("status") == "running" and not q.get("run") and req.get("gene") == q.get("gene", req.get("gene")) \
            and req.get("cell_type") == q.get("cell", req.get("cell_type")):
        # reload while a job runs: the form shows what is running (the run itself appears when it ends)
        form = _form_of(req, req["gene"], req["cell_type"], req.get("method", "grids"))
        locus, over = q.get("locus") or None, overlay_of(q.get("overlay"), form[2])
        new = encode_query(form[0], form[1], form[2], form[3], locus, None, over)
        return (new if new != (search or "") else no_update), *form, None, locus, over
    if not q:
        q = {k: v for k, v in (("gene", gene or defaults[0]), ("cell", cell or defaults[1])) if v}
    try:
        res = state.result(q.get("run"))
    except GridsError:  # e.g. an unreadable store: the page still opens, without the run
        res = None
    if res is not None:
        form = _form_of(res.settings, res.gene, res.cell_type, res.method)
        run = res.run_id
    else:
        g, c = q.get("gene", gene), q.get("cell", cell)
        m = q.get("method", method or "grids")
        lval = int_or(q.get("L"), L)
        form = [g, c, m, lval] + [no_update] * (n_form - 4)
        run = form_run(state, g, c, m, lval, *rest)
    locus, over = q.get("locus") or None, overlay_of(q.get("overlay"), form[2])
    new = encode_query(form[0], form[1], form[2], form[3], locus, run, over)
    return (new if new != (search or "") else no_update), *form, run, locus, over
