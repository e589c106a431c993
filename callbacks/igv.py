"""IGV tab: dash-bio Igv (igv.js 2.6.8) with a reference and tracks served by this app from its own bundle.

Routes (read only from the server's bundle and store; the browser never names a path):
``/grids-igv/ref.fa`` + ``.fai`` (a virtual all-N FASTA of the chromosome sizes, Range requests only),
``cytoband.txt``, ``genes.bed`` (BED12), ``peaks.bed``, ``coverage/<cell type>.bedgraph``,
``truth/<gene>/<cell type>.bed`` and ``links/<run id>.bedpe`` (the engine's BEDPE export).

Locus sync: dash-bio's Igv never writes its locus back, so assets/igv_locus.js reports igv.js's 'locuschange'
events into a store rendered next to the Igv ({"type": ids.IGV_LOCUS, "igv": <Igv id>}); ``igv_moved`` turns the
report into the app's locus (ids.LOCUS, hence the URL's ``locus=`` and the Browser tab), and ``show_igv`` does not
rebuild IGV for a locus that IGV itself reported.
"""

from __future__ import annotations

import re
import warnings
from functools import lru_cache

import numpy as np
import pandas as pd
from dash import ALL, Dash, Input, Output, State, ctx, dcc, html
from dash.exceptions import PreventUpdate
from flask import Response, abort, request

from callbacks.browser import effective_locus, shown_result
from callbacks.state import AppState
from grids_core.errors import GridsError
from grids_core.links import export_text
from layouts import ids
from layouts.components import alert
from layouts.genome import TRUTH_COLORS, Locus, parse_locus

with warnings.catch_warnings():  # Biopython (imported by dash-bio) warns about the venv layout
    warnings.simplefilter("ignore")
    import dash_bio

PREFIX = "/grids-igv"
_RUN_ID = re.compile(r"^[0-9a-f]{6,64}$")
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")
_IGV_LOCUS = re.compile(r"^\s*[A-Za-z0-9_.]+:[\d,]+-[\d,]+\s*$")  # one window, as igv.js labels it
MAX_RANGE = 8 << 20


# ---- the virtual reference ----------------------------------------------------------------------
def reference_chroms(state: AppState) -> list[tuple[str, int]]:
    """(name, length) of the reference: hg38 sizes, plus any bundle chromosome they lack."""
    sizes = dict(state.chrom_sizes())
    b = state.ctx().bundle
    for df in (b.peaks, b.genes):
        for chrom, end in df.groupby("chrom")["end"].max().items():
            if chrom not in sizes:
                sizes[str(chrom)] = int(end) + 1_000_000
    from grids_core.genome import natural_chrom_key

    return sorted(sizes.items(), key=lambda kv: natural_chrom_key(kv[0]))


def fasta_layout(chroms: list[tuple[str, int]]) -> list[tuple[str, int, int]]:
    """(name, length, byte offset of the sequence) of a FASTA with one sequence line per chromosome."""
    out, pos = [], 0
    for name, length in chroms:
        pos += len(name) + 2  # ">" + name + "\n"
        out.append((name, int(length), pos))
        pos += int(length) + 1
    return out


def fai_text(chroms: list[tuple[str, int]]) -> str:
    """samtools faidx index of the virtual FASTA."""
    return "".join(f"{n}\t{L}\t{off}\t{L}\t{L + 1}\n" for n, L, off in fasta_layout(chroms))


def fasta_bytes(chroms: list[tuple[str, int]], start: int, end: int) -> bytes:
    """Bytes [start, end) of the virtual FASTA (headers, N sequence, newlines), generated on the fly."""
    out = bytearray()
    for name, length, off in fasta_layout(chroms):
        header = f">{name}\n".encode()
        segs = ((off - len(header), off, header), (off, off + length, None), (off + length, off + length + 1, b"\n"))
        for s, e, payload in segs:
            lo, hi = max(s, start), min(e, end)
            if lo >= hi:
                continue
            out += payload[lo - s:hi - s] if payload is not None else b"N" * (hi - lo)
        if off + length + 1 >= end:
            break
    return bytes(out)


