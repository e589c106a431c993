"""Bundle format: round trip, atomic writes, and validation errors that name the file and the problem."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from grids_core import bundle as bundle_io
from grids_core.bundle import Bundle, stratified_split
from grids_core.errors import BundleError, UnknownNameError


def tiny_bundle(n_cells: int = 30, n_peaks: int = 12, n_genes: int = 4, seed: int = 0) -> Bundle:
    rng = np.random.default_rng(seed)
    atac = sp.csr_matrix((rng.random((n_cells, n_peaks)) < 0.3).astype(np.uint8))
    rna = np.log1p(rng.poisson(2.0, size=(n_cells, n_genes))).astype(np.float32)
    types = np.array(["Astro", "Micro", "Oligo"])[np.arange(n_cells) % 3]
    cells = pd.DataFrame({"barcode": [f"C{i:03d}-1" for i in range(n_cells)], "cell_type": types,
                          "split": stratified_split(types, seed=seed)})
    chroms = ["chr1"] * (n_peaks // 2) + ["chr2"] * (n_peaks - n_peaks // 2)
    starts = [1000 * (i + 1) for i in range(n_peaks)]
    peaks = pd.DataFrame({"chrom": chroms, "start": starts, "end": [s + 500 for s in starts],
                          "name": [f"p{i}" for i in range(n_peaks)]})
    genes = pd.DataFrame({"name": [f"G{i}" for i in range(n_genes)], "gene_id": [f"ENSG{i}" for i in range(n_genes)],
                          "chrom": "chr1", "start": 100, "end": 900, "strand": "+", "tss": 100})
    return Bundle(atac=atac, rna=rna, cells=cells, peaks=peaks, genes=genes,
                  manifest={"provenance": {"atac": "simulated"}})


def test_round_trip_keeps_every_layer(tmp_path):
    b = tiny_bundle()
    bundle_io.save(b, tmp_path / "b")
    back = bundle_io.load(tmp_path / "b")
    assert (back.atac != b.atac).nnz == 0
    np.testing.assert_array_equal(back.rna, b.rna)
    pd.testing.assert_frame_equal(back.cells, b.cells)
    assert back.peaks["name"].tolist() == b.peaks["name"].tolist()
    assert back.coverage.shape == (3, b.atac.shape[1])
    # pseudobulk = fraction of cells of the type with the peak open
    astro = (b.cells["cell_type"] == "Astro").to_numpy()
    np.testing.assert_allclose(back.coverage[back.coverage_types.index("Astro")],
                               np.asarray(b.atac[astro].mean(0)).ravel(), rtol=1e-6)
    assert back.manifest["schema_version"] == bundle_io.SCHEMA_VERSION
    assert back.is_simulated("atac") and not back.is_simulated("genes")


def test_bundle_id_names_the_data(tmp_path):
    """The same data saved twice gets the same id (it used to be random); one changed value another."""
    b = tiny_bundle()
    first = bundle_io.load(bundle_io.save(tiny_bundle(), tmp_path / "a"))
    again = bundle_io.load(bundle_io.save(tiny_bundle(), tmp_path / "b"))
    assert first.bundle_id == again.bundle_id and len(first.bundle_id) == 12
    b.rna[0, 0] += 1
    assert bundle_io.load(bundle_io.save(b, tmp_path / "c")).bundle_id != first.bundle_id
    b.manifest["bundle_id"] = "given"  # an id the caller sets is kept
    assert bundle_io.load(bundle_io.save(b, tmp_path / "d")).bundle_id == "given"


def test_splits_are_stratified_and_seeded():
    labels = np.array(["A"] * 100 + ["B"] * 50)
    s1, s2 = stratified_split(labels, seed=3), stratified_split(labels, seed=3)
    assert (s1 == s2).all()
    assert not (s1 == stratified_split(labels, seed=4)).all()
    for lab, n in (("A", 100), ("B", 50)):
        part = s1[labels == lab]
        assert (part == "train").sum() == round(0.7 * n) and (part == "val").sum() == round(0.1 * n)


def test_existing_bundle_is_not_overwritten_without_force(tmp_path):
    bundle_io.save(tiny_bundle(seed=0), tmp_path / "b")
    with pytest.raises(BundleError, match="already exists"):
        bundle_io.save(tiny_bundle(seed=1), tmp_path / "b")
    bundle_io.save(tiny_bundle(seed=1), tmp_path / "b", overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["b"]  # no temp or backup directories left


def test_failed_save_leaves_previous_bundle_intact(tmp_path):
    good = tiny_bundle(seed=0)
    bundle_io.save(good, tmp_path / "b")
    bad = tiny_bundle(seed=1)
    bad.atac = bad.atac * 2  # not binary
    with pytest.raises(BundleError, match="binary"):
        bundle_io.save(bad, tmp_path / "b", overwrite=True)
    back = bundle_io.load(tmp_path / "b")
    assert (back.atac != good.atac).nnz == 0
    assert [p.name for p in tmp_path.iterdir()] == ["b"]


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda b: setattr(b, "rna", b.rna[:-1]), "rna.npy"),
        (lambda b: setattr(b, "rna", -b.rna - 1), "non-negative"),
        (lambda b: setattr(b, "peaks", b.peaks.iloc[::-1].reset_index(drop=True)), "not sorted"),
        (lambda b: b.cells.__setitem__("split", "holdout"), "split must be one of"),
        (lambda b: b.cells.__setitem__("barcode", "same"), "duplicated barcodes"),
        (lambda b: b.genes.__setitem__("strand", "*"), "strand"),
        (lambda b: setattr(b, "genes", b.genes.drop(columns="tss")), "lacks columns"),
    ],
)
def test_validation_names_the_problem(tmp_path, mutate, match):
    b = tiny_bundle()
    mutate(b)
    with pytest.raises(BundleError, match=match):
        bundle_io.save(b, tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_corrupt_files_are_reported(tmp_path):
    out = bundle_io.save(tiny_bundle(), tmp_path / "b")
    with open(out / "rna.npy", "r+b") as fh:  # truncate
        fh.truncate(40)
    with pytest.raises(BundleError, match=r"rna\.npy.*checksum"):
        bundle_io.load(out)
    with pytest.raises(BundleError, match="Could not read"):
        bundle_io.load(out, verify_checksums=False)
    (out / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        bundle_io.load(out)
    with pytest.raises(BundleError, match="does not exist"):
        bundle_io.load(tmp_path / "nothing")


def test_schema_version_mismatch(tmp_path):
    out = bundle_io.save(tiny_bundle(), tmp_path / "b")
    m = json.loads((out / "manifest.json").read_text())
    m["schema_version"] = 99
    (out / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="schema_version"):
        bundle_io.load(out)


def test_unknown_gene_and_cell_type_suggest_names():
    b = tiny_bundle()
    assert b.gene_index("g1") == 1  # case-insensitive fallback
    with pytest.raises(UnknownNameError, match="Did you mean: G1"):
        b.gene_index("G1x")
    with pytest.raises(UnknownNameError, match="Astro"):
        b.check_cell_type("Astr")


def test_marker_pairs_come_from_the_bundle_then_table_1(small_sim):
    import copy

    from grids_core.reference import MARKER_PAIRS
    from layouts.components import cell_options, gene_options

    b = copy.copy(small_sim[0])
    assert b.marker_pairs() == [(c, g) for c, g in MARKER_PAIRS]  # the simulator writes Table 1
    b.manifest = {**b.manifest, "markers": [{"cell_type": "Astro", "gene": "GAD1"}, {"cell_type": None, "gene": "MOG"}]}
    assert b.marker_pairs() == [("Astro", "GAD1"), ("", "MOG")]
    labels = [o["label"] for o in gene_options(b.gene_names, b.marker_pairs(), {})[:2]]
    assert labels == ["★ GAD1 — marker of Astro", "★ MOG — marker"]
    assert cell_options(b.cell_types, b.marker_pairs(), "GAD1")[0]["value"] == "Astro"
    b.manifest = {k: v for k, v in b.manifest.items() if k != "markers"}  # e.g. a bundle from an older version
    assert ("VIP", "GAD1") in b.marker_pairs()


def test_genes_by_id_and_cell_types_ignoring_case(small_bundle, small_model, one_thread):
    b = small_bundle
    gad1 = b.gene_index("GAD1")
    gid = str(b.genes["gene_id"].iloc[gad1])
    assert "." in gid  # GENCODE ids carry a version
    assert b.gene_index(gid) == b.gene_index(gid.split(".")[0]) == b.gene_index(f" {gid.lower()} ") == gad1
    assert b.gene_index("GAD1 ") == gad1
    assert b.check_cell_type("vip") == b.check_cell_type(" VIP") == "VIP"
    with pytest.raises(UnknownNameError, match="VIP"):
        b.check_cell_type("VIPx")
    # the engine stores runs under the bundle's names, so any spelling finds the same run
    from grids_core.explain.gene import ExplainRequest, explain_gene

    res = explain_gene(b, small_model, ExplainRequest(gene=gid, cell_type="vip", L=2, k=4))
    assert (res.gene, res.cell_type) == ("GAD1", "VIP")
    same = explain_gene(b, small_model, ExplainRequest(gene="GAD1", cell_type="VIP", L=2, k=4))
    assert res.run_id == same.run_id


def test_first_gene_found_by_a_versioned_id_whose_bare_id_is_shared():
    """Index 0 is a valid answer: a versioned id must not fall through to the (ambiguous) bare-id lookup."""
    b = tiny_bundle()
    b.genes["gene_id"] = ["ENSG5.1", "ENSG5.2", "ENSG6.1", "ENSG7.1"]
    assert b.gene_index("ENSG5.1") == 0 and b.gene_name("ensg5.2") == "G1" and b.gene_name("ENSG6") == "G2"
    with pytest.raises(UnknownNameError):
        b.gene_index("ENSG5")  # two genes share it
