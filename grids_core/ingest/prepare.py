"""``prepare``: user multiome files -> a validated GRIDS bundle (every layer's provenance 'real').

Steps: read the inputs; check counts and the genome build; sort peaks (moving their ATAC columns) and
refuse or merge overlapping ones; match barcodes between modalities and labels; QC cells (ATAC depth,
RNA genes, TSS enrichment when a column gives it); drop or refuse cell types with too few cells;
binarise ATAC; normalise RNA to log1p(CP10k) over all genes; keep the top-G variable genes plus every
marker; stratified splits; optional TADs and Hi-C; save atomically (the bundle computes pseudobulk
coverage). Every user error is an ``InputError`` raised before anything is written.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from grids_core import bundle as bundle_io
from grids_core.bundle import Bundle, stratified_split
from grids_core.genome import sort_intervals
from grids_core.ingest import cells as cellsel
from grids_core.ingest import qc
from grids_core.ingest.annotation import Annotation, annotate, parse_markers, resolve_markers
from grids_core.ingest.common import Modality, PathLike, Progress, input_error
from grids_core.ingest.intervals import (
    GenomeSpec,
    check_build,
    genome_spec,
    merge_overlapping,
    overlap_clusters,
    parse_intervals,
    sort_peaks,
)

RNA_SCALE = "log1p(counts per 10,000 UMIs; per-cell totals over all genes before gene selection)"


@dataclass
class PrepareInputs:
    """Input files: one of tenx_h5 / h5mu / (rna_h5ad + atac_h5ad), labels, optional annotation layers."""

    tenx_h5: PathLike | None = None
    h5mu: PathLike | None = None
    rna_h5ad: PathLike | None = None
    atac_h5ad: PathLike | None = None
    labels: PathLike | None = None
    rna_labels: PathLike | None = None
    atac_labels: PathLike | None = None
    metrics: PathLike | None = None
    gtf: PathLike | None = None
    tads: PathLike | None = None
    cool: PathLike | None = None
    chrom_sizes: PathLike | None = None


@dataclass
class PrepareOptions:
    """Thresholds and column names (defaults follow the paper's pipeline; scale them down for tiny data)."""

    markers: list[str] | str = field(default_factory=list)  # 'GAD1' or 'SST:GAD1'
    n_genes: int = 3000
    genome: str = "hg38"
    chrom_prefix: str | None = None
    label_barcode_col: str = "barcode"
    label_col: str = "cell_type"
    metrics_barcode_col: str = "barcode"
    fragments_col: str | None = None
    tss_col: str | None = None
    min_atac_counts: float = 1000
    min_rna_genes: float = 200
    min_tss_enrichment: float = 2.0
    min_cells: int = 20
    drop_small_types: bool = False
    min_barcode_overlap: float = 0.5
    merge_overlapping_peaks: bool = False
    unpaired: bool = False
    rna_layer: str | None = None
    atac_layer: str | None = None
    gtf_name_attr: str = "gene_name"
    hic_resolution: int | None = 10_000
    hic_flank: int = 1_000_000
    hic_balance: bool | None = None
    seed: int = 0


def prepare(
    inputs: PrepareInputs | None = None,
    options: PrepareOptions | None = None,
    *,
    out: PathLike | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
    **kwargs,
) -> Bundle:
    """Build (and with ``out``, save atomically) a bundle from user files; keyword arguments may name any
    field of ``PrepareInputs`` or ``PrepareOptions``."""
    inputs = dataclasses.replace(inputs or PrepareInputs(), **_take(kwargs, PrepareInputs))
    options = dataclasses.replace(options or PrepareOptions(), **_take(kwargs, PrepareOptions))
    if kwargs:
        raise TypeError(f"prepare() got unexpected arguments {sorted(kwargs)}")
    say = progress or (lambda f, m: None)
    if out is not None:
        bundle_io.check_output_dir(out, overwrite, inputs=dataclasses.asdict(inputs))
    _check_options(inputs, options)
    spec = genome_spec(options.genome, inputs.chrom_sizes, options.chrom_prefix)
    markers = parse_markers(options.markers)

    say(0.02, "reading matrices")
    rna, atac = _read_modalities(inputs, options)
    say(0.25, "checking counts")
    atac_was_binary = qc.check_counts(atac)
    qc.check_counts(rna)
    gtf = None
    if inputs.gtf is not None:
        from grids_core.ingest.gtf import read_gtf

        say(0.3, "reading GTF")
        gtf = read_gtf(inputs.gtf, options.gtf_name_attr)
    ann = annotate(rna, spec, gtf, inputs.gtf)
    _require_placed_genes(ann, rna)
    resolve_markers(markers, ann, rna, None)  # fail fast on absent markers, before the heavy steps

    say(0.4, "peaks")
    atac, peak_report = _prepare_peaks(atac, spec, options)
    say(0.45, "matching barcodes and QC")
    atac, rna, labels_a, rna_rows, cell_report = _select_cells(atac, rna, inputs, options)
    say(0.6, "normalising RNA")
    lognorm = qc.log1p_cp10k(rna.x)
    kept_types = set(pd.unique(labels_a))
    marker_idx = resolve_markers(markers, ann, rna, kept_types)
    say(0.7, "selecting genes")
    top = qc.variable_genes(lognorm, ann.genes["eligible"].to_numpy(), options.n_genes)
    chosen = list(dict.fromkeys([int(i) for i in top] + [i for _, i in marker_idx]))
    genes = ann.genes.iloc[chosen].copy()
    genes["_col"] = chosen
    genes = sort_intervals(genes.astype({"start": np.int64, "end": np.int64, "tss": np.int64})).reset_index(drop=True)
    rna_mat = lognorm[:, genes["_col"].to_numpy()].toarray().astype(np.float32)[rna_rows]
    exons = _exons_for(ann, genes)

    tads = pd.DataFrame(columns=bundle_io.TAD_COLS)
    hic: dict[str, dict] = {}
    hic_report = None
    if inputs.tads is not None:
        from grids_core.ingest.hic import read_tads

        say(0.8, "TADs")
        tads = read_tads(inputs.tads, spec)
    marker_names = {i: genes["name"][genes["_col"] == i].iloc[0] for _, i in marker_idx}
    if inputs.cool is not None:
        from grids_core.ingest.hic import read_hic

        say(0.85, "Hi-C")
        hic, hic_report = read_hic(inputs.cool, genes[genes["name"].isin(set(marker_names.values()))], spec,
                                   options.hic_resolution, options.hic_flank, options.hic_balance)

    say(0.9, "assembling bundle")
    splits = stratified_split(labels_a, seed=options.seed)
    cells = pd.DataFrame({"barcode": atac.barcodes, "cell_type": labels_a, "split": splits})
    manifest = _manifest(inputs, options, spec.build, ann, peak_report, cell_report, hic_report, atac_was_binary,
                         [{"cell_type": ct, "gene": marker_names[i]} for ct, i in marker_idx],
                         has_tads=inputs.tads is not None, has_hic=bool(hic))
    if spec.build != "hg38":  # the app ships hg38's sizes and bands only: keep this build's sizes with the data
        manifest["chrom_sizes"] = dict(spec.sizes)
    bundle = Bundle(
        atac=qc.binarise(atac.x),
        rna=rna_mat,
        cells=cells,
        peaks=atac.var[["chrom", "start", "end", "name"]].reset_index(drop=True),
        genes=genes[bundle_io.GENE_COLS].reset_index(drop=True),
        exons=exons,
        tads=tads,
        hic=hic,
        manifest=manifest,
    )
    bundle_io.validate(bundle)
    if out is not None:
        say(0.95, "writing bundle")
        bundle_io.save(bundle, out, overwrite=overwrite)
    say(1.0, "done")
    return bundle


# ---- steps --------------------------------------------------------------------------------------
def _take(kwargs: dict, cls) -> dict:
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: kwargs.pop(k) for k in list(kwargs) if k in names}


