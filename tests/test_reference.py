"""The real reference extracts in data/ load, are consistent, and a broken file gives a clear BundleError."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pandas as pd
import pytest

from grids_core import reference
from grids_core.errors import BundleError
from grids_core.genome import natural_chrom_key, sort_intervals

MARKER_CHROMS = {
    "ALDH1A1": "chr9",
    "AQP4": "chr18",
    "GJA1": "chr6",
    "CLDN5": "chr22",
    "FLT1": "chr13",
    "APBB1IP": "chr10",
    "CX3CR1": "chr3",
    "NXPH1": "chr7",
    "OLIG1": "chr21",
    "OLIG2": "chr21",
    "MOBP": "chr3",
    "MOG": "chr6",
    "GAD1": "chr2",
    "GAD2": "chr10",
}

UNTAGGED_PAIRS = {("Oligo", "MOG")}


@pytest.fixture(autouse=True)
def _fresh_caches():
    reference.clear_caches()
    yield
    reference.clear_caches()


def _is_natural(df: pd.DataFrame) -> bool:
    keys = [(natural_chrom_key(c), s) for c, s in df[["chrom", "start"]].itertuples(index=False)]
    return keys == sorted(keys)


def test_markers_match_constant():
    m = reference.markers()
    assert list(m.columns) == ["cell_type", "gene"]
    assert tuple(m.itertuples(index=False, name=None)) == reference.MARKER_PAIRS
    assert len(reference.MARKER_PAIRS) == 16
    assert {g for _, g in reference.MARKER_PAIRS} == set(MARKER_CHROMS)
    assert set(m["cell_type"]) <= set(reference.CELL_TYPES)
    assert set(reference.REMO_TERM_MAP) == set(reference.CELL_TYPES)


def test_all_markers_in_genes_on_right_chromosome():
    g = reference.genes()
    assert list(g.columns) == ["chrom", "start", "end", "gene_name", "gene_id", "strand", "gene_type"]
    for name, chrom in MARKER_CHROMS.items():
        rows = g[g["gene_name"] == name]
        assert len(rows) == 1, name
        assert rows["chrom"].iloc[0] == chrom, name
    gad1 = g[g["gene_name"] == "GAD1"].iloc[0]
    assert (gad1["start"], gad1["end"], gad1["strand"]) == (170813212, 170861151, "+")
    assert gad1["gene_id"].startswith("ENSG00000128683")
    assert (g["end"] > g["start"]).all()
    assert _is_natural(g)


def test_exons_belong_to_shipped_genes():
    e = reference.exons()
    g = reference.genes()
    assert set(e["gene_name"]) <= set(g["gene_name"])
    assert {"GAD1", "OLIG2", "MOG"} <= set(e["gene_name"])
    gad1 = e[e["gene_name"] == "GAD1"]
    assert gad1["transcript_id"].nunique() == 1
    assert gad1["exon_number"].min() == 1


def test_marker_loci_are_gene_body_plus_flank():
    loci = reference.marker_loci().set_index("gene")
    g = reference.genes().set_index("gene_name")
    sizes = reference.chrom_sizes()
    assert set(loci.index) == set(MARKER_CHROMS)
    for name, row in loci.iterrows():
        assert row["start"] == max(0, g.loc[name, "start"] - reference.LOCUS_FLANK)
        assert row["end"] == min(sizes[row["chrom"]], g.loc[name, "end"] + reference.LOCUS_FLANK)


def test_cres_near_each_marker_carry_its_label():
    cres = reference.cres()
    assert list(cres.columns) == ["chrom", "start", "end", "name", "cell_types"]
    assert cres["name"].str.startswith("REMOv1.GRCh38-").all()
    labels = {lab for s in cres["cell_types"] if s for lab in s.split(";")}
    assert labels <= set(reference.CELL_TYPES)
    loci = reference.marker_loci().set_index("gene")
    for cell_type, gene in reference.MARKER_PAIRS:
        chrom, lo, hi = loci.loc[gene, ["chrom", "start", "end"]]
        near = cres[(cres["chrom"] == chrom) & (cres["start"] < hi) & (cres["end"] > lo)]
        assert len(near) > 50, gene
        tagged = near["cell_types"].str.split(";").apply(lambda labs, ct=cell_type: ct in labs)
        # Real REMO v1 data: no element in the MOG locus (MHC region) carries the oligodendrocyte term.
        assert tagged.any() == ((cell_type, gene) not in UNTAGGED_PAIRS), (cell_type, gene)


def test_background_sorted_and_outside_loci():
    bg = reference.background_elements()
    assert list(bg.columns) == ["chrom", "start", "end", "cell_type_bits"]
    assert len(bg) == 150_000
    assert bg["cell_type_bits"].dtype == np.uint8
    assert (bg["end"] > bg["start"]).all()
    assert _is_natural(bg)
    assert set(bg["chrom"]) <= {f"chr{i}" for i in range(1, 23)} | {"chrX", "chrY"}
    assert not bg.duplicated(["chrom", "start", "end"]).any()
    for chrom, lo, hi in reference.marker_loci()[["chrom", "start", "end"]].itertuples(index=False):
        inside = (bg["chrom"] == chrom) & (bg["start"] < hi) & (bg["end"] > lo)
        assert not inside.any(), chrom
    tagged = bg["cell_type_bits"].to_numpy()
    assert 0 < (tagged > 0).mean() < 1
    for bit in range(len(reference.CELL_TYPES)):
        assert ((tagged >> bit) & 1).any(), reference.CELL_TYPES[bit]


def test_chrom_sizes_and_cytobands_are_hg38():
    sizes = reference.chrom_sizes()
    assert sizes["chr1"] == 248956422
    assert sizes["chrX"] == 156040895
    assert set(sizes) == {f"chr{i}" for i in range(1, 23)} | {"chrX", "chrY", "chrM"}
    assert list(sizes) == sorted(sizes, key=natural_chrom_key)
    cyto = reference.cytobands()
    assert list(cyto.columns) == ["chrom", "start", "end", "band", "stain"]
    chr1 = cyto[cyto["chrom"] == "chr1"].sort_values("start")
    assert chr1["start"].iloc[0] == 0
    assert chr1["end"].iloc[-1] == sizes["chr1"]
    assert (chr1["start"].to_numpy()[1:] == chr1["end"].to_numpy()[:-1]).all()


def test_tads_are_on_hg38_within_chromosomes():
    tads = reference.tads()
    sizes = reference.chrom_sizes()
    assert list(tads.columns) == ["chrom", "start", "end", "source"]
    assert len(tads) > 1000
    assert (tads["end"] > tads["start"]).all()
    assert all(end <= sizes[c] for c, end in tads[["chrom", "end"]].itertuples(index=False))
    assert _is_natural(tads)
    # hg19 chr2:170,280,000-171,720,000 lifts to chr2:169,423,490-170,863,490 and holds GAD1
    assert ((tads["chrom"] == "chr2") & (tads["start"] == 169423490) & (tads["end"] == 170863490)).any()
    g = reference.genes().set_index("gene_name")
    for gene in ("GAD1", "APBB1IP", "FLT1", "OLIG1", "OLIG2"):
        chrom, start = g.loc[gene, ["chrom", "start"]]
        on = tads[(tads["chrom"] == chrom) & (tads["start"] < g.loc[gene, "end"]) & (tads["end"] > start)]
        assert len(on) >= 1, gene


def test_mnist_has_both_digits():
    images, labels = reference.mnist_digits()
    assert images.dtype == np.uint8 and images.shape[1:] == (28, 28)
    assert len(images) == len(labels) == 1000
    assert set(np.unique(labels).tolist()) == {3, 8}
    assert (labels == 3).sum() == (labels == 8).sum() == 500
    assert images.max() > 200


def test_natural_chrom_key_order():
    names = ["chrM", "chr10", "chrY", "chr2", "chrUn_KI270302v1", "chrX", "chr1", "chr22", "chr9"]
    assert sorted(names, key=natural_chrom_key) == [
        "chr1",
        "chr2",
        "chr9",
        "chr10",
        "chr22",
        "chrX",
        "chrY",
        "chrM",
        "chrUn_KI270302v1",
    ]
    assert natural_chrom_key("1") == natural_chrom_key("chr1")


def test_sort_intervals():
    df = pd.DataFrame(
        {
            "chrom": ["chr10", "chrX", "chr2", "chr2", "chr1"],
            "start": [5, 1, 30, 10, 7],
            "end": [9, 2, 40, 20, 8],
            "name": list("abcde"),
        }
    )
    out = sort_intervals(df)
    assert list(out["name"]) == ["e", "d", "c", "a", "b"]
    assert list(out.index) == [4, 3, 2, 0, 1]
    assert sort_intervals(df.iloc[:0]).empty


def test_loaders_return_copies():
    g = reference.genes()
    g.loc[:, "chrom"] = "chrZ"
    assert (reference.genes()["chrom"] != "chrZ").all()


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("genes.tsv.gz", b"this is not gzip"),
        ("remo_background.npz", b"PK\x03\x04 truncated"),
        ("hg38.chrom_sizes.tsv", b"chrom\tlength\nchr1\tnot-a-number\n"),
    ],
)
def test_corrupt_file_raises_bundle_error(tmp_path, monkeypatch, name, content):
    for f in reference.data_dir().iterdir():
        if f.is_file():
            shutil.copy(f, tmp_path / f.name)
    (tmp_path / name).write_bytes(content)
    monkeypatch.setenv(reference.DATA_ENV_VAR, str(tmp_path))
    reference.clear_caches()
    assert reference.data_dir() == tmp_path
    loader = {
        "genes.tsv.gz": reference.genes,
        "remo_background.npz": reference.background_elements,
        "hg38.chrom_sizes.tsv": reference.chrom_sizes,
    }[name]
    with pytest.raises(BundleError, match=name.replace(".", r"\.")) as info:
        loader()
    assert "build_reference_data.py" in str(info.value)


def test_missing_file_and_wrong_columns_raise_bundle_error(tmp_path, monkeypatch):
    monkeypatch.setenv(reference.DATA_ENV_VAR, str(tmp_path))
    with pytest.raises(BundleError, match="missing"):
        reference.tads()
    with gzip.open(tmp_path / "tads_gm12878_hg38.bed.gz", "wt") as fh:
        fh.write("#chrom\tstart\tstop\nchr1\t1\t2\n")
    with pytest.raises(BundleError, match="corrupt"):
        reference.tads()
