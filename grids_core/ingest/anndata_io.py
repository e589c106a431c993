"""AnnData ``.h5ad`` (one file per modality) and MuData ``.h5mu`` (modalities ``rna``/``atac``) readers.

Raw counts are taken from ``layer`` when given (``raw`` means ``adata.raw.X``), else from
``layers['counts']`` when present, else from ``X``. RNA gene names come from ``var_names`` (or a
symbol column when the names are Ensembl ids); ATAC peaks from chrom/start/end columns (GRanges'
1-based ``seqnames``/``start``/``end`` are shifted to 0-based) or from ``var_names`` like ``chr1:100-600`` /
``chr1-100-600``. A combined matrix (``var['feature_types']``) gives each modality its own features. Cell
labels in a MuData file's global ``obs`` reach both modalities.
"""

from __future__ import annotations

import re
import warnings

import h5py
import numpy as np
import pandas as pd

from grids_core.ingest.common import Modality, PathLike, input_error, reading, require_file, to_csr
from grids_core.ingest.intervals import parse_intervals

RNA_MODS = ("rna", "gex", "RNA", "GEX", "Gene Expression")
ATAC_MODS = ("atac", "peaks", "ATAC", "Peaks", "ATAC_peaks")
_ENSEMBL = re.compile(r"^ENS[A-Z]*G\d+(\.\d+)?$")
_SYMBOL_COLS = ("gene_name", "gene_symbols", "gene_symbol", "feature_name", "symbol", "name")
_ID_COLS = ("gene_ids", "gene_id", "id", "ensembl_id")
_CHROM_COLS = ("chrom", "chr", "seqnames", "chromosome", "Chromosome")
_START_COLS = ("start", "chromStart", "Start")
_END_COLS = ("end", "chromEnd", "End")


def _pick(cols, options) -> str | None:
    return next((c for c in options if c in cols), None)


def _check_hdf5(path, kind: str) -> None:
    if not h5py.is_hdf5(path):
        raise input_error(path, "file type", f"is not an HDF5 file, so not a {kind}.",
                          f"pass a {kind} written by anndata/mudata (.h5ad/.h5mu; zarr stores are not read).")
    with h5py.File(path, "r") as f:
        if "matrix" in f and "X" not in f and "mod" not in f:
            raise input_error(path, "file type", f"is a 10x HDF5 matrix, not a {kind}.", "pass it with --tenx-h5.")
        if kind == "MuData .h5mu" and "mod" not in f:
            raise input_error(path, "/mod", "has no modalities group: this is not a MuData file.",
                              "pass it with --rna-h5ad/--atac-h5ad if it is an AnnData file.")


def read_h5ad(path: PathLike, kind: str, layer: str | None = None) -> Modality:
    """One modality (``kind`` 'rna' or 'atac') from an AnnData file."""
    path = require_file(path, f"{kind.upper()} .h5ad")
    fix = "pass an AnnData .h5ad written by anndata (re-export it if the copy was cut short)."
    with reading(path, "an AnnData .h5ad", fix):
        _check_hdf5(path, "AnnData .h5ad")
        import anndata

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            adata = anndata.read_h5ad(path)
    return from_anndata(adata, kind, path, layer)


def read_h5mu(path: PathLike, rna_layer: str | None = None, atac_layer: str | None = None) -> tuple[Modality, Modality]:
    """(RNA, ATAC) modalities of a MuData file (modalities named ``rna``/``atac``, or gex/peaks)."""
    path = require_file(path, "MuData .h5mu")
    fix = "pass a MuData .h5mu written by mudata/muon (re-export it if the copy was cut short)."
    with reading(path, "a MuData .h5mu", fix):
        _check_hdf5(path, "MuData .h5mu")
        with h5py.File(path, "r") as f:
            mods = list(f["mod"].keys())
        rna_mod, atac_mod = _pick(mods, RNA_MODS), _pick(mods, ATAC_MODS)
        if rna_mod is None or atac_mod is None:
            missing = "rna" if rna_mod is None else "atac"
            raise input_error(path, "/mod", f"has modalities {mods} but no {missing!r} modality.",
                              "name the modalities 'rna' and 'atac' in the .h5mu (or 'gex'/'peaks'), or pass the "
                              "two modalities as separate files with --rna-h5ad and --atac-h5ad.")
        import mudata

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rna = mudata.read_h5ad(str(path), rna_mod)
            atac = mudata.read_h5ad(str(path), atac_mod)
            shared = _global_obs(path)
        for mod in (rna, atac):
            _add_global_obs(mod, shared)
    return (from_anndata(rna, "rna", path, rna_layer, f"mod/{rna_mod}/"),
            from_anndata(atac, "atac", path, atac_layer, f"mod/{atac_mod}/"))


def _global_obs(path) -> pd.DataFrame | None:
    """The MuData's top-level ``obs`` (where muon/mudata users often keep cell labels), if any."""
    from anndata.io import read_elem

    with h5py.File(path, "r") as f:
        return read_elem(f["obs"]) if "obs" in f else None


def _add_global_obs(adata, shared: pd.DataFrame | None) -> None:
    """Give a modality the global obs columns it lacks (``rna:x`` copies of modality columns are skipped)."""
    if shared is None or shared.empty:
        return
    cols = [c for c in shared.columns if ":" not in str(c) and c not in adata.obs.columns]
    if cols:
        adata.obs[cols] = shared[cols].reindex(adata.obs.index.astype(str)).to_numpy()


