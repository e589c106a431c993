"""Count checks, cell QC, ATAC binarisation, RNA normalisation and gene selection.

RNA scale: ``log1p(counts / total * 10,000)`` where ``total`` is the cell's UMI count over ALL genes
(before any gene is dropped), the bundle's documented ``rna_scale``. Variable genes: Seurat-style
normalised dispersion (variance/mean of counts per 10,000, z-scored within 20 mean bins).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from grids_core.ingest.common import Modality, input_error

CP10K = 1e4
LARGE_QC_LOSS = 0.3  # above this share of cells removed, prepare's summary details the QC
DEPTH_FROM_PEAKS = "sum of ATAC counts in peaks"
FRAGMENT_COLS = ("atac_fragments", "nFrags", "nCount_ATAC", "n_fragments", "passed_filters", "atac_counts")
TSS_COLS = ("tss_enrichment", "TSSEnrichment", "TSS.enrichment", "TSS_enrichment", "tsse")


def check_counts(mod: Modality) -> bool:
    """Raise on negative/non-finite values (and non-integer RNA or fractional ATAC); True if already binary."""
    data = mod.x.data
    where = f"{mod.source_field}"
    if data.size == 0:
        raise input_error(mod.path, where, f"the {mod.kind.upper()} matrix has no non-zero values.",
                          "pass the counts matrix itself (filtered_feature_bc_matrix), not an empty one.")
    if not np.all(np.isfinite(data)):
        raise input_error(mod.path, where, f"the {mod.kind.upper()} matrix has NaN or infinite values.",
                          "pass raw counts (non-negative integers).")
    if (data < 0).any():
        raise input_error(mod.path, where, f"the {mod.kind.upper()} matrix has negative values (min {data.min():g}); "
                          "counts cannot be negative (scaled or centred data?).",
                          "pass raw counts: for AnnData point --rna-layer/--atac-layer at the counts layer or 'raw'.")
    integral = np.all(np.equal(np.mod(data, 1), 0))
    if not integral and mod.kind == "rna":
        raise input_error(mod.path, where, "RNA values are not integers (e.g. "
                          f"{data[np.mod(data, 1) != 0][0]:g}): GRIDS normalises itself and needs raw UMI counts.",
                          "pass raw counts: for AnnData point --rna-layer at the counts layer (often 'counts') or 'raw'.")
    if not integral:
        raise input_error(mod.path, where, "ATAC values are fractional (e.g. "
                          f"{data[np.mod(data, 1) != 0][0]:g}, TF-IDF/LSI-normalised?): peaks must be counts or 0/1.",
                          "pass the raw peak counts (counts > 1 are fine: they are binarised).")
    return bool(np.all(data == 1))


@dataclass
class QCThresholds:
    """Cells pass when ATAC depth > min_atac_counts, RNA genes > min_rna_genes, TSS enrichment > min_tss."""

    min_atac_counts: float = 1000
    min_rna_genes: float = 200
    min_tss_enrichment: float = 2.0


def _numeric_column(metrics: pd.DataFrame, barcodes: np.ndarray, col: str, source: str) -> np.ndarray:
    vals = pd.to_numeric(metrics[col].reindex(barcodes), errors="coerce").to_numpy(np.float64)
    if np.isnan(vals).all():
        example = metrics[col].reindex(barcodes).iloc[0] if len(barcodes) else None
        raise input_error(source, col, f"column {col!r} has no numeric values for the {len(barcodes)} matched cells "
                          f"(e.g. {example!r} for {str(barcodes[0]) if len(barcodes) else None!r}).",
                          "point the option at a numeric per-cell column, or leave it unset.")
    return vals


def find_column(metrics: pd.DataFrame, explicit: str | None, candidates: tuple[str, ...], option: str,
                source: str) -> str | None:
    """The explicit column (which must exist) or the first candidate present."""
    if explicit:
        if explicit not in metrics.columns:
            raise input_error(source, explicit, f"no per-cell column {explicit!r} in labels/metrics/obs "
                              f"(have: {list(metrics.columns)[:12]}).", f"fix {option}, or leave it unset.")
        return explicit
    return next((c for c in candidates if c in metrics.columns), None)


def atac_qc(
    x: sp.csr_matrix,
    barcodes: np.ndarray,
    metrics: pd.DataFrame,
    thresholds: QCThresholds,
    fragments_col: str | None = None,
    tss_col: str | None = None,
    source: str | Mapping[str, str] = "per-cell metrics",
) -> tuple[np.ndarray, dict]:
    """ATAC pass mask: depth (a fragments column, else the counts in peaks) and TSS enrichment if a column has it.

    ``source`` names where the columns come from: one string, or one per column (the file holding it).
    Cells without a numeric value fail and are counted (``*_not_numeric``).
    """
    def where(col: str | None) -> str:
        if isinstance(source, str):
            return source
        return source.get(col or "", ", ".join(dict.fromkeys(source.values())) or "per-cell metrics")

    frag = find_column(metrics, fragments_col, FRAGMENT_COLS, "--fragments-col", where(fragments_col))
    tss = find_column(metrics, tss_col, TSS_COLS, "--tss-col", where(tss_col))
    report: dict = {"atac_depth_gt": thresholds.min_atac_counts, "atac_cells_in": int(len(barcodes))}
    if frag is not None:
        depth = _numeric_column(metrics, barcodes, frag, where(frag))
        report.update(atac_depth_source=f"column {frag}", atac_depth_file=where(frag),
                      atac_depth_not_numeric=int(np.isnan(depth).sum()))
    else:
        depth = np.asarray(x.sum(axis=1)).ravel().astype(np.float64)
        report["atac_depth_source"] = DEPTH_FROM_PEAKS
    ok = np.nan_to_num(depth, nan=0.0) > thresholds.min_atac_counts
    report["failed_atac_depth"] = int((~ok).sum())
    if tss is not None:
        vals = _numeric_column(metrics, barcodes, tss, where(tss))
        ok_tss = np.nan_to_num(vals, nan=0.0) > thresholds.min_tss_enrichment
        report.update(tss_enrichment_gt=thresholds.min_tss_enrichment, tss_enrichment_source=f"column {tss}",
                      tss_enrichment_file=where(tss), tss_enrichment_not_numeric=int(np.isnan(vals).sum()),
                      failed_tss_enrichment=int((ok & ~ok_tss).sum()))
        ok &= ok_tss
    else:
        report["tss_enrichment_source"] = None
    report["atac_cells_passing"] = int(ok.sum())
    return ok, report


def rna_qc(x: sp.csr_matrix, thresholds: QCThresholds) -> tuple[np.ndarray, dict]:
    """RNA pass mask: more than ``min_rna_genes`` genes detected (over all genes)."""
    ok = np.diff(sp.csr_matrix(x).indptr) > thresholds.min_rna_genes
    return ok, {"rna_genes_gt": thresholds.min_rna_genes, "rna_cells_in": int(x.shape[0]),
                "failed_rna_genes": int((~ok).sum()), "rna_cells_passing": int(ok.sum())}


def removed_fraction(report: dict) -> float:
    """The largest share of a modality's cells that QC removed (0..1)."""
    shares = [1 - report[f"{m}_cells_passing"] / report[f"{m}_cells_in"] for m in ("atac", "rna")
              if report.get(f"{m}_cells_in")]
    if report.get("cells_in"):
        shares.append(1 - report["cells_passing"] / report["cells_in"])
    return max(shares, default=0.0)


