"""`grids prepare` with the label and metrics tables users really have: barcode mismatches diagnosed per table,
partial metrics, QC that removes most cells, cell types explain cannot use, dropped data reported, and the
common label-file layouts (Seurat/Scanpy exports, sniffed delimiters)."""

from __future__ import annotations

import dataclasses
import re

import h5py
import numpy as np
import pandas as pd
import pytest

from grids_core.ingest.labels import read_metrics, read_table
from tests.test_ingest import (
    Tiny,
    _make_tiny,
    write_h5ad_pair,
    write_inputs,
    write_labels,
    write_tenx,
)
from tests.test_ingest import prepare_error as _error
from tests.test_ingest import prepare_small as _prep


@pytest.fixture(scope="module")
def tiny() -> Tiny:
    return _make_tiny()


@pytest.fixture(scope="module")
def files(tiny, tmp_path_factory) -> dict:
    return write_inputs(tmp_path_factory.mktemp("tables"), tiny)


def _notes(b) -> str:
    return "\n".join(b.manifest["notes"])


def _metrics_csv(path, barcodes, fragments, extra_barcodes=()) -> object:
    """An ARC-style per_barcode_metrics.csv: the cells plus non-cell barcodes."""
    bcs = list(barcodes) + list(extra_barcodes)
    frag = list(fragments) + [3] * len(extra_barcodes)
    pd.DataFrame({"barcode": bcs, "is_cell": [1] * len(barcodes) + [0] * len(extra_barcodes),
                  "atac_fragments": frag}).to_csv(path, index=False)
    return path


_RNG = np.random.default_rng(99)
NONCELLS = ["".join(_RNG.choice(list("ACGT"), 16)) + "-1" for _ in range(200)]  # ARC lists non-cell barcodes too


# ---- 1. metrics barcodes that do not match the matrix ----------------------------------------------------------
def test_metrics_barcode_mismatch_is_diagnosed_like_labels(files, tiny, tmp_path):
    m = _metrics_csv(tmp_path / "m.csv", [b[:-2] for b in tiny.barcodes], [50] * len(tiny.barcodes),
                     [b[:-2] for b in NONCELLS])
    msg = _error(files, metrics=m)
    assert "has no numeric values" not in msg and "barcodes do not match" in msg and "metrics" in msg
    assert "share 103 cores" in msg and "add the suffix '-1'" in msg and "--min-barcode-overlap" not in msg
    got, want = re.search(r"\(e\.g\. '([ACGTN]+)' -> '([ACGTN]+-1)'\)", msg).groups()  # a real pair, not two firsts
    assert want == got + "-1" and want in tiny.barcodes
    assert msg.split(" [barcodes]")[0].count(str(files["tenx_h5"])) == 1  # the h5 is named once


def test_metrics_with_other_barcodes_suggest_the_metrics_options(files, tiny, tmp_path):
    m = _metrics_csv(tmp_path / "m.csv", [f"X{i}" for i in range(len(tiny.barcodes))], [50] * len(tiny.barcodes))
    msg = _error(files, metrics=m)
    assert "only 0 shared" in msg and "--metrics-barcode-col" in msg and "--min-barcode-overlap" not in msg


# ---- 2. metrics covering only part of the cells ---------------------------------------------------------------
def test_cells_missing_from_metrics_are_reported_not_failed(files, tiny, tmp_path):
    keep = tiny.barcodes[:80]  # 23 cells have no metrics row; every cell has enough fragments
    m = _metrics_csv(tmp_path / "m.csv", keep, [50] * len(keep), NONCELLS)
    b = _prep(files, metrics=m)
    rep = b.manifest["cells_report"]
    assert rep["barcodes"]["counts"]["metrics"] == 80 + len(NONCELLS) and rep["barcodes"]["shared"] == 80
    assert rep["barcodes"]["missing"]["metrics"]["count"] == 23
    assert rep["qc"]["failed_atac_depth"] == 0  # the 23 cells are not counted as low depth
    assert set(b.cells["barcode"]) <= set(keep)
    notes = _notes(b)
    assert "23 of the 103 matrix cells have no row in the metrics table" in notes and repr(tiny.barcodes[80]) in notes


def test_metrics_covering_few_cells_is_an_error(files, tiny, tmp_path):
    few = tiny.barcodes[:30]  # also the smallest table: the overlap with the smallest set alone would pass
    msg = _error(files, metrics=_metrics_csv(tmp_path / "m.csv", few, [50] * len(few)))
    assert "has rows for only 30 of the 103 cells" in msg and "leave --metrics unset" in msg
    assert "--min-barcode-overlap" in msg


