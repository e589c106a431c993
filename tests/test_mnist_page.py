"""MNIST page: pure figure builders (masks, masked images, violins, table, text) and a browser run."""

from __future__ import annotations

import base64
import io
import json
import math
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from grids_core.mnist import METHODS as _ENGINE_METHODS
from layouts import mnist as lay

METHOD_NAMES = list(_ENGINE_METHODS)

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def _image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.2, 1.0, lay.N_PIXELS)


# ------------------------------------------------------------------------------------------ pure builders


def test_mask_image_has_exactly_l_pixels_set():
    subset = [0, 27, 28, 400, 783]
    m = lay.mask_image(subset)
    assert m.shape == (28, 28)
    assert int(np.isfinite(m).sum()) == len(subset)
    assert set(np.flatnonzero(np.isfinite(m.reshape(-1)))) == set(subset)
    fig = lay.global_masks_figure({"grids": list(range(16)), "random": list(range(100, 116))},
                                  background=_image())
    masks = [t for t in fig.data if t.name and t.name.endswith(" mask")]
    assert [t.meta for t in masks] == ["grids", "random"]
    for t, subset in zip(masks, (range(16), range(100, 116)), strict=True):
        z = np.asarray(t.z, dtype=float)
        assert int(np.isfinite(z).sum()) == 16
        assert set(np.flatnonzero(np.isfinite(z.reshape(-1)))) == set(subset)


def test_masked_image_zeroes_exactly_the_subset():
    x = _image(1)
    subset = [3, 50, 51, 700]
    out = lay.masked_image(x, subset).reshape(-1)
    assert np.all(out[subset] == 0)
    rest = np.setdiff1d(np.arange(lay.N_PIXELS), subset)
    np.testing.assert_array_equal(out[rest], x[rest])
    assert x[subset].min() > 0  # the input is not modified
    images = np.stack([_image(i) for i in range(4)])
    subsets = {"grids": subset, "random": [10, 11]}
    fig = lay.masked_examples_figure(images, subsets, p_before=[0.9] * 4, p_after={"grids": [0.1] * 4,
                                                                                    "random": [0.8] * 4})
    shown = [t for t in fig.data if t.name == "grids"]
    assert len(shown) == 4
    for t, img in zip(shown, images, strict=True):
        z = np.asarray(t.z, dtype=float).reshape(-1)
        assert np.flatnonzero(z != img).tolist() == sorted(subset) and np.all(z[subset] == 0)
    originals = [t for t in fig.data if t.name == "original"]
    assert len(originals) == 4 and np.allclose(np.asarray(originals[0].z).reshape(-1), images[0])
    titles = [a.text for a in fig.layout.annotations]
    assert "grids<br>p(8) 0.10" in titles and "test 8 #0<br>p(8) 0.90" in titles


def test_detail_figure_titles_before_and_after():
    fig = lay.masked_detail_figure(_image(), {"grids": [1, 2], "random": [5]}, 0.97,
                                   {"grids": 0.03, "random": 0.96}, label="test 8 #5")
    titles = [a.text for a in fig.layout.annotations]
    assert titles == ["test 8 #5<br>p(8) 0.97", "grids<br>p(8) 0.97 → 0.03", "random<br>p(8) 0.97 → 0.96"]
    (grids,) = [t for t in fig.data if t.name == "grids"]
    assert np.all(np.asarray(grids.z).reshape(-1)[[1, 2]] == 0)


# ------------------------------------------------------------------------------------------ image-grid geometry

ALL_METHODS = lay.engine_methods()
HALF_WIDTHS = (lay.HALF_CARD_PX, 477, 587)  # narrowest half card; the card at 1280 and 1500 px windows
FULL_WIDTHS = (lay.FULL_CARD_PX, 972, 1192)


def _all_subsets(L: int = 64) -> dict[str, list[int]]:
    return {m: list(range(k, k + L)) for k, m in enumerate(ALL_METHODS)}