def from_anndata(adata, kind: str, path, layer: str | None = None, prefix: str = "") -> Modality:
    """A ``Modality`` from an in-memory AnnData (counts matrix chosen as the module docstring says)."""
    var = adata.var
    if layer == "raw":
        if adata.raw is None:
            raise input_error(path, f"{prefix}raw", "has no .raw counts.",
                              f"pass a layer that exists with --{kind}-layer, or leave --{kind}-layer out.")
        x, field, var = adata.raw.X, f"{prefix}raw/X", adata.raw.var
    elif layer is not None:
        if layer not in adata.layers:
            raise input_error(path, f"{prefix}layers", f"has no layer {layer!r} (layers: {list(adata.layers)}).",
                              f"pass an existing layer with --{kind}-layer, or leave --{kind}-layer out "
                              "(then layers['counts'] or X is used).")
        x, field = adata.layers[layer], f"{prefix}layers['{layer}']"
    elif "counts" in adata.layers:
        x, field = adata.layers["counts"], f"{prefix}layers['counts']"
    else:
        x, field = adata.X, f"{prefix}X"
    if x is None:
        raise input_error(path, field, "is empty.", "store raw counts in X or layers['counts'].")
    x = to_csr(x, path, field)
    x, var = _own_features(x, var, kind, path, prefix)
    obs = adata.obs.copy()
    obs.index = pd.Index(obs.index.astype(str), name="barcode")
    dup = obs.index[obs.index.duplicated()]
    if len(dup):
        raise input_error(path, f"{prefix}obs_names", f"has {len(dup)} duplicated barcode(s), e.g. {dup[0]!r}; "
                          "each barcode must name one cell.",
                          "write the file with unique cell barcodes (e.g. a per-sample suffix -1, -2, ... when "
                          "samples were concatenated) and use the same barcodes in --labels.")
    names = pd.Index(var.index.astype(str))
    out_var = _rna_var(var, names) if kind == "rna" else _atac_var(var, names, path, f"{prefix}var")
    return Modality(kind, x, obs, out_var, path, field)


_FEATURE_TYPE_COLS = ("feature_types", "feature_type")
_OWN_TYPE = {"rna": ("Gene Expression", "GEX", "RNA"), "atac": ("Peaks", "ATAC", "Chromatin Accessibility")}


def _own_features(x, var: pd.DataFrame, kind: str, path, prefix: str):
    """Keep only this modality's features of a combined matrix (``var['feature_types']`` as scanpy's
    ``read_10x_h5(gex_only=False)`` writes it): peaks must not count in the RNA library size."""
    col = _pick(var.columns, _FEATURE_TYPE_COLS)
    if col is None:
        return x, var
    types = var[col].astype(str).to_numpy()
    own = np.isin(types, _OWN_TYPE[kind])
    if own.all():
        return x, var
    found = sorted(set(types))
    if not own.any():
        other = "--atac-h5ad" if kind == "rna" else "--rna-h5ad"
        raise input_error(path, f"{prefix}var['{col}']",
                          f"holds only {found} features, no {_OWN_TYPE[kind][0]!r} ones, so it is not the "
                          f"{kind.upper()} modality.", f"pass this file with {other}, and the {kind.upper()} "
                          "modality (or a combined file with both feature types) here.")
    keep = np.flatnonzero(own)
    return x[:, keep], var.iloc[keep]


def _rna_var(var: pd.DataFrame, names: pd.Index) -> pd.DataFrame:
    sym_col, id_col = _pick(var.columns, _SYMBOL_COLS), _pick(var.columns, _ID_COLS)
    ensembl_names = len(names) > 0 and names.str.match(_ENSEMBL.pattern).mean() > 0.5
    symbols = var[sym_col].astype(str).to_numpy() if (ensembl_names and sym_col) else names.to_numpy()
    ids = var[id_col].astype(str).to_numpy() if id_col else (names.to_numpy() if ensembl_names else symbols)
    out = pd.DataFrame({"name": symbols, "gene_id": ids})
    if "interval" in var.columns:
        c = parse_intervals(var["interval"].astype(str).to_numpy())
        out[["chrom", "start", "end"]] = c[["chrom", "start", "end"]].to_numpy()
    else:
        cc, sc, ec = _pick(var.columns, _CHROM_COLS), _pick(var.columns, _START_COLS), _pick(var.columns, _END_COLS)
        if cc and sc and ec:
            out["chrom"] = var[cc].astype(str).to_numpy()
            out["start"] = pd.to_numeric(var[sc], errors="coerce").to_numpy()
            out["end"] = pd.to_numeric(var[ec], errors="coerce").to_numpy()
    out["strand"] = var["strand"].astype(str).to_numpy() if "strand" in var.columns else None
    return out


def _atac_var(var: pd.DataFrame, names: pd.Index, path, field: str) -> pd.DataFrame:
    cc, sc, ec = _pick(var.columns, _CHROM_COLS), _pick(var.columns, _START_COLS), _pick(var.columns, _END_COLS)
    if cc and sc and ec:
        c = pd.DataFrame({"chrom": var[cc].astype(str).to_numpy(),
                          "start": pd.to_numeric(var[sc], errors="coerce").to_numpy(),
                          "end": pd.to_numeric(var[ec], errors="coerce").to_numpy()})
        if cc == "seqnames":  # GRanges (ArchR, Signac): 1-based, closed
            c["start"] = c["start"] - 1
    else:
        c = parse_intervals(names.to_numpy())
    bad = c["start"].isna() | c["end"].isna() | c["chrom"].isna()
    if bad.any():
        raise input_error(path, field, f"peak {names[bad.to_numpy()][0]!r} has no coordinates: var_names must look like "
                          "'chr1:100-600' (or 'chr1-100-600'), or var needs chrom/start/end columns.",
                          "write the file with peak names like 'chr1:100-600', or with chrom, start and end "
                          "columns in its var table.")
    c["start"] = c["start"].astype(np.int64)
    c["end"] = c["end"].astype(np.int64)
    c["name"] = names.to_numpy()
    return c