def _check_options(inputs: PrepareInputs, o: PrepareOptions) -> None:
    given = [n for n, v in (("--tenx-h5", inputs.tenx_h5), ("--h5mu", inputs.h5mu),
                            ("--rna-h5ad/--atac-h5ad", inputs.rna_h5ad or inputs.atac_h5ad)) if v is not None]
    if len(given) != 1:
        raise input_error(None, "inputs", f"give exactly one source of cells, got {given or 'none'}.",
                          "pass --tenx-h5 FILE, or --h5mu FILE, or both --rna-h5ad and --atac-h5ad.")
    if (inputs.rna_h5ad is None) != (inputs.atac_h5ad is None):
        raise input_error(inputs.rna_h5ad or inputs.atac_h5ad, "inputs", "only one modality given.",
                          "pass both --rna-h5ad and --atac-h5ad.")
    if o.unpaired and inputs.tenx_h5 is not None:
        raise input_error(inputs.tenx_h5, "--unpaired", "a 10x multiome matrix is co-assayed: it cannot be unpaired.",
                          "drop --unpaired.")
    if not 0.0 <= o.min_barcode_overlap <= 1.0:
        raise input_error(None, "--min-barcode-overlap", f"{o.min_barcode_overlap} is not a fraction.", "use 0..1.")
    if o.n_genes < 1 or o.min_cells < 1:
        raise input_error(None, "--n-genes/--min-cells", "must be at least 1.", "use positive values.")
    if inputs.cool is not None and not parse_markers(o.markers):
        raise input_error(inputs.cool, "--markers", "Hi-C contacts are extracted around each marker gene, and no "
                          "markers were named.", "name the genes with --markers GENE1,GENE2.")