# ---- track files ----------------------------------------------------------------------------------
def genes_bed12(bundle) -> str:
    """Genes as BED12 (exons of each gene's longest transcript as blocks). A gene without known exons is a line:
    two 1 bp blocks at its ends, not one block that IGV would draw as a gene-long exon."""
    lines = []
    ex = bundle.exons
    by_gene = {g: d for g, d in ex.groupby("gene_name")} if ex is not None and len(ex) else {}
    for g in bundle.genes.itertuples(index=False):
        s, e = int(g.start), int(g.end)
        d = by_gene.get(g.name)
        if d is not None and len(d):
            tx = d.groupby("transcript_id").size().idxmax()
            d = d[d["transcript_id"] == tx].sort_values("start")
            starts, ends = d["start"].astype(int).to_numpy(), d["end"].astype(int).to_numpy()
            s, e = int(starts.min()), int(ends.max())  # BED12: the first block starts at chromStart, the last
            # ends at chromEnd, so the record spans the transcript drawn
            sizes = ",".join(str(x) for x in ends - starts)
            offs = ",".join(str(x) for x in starts - s)
            n = len(starts)
        elif e - s > 2:
            sizes, offs, n = "1,1", f"0,{e - s - 1}", 2
        else:
            sizes, offs, n = str(e - s), "0", 1
        lines.append(f"{g.chrom}\t{s}\t{e}\t{g.name}\t0\t{g.strand}\t{s}\t{e}\t31,58,95\t{n}\t{sizes}\t{offs}\n")
    return "".join(lines)


def peaks_bed(bundle) -> str:
    p = bundle.peaks
    return "".join(f"{c}\t{s}\t{e}\t{n}\n" for c, s, e, n in p[["chrom", "start", "end", "name"]].itertuples(index=False))


def coverage_bedgraph(bundle, cell_type: str) -> str:
    """Pseudobulk fraction of cells of the type with each peak open (overlapping peaks merged by max)."""
    k = list(bundle.coverage_types).index(cell_type)
    p = bundle.peaks
    df = pd.DataFrame({"chrom": p["chrom"], "start": p["start"], "end": p["end"], "v": bundle.coverage[k]})
    # bedGraph intervals must not overlap: clip each start to the previous end on the same chromosome
    prev_end = df.groupby("chrom")["end"].shift().fillna(-1).astype(np.int64).to_numpy()
    df["start"] = np.maximum(df["start"].to_numpy(), prev_end)
    df = df[df["end"] > df["start"]]
    return "".join(f"{c}\t{s}\t{e}\t{v:.4g}\n" for c, s, e, v in df.itertuples(index=False))


def truth_bed(bundle, gene: str, cell_type: str) -> str:
    """Planted promoter / enhancers / decoys of one pair (simulated), coloured by group."""
    t = bundle.pair_truth(gene, cell_type)
    if t is None:
        return ""
    p = bundle.peaks.iloc[t["peak_index"].to_numpy()]
    out = []
    for (c, s, e), grp in zip(p[["chrom", "start", "end"]].itertuples(index=False), t["group"], strict=True):
        hexcol = TRUTH_COLORS.get(grp, "#999999").lstrip("#")
        rgb = ",".join(str(int(hexcol[i:i + 2], 16)) for i in (0, 2, 4))
        out.append(f"{c}\t{s}\t{e}\t{grp}\t0\t.\t{s}\t{e}\t{rgb}\n")
    return "".join(out)


def _text(body: str, mimetype: str = "text/plain") -> Response:
    return Response(body, mimetype=mimetype, headers={"Cache-Control": "no-cache"})


def register_routes(app: Dash, state: AppState) -> None:
    """Flask routes serving the IGV reference and tracks from the server's bundle."""
    server = app.server

    @lru_cache(maxsize=1)
    def chroms_cached(bundle_id: str) -> tuple[tuple[str, int], ...]:
        return tuple(reference_chroms(state))

    def chroms() -> list[tuple[str, int]]:
        return list(chroms_cached(state.ctx().bundle.bundle_id))

    @server.route(f"{PREFIX}/ref.fa.fai")
    def igv_fai():
        return _text(fai_text(chroms()))

    @server.route(f"{PREFIX}/ref.fa")
    def igv_fasta():
        m = _RANGE.match(request.headers.get("Range", ""))
        total = fasta_layout(chroms())[-1][2] + fasta_layout(chroms())[-1][1] + 1
        if m is None:
            return Response("This virtual FASTA is served in byte ranges only.", status=416,
                            headers={"Content-Range": f"bytes */{total}"})
        start = int(m.group(1))
        end = min(int(m.group(2)) + 1 if m.group(2) else start + MAX_RANGE, start + MAX_RANGE, total)
        if start >= total:
            return Response(status=416, headers={"Content-Range": f"bytes */{total}"})
        body = fasta_bytes(chroms(), start, end)
        return Response(body, status=206, mimetype="text/plain", headers={
            "Content-Range": f"bytes {start}-{start + len(body) - 1}/{total}", "Accept-Ranges": "bytes"})

    @server.route(f"{PREFIX}/cytoband.txt")
    def igv_cytoband():
        cyto = state.cytobands()
        if cyto is None:
            return _text("")
        return _text("".join(f"{c}\t{s}\t{e}\t{b}\t{st}\n" for c, s, e, b, st in
                             cyto[["chrom", "start", "end", "band", "stain"]].itertuples(index=False)))

    @server.route(f"{PREFIX}/genes.bed")
    def igv_genes():
        return _text(genes_bed12(state.ctx().bundle))

    @server.route(f"{PREFIX}/peaks.bed")
    def igv_peaks():
        return _text(peaks_bed(state.ctx().bundle))

    @server.route(f"{PREFIX}/coverage/<cell_type>.bedgraph")
    def igv_coverage(cell_type: str):
        b = state.ctx().bundle
        if b.coverage is None or cell_type not in b.coverage_types:
            abort(404)
        return _text(coverage_bedgraph(b, cell_type))

    @server.route(f"{PREFIX}/truth/<gene>/<cell_type>.bed")
    def igv_truth(gene: str, cell_type: str):
        b = state.ctx().bundle
        if gene not in set(b.gene_names) or cell_type not in b.cell_types:
            abort(404)
        return _text(truth_bed(b, gene, cell_type))

    @server.route(f"{PREFIX}/links/<run_id>.bedpe")
    def igv_links(run_id: str):
        if not _RUN_ID.match(run_id):
            abort(404)
        links = state.links(run_id)
        if links is None:
            abort(404)
        return _text(export_text(links, "bedpe"))


