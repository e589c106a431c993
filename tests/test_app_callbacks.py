"""Dashboard glue without a browser: job running/cancel/follow, view assembly, URL state, IGV routes."""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
from dataclasses import asdict

import pytest
from dash import dcc, no_update

from callbacks.browser import build_view, locus_from_relayout
from callbacks.igv import fai_text, fasta_bytes, fasta_layout, genes_bed12
from callbacks.jobboard import JobBoard
from callbacks.jobs import (
    check_fits,
    end_of_job,
    execute_job,
    request_from_dict,
    request_from_form,
    resolve_request,
)
from callbacks.navigation import _other_run, decode_query, encode_query, form_run, page_of
from callbacks.state import AppState, method_registry
from grids_core import jobs
from grids_core.errors import GridsError, SettingsError
from grids_core.settings import Settings
from layouts.components import marker_hint, method_options
from layouts.genome import Locus

GENE, CELL = "GAD1", "VIP"
FORM = (GENE, CELL, "grids", 5, 16, 0.0, 1.0, 0.0, 0, None)


@pytest.fixture(scope="module")
def settings(small_bundle_dir, tmp_path_factory) -> Settings:
    """A private copy of the small bundle + model, so this module's results store is its own."""
    dst = tmp_path_factory.mktemp("appcb") / "bundle"
    shutil.copytree(small_bundle_dir, dst, ignore=shutil.ignore_patterns("results.sqlite*", "cache"))
    return Settings(bundle_dir=dst)


@pytest.fixture(scope="module")
def state(settings) -> AppState:
    return AppState(settings)


@pytest.fixture(scope="module")
def board(settings) -> JobBoard:
    return JobBoard(settings.cache_dir / "jobs")


@pytest.fixture(scope="module")
def done_run(state, board) -> str:
    """One real GRIDS run on the small bundle, through the job body the background callback uses."""
    req = request_from_form(*FORM)
    rid = resolve_request(state, req)
    seen: list[float] = []
    out = execute_job(state, board, {"run_id": rid, "request": json.loads(json.dumps(asdict(req)))},
                      lambda f, m: seen.append(f))
    assert out == {"run_id": rid, "status": "done", "stored": False}
    assert seen and seen[-1] == pytest.approx(1.0)
    assert board.get(rid)["state"] == "done"
    return rid


# ---- the form --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("form", "words"),
    [
        ((None, CELL, "grids", 5, 16, 0.0, 1.0, 0.0, 0, None), "Choose a gene"),
        ((GENE, None, "grids", 5, 16, 0.0, 1.0, 0.0, 0, None), "Choose a cell type"),
        ((GENE, CELL, "grids", 0, 16, 0.0, 1.0, 0.0, 0, None), "L must be"),
        ((GENE, CELL, "grids", "x", 16, 0.0, 1.0, 0.0, 0, None), "L must be a whole number"),
        ((GENE, CELL, "grids", 2.5, 16, 0.0, 1.0, 0.0, 0, None), "L must be a whole number"),
        ((GENE, CELL, "grids", 5, 16, 0.0, 1.0, -1.0, 0, None), "β (beta, the specificity weight) must be a number from 0 to 100"),
        ((GENE, CELL, "grids", 5, 16, 0.0, 1.0, 0.0, 0, "far"), "cis window"),
        ((GENE, CELL, "grids", 5, 16, 0.0, 1.0, 0.0, 0, -5), "positive number of kb"),  # the form's unit, not bp
    ],
)
def test_form_errors_say_which_field(form, words):
    with pytest.raises(SettingsError, match=re.escape(words)):
        request_from_form(*form)


def test_unknown_names_are_gridserrors(state):
    with pytest.raises(GridsError, match="Did you mean"):
        resolve_request(state, request_from_form("GAD", CELL, "grids", 5, 16, 0.0, 1.0, 0.0, 0, None))
    with pytest.raises(GridsError, match="Unknown method"):
        resolve_request(state, request_from_form(GENE, CELL, "nope", 5, 16, 0.0, 1.0, 0.0, 0, None))