def _require_placed_genes(ann: Annotation, rna: Modality) -> None:
    """No RNA feature with a locus is no bundle: say whether the features look like peaks or lack a GTF."""
    if ann.genes["eligible"].astype(bool).any():
        return
    names = ann.genes["name"].astype(str)
    peaks_like = len(names) and parse_intervals(names.to_numpy())["start"].notna().mean() > 0.5
    what = (f"its features look like peaks ({names.iloc[0]!r}): this is the ATAC modality"
            if peaks_like else f"e.g. {', '.join(names.head(3))}")
    raise input_error(rna.path, "RNA genes", f"none of its {len(names)} RNA features has a gene locus in "
                      f"{ann.source.split(' (')[0]} ({what}).",
                      "pass the RNA modality with --rna-h5ad and the peaks with --atac-h5ad" if peaks_like else
                      "pass the GTF the matrix was counted with (--gtf), with matching gene names or ids.")


def _read_modalities(inputs: PrepareInputs, o: PrepareOptions) -> tuple[Modality, Modality]:
    if inputs.tenx_h5 is not None:
        from grids_core.ingest.tenx import read_tenx_h5

        return read_tenx_h5(inputs.tenx_h5)
    from grids_core.ingest import anndata_io

    if inputs.h5mu is not None:
        return anndata_io.read_h5mu(inputs.h5mu, o.rna_layer, o.atac_layer)
    return (anndata_io.read_h5ad(inputs.rna_h5ad, "rna", o.rna_layer),
            anndata_io.read_h5ad(inputs.atac_h5ad, "atac", o.atac_layer))


def _prepare_peaks(atac: Modality, spec: GenomeSpec, o: PrepareOptions) -> tuple[Modality, dict]:
    """Build-check, sort (with their columns) and de-overlap the peaks."""
    peaks, keep = check_build(atac.var[["chrom", "start", "end", "name"]], spec, atac.path, "peaks")
    report = {"peaks_in": int(len(peaks)), "dropped_on_unplaced_contigs": int((~keep).sum()),
              "dropped_contigs": [str(c) for c in pd.unique(peaks.loc[~keep, "chrom"])[:5]]}
    atac = Modality(atac.kind, atac.x, atac.obs,
                    atac.var.assign(chrom=peaks["chrom"].to_numpy(), name=peaks["name"].to_numpy()),
                    atac.path, atac.source_field)
    atac = atac.subset_features(np.flatnonzero(keep))
    if atac.x.shape[1] == 0:
        raise input_error(atac.path, "peaks", "no peaks left on the build's chromosomes.", "check --genome / --chrom-prefix.")
    sorted_peaks, order, was_unsorted = sort_peaks(atac.var)
    if was_unsorted:
        atac = atac.subset_features(order)
    report["sorted_by_prepare"] = bool(was_unsorted)
    clusters = overlap_clusters(atac.var)
    n_clusters = int(clusters.max()) + 1 if len(clusters) else 0
    if n_clusters < len(clusters):
        sizes = np.bincount(clusters)
        if not o.merge_overlapping_peaks:
            c = int(np.flatnonzero(sizes > 1)[0])
            ex = atac.var.iloc[np.flatnonzero(clusters == c)[:2]]
            a, b = (f"{r.chrom}:{r.start}-{r.end}" for r in ex.itertuples())
            raise input_error(atac.path, "peaks", f"{int((sizes[sizes > 1]).sum())} peaks overlap another peak, e.g. "
                              f"{a} and {b}; GRIDS needs disjoint peaks.",
                              "pass --merge-overlapping-peaks to merge each overlapping group into one peak "
                              "(its counts summed), or call peaks without overlaps.")
        merged, x = merge_overlapping(atac.var, atac.x, clusters)
        report["merged_overlapping"] = int(len(clusters) - n_clusters)
        atac = Modality(atac.kind, x, atac.obs, merged, atac.path, atac.source_field)
    report["peaks_out"] = int(atac.x.shape[1])
    return atac, report


