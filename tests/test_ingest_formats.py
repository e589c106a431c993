"""`grids prepare` with format variants real users bring: UCSC GTFs (gene ids repeated on alt contigs, no gene
lines), GENCODE's bare exon numbers, a combined RNA+peaks AnnData, GRanges peak columns, MuData labels in the
global obs, Hi-C on another build, transgene contigs, and label tables as Excel and R write them."""

from __future__ import annotations

import dataclasses
import gzip
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from grids_core import reference
from grids_core.ingest.gtf import read_gtf
from grids_core.ingest.labels import read_label_table
from tests.test_ingest import (
    Tiny,
    _make_tiny,
    write_cool,
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
    return write_inputs(tmp_path_factory.mktemp("formats"), tiny)


# ---- gene annotation --------------------------------------------------------------------------------------------
def _gtf_line(chrom, feature, start, end, strand, attrs) -> str:
    return "\t".join([chrom, "ncbiRefSeq", feature, str(start + 1), str(end), ".", strand, ".", attrs])


def test_ucsc_gtf_keeps_the_primary_locus_of_a_gene_repeated_on_an_alt_contig(tmp_path):
    """UCSC's gene_id is the symbol and GAD1 also sits on chr2_KI270767v1_alt (listed first here): the span must
    not be merged across contigs (it was chr2:1000-170861151, TSS 1000)."""
    ref = reference.genes().drop_duplicates("gene_name").set_index("gene_name").loc["GAD1"]
    tx = 'gene_id "GAD1"; transcript_id "NM_000817.3"; gene_name "GAD1";'
    rows = [_gtf_line("chr2_KI270767v1_alt", "transcript", 1000, 49_000, "+", tx),
            _gtf_line("chr2_KI270767v1_alt", "exon", 1000, 1500, "+", tx + ' exon_number "1";'),
            _gtf_line("chr2", "transcript", int(ref["start"]), int(ref["end"]), "+", tx),
            _gtf_line("chr2", "exon", int(ref["start"]), int(ref["start"]) + 300, "+", tx + ' exon_number "1";'),
            _gtf_line("chr2", "exon", int(ref["end"]) - 300, int(ref["end"]), "+", tx + ' exon_number "2";')]
    path = tmp_path / "ucsc.gtf"
    path.write_text("\n".join(rows) + "\n")
    genes, exons = read_gtf(path)
    gad1 = genes.set_index("name").loc["GAD1"]
    assert (gad1["chrom"], gad1["start"], gad1["end"], gad1["tss"]) == ("chr2", ref["start"], ref["end"], ref["start"])


def test_gencode_bare_exon_numbers_are_read_on_minus_strand_genes(tmp_path):
    """GENCODE writes ``exon_number 1;`` unquoted; on a minus-strand gene exon 1 is the rightmost one."""
    tx = 'gene_id "ENSG1"; transcript_id "ENST1"; gene_name "MINUS";'
    rows = [_gtf_line("chr2", "gene", 1000, 9000, "-", 'gene_id "ENSG1"; gene_name "MINUS";'),
            _gtf_line("chr2", "exon", 8000, 9000, "-", tx + " exon_number 1;"),
            _gtf_line("chr2", "exon", 1000, 2000, "-", tx + " exon_number 2;")]
    path = tmp_path / "gencode.gtf.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(rows) + "\n")
    _, exons = read_gtf(path)
    assert exons.set_index("start")["exon_number"].to_dict() == {8000: 1, 1000: 2}


# ---- AnnData / MuData ---------------------------------------------------------------------------------------------
def _combined_h5ad(path, tiny: Tiny):
    """scanpy.read_10x_h5(gex_only=False) layout: genes and peaks as columns of one matrix, var['feature_types']."""
    import anndata as ad

    pk = (tiny.peaks["chrom"] + ":" + tiny.peaks["start"].astype(str) + "-" + tiny.peaks["end"].astype(str)).to_numpy()
    var = pd.DataFrame({"gene_ids": np.r_[tiny.genes["gene_id"].to_numpy(), pk],
                        "feature_types": ["Gene Expression"] * len(tiny.genes) + ["Peaks"] * len(pk)},
                       index=np.r_[tiny.genes["name"].to_numpy(), pk])
    x = sp.csr_matrix(np.hstack([tiny.rna, tiny.atac]).astype(np.float32))
    ad.AnnData(X=x, obs=pd.DataFrame(index=tiny.barcodes), var=var).write_h5ad(path)
    return path


def test_combined_rna_and_peaks_anndata_gives_each_modality_its_own_features(files, tiny, tmp_path):
    ref = _prep(files)
    both = _combined_h5ad(tmp_path / "combined.h5ad", tiny)
    b = _prep(files, tenx_h5=None, rna_h5ad=both, atac_h5ad=both)
    assert (b.atac != ref.atac).nnz == 0 and b.gene_names == ref.gene_names
    np.testing.assert_allclose(b.rna, ref.rna, rtol=1e-6)  # peaks did not count in the RNA library size


def test_peaks_passed_as_rna_are_named_as_such(files, tiny, tmp_path):
    _, atac_p = write_h5ad_pair(tmp_path, tiny)
    msg = _error(files, tenx_h5=None, rna_h5ad=atac_p, atac_h5ad=atac_p)
    assert "none of its" in msg and "look like peaks" in msg and "--rna-h5ad" in msg
    both = _combined_h5ad(tmp_path / "combined.h5ad", tiny)
    rna_p, _ = write_h5ad_pair(tmp_path, tiny)
    import anndata as ad

    a = ad.read_h5ad(rna_p)
    a.var["feature_types"] = "Gene Expression"
    a.write_h5ad(tmp_path / "rna_typed.h5ad")
    msg = _error(files, tenx_h5=None, rna_h5ad=both, atac_h5ad=tmp_path / "rna_typed.h5ad")
    assert "no 'Peaks' ones" in msg and "--rna-h5ad" in msg


def test_granges_peak_columns_are_one_based(files, tiny, tmp_path):
    """ArchR/Signac GRanges var (seqnames, start, end) is 1-based and closed: peaks must not move by 1 bp."""
    import anndata as ad

    rna_p, atac_p = write_h5ad_pair(tmp_path, tiny)
    a = ad.read_h5ad(atac_p)
    a.var = pd.DataFrame({"seqnames": tiny.peaks["chrom"].to_numpy(), "start": tiny.peaks["start"].to_numpy() + 1,
                          "end": tiny.peaks["end"].to_numpy()}, index=[f"p{i}" for i in range(len(tiny.peaks))])
    a.write_h5ad(tmp_path / "granges.h5ad")
    b = _prep(files, tenx_h5=None, rna_h5ad=rna_p, atac_h5ad=tmp_path / "granges.h5ad")
    ref = _prep(files)
    pd.testing.assert_frame_equal(b.peaks[["chrom", "start", "end"]], ref.peaks[["chrom", "start", "end"]])


def test_mudata_labels_in_the_global_obs(files, tiny, tmp_path):
    import anndata as ad
    import mudata as md

    rna_p, atac_p = write_h5ad_pair(tmp_path, tiny)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        mdata = md.MuData({"rna": ad.read_h5ad(rna_p), "atac": ad.read_h5ad(atac_p)})
        mdata.obs["cell_type"] = pd.Series(tiny.labels, index=tiny.barcodes).reindex(mdata.obs_names).to_numpy()
        mdata.write(tmp_path / "labelled.h5mu")
    b = _prep(files, tenx_h5=None, labels=None, h5mu=tmp_path / "labelled.h5mu")
    want = dict(zip(tiny.barcodes, tiny.labels, strict=True))
    assert len(b.cells) and all(want[bc] == ct for bc, ct in zip(b.cells["barcode"], b.cells["cell_type"], strict=True))


# ---- Hi-C and contigs -----------------------------------------------------------------------------------------------
def test_hic_map_of_another_build_is_refused(files, tmp_path, monkeypatch):
    """An hg19 cooler (chr2 243,199,373 bp) fits inside the hg38 loci: its chromosome lengths give it away."""
    from grids_core.ingest.intervals import HG19_SIZES

    real = reference.chrom_sizes()
    monkeypatch.setattr(reference, "chrom_sizes", lambda: {**real, "chr2": HG19_SIZES["chr2"]})
    cool = write_cool(tmp_path / "hg19.cool")
    monkeypatch.setattr(reference, "chrom_sizes", lambda: real)
    msg = _error(files, cool=cool, hic_resolution=50_000)
    assert "[chromsizes]" in msg and "243,199,373" in msg and "another genome build" in msg


def test_a_transgene_contig_is_dropped_but_another_genomes_chromosome_is_not(files, tiny, tmp_path):
    pk = tiny.peaks.copy()
    pk.loc[0, ["chrom", "start", "end"]] = ["EGFP", 0, 400]
    b = _prep(files, tenx_h5=write_tenx(tmp_path / "egfp.h5", dataclasses.replace(tiny, peaks=pk)))
    assert "EGFP" not in set(b.peaks["chrom"])
    assert any("3 of 122 peaks" in n and "EGFP" in n and "left out" in n for n in b.manifest["notes"])
    pk.loc[0, "chrom"] = "chr2L"  # a fly chromosome, even once, is another genome
    msg = _error(files, tenx_h5=write_tenx(tmp_path / "fly.h5", dataclasses.replace(tiny, peaks=pk)))
    assert "'chr2L'" in msg and "unknown to build hg38" in msg


# ---- label tables ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, text", [
    ("trailing.tsv", "barcode\tcell_type\nAAAC-1\tVIP\t\nAAAG-1\tSST\t\n"),  # Excel/awk: a tab ends each row
    ("trailing.csv", "barcode,cell_type\nAAAC-1,VIP,\nAAAG-1,SST,\n"),
    ("r_write_table.txt", '"cell_type"\n"AAAC-1" "VIP"\n"AAAG-1" "SST"\n'),  # R write.table defaults
    ("r_rownames.txt", '"barcode" "cell_type"\n"1" "AAAC-1" "VIP"\n"2" "AAAG-1" "SST"\n'),
])
def test_label_tables_as_excel_and_r_write_them(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    assert read_label_table(path).labels.to_dict() == {"AAAC-1": "VIP", "AAAG-1": "SST"}


def test_all_na_labels_and_a_per_cell_label_column_say_what_is_wrong(files, tiny, tmp_path):
    na = tmp_path / "na.tsv"
    pd.DataFrame({"barcode": tiny.barcodes, "cell_type": "NA", "celltype2": tiny.labels}).to_csv(na, sep="\t", index=False)
    msg = _error(files, labels=na)
    assert "is empty or NA" in msg and "--label-col" in msg and "celltype2" in msg and "do not match" not in msg
    counts = tmp_path / "counts.tsv"
    pd.DataFrame({"barcode": tiny.barcodes, "nCount_RNA": np.arange(len(tiny.barcodes)) + 500}).to_csv(
        counts, sep="\t", index=False)
    msg = _error(files, labels=counts, label_col="nCount_RNA")
    assert "distinct values" in msg and "not cell types" in msg and "--label-col" in msg and len(msg) < 600


@pytest.mark.parametrize("encoding, words", [("cp1252", "not UTF-8"), ("utf-16", "UTF-16")])
def test_labels_in_another_encoding_say_save_as_utf8(files, tiny, tmp_path, encoding, words):
    path = tmp_path / "labels.csv"
    pd.DataFrame({"barcode": tiny.barcodes, "cell_type": [f"{t} néuron" for t in tiny.labels]}).to_csv(
        path, index=False, encoding=encoding)
    msg = _error(files, labels=path)
    assert words in msg and "UTF-8" in msg


def test_a_bundle_of_another_build_keeps_its_chromosome_sizes_for_the_app(files, tmp_path):
    """`--genome hg19 --chrom-sizes` builds a bundle; the app must not draw it on hg38's lengths and bands."""
    from callbacks.state import AppState
    from grids_core.ingest.intervals import HG19_SIZES
    from grids_core.settings import Settings

    sizes = tmp_path / "hg19.chrom.sizes"
    sizes.write_text("".join(f"{c}\t{n}\n" for c, n in HG19_SIZES.items()))
    out = tmp_path / "hg19_bundle"
    _prep(files, genome="hg19", chrom_sizes=sizes, out=out)
    state = AppState(Settings(bundle_dir=out))
    assert state.chrom_sizes()["chr2"] == HG19_SIZES["chr2"] and state.cytobands() is None
    assert AppState(Settings(bundle_dir=tmp_path / "absent")).chrom_sizes()["chr2"] == reference.chrom_sizes()["chr2"]


def test_a_failed_prepare_creates_no_folders(files, tmp_path):
    """`--out new/nested/bundle` that fails on bad input leaves no empty folders behind (it left new/nested)."""
    out = tmp_path / "new" / "nested" / "bundle"
    assert "NOPE" in _error(files, out=out, markers="NOPE")
    assert not (tmp_path / "new").exists()
    assert _prep(files, out=out).gene_names and (out / "manifest.json").exists()  # created when it succeeds


def test_hic_gaps_are_noted_and_a_juicer_file_is_named(files, tmp_path):
    cool = write_cool(tmp_path / "contacts.cool")  # chr2 and chr10 only: AQP4 (chr18) gets no contacts
    b = _prep(files, cool=cool, hic_resolution=50_000)
    assert "AQP4" not in b.hic and any("no chromosome for 1 marker gene(s) (AQP4)" in n for n in b.manifest["notes"])
    juicer = tmp_path / "contacts.hic"
    juicer.write_bytes(b"HIC\x00" + bytes(64))
    msg = _error(files, cool=juicer, hic_resolution=50_000)
    assert "Juicer .hic" in msg and "hic2cool" in msg


def test_unpaired_types_missing_from_one_modality_are_named(files, tiny, tmp_path):
    rna_bc = [f"R{i:04d}" for i in range(len(tiny.barcodes))]
    rna_p, atac_p = write_h5ad_pair(tmp_path, tiny, rna_barcodes=rna_bc)
    rl = write_labels(tmp_path / "rna_labels.tsv", tiny, barcodes=rna_bc)
    renamed = dataclasses.replace(tiny, labels=["OnlyATAC" if t == "Oligo" else t for t in tiny.labels])
    al = write_labels(tmp_path / "atac_labels.tsv", renamed)
    msg = _error(files, tenx_h5=None, labels=None, rna_h5ad=rna_p, atac_h5ad=atac_p, rna_labels=rl, atac_labels=al,
                 unpaired=True)
    assert "only in the ATAC labels: OnlyATAC" in msg and "only in the RNA labels: Oligo" in msg
    assert "fewer than" not in msg and "--drop-small-types" in msg


def test_barcodes_of_several_samples_get_one_fix_per_sample(files, tiny, tmp_path):
    """cellranger-arc aggr numbers samples -1, -2; labels from a per-sample export carry s1_/s2_ prefixes."""
    half = len(tiny.barcodes) // 2
    matrix = [b if i < half else b[:-2] + "-2" for i, b in enumerate(tiny.barcodes)]
    labels = [("s1_" if i < half else "s2_") + b for i, b in enumerate(tiny.barcodes)]
    h5 = write_tenx(tmp_path / "aggr.h5", dataclasses.replace(tiny, barcodes=matrix))
    msg = _error(files, tenx_h5=h5, labels=write_labels(tmp_path / "l.tsv", tiny, barcodes=labels))
    assert "remove the prefix 's1_' (e.g." in msg and "remove the prefix 's2_' and replace the suffix '-1' with '-2'" in msg
    assert "for the other samples: " in msg  # both rules, the larger sample first
