"""`grids prepare`: format-exact tiny inputs written here (10x ARC h5, h5ad, h5mu, labels, GTF, BED, .cool),
every listed bad input as a corrupted variant, and prepare -> train -> explain end to end."""

from __future__ import annotations

import dataclasses
import gzip
import shutil
import warnings
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from grids_core import bundle as bundle_io
from grids_core import reference
from grids_core.errors import BundleError, InputError
from grids_core.ingest import prepare

LOCI = ("GAD1", "GAD2", "AQP4")  # the markers; each locus gets 40 peaks
NEIGHBOURS = ("SP5", "ERICH2", "GORASP2", "TLK1", "METTL8", "MYO3A", "APBB1IP", "PDSS1", "ABI1", "KCTD1", "CHST9")
TYPES = {"SST": 30, "Astro": 30, "Oligo": 30}
# thresholds scaled down for tiny data: ATAC counts > 5, RNA genes > 5, TSS enrichment > 2
SMALL = dict(min_atac_counts=5, min_rna_genes=5, min_cells=10, n_genes=8, markers="GAD1,GAD2,AQP4")


@dataclasses.dataclass
class Tiny:
    """Raw counts and tables of a tiny multiome experiment on real hg38 loci."""

    barcodes: list[str]
    labels: list[str]
    tss: list[float]
    genes: pd.DataFrame  # name, gene_id, chrom, start, end, strand, in_gtf
    peaks: pd.DataFrame  # chrom, start, end
    rna: np.ndarray  # cells x genes, int
    atac: np.ndarray  # cells x peaks, int (values up to 4)


def _make_tiny(seed: int = 0) -> Tiny:
    rng = np.random.default_rng(seed)
    ref = reference.genes().drop_duplicates("gene_name").set_index("gene_name")
    real = [*LOCI, *NEIGHBOURS]
    genes = pd.DataFrame({"name": real, "gene_id": ref.loc[real, "gene_id"].to_numpy(), "chrom": ref.loc[real, "chrom"].to_numpy(),
                          "start": ref.loc[real, "start"].to_numpy(), "end": ref.loc[real, "end"].to_numpy(),
                          "strand": ref.loc[real, "strand"].to_numpy(), "in_gtf": True})
    # highly expressed genes without a GTF record: they still count in each cell's library size
    extra = pd.DataFrame({"name": [f"NOANN{i}" for i in range(6)], "gene_id": [f"ENSG0000099990{i}" for i in range(6)],
                          "chrom": "chr1", "start": [1_000_000 + 50_000 * i for i in range(6)],
                          "end": [1_010_000 + 50_000 * i for i in range(6)], "strand": "+", "in_gtf": False})
    genes = pd.concat([genes, extra], ignore_index=True)
    rows = []
    for g in LOCI:
        tss = int(ref.loc[g, "start"] if ref.loc[g, "strand"] == "+" else ref.loc[g, "end"])
        for k in range(40):
            s = tss - 500_000 + 25_000 * k + 3_000
            rows.append((ref.loc[g, "chrom"], s, s + 400, g))
    rows += [("KI270727.1", 1_000, 1_400, ""), ("KI270727.1", 5_000, 5_400, "")]  # unplaced contig: dropped
    peaks = pd.DataFrame(rows, columns=["chrom", "start", "end", "locus"])
    order = peaks["chrom"].map(lambda c: (0, int(c[3:])) if c[3:].isdigit() else (1, 0)).tolist()
    peaks = peaks.iloc[sorted(range(len(peaks)), key=lambda i: (order[i], peaks["start"].iloc[i]))].reset_index(drop=True)

    labels = [t for t, n in TYPES.items() for _ in range(n)] + ["SST"] * 5 + ["Astro"] * 5 + ["Oligo"] * 3
    n = len(labels)
    lab = np.array(labels)
    p_open = np.full((n, len(peaks)), 0.15)
    near = {g: (peaks["locus"] == g).to_numpy() for g in LOCI}
    p_open[np.ix_(lab == "SST", near["GAD1"] | near["GAD2"])] = 0.55
    p_open[np.ix_(lab == "Astro", near["AQP4"])] = 0.55
    opened = rng.random(p_open.shape) < p_open
    atac = opened * (1 + rng.poisson(0.7, size=opened.shape))
    gad1_peaks = np.flatnonzero(near["GAD1"])[[19, 21]]  # two enhancers next to the GAD1 TSS
    rate = rng.lognormal(0.5, 0.8, size=(len(TYPES), len(genes)))[pd.Categorical(lab, categories=list(TYPES)).codes]
    names = genes["name"].tolist()
    rate[:, names.index("GAD1")] = np.where(lab == "SST", 1.0 * np.exp(1.3 * opened[:, gad1_peaks].sum(1)), 0.1)
    rate[:, names.index("AQP4")] = np.where(lab == "Astro", 6.0, 0.1)
    rate[:, [names.index(f"NOANN{i}") for i in range(6)]] = 15.0
    rna = rng.poisson(rate)
    bad_atac, bad_rna, bad_tss = range(90, 95), range(95, 100), range(100, 103)
    atac[list(bad_atac)] = 0
    atac[list(bad_atac), 0] = 1  # depth 1
    rna[list(bad_rna)] = 0
    rna[list(bad_rna), :2] = 3  # 2 genes detected
    tss = [1.0 if i in bad_tss else 6.0 for i in range(n)]
    letters = np.array(list("ACGT"))
    barcodes = ["".join(letters[rng.integers(0, 4, 16)]) + "-1" for _ in range(n)]
    return Tiny(barcodes, labels, tss, genes, peaks[["chrom", "start", "end"]], rna.astype(np.int64), atac.astype(np.int64))