def test_request_survives_json_with_the_same_run_key(state):
    """The browser turns 0.0 into 0: the job must still compute (and store under) the key we show."""
    req = request_from_form(*FORM)
    key = resolve_request(state, req)
    back = request_from_dict(json.loads(json.dumps(asdict(req))))
    assert jobs.request_key(state.ctx(), back) == key
    assert resolve_request(state, request_from_form("gad1", CELL, "grids", "5", 16, 0, 1, 0, 0, None)) == key


# ---- jobs ------------------------------------------------------------------------------------------
def test_stored_run_is_returned_at_once(state, board, done_run):
    out = execute_job(state, board, {"run_id": done_run, "request": asdict(request_from_form(*FORM))}, lambda f, m: None)
    assert out == {"run_id": done_run, "status": "done", "stored": True}


def test_cancel_token_stops_the_engine(state, board):
    req = request_from_form(GENE, CELL, "grids", 6, 16, 0.0, 1.0, 0.0, 3, None)
    rid = resolve_request(state, req)
    out = execute_job(state, board, {"run_id": rid, "request": asdict(req)}, lambda f, m: board.request_cancel(rid))
    assert out["status"] == "cancelled"
    assert board.get(rid)["state"] == "cancelled"
    assert state.ctx().store.get(rid) is None  # nothing half-done is stored


def test_reloaded_page_follows_the_running_job(state, board):
    """After a reload the background callback follows the process already running the job."""
    req = request_from_form(GENE, CELL, "grids", 7, 16, 0.0, 1.0, 0.0, 4, None)
    rid = resolve_request(state, req)
    board._put(rid, state="running", frac=0.4, msg="sweep 2", pid=os.getppid(), host=__import__("socket").gethostname())
    seen: list[tuple[float, str]] = []

    def other_process_ends():
        time.sleep(0.8)
        board.finish(rid, "cancelled", "GRIDS search cancelled by the user.")

    t = threading.Thread(target=other_process_ends)
    t.start()
    out = execute_job(state, board, {"run_id": rid, "request": asdict(req)}, lambda f, m: seen.append((f, m)))
    t.join()
    assert out["status"] == "cancelled"
    assert (0.4, "sweep 2") in seen


def test_failed_job_reports_in_place(state, board):
    req = request_from_form(GENE, CELL, "grids", 40, 16, 0.0, 1.0, 0.0, 0, 1)  # 1 kb window: fewer than 40 peaks
    rid = resolve_request(state, req)
    out = execute_job(state, board, {"run_id": rid, "request": asdict(req)}, lambda f, m: None)
    assert out["status"] == "failed" and board.get(rid)["state"] == "failed"
    assert "candidate pool" in out["message"] and "Lower L" in out["message"] and "Traceback" not in out["message"]
    assert state.ctx().store.get(rid) is None


def test_finished_run_is_shown_only_while_the_form_asks_for_it(done_run):
    """Moving to another gene while a job runs keeps that view; the message links to the finished run."""
    req = asdict(request_from_form(*FORM))
    done = {"run_id": done_run, "status": "done"}
    shown, msg = end_of_job(done, req, GENE, CELL, "grids", 5.0)
    assert shown == done_run and done_run in str(msg.children)
    shown, msg = end_of_job(done, req, "SST", CELL, "grids", 5)
    assert shown is no_update
    link = [c for c in msg.children if isinstance(c, dcc.Link)]
    assert link and decode_query(link[0].href.split("?", 1)[1]) == {
        "gene": GENE, "cell": CELL, "method": "grids", "L": "5", "run": done_run}
    shown, _ = end_of_job(done, req, GENE, CELL, "grids", 6)  # L changed: the run would not match the form
    assert shown is no_update
    shown, msg = end_of_job({"run_id": done_run, "status": "failed", "message": "boom"}, req, GENE, CELL, "grids", 5)
    assert shown is no_update and "boom" in msg.children


