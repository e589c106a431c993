"""`grids prepare` / `simulate` safety and input robustness: --out never destroys user files, duplicated 10x
barcodes, chrom-sizes headers, chrom-prefixed peak names, CLI-only messages and complete --help texts."""

from __future__ import annotations

import argparse
import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from grids_core import bundle as bundle_io
from grids_core import reference
from grids_core.cli import build_parser, main
from grids_core.errors import BundleError, InputError
from grids_core.ingest import prepare
from grids_core.ingest.intervals import genome_spec, read_chrom_sizes, rename_coordinate_names
from tests.test_bundle import tiny_bundle
from tests.test_ingest import SMALL, Tiny, _make_tiny, write_gtf, write_labels, write_tenx

CLI_SMALL = ["--markers", "GAD1,GAD2,AQP4", "--n-genes", "8", "--min-atac-counts", "5", "--min-rna-genes", "5",
             "--min-cells", "10"]


@pytest.fixture(scope="module")
def tiny() -> Tiny:
    return _make_tiny()


@pytest.fixture(scope="module")
def inputs(tiny, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("safety_inputs")
    return {"tenx_h5": write_tenx(root / "filtered_feature_bc_matrix.h5", tiny),
            "labels": write_labels(root / "labels.tsv", tiny), "gtf": write_gtf(root / "genes.gtf.gz", tiny)}


def _cli(out: Path | str, h5: Path, labels: Path, *extra: str) -> list[str]:
    return ["prepare", "--out", str(out), "--tenx-h5", str(h5), "--labels", str(labels), *CLI_SMALL, *extra]


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> bytes)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _no_leftovers(parent: Path) -> None:
    assert not [p.name for p in parent.iterdir() if p.name.startswith(".")], list(parent.iterdir())


# ---- 1. --out / --force never destroy anything but a GRIDS bundle or an empty directory -----------------
def test_force_refuses_an_out_holding_the_inputs(inputs, tmp_path, capsys):
    """The reviewer's case: --out outs_copy --force with the inputs inside outs_copy."""
    outs = tmp_path / "outs_copy"
    outs.mkdir()
    h5, labels = Path(shutil.copy(inputs["tenx_h5"], outs)), Path(shutil.copy(inputs["labels"], outs))
    before = _snapshot(outs)
    assert main(_cli(outs, h5, labels, "--force")) == 2
    err = capsys.readouterr().err
    assert "contains the --tenx-h5 input" in err and "Pick an --out" in err
    assert _snapshot(outs) == before and h5.read_bytes() == inputs["tenx_h5"].read_bytes()
    _no_leftovers(tmp_path)


@pytest.mark.parametrize("where", ["is", "inside"])
def test_out_that_is_or_lies_inside_an_input_is_refused(inputs, tmp_path, capsys, where):
    h5, labels = Path(shutil.copy(inputs["tenx_h5"], tmp_path)), Path(shutil.copy(inputs["labels"], tmp_path))
    before = _snapshot(tmp_path)
    out = labels if where == "is" else labels / "bundle"
    assert main(_cli(out, h5, labels, "--force")) == 2
    err = capsys.readouterr().err
    assert f"{'is' if where == 'is' else 'lies inside'} the --labels input" in err, err
    assert _snapshot(tmp_path) == before
    _no_leftovers(tmp_path)


def test_force_refuses_a_directory_that_is_not_a_bundle(inputs, tmp_path, capsys):
    out = tmp_path / "results"
    (out / "sub").mkdir(parents=True)
    (out / "notes.txt").write_text("my analysis\n")
    (out / "sub" / "table.csv").write_text("a,b\n1,2\n")
    (out / "manifest.json").write_text('{"name": "another tool"}')  # a manifest, but not a GRIDS one
    before = _snapshot(out)
    assert main(_cli(out, inputs["tenx_h5"], inputs["labels"], "--force")) == 2
    err = capsys.readouterr().err
    assert "is not a GRIDS bundle" in err and "--force replaces only a GRIDS bundle or an empty directory" in err
    assert _snapshot(out) == before
    _no_leftovers(tmp_path)