def describe_qc(report: dict) -> tuple[str, str]:
    """(what QC removed, per criterion with its threshold and the values it was applied to; how to change it)."""
    def pct(n: int, of: int, what: str) -> str:
        return f"{n} of {of} {what} ({100 * n / of:.0f}%)" if of else f"{n} {what}"

    on_peaks = report.get("atac_depth_source") == DEPTH_FROM_PEAKS
    depth_what = ("counts in peaks: no fragments column was found in the metrics, labels or obs" if on_peaks
                  else f"{report.get('atac_depth_source')} of {report.get('atac_depth_file')}")
    parts = [f"ATAC depth <= {report['atac_depth_gt']:g} ({depth_what}) removed {report['failed_atac_depth']}"]
    options = [f"--min-atac-counts (now {report['atac_depth_gt']:g}"
               + ("; it was applied to counts in peaks, a few times lower than fragment counts: lower it, or pass "
                  "--metrics per_barcode_metrics.csv to use its atac_fragments)" if on_peaks else ")")]
    if report.get("tss_enrichment_source"):
        parts.append(f"TSS enrichment <= {report['tss_enrichment_gt']:g} ({report['tss_enrichment_source']} of "
                     f"{report.get('tss_enrichment_file')}) removed {report['failed_tss_enrichment']} more")
        options.append(f"--min-tss-enrichment (now {report['tss_enrichment_gt']:g})")
    parts.append(f"RNA genes detected <= {report['rna_genes_gt']:g} removed {report['failed_rna_genes']}")
    options.append(f"--min-rna-genes (now {report['rna_genes_gt']:g})")
    for key, what in (("atac_depth_not_numeric", "ATAC depth"), ("tss_enrichment_not_numeric", "TSS enrichment")):
        if report.get(key):
            parts.append(f"{report[key]} cells had no numeric {what} value and failed")
    if report.get("cells_in"):
        head = f"QC removed {pct(report['cells_in'] - report['cells_passing'], report['cells_in'], 'cells')}"
    else:
        a_in, r_in = report["atac_cells_in"], report["rna_cells_in"]
        head = (f"QC removed {pct(a_in - report['atac_cells_passing'], a_in, 'ATAC cells')} and "
                f"{pct(r_in - report['rna_cells_passing'], r_in, 'RNA cells')}")
    problem = f"{head}: " + "; ".join(parts) + " (a cell can fail several)."
    return problem, "if these QC thresholds do not suit the data, change them: " + ", ".join(options)