def test_method_options_are_short_and_keep_the_full_description():
    registry = method_registry()
    opts = method_options(registry, exclude="grids")
    assert [o["value"] for o in opts] == [m for m in registry if m != "grids"]
    for o in opts:
        assert o["label"].startswith(o["value"] + " — ") and len(o["label"]) <= 45  # fits the dropdown
        assert o["title"] == registry[o["value"]]


def test_marker_hint_only_off_the_genes_marker_pairs(state):
    markers = state.ctx().bundle.marker_pairs()
    cells = [ct for ct, g in markers if g == GENE]
    assert CELL in cells and marker_hint(GENE, CELL, markers) is None
    other = next(ct for ct in state.ctx().bundle.cell_types if ct not in cells)
    hint = marker_hint(GENE, other, markers).children
    assert all(ct in hint for ct in cells) and f"{other} is not one of its marker pairs" in hint
    assert marker_hint("NOT_A_MARKER", other, markers) is None


def test_a_view_shows_only_the_run_of_its_own_settings(state, done_run):
    """A bookmark without run= (or a gene switch) shows the stored run the form's settings name, not the newest
    run of the gene with other settings (a review saw the Goal flip to 'raise' on the landing page)."""
    assert form_run(state, *FORM) == done_run
    gene, cell, method, L, k, value, sign, beta, seed, window = FORM
    assert form_run(state, gene, cell, method, L, k, value, -1.0, beta, seed, window) is None  # other goal
    assert form_run(state, gene, cell, method, L, k + 1, value, sign, beta, seed, window) is None  # other k
    assert form_run(state, gene, cell, method, 0, k, value, sign, beta, seed, window) is None  # invalid form


def test_igv_gene_track_is_valid_bed12_and_exonless_genes_are_lines(state):
    b = state.ctx().bundle
    with_exons = set(b.exons["gene_name"]) if b.exons is not None and len(b.exons) else set()
    rows = [ln.split("\t") for ln in genes_bed12(b).splitlines()]
    assert len(rows) == len(b.genes) and all(len(f) == 12 for f in rows)
    lines = 0
    for f in rows:
        start, end, n = int(f[1]), int(f[2]), int(f[9])
        sizes = [int(x) for x in f[10].split(",")]
        offs = [int(x) for x in f[11].split(",")]
        assert len(sizes) == len(offs) == n and offs[0] == 0 and offs[-1] + sizes[-1] == end - start  # BED12 rules
        if f[3] not in with_exons and end - start > 2:
            assert sizes == [1, 1]  # a line between its ends, not a gene-long exon
            lines += 1
    assert lines  # the small bundle has genes without exons


# ---- view assembly ---------------------------------------------------------------------------------
def test_build_view_draws_the_run(state, done_run):
    v = build_view(state, done_run, None, [], GENE, CELL)
    names = [t.name or "" for t in v["figure"].data]
    links = state.links(done_run)
    same_chrom = int((links["peak_chrom"] == links["gene_chrom"]).sum())
    assert sum(n.startswith("arc ") for n in names) == same_chrom
    assert v["summary"] is not None and v["locus_text"].startswith("chr")
    # a run of another gene is not drawn over this gene's locus
    other = build_view(state, done_run, None, [], "GAD2", CELL)
    assert not any((t.name or "").startswith("arc ") for t in other["figure"].data)
    # a bad locus from a bookmark falls back to the default window, with a message
    bad = build_view(state, done_run, "chrZZ:1-100", [], GENE, CELL)
    assert bad["alert"] is not None and bad["locus_text"] == v["locus_text"]


def test_overlay_without_stored_run_says_how_to_get_one(state, done_run):
    v = build_view(state, done_run, None, ["random"], GENE, CELL)
    assert "no stored random run" in str(v["overlay"])


def test_relayout_moves_the_locus():
    cur = Locus("chr2", 1_000, 101_000)
    assert locus_from_relayout({"xaxis3.range[0]": 5_000.4, "xaxis3.range[1]": 20_000}, cur) == Locus("chr2", 5_000, 20_000)
    assert locus_from_relayout({"xaxis2.range": [10, 5_000]}, cur) == Locus("chr2", 10, 5_000)
    assert locus_from_relayout({"xaxis4.autorange": True}, cur) is None
    assert locus_from_relayout({"xaxis.range[0]": 1, "xaxis.range[1]": 2}, cur) is False  # the cytoband strip
    assert locus_from_relayout({"autosize": True}, cur) is False