def _examples():
    subsets = _all_subsets()
    return lay.masked_examples_figure(np.stack([_image(i) for i in range(4)]), subsets, [0.999, 0.97, 0.5, 0.004],
                                      {m: [0.02, 0.35, 0.999, 0.001] for m in subsets})


def _detail():
    subsets = _all_subsets()
    return lay.masked_detail_figure(_image(), subsets, 0.999, {m: 0.012 for m in subsets}, label="test 8 #123")


def _masks():
    return lay.global_masks_figure(_all_subsets(128), background=_image())


def _panels(fig) -> list[tuple[str, tuple, tuple]]:
    """(title, x domain, y domain) of every titled panel, in make_subplots order."""
    out = []
    for k, ann in enumerate(fig.layout.annotations):
        sfx = "" if k == 0 else str(k + 1)
        out.append((ann.text, tuple(fig.layout[f"xaxis{sfx}"].domain), tuple(fig.layout[f"yaxis{sfx}"].domain)))
    return out


@pytest.mark.parametrize("build, widths", [(_examples, HALF_WIDTHS), (_detail, HALF_WIDTHS), (_masks, FULL_WIDTHS)])
def test_subplot_titles_fit_their_band_and_column(build, widths):
    """In pixels: every title lies inside the paper, in the band above its own panel, and is narrower than its
    column at every card width the page gives the figure."""
    fig = build()
    H, m = fig.layout.height, fig.layout.margin
    plot_h = H - m.t - m.b
    panels = _panels(fig)
    assert len(panels) == len({(x, y) for _, x, y in panels})  # one title per panel
    for title, (x0, x1), (_, y1) in panels:
        lines = title.count("<br>") + 1
        top_px = m.t + (1 - y1) * plot_h  # the title's baseline box sits on the panel's top edge
        assert top_px - lines * lay._LINE_PX >= 0, title  # inside the paper, not cut at the top
        above = [d0 for _, xd, (d0, _) in panels if xd == (x0, x1) and d0 > y1]
        if above:  # the band between this panel and the one above holds the title
            assert (min(above) - y1) * plot_h >= lines * lay._LINE_PX, title
        for width in widths:
            plot_w = width - m.l - m.r
            assert lay.text_px(title) <= (x1 - x0) * plot_w, (title, width)
            centre = m.l + (x0 + x1) / 2 * plot_w
            assert centre - lay.text_px(title) / 2 >= 0 and centre + lay.text_px(title) / 2 <= width, (title, width)


def test_image_grid_sizes_and_wrapping():
    """Height follows the rows; detail panels wrap to what fits a half card; no panel or title is dropped."""
    ex, det, masks = _examples(), _detail(), _masks()
    assert len(ex.layout.annotations) == 4 * (1 + len(ALL_METHODS))
    m = ex.layout.margin
    for _, (x0, x1), (y0, y1) in _panels(ex):  # rows as tall as the columns are wide at the narrowest card
        assert (y1 - y0) * (ex.layout.height - m.t - m.b) >= (x1 - x0) * (lay.HALF_CARD_PX - m.l - m.r) - 1
    per_row = lay.panels_per_row([a.text for a in det.layout.annotations], 1 + len(ALL_METHODS), lay.HALF_CARD_PX)
    assert 1 < per_row < 1 + len(ALL_METHODS)  # 11 panels cannot share one row of a half card
    rows = {tuple(det.layout[f"yaxis{'' if k == 0 else k + 1}"].domain) for k in range(len(det.layout.annotations))}
    assert len(rows) == math.ceil((1 + len(ALL_METHODS)) / per_row)
    assert {t.name for t in det.data} >= {"original", *ALL_METHODS}
    assert len(masks.layout.annotations) == len(ALL_METHODS)
    # two methods: one row, images no larger than the cap, so the figure stays short
    two = lay.global_masks_figure({"grids": [1], "random": [2]})
    assert two.layout.height <= 150 + 60
    assert lay.panels_per_row(["x" * 200], 5, 440) == 1