# ---- format-exact writers ----------------------------------------------------------------------------
def write_tenx(path: Path, d: Tiny, *, with_peaks: bool = True) -> Path:
    """10x HDF5 feature-barcode matrix (Cell Ranger ARC schema): features x barcodes CSC under /matrix."""
    ivl = lambda df: (df["chrom"] + ":" + df["start"].astype(str) + "-" + df["end"].astype(str)).tolist()  # noqa: E731
    feats = pd.DataFrame({"id": d.genes["gene_id"], "name": d.genes["name"], "feature_type": "Gene Expression",
                          "interval": ivl(d.genes)})
    counts = d.rna
    if with_peaks:
        pk = ivl(d.peaks)
        feats = pd.concat([feats, pd.DataFrame({"id": pk, "name": pk, "feature_type": "Peaks", "interval": pk})])
        counts = np.hstack([d.rna, d.atac])
    m = sp.csc_matrix(counts.T)
    with h5py.File(path, "w") as f:
        f.attrs["filetype"], f.attrs["version"] = "matrix", 2
        g = f.create_group("matrix")
        g.create_dataset("barcodes", data=np.array(d.barcodes, dtype="S"))
        g.create_dataset("data", data=m.data.astype(np.uint32), compression="gzip")
        g.create_dataset("indices", data=m.indices.astype(np.int64), compression="gzip")
        g.create_dataset("indptr", data=m.indptr.astype(np.int64))
        g.create_dataset("shape", data=np.array(m.shape, dtype=np.int32))
        fg = g.create_group("features")
        fg.create_dataset("_all_tag_keys", data=np.array([b"genome", b"interval"]))
        for key in ("id", "name", "feature_type", "interval"):
            fg.create_dataset(key, data=np.array(feats[key].astype(str).tolist(), dtype="S"))
        fg.create_dataset("genome", data=np.array([b"GRCh38"] * len(feats)))
    return path


def write_labels(path: Path, d: Tiny, cols=("barcode", "cell_type"), sep="\t", barcodes=None) -> Path:
    pd.DataFrame({cols[0]: barcodes or d.barcodes, cols[1]: d.labels, "tss_enrichment": d.tss}).to_csv(
        path, sep=sep, index=False)
    return path


def write_gtf(path: Path, d: Tiny, *, names: bool = True) -> Path:
    """GENCODE-style GTF.gz: gene, transcript and two exon lines per annotated gene (1-based, closed)."""
    lines = ["##description: tiny test annotation", "##provider: GENCODE"]
    for g in d.genes[d.genes["in_gtf"]].itertuples():
        nm = f' gene_name "{g.name}";' if names else ""
        base = f'gene_id "{g.gene_id}"; gene_type "protein_coding";{nm}'
        tx = f'{base} transcript_id "{g.gene_id.replace("G", "T", 1)}"; tag "basic"; tag "MANE_Select";'
        mid = (g.start + g.end) // 2
        for feature, s, e, attrs, extra in (("gene", g.start, g.end, base, ""), ("transcript", g.start, g.end, tx, ""),
                                            ("exon", g.start, g.start + 500, tx, ' exon_number 1;'),
                                            ("exon", mid, g.end, tx, ' exon_number 2;')):
            lines.append("\t".join([g.chrom, "HAVANA", feature, str(s + 1), str(e), ".", g.strand, ".", attrs + extra]))
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