def test_url_state_round_trip():
    q = encode_query(GENE, CELL, "grids", 10, "chr2:170,000,001-171,000,000", "abc123")
    assert q.startswith("?gene=GAD1&cell=VIP&method=grids&L=10&locus=chr2:170,000,001-171,000,000")
    assert decode_query(q) == {"gene": GENE, "cell": CELL, "method": "grids", "L": "10",
                               "locus": "chr2:170,000,001-171,000,000", "run": "abc123"}
    assert encode_query() == ""
    assert page_of("/runs") == "runs" and page_of("/igv/") == "igv" and page_of("/nope") == "browser"


# ---- app + IGV routes ------------------------------------------------------------------------------
def test_virtual_fasta_matches_its_index():
    chroms = [("chr1", 50), ("chr2", 30)]
    layout = fasta_layout(chroms)
    whole = fasta_bytes(chroms, 0, 10_000)
    assert whole == b">chr1\n" + b"N" * 50 + b"\n>chr2\n" + b"N" * 30 + b"\n"
    for name, length, off in layout:
        assert whole[off - len(name) - 2:off] == f">{name}\n".encode()
        assert whole[off:off + length] == b"N" * length
    assert fasta_bytes(chroms, 3, 9) == whole[3:9]
    assert fai_text(chroms).splitlines()[1] == "chr2\t30\t63\t30\t31"


def test_app_serves_pages_and_igv_files(settings, done_run):
    from app import create_app

    app = create_app(settings)
    layout = str(app.layout())
    for needle in ("run-button", "genome-graph", "link-table", "runs-table", "igv-container", "Simulated"):
        assert needle in layout
    client = app.server.test_client()
    assert client.get("/").status_code == 200
    fai = client.get("/grids-igv/ref.fa.fai").get_data(as_text=True).splitlines()
    name, length, off, _, _ = fai[1].split("\t")
    r = client.get("/grids-igv/ref.fa", headers={"Range": f"bytes={int(off) - len(name) - 2}-{int(off) + 9}"})
    assert r.status_code == 206 and r.data == f">{name}\n".encode() + b"N" * 10
    assert client.get("/grids-igv/ref.fa").status_code == 416  # never the whole virtual genome
    cov = client.get(f"/grids-igv/coverage/{CELL}.bedgraph").get_data(as_text=True).splitlines()
    assert len(cov[0].split("\t")) == 4
    assert client.get("/grids-igv/coverage/NotAType.bedgraph").status_code == 404
    genes = client.get("/grids-igv/genes.bed").get_data(as_text=True).splitlines()
    assert all(len(line.split("\t")) == 12 for line in genes)
    bedpe = client.get(f"/grids-igv/links/{done_run}.bedpe").get_data(as_text=True).splitlines()
    assert bedpe[0].startswith("#chrom1") and len(bedpe) == 1 + len(state_links(settings, done_run))
    assert client.get("/grids-igv/links/0123456789abcdef.bedpe").status_code == 404
    sneaky = client.get("/grids-igv/links/..%2F..%2Fetc.bedpe")  # no route takes a path from the browser
    assert sneaky.status_code == 404 or not sneaky.get_data(as_text=True).startswith("#chrom1")
    assert client.get(f"/grids-igv/truth/{GENE}/{CELL}.bed").status_code == 200
    from callbacks.igv import igv_tracks

    names = lambda g, c: [t["name"] for t in igv_tracks(app, AppState(settings), g, c, None)]  # noqa: E731
    assert any(n.startswith(f"Planted {GENE} {CELL}") for n in names(GENE, CELL))
    assert not any(n.startswith("Planted") for n in names(GENE, "Astro"))  # no planted truth: no empty track


def state_links(settings, run_id):
    return AppState(settings).links(run_id)