def test_violin_one_trace_per_method_with_every_point():
    deltas = {"grids": np.linspace(1, 9, 100), "random": np.linspace(-1, 1, 100), "saliency": np.ones(100)}
    fig = lay.delta_phi_figure(deltas, L=16)
    violins = [t for t in fig.data if t.type == "violin"]
    assert [t.name for t in violins] == ["grids", "random", "saliency"]
    for t in violins:
        assert len(t.y) == 100 and t.points == "all" and t.box.visible
    np.testing.assert_allclose(violins[0].y, deltas["grids"])
    assert "100 test 8s" in fig.layout.title.text and "L = 16" in fig.layout.title.text


def test_png_thumbnail_roundtrip():
    from PIL import Image

    x = np.zeros(lay.N_PIXELS)
    x[[0, 29, 783]] = 1.0
    uri = lay.png_data_uri(x)
    assert uri.startswith("data:image/png;base64,")
    img = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))))
    assert img.shape == (28, 28)
    assert img.reshape(-1)[[0, 29, 783]].tolist() == [0, 0, 0] and int((img == 255).sum()) == 784 - 3


def _result(method, dphi, objective, wil=None, drop=0.5, now3=0.5):
    held = {"delta_phi": list(dphi), "accuracy_drop": drop, "fraction_now_3": now3, "test_accuracy": 0.975}
    if wil:
        held["wilcoxon"] = wil
    return SimpleNamespace(method=method, heldout=held, objective=objective, runtime_s=0.1)


def _results(ref_median=7.6, other=(("random", 0.9, 1e-18, 6.7, 3.1), ("saliency", 7.65, 0.93, -0.04, -3.63))):
    n = 100
    out = {"grids": _result("grids", np.full(n, ref_median), -3.68)}
    for m, med, p, diff, J in other:
        out[m] = _result(m, np.full(n, med), J, {"p_value": p, "median_difference": diff})
    return out


def test_table_rows_and_pvalue_table():
    rows = lay.table_rows(_results())
    assert [r["method"] for r in rows] == ["grids", "random", "saliency"]
    assert rows[1]["p_value"] == 1e-18 and math.isnan(rows[0]["p_value"]) and rows[1]["n"] == 100
    table = lay.pvalue_table(rows)
    text = json.dumps(table.to_plotly_json(), default=lambda o: o.to_plotly_json())
    for needle in ("reference", "1.0e-18", "0.930", "Wilcoxon p (GRIDS > m)", "now classified 3", "accuracy drop"):
        assert needle in text


def test_comparison_text_follows_the_numbers():
    lines = lay.comparison_text(lay.table_rows(_results()), n_digits=1000, test_accuracy=0.975, L=64)
    text = " ".join(lines)
    assert "1,000-digit subset" in text and "97.5%" in text and "100 test 8s" in text
    assert "more evidence for 8 than random" in text
    assert "GRIDS is not significantly better than saliency" in text and "one-sided p" in text
    assert "GRIDS reaches the lowest training objective" in text and "-3.680 vs -3.630" in text
    # a baseline clearly ahead on Δφ and on J is reported as such, not as a tie
    worse = lay.comparison_text(lay.table_rows(_results(other=(("saliency", 9.5, 0.99, -1.9, -4.0),))), L=64)
    text = " ".join(worse)
    assert "GRIDS does worse than saliency" in text and "1.90 lower" in text
    assert "saliency reaches a lower training objective than GRIDS" in text and "≈" not in text


def test_checkboxes_follow_the_engine_registry(monkeypatch):
    import grids_core.mnist as engine

    monkeypatch.setattr(lay, "METHODS", {**engine.METHODS, "newmethod": engine.METHODS["random"]})
    page = lay.mnist_page()
    found = []

    def walk(c):
        if getattr(c, "id", None) == lay.METHODS_ID:
            found.append(c)
        for ch in (getattr(c, "children", None) or []) if not isinstance(getattr(c, "children", None), str) else []:
            walk(ch)

    walk(page)
    (check,) = found
    assert [o["value"] for o in check.options] == [*engine.METHODS, "newmethod"]
    assert check.options[0]["disabled"] and "newmethod" in [o["value"] for o in check.options]