def binarise(x: sp.csr_matrix) -> sp.csr_matrix:
    """0/1 uint8 CSR (explicit zeros removed)."""
    x = sp.csr_matrix(x, copy=True)
    x.eliminate_zeros()
    x.data = np.ones_like(x.data, dtype=np.uint8)
    return x.astype(np.uint8)


def log1p_cp10k(x: sp.csr_matrix) -> sp.csr_matrix:
    """log1p(counts per 10,000) per cell, totals over all columns of ``x`` (float32 CSR)."""
    x = sp.csr_matrix(x, dtype=np.float64, copy=True)
    totals = np.asarray(x.sum(axis=1)).ravel()
    scale = np.divide(CP10K, totals, out=np.zeros_like(totals), where=totals > 0)
    x = sp.diags(scale) @ x
    x = sp.csr_matrix(x)
    x.data = np.log1p(x.data)
    return x.astype(np.float32)


def variable_genes(lognorm: sp.csr_matrix, eligible: np.ndarray, n: int, n_bins: int = 20) -> np.ndarray:
    """Indices of the ``n`` most variable eligible genes (normalised dispersion, highest first)."""
    cp = sp.csr_matrix(lognorm, dtype=np.float64, copy=True)
    cp.data = np.expm1(cp.data)
    mean = np.asarray(cp.mean(axis=0)).ravel()
    sq = cp.multiply(cp)
    var = np.asarray(sq.mean(axis=0)).ravel() - mean**2
    ok = eligible & (mean > 0)
    disp = np.full(len(mean), -np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.log(np.maximum(var[ok], 1e-12) / mean[ok])
        m = np.log1p(mean[ok])
    if ok.sum() > 1:
        edges = np.quantile(m, np.linspace(0, 1, n_bins + 1)[1:-1]) if ok.sum() > n_bins else []
        bins = np.digitize(m, edges) if len(edges) else np.zeros(len(m), dtype=int)
        z = np.zeros(len(m))
        for b in np.unique(bins):
            sel = bins == b
            sd = d[sel].std()
            z[sel] = (d[sel] - d[sel].mean()) / sd if sel.sum() > 1 and sd > 0 else 0.0
        disp[ok] = z
    elif ok.sum() == 1:
        disp[ok] = 0.0
    order = np.lexsort((np.arange(len(disp)), -disp))  # highest dispersion first, ties by position
    order = order[np.isfinite(disp[order])]
    return order[:n]