def write_h5ad_pair(folder: Path, d: Tiny, *, rna_barcodes=None, atac_barcodes=None, float_rna=None) -> tuple[Path, Path]:
    import anndata as ad

    rna_x = sp.csr_matrix(d.rna.astype(np.float32) if float_rna is None else float_rna)
    rna = ad.AnnData(X=rna_x, obs=pd.DataFrame(index=rna_barcodes or d.barcodes),
                     var=pd.DataFrame({"gene_ids": d.genes["gene_id"].to_numpy()}, index=d.genes["name"].to_numpy()))
    pk = (d.peaks["chrom"] + ":" + d.peaks["start"].astype(str) + "-" + d.peaks["end"].astype(str)).to_numpy()
    atac = ad.AnnData(X=sp.csr_matrix(d.atac.astype(np.float32)), obs=pd.DataFrame(index=atac_barcodes or d.barcodes),
                      var=pd.DataFrame(index=pk))
    rna.write_h5ad(folder / "rna.h5ad")
    atac.write_h5ad(folder / "atac.h5ad")
    return folder / "rna.h5ad", folder / "atac.h5ad"


def write_tads(path: Path) -> Path:
    path.write_text("track name=tads\nchr2\t170000000\t171600000\tdomain1\nchr10\t25800000\t26800000\tdomain2\n"
                    "chr18\t26400000\t27300000\tdomain3\n")
    return path