def test_callback_helpers():
    from callbacks import mnist as cb

    assert cb.selected_methods(["random", "grids"]) == ["grids", "random"]
    assert cb.selected_methods([]) == ["grids"] and cb.selected_methods(["nope"]) == ["grids"]
    assert cb.parse_l(16) == 16 and cb.parse_l(500) == 128 and cb.parse_l(None) == lay.L_DEFAULT
    assert cb.methods_to_run({"grids": 1, "random": 1}, ["grids", "random"]) == ()
    assert cb.methods_to_run({"grids": 1}, ["grids", "random", "ablation"]) == ("grids", "random", "ablation")
    assert cb.methods_to_run({"random": 1}, ["grids", "random"]) == ("grids",)


# ------------------------------------------------------------------------------------------ browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """Debian's chromium with the flags that work here (never `playwright install`)."""
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


PLOTLY_JS = Path(__import__("plotly").__file__).parent / "package_data" / "plotly.min.js"
_RENDER_JS = """async ([spec, width]) => {
  const gd = document.getElementById('g');
  spec.layout.width = width;
  await Plotly.newPlot(gd, spec.data, spec.layout, {staticPlot: true});
  const box = el => { const r = el.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  const all = sel => Array.from(gd.querySelectorAll(sel)).map(box);
  return {paper: box(gd.querySelector('svg.main-svg')), annotations: all('g.annotation'), images: all('g.hm image'),
          xtitle: all('.g-xtitle text'), xticks: all('.xtick text'), yticks: all('.ytick text'),
          legend: all('g.legend'), title: all('.g-gtitle text')};
}"""


def render_boxes(page, fig, width: int) -> dict[str, list]:
    """Draw ``fig`` ``width`` px wide with the plotly.js the app serves; bounding boxes [x0, y0, x1, y1] by part."""
    page.set_content("<html><body style='margin:0'><div id='g'></div></body></html>")
    page.add_script_tag(path=str(PLOTLY_JS))
    return page.evaluate(_RENDER_JS, [json.loads(fig.to_json()), width])


def inside(box, outer, tol: float = 0.5) -> bool:
    return (box[0] >= outer[0] - tol and box[1] >= outer[1] - tol and box[2] <= outer[2] + tol
            and box[3] <= outer[3] + tol)


def overlap(a, b, tol: float = 0.5) -> bool:
    return a[0] < b[2] - tol and b[0] < a[2] - tol and a[1] < b[3] - tol and b[1] < a[3] - tol


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium at /usr/bin/chromium")
@pytest.mark.parametrize("build, widths", [(_examples, HALF_WIDTHS), (_detail, HALF_WIDTHS), (_masks, FULL_WIDTHS)])
def test_rendered_titles_and_images_stay_inside_and_apart(page, build, widths):
    """Drawn by plotly.js at the page's card widths: no title or image is cut by the figure's edge, no two titles
    touch, no title covers an image, and every image keeps a readable size."""
    fig = build()
    for width in widths:
        r = render_boxes(page, fig, width)
        paper, titles, images = r["paper"], r["annotations"], r["images"]
        assert len(titles) == len(fig.layout.annotations) and images
        for t in titles:
            assert inside(t, paper), (width, t, paper)
        for i, a in enumerate(titles):
            assert not any(overlap(a, b) for b in titles[i + 1 :]), (width, a)
        for im in images:
            assert inside(im, paper), (width, im, paper)
            assert min(im[2] - im[0], im[3] - im[1]) >= 56, (width, im)
            assert not any(overlap(t, im) for t in titles), (width, im)