def test_force_refuses_a_file_as_out(inputs, tmp_path, capsys):
    out = tmp_path / "bundle"
    out.write_text("not a directory\n")
    for argv in (_cli(out, inputs["tenx_h5"], inputs["labels"], "--force"),
                 ["simulate", "--out", str(out), "--force", "--cells", "200", "--peaks", "1000"]):
        assert main(argv) == 2
        assert "is a file, not a bundle directory" in capsys.readouterr().err
        assert out.read_text() == "not a directory\n"
        _no_leftovers(tmp_path)


def test_simulate_force_and_save_refuse_a_directory_that_is_not_a_bundle(tmp_path, capsys):
    out = tmp_path / "data"
    out.mkdir()
    (out / "keep.txt").write_text("precious\n")
    assert main(["simulate", "--out", str(out), "--force", "--cells", "200", "--peaks", "1000"]) == 2
    assert "is not a GRIDS bundle" in capsys.readouterr().err
    with pytest.raises(BundleError, match="is not a GRIDS bundle"):
        bundle_io.save(tiny_bundle(), out, overwrite=True)
    assert _snapshot(out) == {"keep.txt": b"precious\n"}
    _no_leftovers(tmp_path)


def test_replace_dir_checks_again_right_before_moving(tmp_path):
    """A directory that became a non-bundle between the early check and the write is still kept."""
    out = tmp_path / "b"
    out.mkdir()
    (out / "x.txt").write_text("x")
    new = tmp_path / "new"
    new.mkdir()
    with pytest.raises(BundleError, match="not a GRIDS bundle"):
        bundle_io._replace_dir(new, out, overwrite=True)
    assert (out / "x.txt").read_text() == "x" and new.is_dir()


def test_force_replaces_a_real_bundle_and_an_empty_directory_needs_no_force(inputs, tmp_path, capsys):
    out = tmp_path / "bundle"
    out.mkdir()  # an existing empty directory is accepted without --force
    assert main(_cli(out, inputs["tenx_h5"], inputs["labels"])) == 0
    first = bundle_io.load(out).bundle_id
    (out / "models").mkdir()  # what `grids train` adds: still a bundle
    (out / "models" / "default.pt").write_bytes(b"model")
    assert main(_cli(out, inputs["tenx_h5"], inputs["labels"])) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--force" in err and "overwrite" not in err
    assert main(_cli(out, inputs["tenx_h5"], inputs["labels"], "--force", "--seed", "1")) == 0
    b = bundle_io.load(out)
    assert b.bundle_id != first and b.manifest["prepare_options"]["seed"] == 1 and not (out / "models").exists()
    _no_leftovers(tmp_path)
    assert bundle_io.is_bundle_dir(out) and not bundle_io.is_bundle_dir(tmp_path)


def test_prepare_api_checks_out_against_inputs_before_reading(inputs, tmp_path):
    h5 = Path(shutil.copy(inputs["tenx_h5"], tmp_path / "m.h5"))
    with pytest.raises(BundleError, match="--out .* contains the --tenx-h5 input"):
        prepare(tenx_h5=h5, labels=tmp_path / "missing.tsv", out=tmp_path, overwrite=True)  # labels never read


# ---- 2. duplicated barcodes in a 10x h5 -----------------------------------------------------------------
def test_duplicated_barcodes_in_tenx_h5_are_a_clear_input_error(tiny, inputs, tmp_path):
    bcs = list(tiny.barcodes)
    bcs[-3:] = bcs[:3]
    h5 = write_tenx(tmp_path / "dup.h5", dataclasses.replace(tiny, barcodes=bcs))
    with pytest.raises(InputError) as err:
        prepare(tenx_h5=h5, labels=inputs["labels"], gtf=inputs["gtf"], out=tmp_path / "b", **SMALL)
    msg = str(err.value)
    for frag in (str(h5), "[/matrix/barcodes]", "3 barcode(s) more than once", repr(bcs[0]), "appears 2 times",
                 "Fix:", "cellranger-arc aggr"):
        assert frag in msg, msg
    assert not (tmp_path / "b").exists()