def _obs_labels(mod: Modality, col: str) -> pd.Series | None:
    if col not in mod.obs.columns:
        return None
    from grids_core.ingest.labels import is_na_label

    s = mod.obs[col].astype(object)
    s = s[s.notna()].astype(str).str.strip()
    return s[~is_na_label(s)].rename("cell_type")


def _labels_for(mod: Modality, path: PathLike | None, o: PrepareOptions) -> tuple[pd.Series, str, dict]:
    """Labels per barcode (from ``path``, else the modality's obs), their source, and what was left out."""
    from grids_core.ingest.labels import read_label_table

    if path is not None:
        t = read_label_table(path, o.label_barcode_col, o.label_col)
        return t.labels, str(path), {"source": str(path), **t.report()}
    s = _obs_labels(mod, o.label_col)
    if s is None:
        raise input_error(mod.path, f"obs['{o.label_col}']", "no cell-type labels: no labels table was given and the "
                          f"{mod.kind.upper()} cells have no {o.label_col!r} column.",
                          "pass --labels FILE (barcode and cell_type columns; see --label-barcode-col/--label-col).")
    src = f"{mod.path} obs['{o.label_col}']"
    unlabelled = mod.obs.index[~mod.obs.index.isin(s.index)]
    return s, src, {"source": src, "barcode_column": "obs_names", "labelled_barcodes": int(len(s)),
                    "unlabelled_rows": int(len(unlabelled)),
                    "unlabelled_example": str(unlabelled[0]) if len(unlabelled) else None}


def _metrics(
    inputs: PrepareInputs, o: PrepareOptions, mods: list[Modality]
) -> tuple[pd.DataFrame, dict[str, str], pd.Index | None]:
    """Per-cell columns from the metrics table, the labels tables and the modalities' obs (first wins): the
    joined table, the file each column comes from, and the metrics table's own barcodes (None without one)."""
    from grids_core.ingest.labels import read_metrics

    frames: list[tuple[pd.DataFrame, str]] = []
    table_barcodes = None
    if inputs.metrics is not None:
        m = read_metrics(inputs.metrics, o.metrics_barcode_col)
        table_barcodes = m.index.astype(str)
        frames.append((m, str(inputs.metrics)))
    for p in dict.fromkeys(p for p in (inputs.labels, inputs.atac_labels) if p is not None):
        frames.append((read_metrics(p, o.label_barcode_col), str(p)))
    for m in mods:
        frames.append((m.obs, f"{m.path} obs"))
    out = pd.DataFrame()
    col_source: dict[str, str] = {}
    for f, src in frames:
        f = f.copy()
        f.index = f.index.astype(str)
        new = [c for c in f.columns if c not in out.columns]
        col_source.update({c: src for c in new})
        out = f[new] if out.empty and not len(out.columns) else out.join(f[new], how="outer")
    return out, col_source, table_barcodes


def _add_metrics_set(sets: dict, sources: dict, report: dict, barcodes: pd.Index | None, path) -> None:
    """Put the metrics table's barcodes (if there is a table) among the barcode sets that must match."""
    if barcodes is None:
        return
    sets["metrics"], sources["metrics"] = barcodes.to_numpy(), str(path)
    report["metrics"] = {"source": str(path), "barcode_column": str(barcodes.name), "rows": int(len(barcodes))}