def test_missing_model_is_shown_in_place(tmp_path, settings):
    from app import create_app

    broken = Settings(bundle_dir=settings.bundle_dir, model_path=tmp_path / "none.pt", cache_dir=tmp_path / "c")
    layout = str(create_app(broken).layout())
    assert "could not be loaded" in layout and "grids train" in layout


def test_runs_page_marks_runs_of_an_earlier_model(state, done_run):
    from dataclasses import replace

    from callbacks.runs import run_rows

    old = replace(state.result(done_run), run_id="0ld0000000000000", model_id="0123456789ab")
    state.ctx().store.put(old)
    try:
        rows = {r["run_id"]: r["model"] for r in run_rows(state, GENE, CELL)}
        assert rows[done_run] == "current" and rows["0ld0000000000000"] == "earlier (01234567)"
    finally:
        state.ctx().store.delete("0ld0000000000000")


# ---- the job list (Runs page) ------------------------------------------------------------------------
def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_job_list_says_what_runs_and_how_jobs_ended(tmp_path):
    from callbacks.runs import JOBS_RECENT_S, listed_jobs

    board = JobBoard(tmp_path / "jobs")
    what = {"gene": GENE, "cell_type": CELL, "method": "grids", "L": 10}
    board.start("a" * 16, what)  # this process: alive
    board.start("b" * 16, what)
    board.finish("b" * 16, "done")
    for rid in ("c" * 16, "d" * 16):  # left "running" by a process that has ended
        board.start(rid, what)
        board._put(rid, **{**board.get(rid), "pid": _dead_pid()})
    board.request_cancel("d" * 16)
    board.start("e" * 16, what)
    board.finish("e" * 16, "failed", "boom")
    board._put("e" * 16, **{**board.get("e" * 16), "started": 1.0})  # oldest

    jobs_ = {r["run_id"][0]: r for r in board.jobs()}
    assert {k: (r["state"], r["alive"]) for k, r in jobs_.items()} == {
        "a": ("running", True), "b": ("done", False), "c": ("stopped", False), "d": ("cancelled", False),
        "e": ("failed", False)}
    assert jobs_["a"]["what"] == what and jobs_["e"]["msg"] == "boom"
    assert board.jobs()[-1]["run_id"] == "e" * 16  # newest first

    now = time.time()
    assert {r["run_id"][0] for r in listed_jobs(board, now)} == set("abcde")
    later = now + JOBS_RECENT_S + 60  # a day on: only what still runs is listed
    assert [r["run_id"][0] for r in listed_jobs(board, later)] == ["a"]


def test_job_table_offers_cancel_while_running_and_open_when_done(tmp_path):
    from callbacks.runs import _open_href
    from layouts.components import jobs_table

    board = JobBoard(tmp_path / "jobs")
    board.start("a" * 16, {"gene": GENE, "cell_type": CELL, "method": "grids", "L": 10})
    board.progress("a" * 16, 0.42, "step 3")
    board.start("b" * 16, {"gene": GENE, "cell_type": CELL, "method": "saliency", "L": 5})
    board.finish("b" * 16, "done")
    table = jobs_table(board.jobs(), time.time(), _open_href)
    text = json.dumps(table.to_plotly_json(), default=lambda o: o.to_plotly_json())
    assert '"type": "job-cancel", "run": "' + "a" * 16 in text and "42%" in text and "step 3" in text
    assert "?gene=GAD1&cell=VIP&method=saliency&L=5&run=" + "b" * 16 in text
    assert "finished" in text
    empty = jobs_table([], time.time(), _open_href)
    assert "No searches" in json.dumps(empty.to_plotly_json())


def test_overlay_methods_in_the_query_string():
    from callbacks.navigation import overlay_of

    q = encode_query(GENE, CELL, "grids", 10, None, None, ["random", "saliency"])
    assert decode_query(q)["overlay"] == "random,saliency"
    # the view's own method, unknown names and repeats are dropped; the order is kept
    assert overlay_of("saliency,grids,nonsense,random,saliency", "grids") == ["saliency", "random"]
    assert overlay_of(None, "grids") == [] and overlay_of("grids", "saliency") == ["grids"]