def igv_tracks(app: Dash, state: AppState, gene: str | None, cell: str | None, res) -> list[dict]:
    """Track configs for igv.js 2.6.8 (formats it reads: bed, bedgraph, bedpe)."""
    b = state.ctx().bundle
    url = app.get_relative_path
    sim = " (simulated)" if b.manifest.get("provenance", {}).get("coverage") == "simulated" else ""
    tracks: list[dict] = [
        {"name": "Genes", "type": "annotation", "format": "bed", "url": url(f"{PREFIX}/genes.bed"),
         "displayMode": "EXPANDED", "height": 90, "color": "#1f3a5f"},
    ]
    if res is not None:
        tracks.append({"name": f"Links {res.method} {res.gene} {res.cell_type}", "type": "interaction",
                       "format": "bedpe", "url": url(f"{PREFIX}/links/{res.run_id}.bedpe"), "height": 120,
                       "color": "#b2182b", "thickness": 2})
    tracks.append({"name": "Peaks", "type": "annotation", "format": "bed", "url": url(f"{PREFIX}/peaks.bed"),
                   "displayMode": "COLLAPSED", "height": 30, "color": "#8a94a6"})
    planted = b.pair_truth(gene, cell) if gene and cell else None
    if planted is not None and len(planted):  # no empty track where nothing was planted
        tracks.append({"name": f"Planted {gene} {cell} (simulated)", "type": "annotation", "format": "bed",
                       "url": url(f"{PREFIX}/truth/{gene}/{cell}.bed"), "height": 50,
                       "displayMode": "EXPANDED"})  # room for the group names under the features
    if b.coverage is not None:
        top = float(np.round(max(float(b.coverage.max()), 0.05), 2))  # one scale for every cell type
        order = [cell] + [t for t in b.coverage_types if t != cell] if cell in b.coverage_types else b.coverage_types
        for t in order:
            tracks.append({"name": f"{t} ATAC{sim}", "type": "wig", "format": "bedgraph",
                           "url": url(f"{PREFIX}/coverage/{t}.bedgraph"), "height": 40, "min": 0, "max": top,
                           "color": "#c0392b" if t == cell else "#8a94a6"})
    return tracks


# ---- locus sync: IGV -> the app's locus --------------------------------------------------------------
SAME_BP = 2  # igv.js derives a window's end from its pixel width: a locus it was given can come back 1 bp off


def igv_locus(text: str | None, bundle, chrom_sizes: dict[str, int] | None = None) -> Locus | None:
    """The app's locus for a locus string igv.js reports (``chr2:171,000,001-171,200,000``: 1-based, inclusive,
    commas), normalised like a region typed into the Browser tab's locus box; None for what is not one window of
    this reference: the whole-genome view (``all``), several loci, a gene name, an unknown chromosome."""
    if not isinstance(text, str) or not _IGV_LOCUS.match(text):
        return None
    try:
        return parse_locus(text, bundle, chrom_sizes)
    except GridsError:
        return None


def same_window(a: Locus | None, b: Locus | None, tol: int = SAME_BP) -> bool:
    """Whether two loci are the same window up to igv.js's rounding (``tol`` bp at each end)."""
    return (a is not None and b is not None and a.chrom == b.chrom and abs(a.start - b.start) <= tol
            and abs(a.end - b.end) <= tol)


def locus_after_igv(report: str | None, current: Locus | None, bundle,
                    chrom_sizes: dict[str, int] | None = None) -> str | None:
    """The app's new locus label (ids.LOCUS) after IGV reported ``report``; None when nothing changes: not one
    window, or the window the app already shows (IGV drawn at the app's locus reports it back up to rounding)."""
    new = igv_locus(report, bundle, chrom_sizes)
    if new is None or same_window(new, current):
        return None
    return new.label()