# ---- 3. chrom sizes with a header line ------------------------------------------------------------------
def test_chrom_sizes_with_header_plain_and_the_shipped_file(tmp_path):
    sizes = reference.chrom_sizes()
    body = "".join(f"{c}\t{n}\n" for c, n in sizes.items())
    for name, text in (("h.sizes", "chrom\tlength\n" + body), ("plain.chrom.sizes", body),
                       ("hash.txt", "#chrom\tsize\n" + body)):
        (tmp_path / name).write_text(text)
        assert read_chrom_sizes(tmp_path / name) == sizes
    shipped = reference.data_dir() / "hg38.chrom_sizes.tsv"
    assert genome_spec("hg38", shipped).sizes == sizes


@pytest.mark.parametrize("text, frag", [
    ("chrom\tlength\nchr1\t100\nchr2\tabc\n", "line 3 ('chr2', 'abc')"),
    ("chr1\t100\nchr2\t-5\n", "line 2"),
    ("chrom\tlength\n", "no chromosome lines"),
    ("chr1\t100\nchr1\t200\n", "'chr1' more than once"),
])
def test_chrom_sizes_bad_data_lines_are_errors(tmp_path, text, frag):
    (tmp_path / "bad.sizes").write_text(text)
    with pytest.raises(InputError, match="Fix:") as err:
        read_chrom_sizes(tmp_path / "bad.sizes")
    assert frag in str(err.value) and "--chrom-sizes" in str(err.value)


def test_prepare_accepts_a_chrom_sizes_file_with_header(inputs, tmp_path):
    sizes = tmp_path / "hg38.sizes"
    sizes.write_text("chrom\tlength\n" + "".join(f"{c}\t{n}\n" for c, n in reference.chrom_sizes().items()))
    b = prepare(tenx_h5=inputs["tenx_h5"], labels=inputs["labels"], gtf=inputs["gtf"], chrom_sizes=sizes, **SMALL)
    assert len(b.peaks) > 0


# ---- 4. --chrom-prefix renames coordinate-style peak names --------------------------------------------
def test_chrom_prefix_renames_coordinate_peak_names(tiny, inputs, tmp_path):
    ens = dataclasses.replace(tiny, peaks=tiny.peaks.assign(chrom=tiny.peaks["chrom"].str.replace("chr", "")))
    h5 = write_tenx(tmp_path / "ens.h5", ens)
    b = prepare(tenx_h5=h5, labels=inputs["labels"], gtf=inputs["gtf"], chrom_prefix="chr", **SMALL)
    p = b.peaks
    assert p["chrom"].str.startswith("chr").all()
    assert (p["name"] == p["chrom"] + ":" + p["start"].astype(str) + "-" + p["end"].astype(str)).all()


def test_chrom_prefix_keeps_non_coordinate_names_and_separators():
    names = pd.Series(["22:100-600", "22-700-900", "REMO.ABC123", "6_10_20", "MT:5-9", "1:1-2", "chr3:1-5"])
    before = pd.Series(["22", "22", "22", "6", "MT", "1", "chr3"])
    after = pd.Series(["chr22", "chr22", "chr22", "chr6", "chrM", "chr1", "chr3"])
    starts, ends = pd.Series([100, 700, 5, 10, 5, 7, 1]), pd.Series([600, 900, 9, 20, 9, 8, 5])
    got = rename_coordinate_names(names, before, after, starts, ends).tolist()
    # '1:1-2' spells other coordinates than its row (1:7-8): not this peak's name, left alone
    assert got == ["chr22:100-600", "chr22-700-900", "REMO.ABC123", "chr6_10_20", "chrM:5-9", "1:1-2", "chr3:1-5"]