def write_cool(path: Path, binsize: int = 50_000) -> Path:
    import cooler

    sizes = reference.chrom_sizes()
    bins = pd.concat([pd.DataFrame({"chrom": c, "start": np.arange(0, sizes[c], binsize),
                                    "end": np.minimum(np.arange(binsize, sizes[c] + binsize, binsize), sizes[c])})
                      for c in ("chr2", "chr10")], ignore_index=True)
    lo = int(np.flatnonzero((bins["chrom"] == "chr2") & (bins["start"] >= 169_800_000))[0])
    i, j = np.triu_indices(60)
    pixels = pd.DataFrame({"bin1_id": lo + i, "bin2_id": lo + j, "count": (100 // (1 + j - i)).astype(np.int32)})
    cooler.create_cooler(str(path), bins, pixels)
    return path


@pytest.fixture(scope="module")
def tiny() -> Tiny:
    return _make_tiny()


def write_inputs(root: Path, d: Tiny) -> dict[str, Path]:
    """The 10x matrix, labels table and GTF of ``d`` under ``root``: what the prepare tests start from."""
    return {"tenx_h5": write_tenx(root / "filtered_feature_bc_matrix.h5", d),
            "labels": write_labels(root / "labels.tsv", d), "gtf": write_gtf(root / "genes.gtf.gz", d)}


def prepare_small(files: dict, **kw):
    """``prepare`` on ``files`` with the small-data thresholds; options set to None are left out."""
    args = {"tenx_h5": files["tenx_h5"], "labels": files["labels"], "gtf": files["gtf"], **SMALL, **kw}
    return prepare(**{k: v for k, v in args.items() if v is not None})


def prepare_error(files: dict, **kw) -> str:
    """The InputError message ``prepare_small`` must raise."""
    with pytest.raises(InputError) as err:
        prepare_small(files, **kw)
    return str(err.value)


@pytest.fixture(scope="module")
def files(tiny, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("inputs")
    return {**write_inputs(root, tiny), "tads": write_tads(root / "tads.bed"), "cool": write_cool(root / "contacts.cool")}


def _prep(files, tmp_path, **kw):
    return prepare_small(files, **kw)


def _bad(files, tmp_path, *fragments, **kw) -> str:
    """prepare must raise InputError containing every fragment and leave nothing at --out."""
    out = tmp_path / "bundle"
    with pytest.raises(InputError) as err:
        _prep(files, tmp_path, out=out, **kw)
    msg = str(err.value)
    for frag in fragments:
        assert frag in msg, msg
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".bundle")]
    return msg


# ---- the good path -------------------------------------------------------------------------------------
@pytest.mark.slow
def test_tenx_prepare_train_explain_end_to_end(files, tiny, tmp_path, one_thread):

    from grids_core.explain.gene import ExplainRequest
    from grids_core.jobs import run_explanation
    from grids_core.settings import Settings
    from grids_core.train import TrainConfig, default_model_path, save_model, train

    out = tmp_path / "bundle"
    seen: list[float] = []
    _prep(files, tmp_path, tads=files["tads"], cool=files["cool"], hic_resolution=50_000, out=out,
          progress=lambda f, m: seen.append(f))
    assert seen[-1] == 1.0 and seen == sorted(seen)
    b = bundle_io.load(out)
    m = b.manifest
    assert set(m["provenance"].values()) == {"real"} and {"atac", "rna", "cells", "peaks", "genes", "exons", "tads",
                                                         "hic", "coverage"} <= set(m["provenance"])
    assert m["paired"] is True and m["genome_build"] == "hg38" and "10,000" in m["rna_scale"]
    qcr = m["cells_report"]["qc"]
    assert (qcr["failed_atac_depth"], qcr["failed_rna_genes"], qcr["failed_tss_enrichment"]) == (5, 5, 3)
    assert sorted(b.cell_types) == ["Astro", "Oligo", "SST"] and len(b.cells) == 90
    assert all((b.cells[b.cells["cell_type"] == t]["split"] == "train").sum() >= 15 for t in TYPES)
    assert m["peaks"]["dropped_on_unplaced_contigs"] == 2 and b.atac.shape[1] == 120
    assert set(np.unique(b.atac.data)) == {1} and tiny.atac.max() > 1  # counts > 1 were binarised
    assert {"GAD1", "GAD2", "AQP4"} <= set(b.gene_names) and len(b.genes) <= 8 + 3
    assert not any(n.startswith("NOANN") for n in b.gene_names)  # unannotated genes are not selectable
    g = b.gene_row("AQP4")
    assert g["strand"] == "-" and g["tss"] == g["end"] - 1 and g["start"] == 26852042
    assert set(b.exons["gene_name"]) <= set(b.gene_names) and len(b.exons) == 2 * len(b.genes)
    assert b.hic["GAD1"]["simulated"] is False and b.hic["GAD1"]["bin_size"] == 50_000
    assert b.hic["GAD1"]["matrix"].shape[0] > 30 and b.hic["GAD1"]["matrix"].sum() > 0
    assert "GAD2" in b.hic and "AQP4" not in b.hic  # the cooler has chr2 and chr10 only
    assert m["hic_report"]["genes_without_chromosome"] == ["AQP4"]
    assert len(b.tads) == 3 and set(b.tads["simulated"]) == {0}
    # RNA = log1p(count / total over ALL genes * 1e4): the unannotated genes count in the library size
    raw = pd.DataFrame(tiny.rna, index=tiny.barcodes, columns=tiny.genes["name"])
    cell = b.cells["barcode"].iloc[0]
    expect = np.log1p(raw.loc[cell, b.gene_names] / raw.loc[cell].sum() * 1e4).to_numpy()
    np.testing.assert_allclose(b.rna[0], expect, rtol=1e-5)

    tm = train(b, TrainConfig(steps_atac=20, steps_rna=20, steps_maps=20, steps_paired=40, batch_size=64))
    save_model(tm, default_model_path(out))
    result, stored = run_explanation(Settings(bundle_dir=out), ExplainRequest("GAD1", "SST", L=3, k=8, max_sweeps=3))
    assert not stored and len(set(result.subset)) == 3 and result.gene == "GAD1"
    assert all(b.peaks["chrom"].iloc[i].startswith("chr") for i in result.subset)


def test_h5ad_h5mu_and_10x_give_the_same_bundle(files, tiny, tmp_path):
    import anndata as ad
    import mudata as md

    ref = _prep(files, tmp_path)
    rna_p, atac_p = write_h5ad_pair(tmp_path, tiny)
    pair = _prep(files, tmp_path, tenx_h5=None, rna_h5ad=rna_p, atac_h5ad=atac_p)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # mudata 0.3 announces a 0.4 behaviour change
        mdata = md.MuData({"rna": ad.read_h5ad(rna_p), "atac": ad.read_h5ad(atac_p)})
        mdata.write(tmp_path / "data.h5mu")
    mu = _prep(files, tmp_path, tenx_h5=None, h5mu=tmp_path / "data.h5mu")
    # the usual Scanpy layout: X normalised, raw counts in layers['counts'] (picked automatically)
    a = ad.read_h5ad(rna_p)
    a.layers["counts"] = a.X.copy()
    a.X = sp.csr_matrix(np.log1p(a.X.toarray()))
    a.write_h5ad(tmp_path / "rna_norm.h5ad")
    layered = _prep(files, tmp_path, tenx_h5=None, rna_h5ad=tmp_path / "rna_norm.h5ad", atac_h5ad=atac_p)
    for b in (pair, mu, layered):
        assert (b.atac != ref.atac).nnz == 0 and b.gene_names == ref.gene_names
        np.testing.assert_allclose(b.rna, ref.rna, rtol=1e-6)
        assert b.cells["barcode"].tolist() == ref.cells["barcode"].tolist()


def test_10x_intervals_without_gtf_and_label_columns_configurable(files, tiny, tmp_path):
    labels = write_labels(tmp_path / "labels.csv", tiny, cols=("cell_id", "celltype"), sep=",")
    b = _prep(files, tmp_path, gtf=None, labels=labels, label_barcode_col="cell_id", label_col="celltype")
    assert b.exons.empty and b.manifest["genes_strand_known"] is False and "no strand" in b.manifest["sources"]["genes"]
    assert b.gene_row("GAD1")["start"] == 170813212
    assert set(b.genes["strand"]) == {"."} and (b.genes["tss"] == b.genes["start"]).all()  # no strand invented
    assert any("give no strand" in n and "--gtf" in n for n in b.manifest["notes"])  # and the user is told


def test_unpaired_atac_and_rna_with_their_own_labels(files, tiny, tmp_path):
    rna_bc = [f"R{i:04d}" for i in range(len(tiny.barcodes))]
    rna_p, atac_p = write_h5ad_pair(tmp_path, tiny, rna_barcodes=rna_bc)
    rl = write_labels(tmp_path / "rna_labels.tsv", tiny, barcodes=rna_bc)
    b = _prep(files, tmp_path, tenx_h5=None, labels=None, rna_h5ad=rna_p, atac_h5ad=atac_p, rna_labels=rl,
              atac_labels=files["labels"], unpaired=True)
    assert b.manifest["paired"] is False and "unpaired" in b.manifest["cells_report"]["pairing"]
    # ATAC cells are QC-ed on ATAC only: the 5 cells with poor RNA stay, paired with good RNA cells of their type
    assert len(b.cells) == 95 and sorted(b.cell_types) == ["Astro", "Oligo", "SST"]
    aqp4 = b.rna[:, b.gene_index("AQP4")]
    astro = (b.cells["cell_type"] == "Astro").to_numpy()
    assert aqp4[astro].mean() > 3 * aqp4[~astro].mean()  # RNA rows come from cells of the same type


def test_metrics_table_supplies_fragments(files, tiny, tmp_path):
    frag = [50] * len(tiny.barcodes)
    frag[0] = 2
    pd.DataFrame({"barcode": tiny.barcodes, "atac_fragments": frag}).to_csv(tmp_path / "m.csv", index=False)
    b = _prep(files, tmp_path, metrics=tmp_path / "m.csv")
    assert b.manifest["cells_report"]["qc"]["atac_depth_source"] == "column atac_fragments"
    assert tiny.barcodes[0] not in set(b.cells["barcode"]) and len(b.cells) == 89 + 5  # low-count cells now pass


def test_unsorted_peaks_are_sorted_with_their_columns(files, tiny, tmp_path):
    perm = np.random.default_rng(1).permutation(len(tiny.peaks))
    shuffled = dataclasses.replace(tiny, peaks=tiny.peaks.iloc[perm].reset_index(drop=True), atac=tiny.atac[:, perm])
    b = _prep(files, tmp_path, tenx_h5=write_tenx(tmp_path / "m.h5", shuffled))
    ref = _prep(files, tmp_path)
    assert b.manifest["peaks"]["sorted_by_prepare"] and not ref.manifest["peaks"]["sorted_by_prepare"]
    assert b.peaks[["chrom", "start", "end"]].equals(ref.peaks[["chrom", "start", "end"]])
    assert (b.atac != ref.atac).nnz == 0


def test_cli_prepare_writes_a_bundle_and_reports_errors(files, tmp_path, capsys):
    from grids_core.cli import main

    out = tmp_path / "cli_bundle"
    base = ["prepare", "--out", str(out), "--tenx-h5", str(files["tenx_h5"]), "--labels", str(files["labels"]),
            "--gtf", str(files["gtf"]), "--markers", "GAD1,SST:GAD2", "--n-genes", "5", "--min-atac-counts", "5",
            "--min-rna-genes", "5", "--min-cells", "10"]
    assert main(base) == 0
    assert "Next: grids train" in capsys.readouterr().out
    b = bundle_io.load(out)
    assert {"cell_type": "SST", "gene": "GAD2"} in b.manifest["markers"]
    assert main(base) == 2 and "already exists" in capsys.readouterr().err
    assert main([*base, "--force", "--markers", "GADD1"]) == 2
    err = capsys.readouterr().err
    assert "GADD1" in err and "Did you mean: GAD1" in err and bundle_io.load(out)  # old bundle untouched


# ---- bad inputs: each a clear InputError naming file, field and fix; nothing written ---------------------
def test_bad_labels_barcodes_do_not_match(files, tiny, tmp_path):
    other = write_labels(tmp_path / "l.tsv", tiny, barcodes=[f"X{i}" for i in range(len(tiny.barcodes))])
    _bad(files, tmp_path, "barcodes do not match", "labels 103", "only 0 shared", "[barcodes]", "Fix:", labels=other)


def test_bad_barcode_suffix_gets_a_hint(files, tiny, tmp_path):
    stripped = write_labels(tmp_path / "l.tsv", tiny, barcodes=[b[:-2] for b in tiny.barcodes])
    _bad(files, tmp_path, "share 103 cores", "suffix", labels=stripped)


def test_partial_barcode_overlap_proceeds_above_threshold_only(files, tiny, tmp_path):
    some = write_labels(tmp_path / "l.tsv", tiny, barcodes=[b if i % 5 else f"Z{i}" for i, b in enumerate(tiny.barcodes)])
    b = _prep(files, tmp_path, labels=some)
    rep = b.manifest["cells_report"]["barcodes"]
    assert rep["shared"] == 103 - 21 and rep["counts"] == {"matrix": 103, "labels": 103}
    _bad(files, tmp_path, "only 82 shared", "79.6%", labels=some, min_barcode_overlap=0.9)


def test_bad_modalities_barcodes_do_not_match(files, tiny, tmp_path):
    rna_p, atac_p = write_h5ad_pair(tmp_path, tiny, rna_barcodes=[f"R{i}" for i in range(len(tiny.barcodes))])
    _bad(files, tmp_path, "ATAC 103", "RNA 103", "--unpaired", tenx_h5=None, rna_h5ad=rna_p, atac_h5ad=atac_p)


def test_bad_ensembl_chromosome_names_and_the_prefix_fix(files, tiny, tmp_path):
    ens = dataclasses.replace(tiny, peaks=tiny.peaks.assign(chrom=tiny.peaks["chrom"].str.replace("chr", "")))
    h5 = write_tenx(tmp_path / "m.h5", ens)
    _bad(files, tmp_path, "[peaks chromosome]", "Ensembl", "--chrom-prefix chr", tenx_h5=h5)
    b = _prep(files, tmp_path, tenx_h5=h5, chrom_prefix="chr")
    assert b.peaks["chrom"].str.startswith("chr").all()


def test_bad_hg19_coordinates_beyond_hg38_ends(files, tiny, tmp_path):
    pk = tiny.peaks.copy()
    pk.loc[0, ["chrom", "start", "end"]] = ["chr1", 249_000_000, 249_000_400]  # past hg38 chr1, inside hg19 chr1
    _bad(files, tmp_path, "[peaks coordinates]", "hg19", "liftOver",
         tenx_h5=write_tenx(tmp_path / "m.h5", dataclasses.replace(tiny, peaks=pk)))


def test_bad_unknown_chromosome(files, tiny, tmp_path):
    pk = tiny.peaks.copy()
    pk.loc[0, "chrom"] = "chr23"
    _bad(files, tmp_path, "'chr23'", "unknown to build hg38",
         tenx_h5=write_tenx(tmp_path / "m.h5", dataclasses.replace(tiny, peaks=pk)))


def test_bad_overlapping_peaks_error_or_merge(files, tiny, tmp_path):
    pk = tiny.peaks.copy()
    pk.loc[1, ["start", "end"]] = [pk.loc[0, "start"] + 200, pk.loc[0, "start"] + 700]  # overlaps peak 0
    h5 = write_tenx(tmp_path / "m.h5", dataclasses.replace(tiny, peaks=pk))
    _bad(files, tmp_path, "2 peaks overlap", "--merge-overlapping-peaks", tenx_h5=h5)
    b = _prep(files, tmp_path, tenx_h5=h5, merge_overlapping_peaks=True)
    assert b.atac.shape[1] == 119 and b.manifest["peaks"]["merged_overlapping"] == 1
    first = b.peaks.iloc[[i for i, n in enumerate(b.peaks["name"]) if n == f"{pk.loc[0, 'chrom']}:{pk.loc[0, 'start']}-{pk.loc[0, 'start'] + 700}"]]
    assert len(first) == 1


def test_bad_negative_counts(files, tiny, tmp_path):
    atac = tiny.atac.copy()
    atac[0, 0] = -1
    h5 = tmp_path / "m.h5"
    write_tenx(h5, dataclasses.replace(tiny, atac=atac))
    with h5py.File(h5, "r+") as f:  # uint32 cannot hold -1: store the values as signed, as a broken export would
        data = f["matrix/data"][()].astype(np.int64)
        del f["matrix/data"]
        data[data == np.iinfo(np.uint32).max] = -1
        f["matrix/data"] = data
    _bad(files, tmp_path, "/matrix/data", "negative", tenx_h5=h5)


def test_bad_non_integer_rna_and_fractional_atac(files, tiny, tmp_path):
    rna_p, atac_p = write_h5ad_pair(tmp_path, tiny, float_rna=np.log1p(tiny.rna).astype(np.float32))
    _bad(files, tmp_path, "rna.h5ad [X]", "not integers", "raw UMI counts", tenx_h5=None, rna_h5ad=rna_p, atac_h5ad=atac_p)
    import anndata as ad

    rna_p, atac_p = write_h5ad_pair(tmp_path, tiny)
    a = ad.read_h5ad(atac_p)
    a.X = a.X * 0.37  # TF-IDF-like values
    a.write_h5ad(atac_p)
    _bad(files, tmp_path, "atac.h5ad [X]", "fractional", tenx_h5=None, rna_h5ad=rna_p, atac_h5ad=atac_p)


def test_bad_marker_absent(files, tmp_path):
    msg = _bad(files, tmp_path, "[marker genes]", "'GAD3'", "Did you mean:", markers="GAD1,GAD3")
    assert "GAD1" in msg.split("Did you mean:")[1]
    _bad(files, tmp_path, "'NOANN1' has no gene record", markers="NOANN1")
    _bad(files, tmp_path, "[marker cell type]", "'Micro'", markers="Micro:GAD1")


def test_bad_cell_type_with_too_few_cells(files, tiny, tmp_path):
    labels = list(tiny.labels)
    for i in range(0, 24):
        labels[60 + i] = "Micro" if i < 4 else labels[60 + i]
    lab = tmp_path / "l.tsv"
    write_labels(lab, dataclasses.replace(tiny, labels=labels))
    _bad(files, tmp_path, "Micro (4)", "--drop-small-types", labels=lab)
    b = _prep(files, tmp_path, labels=lab, drop_small_types=True)
    assert "Micro" not in b.cell_types and b.manifest["cells_report"]["cell_types"]["dropped_types"] == {"Micro": 4}


def test_bad_truncated_and_wrong_type_files(files, tiny, tmp_path):
    data = Path(files["tenx_h5"]).read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(data[: len(data) // 2])
    _bad(files, tmp_path, "cut.h5", "truncated", tenx_h5=cut)
    _bad(files, tmp_path, "is not an HDF5 file", tenx_h5=files["labels"])
    rna_p, atac_p = write_h5ad_pair(tmp_path, tiny)
    _bad(files, tmp_path, "AnnData", "--rna-h5ad", tenx_h5=rna_p)
    _bad(files, tmp_path, "is a 10x HDF5 matrix", tenx_h5=None, rna_h5ad=files["tenx_h5"], atac_h5ad=atac_p)
    _bad(files, tmp_path, "no 'Peaks' features", tenx_h5=write_tenx(tmp_path / "gex.h5", tiny, with_peaks=False))
    _bad(files, tmp_path, "[file type]", "not a GTF", gtf=files["tenx_h5"])
    _bad(files, tmp_path, "a GTF has 9", "BED", gtf=files["tads"])
    gz = Path(files["gtf"]).read_bytes()
    (tmp_path / "cut.gtf.gz").write_bytes(gz[: len(gz) // 2])
    _bad(files, tmp_path, "cut.gtf.gz", "truncated", gtf=tmp_path / "cut.gtf.gz")
    _bad(files, tmp_path, "not a cooler", cool=files["tenx_h5"], hic_resolution=50_000)
    for name, key, src in (("cut.h5ad", "rna_h5ad", rna_p), ("cut.cool", "cool", files["cool"])):
        raw = Path(src).read_bytes()
        (tmp_path / name).write_bytes(raw[: len(raw) // 2])
        extra = {"tenx_h5": None, "atac_h5ad": atac_p} if key == "rna_h5ad" else {"hic_resolution": 50_000}
        _bad(files, tmp_path, name, "truncated", **{key: tmp_path / name}, **extra)
    _bad(files, tmp_path, "[barcode]", "has no column 'barcode'", "--label-barcode-col", labels=files["tads"])


def test_bad_gtf_without_gene_names(files, tiny, tmp_path):
    _bad(files, tmp_path, "[attributes/gene_name]", "--gtf-name-attr", gtf=write_gtf(tmp_path / "g.gtf.gz", tiny, names=False))


def test_bad_tads_and_hic_resolution(files, tmp_path):
    bed = tmp_path / "t.bed"
    bed.write_text("chr1\t248000000\t249100000\n")
    _bad(files, tmp_path, "t.bed", "TAD domains", "hg19", tads=bed)
    _bad(files, tmp_path, "50000 bp bins", "--hic-resolution 50000", cool=files["cool"], hic_resolution=10_000)
    import cooler

    cooler.zoomify_cooler(str(files["cool"]), str(tmp_path / "c.mcool"), [50_000, 100_000], chunksize=100_000)
    _bad(files, tmp_path, "no 10000 bp resolution", "[50000, 100000]", cool=tmp_path / "c.mcool", hic_resolution=10_000)
    b = _prep(files, tmp_path, cool=tmp_path / "c.mcool", hic_resolution=100_000)
    assert b.hic["GAD1"]["bin_size"] == 100_000


def test_existing_bundle_is_kept_without_force(files, tmp_path):
    out = tmp_path / "bundle"
    _prep(files, tmp_path, out=out)
    with pytest.raises(BundleError, match="already exists"):
        _prep(files, tmp_path, out=out)
    with pytest.raises(InputError):
        _prep(files, tmp_path, out=out, overwrite=True, markers="NOPE")
    assert bundle_io.load(out).manifest["provenance"]["atac"] == "real"
    shutil.rmtree(out)


def test_genes_from_another_build_are_refused(files, tiny, tmp_path):
    """hg19-like coordinates declared as hg38, and a matrix counted on another build than its GTF."""
    shift = 857_000  # about GAD1's hg19 -> hg38 move
    moved = dataclasses.replace(
        tiny, genes=tiny.genes.assign(start=tiny.genes["start"] + shift, end=tiny.genes["end"] + shift),
        peaks=tiny.peaks.assign(start=tiny.peaks["start"] + shift, end=tiny.peaks["end"] + shift))
    h5, gtf = write_tenx(tmp_path / "moved.h5", moved), write_gtf(tmp_path / "moved.gtf.gz", moved)
    _bad(files, tmp_path, "[genome build]", "GENCODE v44 (hg38)", "different genome builds", "liftOver",
         tenx_h5=h5, gtf=gtf)
    _bad(files, tmp_path, "[gene intervals vs GTF]", "placed differently", "genes.gtf.gz of its Cell Ranger ARC",
         tenx_h5=h5)


def test_chromosome_names_without_chr_are_named_as_such(files, tiny, tmp_path):
    """A matrix with Ensembl names ('2') and a UCSC GTF ('chr2'): same places, so not a build mismatch."""
    bare = dataclasses.replace(tiny, genes=tiny.genes.assign(chrom=tiny.genes["chrom"].str.replace("chr", "")),
                               peaks=tiny.peaks.assign(chrom=tiny.peaks["chrom"].str.replace("chr", "")))
    h5 = write_tenx(tmp_path / "bare.h5", bare)
    msg = _bad(files, tmp_path, "name chromosomes differently", "--chrom-prefix chr", tenx_h5=h5)
    assert "genome build" not in msg
    assert _prep(files, tmp_path, out=tmp_path / "ok", tenx_h5=h5, chrom_prefix="chr").gene_names  # the fix works