def test_a_link_with_a_gene_id_or_other_case_opens_the_view_under_the_bundles_names(state, done_run):
    """The dropdowns hold the bundle's names: a link naming the gene by id (or in another case) and the cell type in
    another case opens that view, its stored run, and a URL rewritten to the bundle's names."""
    from callbacks.navigation import _from_url

    gid = str(state.ctx().bundle.gene_row(GENE)["gene_id"]).lower()
    for gene in (gid, GENE.lower()):
        search, *out = _from_url(state, f"?gene={gene}&cell={CELL.lower()}&L=5", None, None, "grids", 10,
                                 (16, 0.0, 1.0, 0.0, 0, None), (None, None), 10)
        assert out[:2] == [GENE, CELL] and out[10] == done_run
        assert search.startswith(f"?gene={GENE}&cell={CELL}&method=grids&L=5")


@pytest.mark.parametrize("window_kb", [None, 300])
def test_an_L_the_pool_cannot_hold_is_refused_before_a_job_with_the_engines_count(state, window_kb):
    """The form's check counts the same pool as the engine (peaks that can change in the type's training cells,
    in the window), so Run says at once what the job would only say when it fails."""
    from grids_core.explain.gene import pool_size

    req = request_from_form(GENE, CELL, "grids", 5, 16, 0.0, 1.0, 0.0, 0, window_kb)
    n = pool_size(state.ctx().bundle, req)
    check_fits(state, request_from_form(GENE, CELL, "grids", n, 16, 0.0, 1.0, 0.0, 0, window_kb))  # fits
    too_many = request_from_form(GENE, CELL, "grids", n + 1, 16, 0.0, 1.0, 0.0, 0, window_kb)
    with pytest.raises(SettingsError, match=f"{n} peaks can close in {CELL}'s training cells") as err:
        check_fits(state, too_many)
    assert ("widen the cis window" in str(err.value)) is (window_kb is not None)
    with pytest.raises(SettingsError, match=f"only {n} features can change"):  # the engine agrees on n
        jobs.run_explanation(state.settings, too_many)


def test_a_link_whose_run_is_of_another_gene_says_so(state, done_run):
    """`?gene=MOG&cell=Oligo&run=<a GAD1/VIP run>` shows the run (the run wins) and says it is GAD1 in VIP."""
    note = _other_run(state, {"gene": "MOG", "cell": "Oligo", "run": done_run}, done_run)
    text = str(note.children)
    assert f"run {done_run} is {GENE} in {CELL}" in text and "gene MOG and cell Oligo" in text
    assert _other_run(state, {"gene": GENE, "cell": CELL, "run": done_run}, done_run) is None
    assert _other_run(state, {"gene": "MOG", "run": "absent"}, None) is None


def test_a_page_load_never_silently_recomputes_a_job_whose_process_died(state, board):
    """The process running a job was killed (out of memory): a reload says so; Run computes it again."""
    req = request_from_form(GENE, CELL, "grids", 5, 16, 0.0, 1.0, 0.0, 11, None)
    rid = resolve_request(state, req)
    board._put(rid, state="running", frac=0.3, msg="sweep 1", pid=2**22 + 12345,  # no such process
               host=__import__("socket").gethostname())
    out = execute_job(state, board, {"run_id": rid, "request": asdict(req), "reattach": True}, lambda f, m: None)
    assert out["status"] == "failed" and "ended unexpectedly" in out["message"] and "press Run" in out["message"]
    assert state.ctx().store.get(rid) is None
    out = execute_job(state, board, {"run_id": rid, "request": asdict(req)}, lambda f, m: None)  # Run again
    assert out["status"] == "done" and state.ctx().store.get(rid) is not None


def test_a_cancel_stops_the_run_only_when_no_other_page_follows_it(board):
    """Two pages showing one run: one page's Cancel must not stop it for the other; a reloaded page (same tab
    id) is still one page."""
    rid = "f" * 16
    board.subscribe(rid, "tab-a")
    assert board.others_watching(rid, "tab-a") == 0  # alone (this process is alive)
    board.subscribe(rid, "tab-a")  # the same page after a reload
    assert board.others_watching(rid, "tab-a") == 0
    board.subscribe(rid, "tab-b")  # another user's page follows the same run
    assert board.others_watching(rid, "tab-a") == 1 and board.others_watching(rid, "tab-b") == 1