def _select_cells(
    atac: Modality, rna: Modality, inputs: PrepareInputs, o: PrepareOptions
) -> tuple[Modality, Modality, np.ndarray, np.ndarray, dict]:
    """Cells kept: (atac, rna modalities subset, ATAC-cell labels, RNA row per ATAC cell, report).

    The report's ``notes`` say, in words, what was left out (unlabelled cells, cells without metrics, a
    large QC loss, cell types explain cannot use).
    """
    th = qc.QCThresholds(o.min_atac_counts, o.min_rna_genes, o.min_tss_enrichment)
    given = [opt for opt, v in (("--labels", inputs.labels), ("--atac-labels", inputs.atac_labels),
                                ("--rna-labels", inputs.rna_labels)) if v is not None]
    if not o.unpaired and len(given) > 1:
        raise input_error(inputs.rna_labels or inputs.atac_labels, "labels options",
                          f"co-assayed cells take one labels table, got {' and '.join(given)}: {given[-1]} would be "
                          "ignored.", "pass one labels table with --labels; for separately assayed ATAC and RNA cells "
                          "add --unpaired and give each its own table with --atac-labels and --rna-labels.")
    if o.unpaired and len(given) == 3:
        raise input_error(inputs.labels, "labels options", "--atac-labels and --rna-labels cover both modalities, "
                          "so --labels would be ignored.", "drop --labels.")
    fixes = {"labels": f"pass the labels of these cells and check --label-barcode-col (now {o.label_barcode_col!r})",
             "metrics": f"pass the per-cell metrics of these cells and check --metrics-barcode-col (now "
                        f"{o.metrics_barcode_col!r}), or leave --metrics unset (ATAC depth is then counted in peaks)",
             "RNA": "for separately assayed ATAC and RNA cells pass --unpaired with --atac-labels and --rna-labels"}
    fixes["ATAC labels"] = fixes["RNA labels"] = fixes["labels"]
    report: dict = {}
    if not o.unpaired:
        label_file = inputs.labels or inputs.atac_labels or inputs.rna_labels
        labels, lsource, report["labels"] = _labels_for(
            rna if label_file is None and o.label_col not in atac.obs else atac, label_file, o)
        metrics, msources, mbarcodes = _metrics(inputs, o, [atac, rna])
        same = atac.path == rna.path and np.array_equal(atac.barcodes, rna.barcodes)
        sets = {"matrix": atac.barcodes} if same else {"ATAC": atac.barcodes, "RNA": rna.barcodes}
        sources = {"matrix": str(atac.path)} if same else {"ATAC": str(atac.path), "RNA": str(rna.path)}
        sets["labels"], sources["labels"] = labels.index.to_numpy().astype(str), lsource
        _add_metrics_set(sets, sources, report, mbarcodes, inputs.metrics)
        common, report["barcodes"] = cellsel.match_barcodes(sets, sources, o.min_barcode_overlap, fixes,
                                                            must_cover=("metrics",))
        atac = atac.subset_cells(pd.Index(atac.barcodes).get_indexer(common))
        rna = rna.subset_cells(pd.Index(rna.barcodes).get_indexer(common))
        ok_a, qa = qc.atac_qc(atac.x, atac.barcodes, metrics, th, o.fragments_col, o.tss_col, msources)
        ok_r, qr = qc.rna_qc(rna.x, th)
        passed = ok_a & ok_r
        report["qc"] = {**qa, **qr, "cells_in": int(len(passed)), "cells_passing": int(passed.sum())}
        lab = labels.reindex(atac.barcodes).to_numpy().astype(str)
        counts = pd.Series(lab[passed]).value_counts()
        keep_types, report["cell_types"] = cellsel.enforce_min_cells(
            counts, o.min_cells, o.drop_small_types, lsource, pd.Series(lab).value_counts(), qc.describe_qc(report["qc"]))
        rows = np.flatnonzero(passed & np.isin(lab, list(keep_types)))
        atac, rna = atac.subset_cells(rows), rna.subset_cells(rows)
        lab_a, pairing = lab[rows], np.arange(len(rows))
    else:  # unpaired: each modality matched to its own labels, paired within cell type afterwards
        la, src_a, report["labels_atac"] = _labels_for(atac, inputs.atac_labels or inputs.labels, o)
        lr, src_r, report["labels_rna"] = _labels_for(rna, inputs.rna_labels or inputs.labels, o)
        metrics, msources, mbarcodes = _metrics(inputs, o, [atac, rna])
        sets = {"ATAC": atac.barcodes, "ATAC labels": la.index.to_numpy().astype(str)}
        sources = {"ATAC": str(atac.path), "ATAC labels": src_a}
        _add_metrics_set(sets, sources, report, mbarcodes, inputs.metrics)
        ca, report["barcodes_atac"] = cellsel.match_barcodes(sets, sources, o.min_barcode_overlap, fixes,
                                                             must_cover=("metrics",))
        cr, report["barcodes_rna"] = cellsel.match_barcodes(
            {"RNA": rna.barcodes, "RNA labels": lr.index.to_numpy().astype(str)},
            {"RNA": str(rna.path), "RNA labels": src_r}, o.min_barcode_overlap, fixes)
        atac = atac.subset_cells(pd.Index(atac.barcodes).get_indexer(ca))
        rna = rna.subset_cells(pd.Index(rna.barcodes).get_indexer(cr))
        ok_a, qa = qc.atac_qc(atac.x, atac.barcodes, metrics, th, o.fragments_col, o.tss_col, msources)
        ok_r, qr = qc.rna_qc(rna.x, th)
        report["qc"] = {**qa, **qr}
        lab_a = la.reindex(atac.barcodes).to_numpy().astype(str)
        lab_r = lr.reindex(rna.barcodes).to_numpy().astype(str)
        ca_counts = pd.Series(lab_a[ok_a]).value_counts()
        cr_counts = pd.Series(lab_r[ok_r]).value_counts()
        only_a, only_r = sorted(set(ca_counts.index) - set(cr_counts.index)), sorted(set(cr_counts.index) - set(ca_counts.index))
        if (only_a or only_r) and not o.drop_small_types:
            said = "; ".join(f"only in the {m} labels: " + ", ".join(f"{t} ({int(c[t])} cells)" for t in ts[:10])
                             for m, ts, c in (("ATAC", only_a, ca_counts), ("RNA", only_r, cr_counts)) if ts)
            raise input_error(f"{src_a}; {src_r}", "cell_type", f"cell types {said}. Unpaired cells are paired "
                              "within a type, so each type needs cells in both modalities.",
                              "use the same type names in both modalities' labels (--atac-labels and --rna-labels, or each file's obs), or pass --drop-small-types "
                              "to leave such types out.")
        counts = pd.concat([ca_counts, cr_counts], axis=1).fillna(0).min(axis=1).astype(int)
        before = pd.concat([pd.Series(lab_a).value_counts(), pd.Series(lab_r).value_counts()], axis=1)
        keep_types, report["cell_types"] = cellsel.enforce_min_cells(
            counts, o.min_cells, o.drop_small_types, f"{src_a}; {src_r}", before.fillna(0).min(axis=1).astype(int),
            qc.describe_qc(report["qc"]))
        report["cell_types"]["atac_cells_per_type"] = {str(k): int(v) for k, v in ca_counts.items()}
        report["cell_types"]["rna_cells_per_type"] = {str(k): int(v) for k, v in cr_counts.items()}
        rows_a = np.flatnonzero(ok_a & np.isin(lab_a, list(keep_types)))
        rows_r = np.flatnonzero(ok_r & np.isin(lab_r, list(keep_types)))
        atac, rna = atac.subset_cells(rows_a), rna.subset_cells(rows_r)
        lab_a, lab_r = lab_a[rows_a], lab_r[rows_r]
        pairing = cellsel.pair_unpaired(lab_a, lab_r, o.seed)
        report["pairing"] = ("unpaired: each ATAC cell is matched to a seeded random RNA cell of the same type "
                             f"({len(np.unique(pairing))} distinct RNA cells for {len(pairing)} ATAC cells)")
    too_few, need_train, need_cells = cellsel.unexplainable_types(lab_a, o.seed)
    report["cell_types"].update(explain_min_training_cells=need_train, explain_min_cells=need_cells,
                                too_few_training_cells=too_few)
    report["notes"] = cellsel.notes(report)
    return atac, rna, lab_a, pairing, report


