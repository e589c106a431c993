"""The dashboard in headless Chromium (Playwright + Debian's /usr/bin/chromium) against the small bundle.

Screenshots go to test-artifacts/ (gitignored). Run: ``.venv/bin/python -m pytest -q -m browser tests/test_app_browser.py``.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
GRAPH = "#genome-graph .js-plotly-plot"

if not Path(CHROMIUM).exists():  # pragma: no cover - CI installs it (make chromium)
    pytest.skip("browser tests need Debian's chromium at /usr/bin/chromium", allow_module_level=True)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": FLAGS}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1500, "height": 1000}, "accept_downloads": True}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(request, tmp_path_factory):
    """``python app.py`` on a free 127.0.0.1 port, serving a private copy of the small bundle.

    ``GRIDS_BROWSER_BUNDLE=DIR`` (a bundle with a trained model) skips building the small bundle.
    """
    source = os.environ.get("GRIDS_BROWSER_BUNDLE") or request.getfixturevalue("small_bundle_dir")
    bundle = tmp_path_factory.mktemp("browser") / "bundle"
    shutil.copytree(source, bundle, ignore=shutil.ignore_patterns("results.sqlite*", "cache"))
    port = _free_port()
    log = open(tmp_path_factory.mktemp("log") / "app.log", "w")  # noqa: SIM115 - closed below
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "app.py", "--bundle", str(bundle), "--port", str(port)], cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                log.close()
                raise RuntimeError("the app did not start:\n" + Path(log.name).read_text()[-3000:]) from None
            time.sleep(0.5)
    yield {"url": url, "bundle": bundle}
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture
def errors(page):
    """Console errors and page errors seen during the test (must stay empty)."""
    seen: list[str] = []
    page.on("console", lambda m: seen.append(f"console: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: seen.append(f"pageerror: {e}"))
    return seen


def settle(page) -> None:
    """Page drawn and its start-up callbacks (URL -> controls) done."""
    page.wait_for_selector(GRAPH)
    page.wait_for_load_state("networkidle")


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def choose(page, dropdown_id: str, text: str) -> None:
    """Dash 4 dropdowns are popovers: open, search, click the option."""
    page.click(f"#{dropdown_id}")
    page.fill(".dash-dropdown-search", text)
    page.locator(".dash-dropdown-option", has_text=text).first.click()
    page.keyboard.press("Escape")


def set_number(page, input_id: str, value) -> None:
    page.fill(f"#{input_id}", str(value))
    page.press(f"#{input_id}", "Tab")


def traces(page, prefix: str) -> int:
    return page.evaluate(
        "p => (document.querySelector('#genome-graph .js-plotly-plot').data || [])"
        ".filter(t => (t.name || '').startsWith(p)).length", prefix)


def start_run(page, L: int, k: int, window_kb: int | None) -> None:
    set_number(page, "param-L", L)
    set_number(page, "param-k", k)
    set_number(page, "param-window", "" if window_kb is None else window_kb)
    page.wait_for_timeout(300)
    page.click("#run-button")


def download(page, button: str) -> tuple[str, str]:
    with page.expect_download(timeout=20_000) as info:
        page.click(f"#{button}")
    d = info.value
    return d.suggested_filename, Path(d.path()).read_text()


def test_run_gad1_vip_arcs_table_exports_and_reload(page, server, errors):
    page.goto(server["url"])
    settle(page)
    choose(page, "gene", "GAD1")
    choose(page, "cell-type", "VIP")
    page.wait_for_function("() => location.search.includes('gene=GAD1') && location.search.includes('cell=VIP')")
    L = 6
    start_run(page, L, 48, 500)
    page.wait_for_selector("#progress-wrap", state="visible", timeout=15_000)
    shot(page, "browser_running")
    page.wait_for_selector("#progress-wrap", state="hidden", timeout=120_000)
    page.wait_for_function("() => location.search.includes('run=')", timeout=20_000)
    page.wait_for_function("n => document.querySelectorAll('#link-table .ag-center-cols-container .ag-row').length == n",
                           arg=L, timeout=20_000)
    assert "finished" in page.inner_text("#job-alert")
    page.wait_for_function("() => (document.querySelector('#genome-graph .js-plotly-plot').data || [])"
                           ".some(t => (t.name || '').startsWith('arc '))", timeout=20_000)
    assert traces(page, "arc ") == L  # a 500 kb cis window: every link is drawn as an arc
    page.wait_for_function("() => document.querySelector('#run-summary').innerText.includes('GAD1 in VIP')")
    shot(page, "browser_result")

    run_id = page.evaluate("() => new URLSearchParams(location.search).get('run')")
    name, tsv = download(page, "download-tsv")
    rows = list(csv.DictReader(io.StringIO(tsv), delimiter="\t"))
    assert name.endswith(".tsv") and len(rows) == L and {r["run_id"] for r in rows} == {run_id}
    name, text = download(page, "download-csv")
    assert name.endswith(".csv") and len(list(csv.DictReader(io.StringIO(text)))) == L
    name, bedpe = download(page, "download-bedpe")
    lines = [line.split("\t") for line in bedpe.splitlines() if not line.startswith("#")]
    assert name.endswith(".bedpe") and len(lines) == L and all(len(f) == 13 for f in lines)
    assert {f[6].split("|")[1] for f in lines} == {r["peak"] for r in rows}
    name, inter = download(page, "download-interact")
    body = [line.split("\t") for line in inter.splitlines() if not line.startswith("track")]
    assert name.endswith(".interact") and inter.startswith("track type=interact")
    assert len(body) == L and all(len(f) == 18 for f in body)  # a 500 kb window: no link across chromosomes
    name, bed = download(page, "download-bed")
    assert name.endswith(".bed") and sorted(f.split("\t")[3].split("|")[1] for f in bed.splitlines()) == sorted(
        r["peak"] for r in rows)
    name, svg = download(page, "export-svg")
    assert name.endswith(".svg") and "<svg" in svg[:200]

    # reload: the URL and the session keep the view; the stored run shows again without running anything
    page.reload()
    page.wait_for_selector(GRAPH)
    page.wait_for_function("n => document.querySelectorAll('#link-table .ag-center-cols-container .ag-row').length == n",
                           arg=L, timeout=20_000)
    page.wait_for_function("r => document.querySelector('#run-summary').innerText.includes('run ' + r)",
                           arg=run_id, timeout=20_000)
    assert page.is_hidden("#progress-wrap")

    # every form setting picks the run it names: another k shows no run (none stored), k back shows this one
    assert page.get_by_label("k (candidates)").input_value() == "48"  # the boxes are labelled
    set_number(page, "param-k", 49)
    page.wait_for_function("() => !location.search.includes('run=')", timeout=20_000)
    page.wait_for_function("r => !document.querySelector('#run-summary').innerText.includes(r)", arg=run_id,
                           timeout=20_000)
    set_number(page, "param-k", 48)
    page.wait_for_function(f"() => location.search.includes('run={run_id}')", timeout=20_000)
    page.wait_for_function("r => document.querySelector('#run-summary').innerText.includes('run ' + r)",
                           arg=run_id, timeout=20_000)

    # overlay a baseline: run it, switch back to GRIDS (its stored run shows at once), overlay the baseline
    choose(page, "method", "random")
    page.click("#run-button")
    page.wait_for_function("() => location.search.includes('method=random') && location.search.includes('run=')",
                           timeout=60_000)
    choose(page, "method", "grids")
    page.wait_for_function(f"() => location.search.includes('run={run_id}')", timeout=20_000)
    choose(page, "overlay-methods", "random")
    page.wait_for_function("() => (document.querySelector('#genome-graph .js-plotly-plot').data || [])"
                           ".some(t => t.name === 'random links (below)')", timeout=20_000)
    overlay = page.inner_text("#overlay-summary")
    assert "random" in overlay and "Jaccard" in overlay
    shot(page, "browser_overlay")
    page.wait_for_function("() => location.search.includes('overlay=random')", timeout=10_000)  # bookmarkable
    page.reload()
    settle(page)  # every start-up callback done: none overwrites the locus box typed into below
    page.wait_for_function("() => ((document.querySelector('#genome-graph .js-plotly-plot') || {}).data || [])"
                           ".some(t => t.name === 'random links (below)')", timeout=20_000)
    assert "random" in page.inner_text("#overlay-methods") and "overlay=random" in page.evaluate("location.search")

    # a bad locus is explained in place; the figure stays (typed once the reloaded view has drawn its locus, which
    # would otherwise overwrite the box)
    page.wait_for_function("() => document.querySelector('#locus-input').value.startsWith('chr')", timeout=20_000)
    page.wait_for_load_state("networkidle")
    page.fill("#locus-input", "chr2:oops")
    page.press("#locus-input", "Enter")
    page.wait_for_selector("#locus-alert .alert")
    assert "chrom:start-end" in page.inner_text("#locus-alert")
    assert traces(page, "arc ") == L

    # zooming the genomic axis moves the locus (box and URL) and clears the locus error
    page.evaluate("() => { const g = document.querySelector('#genome-graph .js-plotly-plot');"
                  " const [a, b] = g.layout.xaxis2.range, q = (b - a) / 4;"
                  " return Plotly.relayout(g, {'xaxis2.range': [a + q, b - q]}); }")
    page.wait_for_function("() => location.search.includes('locus=')", timeout=20_000)
    page.wait_for_function("() => document.querySelector('#locus-input').value"
                           " === new URLSearchParams(location.search).get('locus')", timeout=20_000)
    assert page.input_value("#locus-input").startswith("chr") and page.is_hidden("#locus-alert .alert")

    # a locus where the bundle has no peaks and no genes says so in the empty tracks, not blank rows
    page.fill("#locus-input", "chrY:1,000,001-2,000,000")
    page.press("#locus-input", "Enter")
    page.wait_for_function("() => ((document.querySelector('#genome-graph .js-plotly-plot') || {}).layout || {})"
                           ".annotations?.some(a => (a.text || '').startsWith('no peaks of this bundle on chrY'))",
                           timeout=20_000)
    shot(page, "browser_no_data_here")

    # out-of-range form values reach the checks (the browser would send None, silently the default)
    for field, value, words in (("param-beta", -1, "β (beta, the specificity weight) must be a number from 0 to 100"),
                                ("param-seed", -5, "seed must be a whole number"), ("param-L", 0, "L must be"),
                                ("param-L", 99_999, "is larger than the candidate pool")):  # refused before a job
        set_number(page, field, value)
        page.wait_for_timeout(300)
        page.click("#run-button")
        page.wait_for_function("w => (document.querySelector('#job-alert') || {innerText: ''}).innerText.includes(w)", arg=words,
                               timeout=10_000)
        set_number(page, field, {"param-beta": 0, "param-seed": 0, "param-L": L}[field])
    assert errors == []


def test_cancel_after_reload_stops_the_run(page, server, errors):
    page.goto(server["url"] + "?gene=GAD1&cell=SST")
    settle(page)
    start_run(page, 200, 4096, None)  # many minutes of search even on a fast machine: Cancel always comes first
    page.wait_for_selector("#progress-wrap", state="visible", timeout=15_000)
    page.wait_for_function("() => /step|sweep|%/.test(document.querySelector('#progress-wrap').innerText)",
                           timeout=30_000)
    page.reload()  # the job keeps running; the page finds it again
    settle(page)
    page.wait_for_selector("#progress-wrap", state="visible", timeout=20_000)
    assert page.input_value("#param-k") == "4096" and page.input_value("#param-L") == "200"  # the form too
    shot(page, "browser_reloaded_running")
    page.click("#cancel-button")
    page.wait_for_selector("#progress-wrap", state="hidden", timeout=30_000)
    page.wait_for_function("() => document.querySelector('#job-alert').innerText.includes('cancelled')",
                           timeout=15_000)
    # the engine stopped: its job record says so and nothing was stored
    from callbacks.jobboard import JobBoard

    board = JobBoard(Path(server["bundle"]) / "cache" / "jobs")
    deadline, states = time.time() + 30, {}
    while time.time() < deadline:
        states = {str(k)[4:]: board.get(str(k)[4:]) for k in board.cache.iterkeys() if str(k).startswith("job:")}
        if any(v and v["state"] == "cancelled" for v in states.values()):
            break
        time.sleep(0.5)
    cancelled = [rid for rid, v in states.items() if v and v["state"] == "cancelled"]
    assert cancelled, states
    from grids_core.store import ResultStore

    store = ResultStore(Path(server["bundle"]) / "results.sqlite")
    assert all(store.get(rid) is None for rid in cancelled)
    # the reload set k = 4096 in the form; typing the default back must reach the request (a debounced
    # dcc.Input compared it with the value of its last blur and dropped it)
    set_number(page, "param-k", 32)
    set_number(page, "param-L", 4)
    page.wait_for_timeout(300)
    page.click("#run-button")
    page.wait_for_function("() => document.querySelector('#run-summary').innerText.includes('GAD1 in SST')",
                           timeout=60_000)
    assert "L=4 k=32 " in page.inner_text("#run-summary")
    assert errors == []


def test_job_of_a_closed_page_is_listed_and_cancelled_on_the_runs_page(page, server, errors):
    page.goto(server["url"] + "?gene=GAD2&cell=SST")
    settle(page)
    start_run(page, 200, 4096, None)  # minutes of search: the cancel below always comes first
    page.wait_for_function("() => /step|sweep|%/.test(document.querySelector('#progress-wrap').innerText)",
                           timeout=30_000)
    page.goto(server["url"] + "runs")  # the page that started the job is gone; the job runs on
    row = page.locator("#jobs-wrap tr", has_text="GAD2").filter(has=page.locator("button", has_text="Cancel"))
    row.wait_for(timeout=20_000)
    assert "SST" in row.inner_text() and "200" in row.inner_text()
    page.wait_for_function("() => /step|sweep/.test(document.querySelector('#jobs-wrap').innerText)",
                           timeout=20_000)  # progress is refreshed while the list is shown
    shot(page, "runs_page_jobs")
    row.locator("button", has_text="Cancel").click()
    page.wait_for_function("() => document.querySelector('#jobs-alert').innerText.includes('Cancel sent')",
                           timeout=10_000)
    page.wait_for_function("() => [...document.querySelectorAll('#jobs-wrap tr')].some("
                           "r => r.innerText.includes('GAD2') && r.innerText.includes('cancelled'))", timeout=30_000)
    badge = page.locator("#jobs-wrap tr", has_text="GAD2").locator(".badge", has_text="cancelled").first
    assert badge.evaluate("e => getComputedStyle(e).backgroundColor") not in ("rgba(0, 0, 0, 0)", "transparent")
    from callbacks.jobboard import JobBoard
    from grids_core.store import ResultStore

    board = JobBoard(Path(server["bundle"]) / "cache" / "jobs")
    gad2 = [r for r in board.jobs() if (r.get("what") or {}).get("gene") == "GAD2"]
    assert gad2 and gad2[0]["state"] == "cancelled" and not gad2[0]["alive"]
    assert ResultStore(Path(server["bundle"]) / "results.sqlite").get(gad2[0]["run_id"]) is None
    assert errors == []


def test_runs_page_opens_a_run_and_igv_tab_loads(page, server, errors):
    page.goto(server["url"] + "?gene=GAD&cell=VIP")  # a stale bookmark: explained in place, default view shown
    page.wait_for_selector("#app-alert .alert", timeout=20_000)
    assert "Did you mean" in page.inner_text("#app-alert")
    page.goto(server["url"] + "?gene=GAD1&cell=VIP&run=deadbeef00000000")  # a run this store does not hold
    page.wait_for_function("() => (document.querySelector('#app-alert') || {innerText: ''}).innerText.includes('deadbeef00000000')",
                           timeout=20_000)
    assert "is not stored for this bundle" in page.inner_text("#app-alert")
    page.goto(server["url"] + "runs")
    page.wait_for_load_state("networkidle")
    page.wait_for_selector("#runs-table .ag-center-cols-container .ag-row", timeout=20_000)
    shot(page, "runs_page")
    page.locator("#runs-table .ag-center-cols-container .ag-row").first.click()
    page.wait_for_function("() => location.pathname === '/' && location.search.includes('run=')", timeout=20_000)
    page.wait_for_function("() => (document.querySelector('#genome-graph .js-plotly-plot').data || [])"
                           ".some(t => (t.name || '').startsWith('arc '))", timeout=20_000)
    page.click("text=IGV")
    page.wait_for_function("() => location.pathname === '/igv'")
    page.wait_for_selector("#igv-container .igv-track-name, #igv-container .igv-track-label", timeout=30_000)
    page.wait_for_timeout(1500)
    labels = page.inner_text("#igv-container")
    assert "Links" in labels and "Peaks" in labels
    shot(page, "igv_tab")
    page.goto(server["url"] + "no/such/page?gene=GAD1&cell=VIP")  # a typo'd path opens the Browser at /
    page.wait_for_function("() => location.pathname === '/' && location.search.includes('gene=GAD1')", timeout=20_000)
    assert errors == []


# the figure's answers arrive 1.5 s late, as on a loaded server right after a run (past dcc.Loading's 600 ms delay)
SLOW_FIGURE = """(() => { const f = window.fetch; window.fetch = async (...a) => { const r = await f(...a);
  const body = (a[1] || {}).body;
  if (typeof body === 'string' && body.includes('genome-graph.figure')) await new Promise(ok => setTimeout(ok, 1500));
  return r; }; })();"""
WATCH_REDRAW = """() => { window.__seen = {spinner: false, hidden: false};
  (function tick() { const g = document.querySelector('#genome-graph');
    if (g.parentElement.parentElement.querySelector('.dash-spinner')) window.__seen.spinner = true;
    if (getComputedStyle(g).visibility === 'hidden') window.__seen.hidden = true;
    requestAnimationFrame(tick); })(); }"""


def test_slow_redraw_dims_the_figure_instead_of_blanking_it(page, server, errors):
    """A redraw slower than the spinner's delay (e.g. right after a run) keeps the figure visible under the spinner;
    dcc.Loading's default hid it, a blank white area the figure's height until the answer came."""
    page.add_init_script(SLOW_FIGURE)
    page.goto(server["url"] + "?gene=GAD1&cell=VIP")
    page.wait_for_function("() => (document.querySelector('#genome-graph .js-plotly-plot')?.data || []).length > 5",
                           timeout=60_000)
    page.wait_for_load_state("networkidle")
    page.evaluate(WATCH_REDRAW)
    page.fill("#locus-input", "chr2:170,600,001-170,900,000")
    page.press("#locus-input", "Enter")
    page.wait_for_function("() => (document.querySelector('#genome-graph .gtitle') || {}).textContent"
                           "?.includes('chr2:170,600,001-170,900,000')", timeout=30_000)
    seen = page.evaluate("window.__seen")
    assert seen["spinner"] and not seen["hidden"]
    assert errors == []