def _claim_after(board_dir: str, rid: str, barrier, results) -> None:
    won = JobBoard(board_dir).claim(rid, {"gene": GENE})
    results.put(won)
    barrier.wait()  # stay alive (the claim's owner) until every process has tried


def test_only_one_of_several_processes_asked_at_once_runs_a_job(tmp_path):
    """Pages asking for the same run at the same moment: one process computes it, the others follow."""
    import multiprocessing as mp

    fork = mp.get_context("fork")
    rid, n = "r" * 16, 6
    start, results = fork.Barrier(n), fork.Queue()
    JobBoard(tmp_path / "jobs")  # created before the race

    def racer():
        start.wait()
        _claim_after(str(tmp_path / "jobs"), rid, end, results)

    end = fork.Barrier(n)
    procs = [fork.Process(target=racer) for _ in range(n)]
    for p in procs:
        p.start()
    wins = [results.get(timeout=60) for _ in range(n)]
    for p in procs:
        p.join(timeout=60)
    assert sum(wins) == 1
    assert JobBoard(tmp_path / "jobs").claim(rid)  # its owner ended without a word: the run can be claimed again


def test_a_follower_ends_when_its_page_is_reloaded(state, board):
    """Each reload starts a new follower; the one it replaces stops following instead of idling until the job ends."""
    req = request_from_form(GENE, CELL, "grids", 7, 16, 0.0, 1.0, 0.0, 5, None)
    rid = resolve_request(state, req)
    board._put(rid, state="running", frac=0.2, msg="sweep 1", pid=os.getppid(), host=__import__("socket").gethostname())

    def reload_then_end():
        time.sleep(0.6)
        subs = dict(board.cache.get(f"subs:{rid}", {}))
        board.cache.set(f"subs:{rid}", {**subs, "tab-a": os.getppid()})  # the reloaded page's follower (another pid)
        time.sleep(3.0)
        board.finish(rid, "cancelled", "stopped")

    t = threading.Thread(target=reload_then_end)
    t.start()
    out = execute_job(state, board, {"run_id": rid, "request": asdict(req), "tab": "tab-a"}, lambda f, m: None)
    t.join()
    assert out["status"] == "superseded"
    assert state.ctx().store.get(rid) is None


def test_a_job_process_ends_with_the_app(tmp_path):
    """A job process (forked from the app) must not outlive a killed app: it kept the app's port."""
    import signal
    import subprocess
    import sys

    import psutil

    script = (
        "import os, sys, time\n"
        "from callbacks.jobs import _die_with_parent\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    _die_with_parent(); time.sleep(120); os._exit(0)\n"
        "print(pid, flush=True); time.sleep(120)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                              cwd=os.path.dirname(os.path.dirname(__file__)))
    child = int(parent.stdout.readline())
    time.sleep(0.5)  # the child has set its death signal
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    gone = False
    for _ in range(100):
        if not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE:
            gone = True
            break
        time.sleep(0.1)
    assert gone, "the job process outlived its app"


def test_a_run_replaced_or_deleted_elsewhere_is_not_served_from_the_cache(state, done_run):
    """`grids explain --force` in another process rewrites a run: the app shows the new copy, not its cached one."""
    import dataclasses

    store = state.ctx().store
    copy = dataclasses.replace(store.get(done_run), run_id="c" * 16, created="2026-01-01T00:00:00+00:00",
                               runtime_s=1.0)
    store.put(copy)
    assert state.result("c" * 16).runtime_s == 1.0 and state.links("c" * 16) is not None
    store.put(dataclasses.replace(copy, created="2026-01-02T00:00:00+00:00", runtime_s=2.0))  # the rewrite
    assert state.result("c" * 16).runtime_s == 2.0
    store.delete("c" * 16)
    assert state.result("c" * 16) is None and state.links("c" * 16) is None