def test_cli_prints_the_notes(files, tiny, tmp_path, capsys):
    from grids_core.cli import main

    m = _metrics_csv(tmp_path / "m.csv", tiny.barcodes[:80], [50] * 80)
    assert main(["prepare", "--out", str(tmp_path / "b"), "--tenx-h5", str(files["tenx_h5"]), "--labels",
                 str(files["labels"]), "--gtf", str(files["gtf"]), "--metrics", str(m), "--markers", "GAD1",
                 "--n-genes", "5", "--min-atac-counts", "5", "--min-rna-genes", "5", "--min-cells", "10"]) == 0
    out = capsys.readouterr().out
    assert "note: 23 of the 103 matrix cells have no row in the metrics table" in out
    assert "'metrics': 80" in out


# ---- 3. QC that removes most cells ------------------------------------------------------------------------------
def _peak_depth(tiny: Tiny) -> np.ndarray:
    return tiny.atac[:, tiny.peaks["chrom"].str.startswith("chr").to_numpy()].sum(1)


def test_qc_removing_most_cells_names_criteria_thresholds_and_options(files, tiny):
    thr = float(np.median(_peak_depth(tiny)))
    msg = _error(files, min_atac_counts=thr, min_cells=20)
    assert "cell types with fewer than 20 cells after QC" in msg and "Before QC they had" in msg
    removed = int((_peak_depth(tiny) <= thr).sum())
    assert f"ATAC depth <= {thr:g} (counts in peaks" in msg and f"removed {removed}" in msg
    assert "RNA genes detected <= 5 removed 5" in msg and "TSS enrichment <= 2" in msg
    for option in ("--min-atac-counts", "--min-rna-genes", "--min-tss-enrichment", "--drop-small-types", "--metrics"):
        assert option in msg, option


def test_qc_removing_a_large_share_is_in_the_summary(files, tiny):
    thr = float(np.median(_peak_depth(tiny)))
    b = _prep(files, min_atac_counts=thr, min_cells=5)
    notes = _notes(b)
    assert "QC removed" in notes and f"ATAC depth <= {thr:g}" in notes and "--min-atac-counts" in notes
    assert "QC removed" not in _notes(_prep(files))  # 13% removed: no note


def test_qc_on_metrics_fragments_names_the_column(files, tiny, tmp_path):
    frag = [5] * 60 + [50] * (len(tiny.barcodes) - 60)
    b = _prep(files, metrics=_metrics_csv(tmp_path / "m.csv", tiny.barcodes, frag), min_cells=5)
    notes = _notes(b)
    assert f"ATAC depth <= 5 (column atac_fragments of {tmp_path / 'm.csv'}) removed 60" in notes
    assert "counts in peaks" not in notes


# ---- 4. cell types explain cannot use -----------------------------------------------------------------------------
def test_types_with_too_few_training_cells_are_named(files, tiny, tmp_path):
    from grids_core.bundle import MIN_TRAIN_CELLS  # the limit explain checks
    from grids_core.ingest.cells import explain_min_cells

    labels = list(tiny.labels)
    labels[:4] = ["Micro"] * 4  # 4 cells: 3 train, 1 test
    lab = write_labels(tmp_path / "l.tsv", dataclasses.replace(tiny, labels=labels))
    b = _prep(files, labels=lab, min_cells=3)
    ct = b.manifest["cells_report"]["cell_types"]
    assert ct["too_few_training_cells"] == {"Micro": 3} and ct["explain_min_training_cells"] == MIN_TRAIN_CELLS
    assert "explain needs >= 10 training cells" in _notes(b) and "Micro (3 training cells of 4)" in _notes(b)
    assert "--min-cells 14" in _notes(b) and explain_min_cells() == (10, 14)


# ---- 5. dropped data reported --------------------------------------------------------------------------------------
def test_na_labels_are_counted(files, tiny, tmp_path):
    labels = list(tiny.labels)
    for i, v in zip(range(0, 14, 2), ["", "NA", "NaN", "", "NA", "", "None"], strict=True):
        labels[i] = v
    lab = tmp_path / "l.csv"
    pd.DataFrame({"barcode": tiny.barcodes, "cell_type": labels}).to_csv(lab, index=False)
    b = _prep(files, labels=lab)
    assert b.manifest["cells_report"]["labels"]["unlabelled_rows"] == 7
    assert "7 of the 103 matrix cells have no label" in _notes(b) and "7 rows there have an empty or NA label" in _notes(b)


def test_genes_without_a_locus_are_counted(files, tiny, tmp_path):
    b = _prep(files)  # the 6 NOANN genes are not in the GTF
    rep = b.manifest["genes_report"]
    assert (rep["rna_features"], rep["without_locus"]) == (20, 6) and rep["without_locus_examples"][0] == "NOANN0"
    assert "6 of 20 RNA genes have no usable locus in GTF" in _notes(b)
    h5 = write_tenx(tmp_path / "na.h5", tiny)
    with h5py.File(h5, "r+") as f:  # Cell Ranger writes 'NA' for genes without an interval
        iv = f["matrix/features/interval"][()]
        iv[:2] = b"NA"
        del f["matrix/features/interval"]
        f["matrix/features"].create_dataset("interval", data=iv)
    b = _prep(files, tenx_h5=h5, gtf=None, markers="AQP4")
    assert b.manifest["genes_report"]["without_locus"] == 2 and "2 of 20 RNA genes" in _notes(b)
    assert "GAD1, GAD2" in _notes(b)