@pytest.fixture(scope="module")
def mnist_app(tmp_path_factory):
    """`python app.py` on a free port; HOME holds a briefly trained classifier so a run takes seconds."""
    import torch

    from grids_core.mnist import load_digits, save_classifier, split, train_classifier
    from grids_core.mnist_runs import classifier_path

    home = tmp_path_factory.mktemp("mnist-home")
    X, y = load_digits()
    with torch.random.fork_rng(devices=[]):
        model, info = train_classifier(X, y, split(y, 0), seed=0, max_epochs=4)
    save_classifier(model, classifier_path(home, 0), info)
    port = _free_port()
    env = {**os.environ, "GRIDS_HOST": "127.0.0.1", "OMP_NUM_THREADS": "1"}
    log_path = home / "server.log"
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "app.py", "--bundle", str(home / "default"), "--cache-dir", str(home / "cache"),
             "--port", str(port)], cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url + "/mnist", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the app did not start:\n" + log_path.read_text()[-3000:]) from None
                time.sleep(0.5)
        yield SimpleNamespace(url=url, home=home, log=log_path)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium at /usr/bin/chromium")
def test_mnist_page_run_and_gallery(mnist_app, page):
    """Open /mnist, run L=16 with grids+random, see the violins and the table, click a gallery image."""
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.set_viewport_size({"width": 1500, "height": 1000})
    page.goto(mnist_app.url + "/mnist")
    page.wait_for_selector("#mnist-summary .alert", timeout=30_000)  # "no stored run for L = 64"
    assert "No stored run for L = 64" in page.inner_text("#mnist-summary")

    # L = 16 with the keyboard (Home = 8, one step right = 16); methods grids + random only
    thumb = page.locator("#mnist-L [role=slider]")
    thumb.focus()
    page.keyboard.press("Home")
    page.keyboard.press("ArrowRight")
    page.wait_for_function("document.querySelector('#mnist-summary').innerText.includes('L = 16')", timeout=10_000)
    for name in [m for m in METHOD_NAMES if m not in ("grids", "random")]:
        box = page.locator(f"#mnist-methods input[value='{name}']")
        if box.is_checked():
            box.uncheck()
    assert page.locator("#mnist-methods input[value='grids']").is_disabled()

    page.click("#mnist-run")
    page.wait_for_selector("#mnist-progress-wrap[style*='block']", timeout=15_000)
    page.wait_for_selector("#mnist-table-table tbody tr", timeout=90_000)
    rows = page.locator("#mnist-table-table tbody tr")
    assert rows.count() == 2
    assert rows.nth(0).inner_text().startswith("grids") and rows.nth(1).inner_text().startswith("random")
    assert page.locator("#mnist-violin g.trace.violins").count() == 2
    summary = page.inner_text("#mnist-summary")
    assert "L = 16" in summary and "random" in summary and "training objective" in summary
    assert page.locator("#mnist-masks .heatmaplayer image, #mnist-masks g.hm image").count() >= 2

    # the gallery: click test 8 #5 -> it is shown masked by both methods with p(8) before -> after
    page.wait_for_selector("#mnist-gallery button", timeout=15_000)
    page.locator("#mnist-gallery button[title^='test 8 #5:']").click()
    page.wait_for_function("document.querySelector('#mnist-detail').textContent.includes('test 8 #5')",
                           timeout=15_000)
    detail = page.locator("#mnist-detail").text_content()
    assert "grids" in detail and "random" in detail and "→" in detail
    page.wait_for_timeout(500)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "mnist_page.png"), full_page=True)

    # a stored result appears at once: back to 64 and again to 16 shows the table without a run
    thumb.focus()
    page.keyboard.press("End")
    page.wait_for_function("document.querySelector('#mnist-summary').innerText.includes('L = 128')", timeout=10_000)
    page.keyboard.press("Home")
    page.keyboard.press("ArrowRight")
    page.wait_for_function("document.querySelectorAll('#mnist-table-table tbody tr').length == 2", timeout=10_000)
    assert errors == [], errors


def test_every_method_has_its_own_fixed_colour():
    """Table swatches (no order given) and violins (ordered) must agree for every method."""
    from grids_core.mnist import METHODS
    from layouts.mnist import method_color

    order = list(reversed(METHODS))
    assert [method_color(m) for m in METHODS] == [method_color(m, order) for m in METHODS]
    assert len({method_color(m) for m in METHODS}) == len(METHODS)