def _exons_for(ann: Annotation, genes: pd.DataFrame) -> pd.DataFrame:
    e = ann.exons
    if e is None or e.empty or "gene_id" not in e.columns:
        return pd.DataFrame(columns=bundle_io.EXON_COLS)
    name_of = dict(zip(genes["gtf_gene_id"], genes["name"], strict=False)) if "gtf_gene_id" in genes else {}
    chrom_of = dict(zip(genes["gtf_gene_id"], genes["chrom"], strict=False)) if name_of else {}
    e = e[e["gene_id"].isin(name_of)].copy()
    e = e[e["chrom"].to_numpy() == e["gene_id"].map(chrom_of).to_numpy()]  # a gene id repeated on other contigs
    e["gene_name"] = e["gene_id"].map(name_of)
    return sort_intervals(e[bundle_io.EXON_COLS]).reset_index(drop=True)


def _file_info(p: PathLike | None) -> dict | None:
    if p is None:
        return None
    p = Path(p)
    return {"path": str(p.resolve()), "bytes": p.stat().st_size if p.exists() else None}


def _manifest(inputs: PrepareInputs, o: PrepareOptions, build: str, ann: Annotation, peak_report: dict,
              cell_report: dict, hic_report: dict | None, atac_was_binary: bool, markers: list[dict],
              *, has_tads: bool, has_hic: bool) -> dict:
    layers = ["atac", "rna", "cells", "peaks", "genes", "coverage"]
    if not ann.exons.empty:
        layers.append("exons")
    if has_tads:
        layers.append("tads")
    if has_hic:
        layers.append("hic")
    opts = dataclasses.asdict(o)
    no_locus = ann.genes.loc[~ann.genes["eligible"].astype(bool), "name"].astype(str)
    genes_report = {"rna_features": int(len(ann.genes)), "with_locus": int(len(ann.genes) - len(no_locus)),
                    "without_locus": int(len(no_locus)), "without_locus_examples": no_locus.head(5).tolist()}
    notes = list(cell_report.get("notes", []))
    if len(no_locus):
        notes.append(f"{len(no_locus)} of {len(ann.genes)} RNA genes have no usable locus in {ann.source.split(' (')[0]} (absent, "
                     f"'NA', or off the {build} chromosomes), e.g. {', '.join(genes_report['without_locus_examples'])}: "
                     "they cannot be selected (they still count in each cell's library size). Fix: pass the annotation "
                     "the matrix was counted with (--gtf).")
    if peak_report.get("dropped_on_unplaced_contigs"):
        notes.append(f"{peak_report['dropped_on_unplaced_contigs']} of {peak_report['peaks_in']} peaks lie on contigs "
                     f"outside the {build} chromosomes ({', '.join(peak_report['dropped_contigs'])}"
                     f"{', ...' if peak_report['dropped_on_unplaced_contigs'] > 5 else ''}) and were left out.")
    if hic_report and hic_report.get("genes_without_chromosome"):
        missing = hic_report["genes_without_chromosome"]
        notes.append(f"The Hi-C map has no chromosome for {len(missing)} marker gene(s) ({', '.join(missing[:5])}): "
                     "they get no Hi-C contacts.")
    if not ann.strand_known:
        notes.append(f"{ann.source.split(' (')[0]} give no strand: genes get strand '.', their TSS is taken as the "
                     "interval start (the wrong end for minus-strand genes), distances to the TSS run along the genome "
                     "and --window is centred there. Fix: pass the GTF the matrix was counted with (--gtf, e.g. "
                     "genes/genes.gtf.gz of the Cell Ranger ARC reference).")
    labels_used = [r["source"] for k in ("labels", "labels_atac", "labels_rna") if (r := cell_report.get(k))]
    return {
        "notes": notes,
        "genes_report": genes_report,
        "genome_build": build,
        "description": "Prepared from user single-cell multiome data by `grids prepare`.",
        "paired": not o.unpaired,
        "rna_scale": RNA_SCALE,
        "atac": "binary: peak open (>= 1 count) in the cell" + (" (input already binary)" if atac_was_binary else ""),
        "markers": markers,
        "provenance": {layer: "real" for layer in layers},
        "sources": {k: v for k, v in {
            "cells": str(inputs.tenx_h5 or inputs.h5mu or f"{inputs.rna_h5ad} + {inputs.atac_h5ad}"),
            "labels": " + ".join(dict.fromkeys(labels_used)) or None,
            "genes": ann.source,
            "tads": str(inputs.tads) if has_tads else None,
            "hic": str(inputs.cool) if has_hic else None,
        }.items() if v is not None},
        "inputs": {k: _file_info(v) for k, v in dataclasses.asdict(inputs).items() if v is not None},
        "genes_strand_known": ann.strand_known,
        "peaks": peak_report,
        "cells_report": {k: v for k, v in cell_report.items() if k != "notes"},
        "hic_report": hic_report,
        "prepare_options": opts,
    }