def igv_reported(locus_label: str | None, reports, bundle, chrom_sizes: dict[str, int] | None = None) -> bool:
    """Whether ``locus_label`` is where IGV last reported itself (the data of its IGV_LOCUS store): then IGV already
    shows it, and rebuilding IGV there would only reload it. An older report does not count: going back to it
    (browser history) must move IGV."""
    for data in reports or []:
        loc = igv_locus(data.get("locus"), bundle, chrom_sizes) if isinstance(data, dict) else None
        if locus_label and loc is not None and loc.label() == locus_label:
            return True
    return False


def register(app: Dash, state: AppState) -> None:
    """Routes, the callback that (re)builds the IGV component when its tab is shown, and IGV -> locus sync."""
    register_routes(app, state)

    @app.callback(
        Output(ids.IGV_CONTAINER, "children"),
        Output(ids.IGV_INFO, "children"),
        Input(ids.TABS, "value"),
        Input(ids.VIEW_RUN, "data"),
        Input(ids.LOCUS, "data"),
        Input(ids.GENE, "value"),
        Input(ids.CELL, "value"),
        State({"type": ids.IGV_LOCUS, "igv": ALL}, "data"),
    )
    def show_igv(tab, run_id, locus_label, gene, cell, reports):
        if tab != "igv":
            raise PreventUpdate
        try:
            if list(ctx.triggered_prop_ids.values()) == [ids.LOCUS] and igv_reported(
                    locus_label, reports, state.ctx().bundle, state.chrom_sizes()):
                raise PreventUpdate  # the locus came from IGV itself (igv_moved): IGV already shows it
            res = shown_result(state, run_id, gene, cell)
            try:
                locus = effective_locus(state, locus_label, gene, res)
            except GridsError:
                locus = effective_locus(state, None, gene, res)
            build = state.ctx().bundle.genome_build
        except GridsError as exc:
            return None, alert(str(exc))
        reference = {
            "id": f"grids-{build}", "name": f"{build} (served by this app; no sequence)",
            "fastaURL": app.get_relative_path(f"{PREFIX}/ref.fa"),
            "indexURL": app.get_relative_path(f"{PREFIX}/ref.fa.fai"),
            "cytobandURL": app.get_relative_path(f"{PREFIX}/cytoband.txt"),
        }
        info = [
            f"IGV (igv.js 2.6.8 via dash-bio) opened at {locus.label() if locus else '—'}; moving in IGV moves the ",
            "app's locus (link and Browser tab). Reference, genes, peaks, coverage and links are served by this app ",
            "from its bundle. ",
            html.B("Links: ") if res is not None else "",
            f"{res.method} run {res.run_id}" if res is not None else "no run shown (run one in the Browser tab)",
        ]
        igv_id = f"igv-{run_id or 'none'}-{abs(hash(locus.igv() if locus else '')) % 10**8}"
        comp = dash_bio.Igv(
            id=igv_id, reference=reference, locus=locus.igv() if locus else None, minimumBases=100,
            tracks=igv_tracks(app, state, gene, cell, res), style={"minHeight": "600px"},
        )
        # assets/igv_locus.js writes where this IGV goes into the store named after it
        return [dcc.Store(id={"type": ids.IGV_LOCUS, "igv": igv_id}, storage_type="memory"), comp], info

    @app.callback(
        Output(ids.LOCUS, "data", allow_duplicate=True),
        Input({"type": ids.IGV_LOCUS, "igv": ALL}, "data"),
        State(ids.TABS, "value"),
        State(ids.LOCUS, "data"),
        State(ids.GENE, "value"),
        State(ids.VIEW_RUN, "data"),
        State(ids.CELL, "value"),
        prevent_initial_call=True,
    )
    def igv_moved(reports, tab, locus_label, gene, run_id, cell):
        """The user moved in IGV (drag, zoom, IGV's search box): the app's locus follows, so the URL's locus= and
        the Browser tab show the same window. Nothing for the IGV tab hidden, the whole-genome view, several
        loci, or the window the app already shows (so IGV opening at the app's locus changes nothing)."""
        report = next((d.get("locus") for d in reports or [] if isinstance(d, dict) and d.get("locus")), None)
        if tab != "igv" or report is None:
            raise PreventUpdate
        try:
            b, sizes = state.ctx().bundle, state.chrom_sizes()
            res = shown_result(state, run_id, gene, cell)
            try:
                current = effective_locus(state, locus_label, gene, res)
            except GridsError:
                current = None
        except GridsError:
            raise PreventUpdate from None
        new = locus_after_igv(report, current, b, sizes)
        if new is None or new == locus_label:
            raise PreventUpdate
        return new