def test_rna_labels_in_paired_mode_are_refused(files, tiny, tmp_path):
    msg = _error(files, rna_labels=files["labels"])
    assert "--rna-labels would be ignored" in msg and "--unpaired" in msg
    rna_p, atac_p = write_h5ad_pair(tmp_path, tiny)
    msg = _error(files, tenx_h5=None, labels=None, rna_h5ad=rna_p, atac_h5ad=atac_p, atac_labels=files["labels"],
                 rna_labels=files["labels"])
    assert "--atac-labels and --rna-labels" in msg and "--rna-labels would be ignored" in msg


# ---- 6. common label-file layouts ------------------------------------------------------------------------------------
def test_seurat_and_scanpy_exports_use_the_unnamed_first_column(files, tiny, tmp_path):
    meta = pd.DataFrame({"orig.ident": "s1", "nCount_RNA": tiny.rna.sum(1), "celltype": tiny.labels},
                        index=tiny.barcodes)
    meta.to_csv(tmp_path / "seurat.csv")  # header: "",orig.ident,...; no TSS column: 93 cells pass QC
    b = _prep(files, labels=tmp_path / "seurat.csv", label_col="celltype")
    assert len(b.cells) == 93 and b.manifest["cells_report"]["labels"]["barcode_column"] == "(unnamed first column)"
    assert "unnamed first column" in _notes(b)
    meta.to_csv(tmp_path / "rtable.txt", sep="\t")  # R write.table: header one field short
    with open(tmp_path / "rtable.txt") as fh:
        lines = fh.read().splitlines()
    (tmp_path / "rtable.txt").write_text("\n".join([lines[0].lstrip("\t"), *lines[1:]]) + "\n")
    assert len(_prep(files, labels=tmp_path / "rtable.txt", label_col="celltype").cells) == 93
    msg = _error(files, labels=tmp_path / "seurat.csv", label_col="celltype", label_barcode_col="cell_id")
    assert "has no column 'cell_id'" in msg and "--label-barcode-col" in msg  # an explicit name is not replaced


def test_delimiter_is_sniffed_not_taken_from_the_extension(files, tiny, tmp_path):
    ref = _prep(files)
    for name, sep in (("semi.csv", ";"), ("tab.csv", "\t"), ("comma.tsv", ","), ("comma.txt", ",")):
        b = _prep(files, labels=write_labels(tmp_path / name, tiny, sep=sep))
        assert b.cells["barcode"].tolist() == ref.cells["barcode"].tolist(), name
    from grids_core.ingest.labels import read_label_table

    (tmp_path / "q.csv").write_text('barcode,cell_type\n"A-1","L2/3 IT, upper"\n"C-1","Astro; x"\n')
    assert read_label_table(tmp_path / "q.csv").labels.to_dict() == {"A-1": "L2/3 IT, upper", "C-1": "Astro; x"}
    (tmp_path / "t.bed").write_text("track name=x\nchr1\t10\t20\tn,a\nchr1\t30\t40\tm,b\n")
    assert read_table(tmp_path / "t.bed", "TAD BED", header=None, skip_prefixes=("track",)).shape == (2, 4)


def test_metrics_table_shares_the_reader(files, tiny, tmp_path):
    frag = [50] * len(tiny.barcodes)
    frag[0] = 2
    pd.DataFrame({"atac_fragments": frag}, index=tiny.barcodes).to_csv(tmp_path / "m.csv", sep=";")
    assert read_metrics(tmp_path / "m.csv").index.name == "(unnamed first column)"
    b = _prep(files, metrics=tmp_path / "m.csv")
    assert tiny.barcodes[0] not in set(b.cells["barcode"]) and len(b.cells) == 94
    assert b.manifest["cells_report"]["qc"]["atac_depth_source"] == "column atac_fragments"


# ---- 7. no shared barcodes: only the fix that can help ---------------------------------------------------------------
@pytest.mark.parametrize(("make", "expect"), [
    (lambda i, b: b[:-2], "add the suffix '-1'"),
    (lambda i, b: "sample1#" + b, "remove the prefix 'sample1#'"),
    (lambda i, b: f"cell{i}", "--label-barcode-col"),
])
def test_no_shared_barcodes_suggest_only_the_relevant_fix(files, tiny, tmp_path, make, expect):
    lab = write_labels(tmp_path / "l.tsv", tiny, barcodes=[make(i, b) for i, b in enumerate(tiny.barcodes)])
    msg = _error(files, labels=lab)
    assert "only 0 shared" in msg and expect in msg
    assert "--min-barcode-overlap" not in msg and "--unpaired" not in msg