def test_chrom_prefix_leaves_remo_ids_of_an_h5ad(tiny, tmp_path):
    import anndata as ad

    pk = tiny.peaks.assign(chrom=tiny.peaks["chrom"].str.replace("chr", ""))
    ids = [f"REMO{i:05d}" for i in range(len(pk))]
    rna = ad.AnnData(X=sp.csr_matrix(tiny.rna.astype(np.float32)), obs=pd.DataFrame(index=tiny.barcodes),
                     var=pd.DataFrame({"gene_ids": tiny.genes["gene_id"].to_numpy()}, index=tiny.genes["name"].to_numpy()))
    atac = ad.AnnData(X=sp.csr_matrix(tiny.atac.astype(np.float32)), obs=pd.DataFrame(index=tiny.barcodes),
                      var=pd.DataFrame({"chrom": pk["chrom"].to_numpy(), "start": pk["start"].to_numpy(),
                                        "end": pk["end"].to_numpy()}, index=ids))
    rna.write_h5ad(tmp_path / "rna.h5ad")
    atac.write_h5ad(tmp_path / "atac.h5ad")
    labels = write_labels(tmp_path / "l.tsv", tiny)
    b = prepare(rna_h5ad=tmp_path / "rna.h5ad", atac_h5ad=tmp_path / "atac.h5ad", labels=labels,
                gtf=write_gtf(tmp_path / "g.gtf.gz", tiny), chrom_prefix="chr", **SMALL)
    assert b.peaks["chrom"].str.startswith("chr").all() and b.peaks["name"].str.match(r"^REMO\d{5}$").all()


# ---- 5. messages speak CLI, not Python ------------------------------------------------------------------
def test_messages_name_options_not_python_arguments(tiny, inputs, tmp_path):
    ens = dataclasses.replace(tiny, peaks=tiny.peaks.assign(chrom=tiny.peaks["chrom"].str.replace("chr", "")))
    with pytest.raises(InputError) as err:
        prepare(tenx_h5=write_tenx(tmp_path / "ens.h5", ens), labels=inputs["labels"], gtf=inputs["gtf"], **SMALL)
    assert "--chrom-prefix chr" in str(err.value) and "prepare(" not in str(err.value)
    out = bundle_io.save(tiny_bundle(), tmp_path / "b")
    with pytest.raises(BundleError) as err:
        bundle_io.save(tiny_bundle(), out)
    assert "--force" in str(err.value) and "overwrite" not in str(err.value)


@pytest.mark.filterwarnings("ignore:Observation names are not unique")
def test_h5ad_messages_name_options_not_python_calls(tiny, tmp_path):
    import anndata as ad

    from grids_core.ingest.anndata_io import from_anndata

    a = ad.AnnData(X=sp.csr_matrix(np.ones((3, 2), dtype=np.float32)), obs=pd.DataFrame(index=["A-1", "A-1", "B-1"]),
                   var=pd.DataFrame(index=["G1", "G2"]))
    with pytest.raises(InputError) as err:
        from_anndata(a, "rna", tmp_path / "rna.h5ad")
    assert "1 duplicated barcode(s), e.g. 'A-1'" in str(err.value) and "adata." not in str(err.value)
    a.obs_names = ["A-1", "B-1", "C-1"]
    with pytest.raises(InputError) as err:
        from_anndata(a, "atac", tmp_path / "atac.h5ad", layer="counts")
    assert "--atac-layer" in str(err.value) and "--*-layer" not in str(err.value)


# ---- 6. CLI help and `info --bundle FILE` ---------------------------------------------------------------
def _subparser(name: str) -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


def test_every_prepare_option_has_help_and_shows_its_default():
    for action in _subparser("prepare")._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        name = action.option_strings[0]
        assert action.help, f"{name} has no help text"
        takes_value = action.nargs is None and not isinstance(action, argparse._StoreConstAction)
        if takes_value and action.default not in (None, ""):
            assert "%(default)s" in action.help, f"{name} does not show its default {action.default!r}"


def test_export_help_lists_bed_and_show_export_has_help():
    for cmd in ("explain", "show"):
        export = next(a for a in _subparser(cmd)._actions if "--export" in a.option_strings)
        assert export.help and all(f".{x}" in export.help for x in ("tsv", "csv", "bedpe", "interact", "bed")), \
            f"{cmd} --export: {export.help!r}"
    assert ".interact or .bed" in " ".join(_subparser("explain").format_help().split())


def test_info_on_a_file_says_it_is_a_file(tmp_path, capsys):
    f = tmp_path / "labels.tsv"
    f.write_text("barcode\tcell_type\n")
    assert main(["info", "--bundle", str(f)]) == 2
    err = capsys.readouterr().err
    assert "is a file, not a bundle directory" in err and "does not exist" not in err
    assert f"--out {f}" not in err and f.read_text() == "barcode\tcell_type\n"
