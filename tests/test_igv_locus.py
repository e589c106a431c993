"""IGV tab -> app locus: IGV's locus strings read as the app's loci, and (in headless Chromium) moving in IGV moves
the URL's locus= and the Browser tab, without IGV reloading, bouncing back, or reporting its own first load.

Run: ``.venv/bin/python -m pytest -q tests/test_igv_locus.py`` (``-m "not browser"`` for the pure functions only).
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import parse_qs, urlparse

import pandas as pd
import pytest

from callbacks.igv import igv_locus, igv_reported, locus_after_igv, same_window
from layouts.genome import MIN_WIDTH, Locus

SIZES = {"chr2": 242_193_529, "chr3": 198_295_559}


@pytest.fixture
def bundle():
    """Just what locus parsing reads of a bundle: its peaks' and genes' chromosomes."""
    peaks = pd.DataFrame({"chrom": ["chr2", "chr3"], "start": [170_000_000, 1_000], "end": [170_000_500, 1_500],
                          "name": ["p1", "p2"]})
    genes = pd.DataFrame({"chrom": ["chr2"], "start": [170_813_212], "end": [170_861_151], "name": ["GAD1"]})
    return SimpleNamespace(peaks=peaks, genes=genes, gene_names=["GAD1"])


# ---- pure functions ----------------------------------------------------------------------------------
def test_igv_locus_reads_igv_labels_in_the_apps_format(bundle):
    loc = igv_locus("chr2:171,000,001-171,200,000", bundle, SIZES)
    assert loc == Locus("chr2", 171_000_000, 171_200_000)  # 1-based inclusive -> 0-based half-open
    assert loc.label() == "chr2:171,000,001-171,200,000"
    assert igv_locus("chr2:171000001-171200000", bundle, SIZES).label() == "chr2:171,000,001-171,200,000"
    assert igv_locus(" chr3:1,001-5,000 ", bundle, SIZES) == Locus("chr3", 1_000, 5_000)


def test_igv_locus_normalises_like_the_locus_box(bundle):
    narrow = igv_locus("chr2:171,000,001-171,000,100", bundle, SIZES)  # IGV's 100 bp minimum < the app's
    assert narrow.width == MIN_WIDTH and narrow.start <= 171_000_000 and narrow.end >= 171_000_100
    tail = igv_locus("chr2:242,000,001-250,000,000", bundle, SIZES)
    assert tail.end == SIZES["chr2"]


@pytest.mark.parametrize("text", ["all", "ALL", "", None, "GAD1", "chr2", "chr2:171,000,001",
                                  "chr2:1-100000 chr3:1-100000", "chrZ:1-100000", "chr2:5,000-1,000", 42])
def test_igv_locus_ignores_what_is_not_one_window(bundle, text):
    assert igv_locus(text, bundle, SIZES) is None


def test_same_window_allows_igvs_rounding_only():
    a = Locus("chr2", 1_000_000, 1_200_000)
    assert same_window(a, Locus("chr2", 1_000_001, 1_199_999))
    assert same_window(a, Locus("chr2", 999_998, 1_200_002))
    assert not same_window(a, Locus("chr2", 1_000_003, 1_200_000))
    assert not same_window(a, Locus("chr3", 1_000_000, 1_200_000))
    assert not same_window(a, None) and not same_window(None, a)


def test_locus_after_igv_moves_only_for_a_new_window(bundle):
    cur = Locus("chr2", 170_543_212, 171_083_212)
    assert locus_after_igv("chr2:170,543,213-171,083,212", cur, bundle, SIZES) is None  # IGV opened here
    assert locus_after_igv("chr2:170,543,213-171,083,211", cur, bundle, SIZES) is None  # ... 1 bp off
    assert locus_after_igv("chr2:170,700,001-170,900,000", cur, bundle, SIZES) == "chr2:170,700,001-170,900,000"
    assert locus_after_igv("chr2:170700001-170900000", None, bundle, SIZES) == "chr2:170,700,001-170,900,000"
    assert locus_after_igv("all", cur, bundle, SIZES) is None
    assert locus_after_igv("chr2:1-100000 chr3:1-100000", cur, bundle, SIZES) is None


def test_igv_reported_is_where_igv_last_went(bundle):
    reports = [None, {"locus": "chr2:170700001-170900000"}]
    assert igv_reported("chr2:170,700,001-170,900,000", reports, bundle, SIZES)
    assert not igv_reported("chr2:170,700,001-170,950,000", reports, bundle, SIZES)  # moved elsewhere: rebuild
    assert not igv_reported(None, reports, bundle, SIZES)
    assert not igv_reported("chr2:170,700,001-170,900,000", [], bundle, SIZES)
    assert not igv_reported("chr2:170,700,001-170,900,000", [{"locus": "all"}, "junk"], bundle, SIZES)


# ---- in the browser ------------------------------------------------------------------------------------
HAVE_CHROMIUM = Path("/usr/bin/chromium").exists()  # tests.test_app_browser skips itself without it
if HAVE_CHROMIUM:
    from tests.test_app_browser import (  # noqa: F401 - pytest fixtures
        browser_context_args,
        browser_type_launch_args,
        errors,
        server,
        shot,
    )

IGV_INPUT = "#igv-container .igv-search-container input"
_LABEL = re.compile(r"^(\w+):([\d,]+)-([\d,]+)$")


def _window(label: str) -> tuple[str, int, int]:
    m = _LABEL.match(label)
    assert m, label
    return m.group(1), int(m.group(2).replace(",", "")), int(m.group(3).replace(",", ""))


def _url_locus(page) -> str | None:
    return parse_qs(urlparse(page.url).query).get("locus", [None])[0]


def _wait_url_locus(page, not_equal: str | None) -> str:
    page.wait_for_function(
        "old => { const l = new URLSearchParams(location.search).get('locus'); return l && l !== old; }",
        arg=not_equal, timeout=20_000)
    return _url_locus(page)


def _igv_ready(page) -> str:
    page.wait_for_selector("#igv-container .igv-track-name, #igv-container .igv-track-label", timeout=30_000)
    page.wait_for_function(f"() => /:[\\d,]+-[\\d,]+$/.test(document.querySelector('{IGV_INPUT}').value)",
                           timeout=30_000)
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(1200)  # longer than the report's debounce: a first-load report would be out by now
    return page.input_value(IGV_INPUT)


def _mark_igv(page) -> None:
    page.evaluate("() => { document.querySelector('#igv-container .igv-root-div').dataset.gridsMark = 'kept'; }")


def _igv_kept(page) -> bool:
    return page.evaluate("() => (document.querySelector('#igv-container .igv-root-div') || {dataset: {}})"
                         ".dataset.gridsMark === 'kept'")


def _close(a: str, b: str, tol: int = 2) -> bool:
    (ca, sa, ea), (cb, sb, eb) = _window(a), _window(b)
    return ca == cb and abs(sa - sb) <= tol and abs(ea - eb) <= tol


@pytest.mark.browser
@pytest.mark.skipif(not HAVE_CHROMIUM, reason="browser tests need Debian's chromium at /usr/bin/chromium")
def test_moving_in_igv_moves_the_url_and_the_browser_tab(page, server, errors):
    page.goto(server["url"] + "igv?gene=GAD1&cell=VIP")
    opened = _igv_ready(page)
    assert _url_locus(page) is None  # IGV opening at the app's own locus reports nothing
    _mark_igv(page)

    # IGV's own search box: a window in the middle of the one it opened at
    chrom, s, e = _window(opened)
    width = max((e - s) // 3, 5_000)
    typed = Locus(chrom, s + width, s + 2 * width).label()
    page.fill(IGV_INPUT, typed)
    page.press(IGV_INPUT, "Enter")
    got = _wait_url_locus(page, None)
    assert _close(got, typed), (got, typed)
    assert _igv_kept(page)  # the app's new locus did not rebuild (reload) IGV ...
    page.wait_for_timeout(1200)
    assert _url_locus(page) == got and _close(page.input_value(IGV_INPUT), typed)  # ... nor bounce back

    # a drag to the left pans right: same width, later start
    box = page.locator("#igv-container .igv-viewport-div").last.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x - 150, y, steps=8)
    page.mouse.move(x - 300, y, steps=8)
    page.mouse.up()
    dragged = _wait_url_locus(page, got)
    (_, s0, e0), (c1, s1, e1) = _window(got), _window(dragged)
    assert c1 == chrom and s1 > s0 and abs((e1 - s1) - (e0 - s0)) <= 2, (got, dragged)
    assert _igv_kept(page)

    # the whole-genome view is not a locus: the app keeps the last one
    page.select_option("#igv-container .igv-chromosome-select-widget-container select", "all")
    page.wait_for_timeout(1500)
    assert _url_locus(page) == dragged

    page.click("text=Browser")
    page.wait_for_function("() => location.pathname === '/'", timeout=10_000)
    page.wait_for_function("want => document.querySelector('#locus-input').value === want", arg=dragged,
                           timeout=20_000)
    assert _url_locus(page) == dragged
    assert dragged in page.inner_text("#genome-graph")

    page.click("text=IGV")  # IGV opens again where the user left it, and that reports nothing new
    page.wait_for_function("() => location.pathname === '/igv'", timeout=10_000)
    page.wait_for_function(f"want => document.querySelector('{IGV_INPUT}') && "
                           f"document.querySelector('{IGV_INPUT}').value === want", arg=dragged, timeout=30_000)
    page.wait_for_timeout(1500)
    assert _url_locus(page) == dragged
    shot(page, "igv_locus_sync")
    assert errors == []
