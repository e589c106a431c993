"""Linkage tables (one tidy row per gene x peak) and their exports: TSV/CSV, BEDPE, UCSC interact."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from grids_core.bundle import Bundle
from grids_core.errors import SettingsError
from grids_core.results import ExplanationResult

COLUMNS = [
    "gene", "gene_id", "gene_chrom", "tss", "strand", "peak", "peak_chrom", "peak_start", "peak_end", "peak_mid",
    "distance_to_tss", "cell_type", "rank", "drop_one", "single", "method", "run_id",
]
FORMATS = ("tsv", "csv", "bedpe", "interact")


def linkage_table(bundle: Bundle, result: ExplanationResult) -> pd.DataFrame:
    """Tidy links of a result; distance_to_tss is signed along the gene's strand (upstream < 0)."""
    g = bundle.gene_row(result.gene)
    idx = np.asarray(result.subset, dtype=np.int64)
    p = bundle.peaks.iloc[idx].reset_index(drop=True)
    mid = ((p["start"] + p["end"]) // 2).astype(np.int64)
    sign = 1 if g["strand"] == "+" else -1
    same = p["chrom"] == g["chrom"]
    dist = pd.Series(np.where(same, (mid - int(g["tss"])) * sign, np.nan)).astype("Int64")
    n = len(idx)
    single = list(result.single) if len(result.single) == n else [np.nan] * n
    return pd.DataFrame(
        {
            "gene": result.gene,
            "gene_id": g["gene_id"],
            "gene_chrom": g["chrom"],
            "tss": int(g["tss"]),
            "strand": g["strand"],
            "peak": p["name"],
            "peak_chrom": p["chrom"],
            "peak_start": p["start"].astype(np.int64),
            "peak_end": p["end"].astype(np.int64),
            "peak_mid": mid,
            "distance_to_tss": dist,
            "cell_type": result.cell_type,
            "rank": np.arange(1, n + 1),
            "drop_one": np.asarray(result.drop_one, dtype=float)[:n] if len(result.drop_one) else np.nan,
            "single": single,
            "method": result.method,
            "run_id": result.run_id,
        },
        columns=COLUMNS,
    )


def to_bedpe(links: pd.DataFrame) -> str:
    """BEDPE: peak interval, then a 1-bp TSS interval; name gene|peak, score = drop-one effect."""
    out = io.StringIO()
    out.write("#chrom1\tstart1\tend1\tchrom2\tstart2\tend2\tname\tscore\tstrand1\tstrand2\tcell_type\tmethod\trank\n")
    for r in links.itertuples(index=False):
        out.write(
            f"{r.peak_chrom}\t{r.peak_start}\t{r.peak_end}\t{r.gene_chrom}\t{r.tss}\t{r.tss + 1}\t"
            f"{r.gene}|{r.peak}\t{_fmt(r.drop_one)}\t.\t{r.strand}\t{r.cell_type}\t{r.method}\t{r.rank}\n"
        )
    return out.getvalue()


def to_interact(links: pd.DataFrame, track_line: bool = True) -> str:
    """UCSC interact (bed5+13): source = peak midpoint, target = TSS; score scaled 0-1000 by |effect|."""
    out = io.StringIO()
    if track_line and len(links):
        first = links.iloc[0]
        out.write(
            f'track type=interact name="GRIDS {first.gene} {first.cell_type}" '
            f'description="GRIDS links {first.method} run {first.run_id}" interactDirectional=true maxHeightPixels=200:100:50\n'
        )
    eff = links["drop_one"].astype(float).fillna(0.0).to_numpy()
    top = float(np.abs(eff).max()) if len(eff) and np.abs(eff).max() > 0 else 1.0
    for r, e in zip(links.itertuples(index=False), eff, strict=True):
        src_s, tgt_s = int(r.peak_mid), int(r.tss)
        if r.peak_chrom == r.gene_chrom:
            chrom, start, end = r.peak_chrom, min(src_s, tgt_s), max(src_s, tgt_s) + 1
        else:
            chrom, start, end = r.peak_chrom, src_s, src_s + 1
        score = int(round(1000 * abs(e) / top))
        color = "#B2182B" if e >= 0 else "#2166AC"
        out.write(
            f"{chrom}\t{start}\t{end}\t{r.gene}|{r.peak}\t{score}\t{_fmt(e)}\t{r.cell_type}\t{color}\t"
            f"{r.peak_chrom}\t{src_s}\t{src_s + 1}\t{r.peak}\t.\t"
            f"{r.gene_chrom}\t{tgt_s}\t{tgt_s + 1}\t{r.gene}\t{r.strand}\n"
        )
    return out.getvalue()


def export_text(links: pd.DataFrame, fmt: str) -> str:
    """The linkage table rendered in one of FORMATS."""
    fmt = fmt.lower().lstrip(".")
    if fmt == "tsv":
        return links.to_csv(sep="\t", index=False)
    if fmt == "csv":
        return links.to_csv(index=False)
    if fmt == "bedpe":
        return to_bedpe(links)
    if fmt == "interact":
        return to_interact(links)
    raise SettingsError(f"Unknown export format {fmt!r}: use one of {', '.join(FORMATS)}.")


def format_from_path(path: str | os.PathLike) -> str:
    suffix = Path(path).suffix.lower().lstrip(".")
    aliases = {"txt": "tsv", "bed": "interact", "inter": "interact"}
    fmt = aliases.get(suffix, suffix)
    if fmt not in FORMATS:
        raise SettingsError(f"Cannot tell the export format of {path}: end the name in .tsv, .csv, .bedpe or .interact.")
    return fmt


def write_export(links: pd.DataFrame, path: str | os.PathLike, fmt: str | None = None) -> Path:
    """Write an export atomically (temp file + rename)."""
    path = Path(path)
    text = export_text(links, fmt or format_from_path(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)
    return path


def _fmt(x) -> str:
    try:
        return f"{float(x):.6g}"
    except (TypeError, ValueError):
        return "."
