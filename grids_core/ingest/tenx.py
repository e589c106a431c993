"""Cell Ranger ARC ``filtered_feature_bc_matrix.h5`` (10x HDF5 feature-barcode matrix), read with h5py.

Schema: ``/matrix/{barcodes, data, indices, indptr, shape}`` is a features x barcodes CSC matrix and
``/matrix/features/{id, name, feature_type, genome, interval}`` describes the rows; ARC files hold
"Gene Expression" (UMI counts) and "Peaks" (cut-site counts) features.
"""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp

from grids_core.ingest.common import Modality, PathLike, decode, input_error, reading, require_file
from grids_core.ingest.intervals import parse_intervals

GEX, PEAKS = "Gene Expression", "Peaks"
_FIX = "pass the filtered_feature_bc_matrix.h5 from the cellranger-arc `outs/` folder (re-copy it if truncated)."


def read_tenx_h5(path: PathLike) -> tuple[Modality, Modality]:
    """(RNA, ATAC) modalities of a 10x multiome HDF5 matrix; cells are the file's barcodes."""
    path = require_file(path, "10x HDF5 matrix")
    with reading(path, "a 10x HDF5 feature-barcode matrix", _FIX):
        if not h5py.is_hdf5(path):
            raise input_error(path, "file type", "is not an HDF5 file.",
                              "pass the .h5 matrix itself (not the MEX folder, a .h5ad or a gzip).")
        with h5py.File(path, "r") as f:
            if "matrix" not in f:
                hint = (" It looks like an AnnData/MuData file: use --rna-h5ad/--atac-h5ad or --h5mu."
                        if "X" in f or "mod" in f else "")
                raise input_error(path, "/matrix", f"has no /matrix group, so it is not a 10x feature-barcode matrix.{hint}", _FIX)
            g = f["matrix"]
            for key in ("barcodes", "data", "indices", "indptr", "shape", "features"):
                if key not in g:
                    raise input_error(path, f"/matrix/{key}", "is missing.", _FIX)
            feats = g["features"]
            for key in ("id", "name", "feature_type"):
                if key not in feats:
                    raise input_error(path, f"/matrix/features/{key}", "is missing.", _FIX)
            barcodes = decode(g["barcodes"][()])
            data = g["data"][()]
            indices = g["indices"][()].astype(np.int64)
            indptr = g["indptr"][()].astype(np.int64)
            shape = tuple(int(v) for v in g["shape"][()])
            ftype = decode(feats["feature_type"][()])
            var = pd.DataFrame({"id": decode(feats["id"][()]), "name": decode(feats["name"][()]), "feature_type": ftype})
            var["interval"] = decode(feats["interval"][()]) if "interval" in feats else ""
    n_feat, n_bc = shape
    if len(barcodes) != n_bc or len(var) != n_feat or len(indptr) != n_bc + 1 or len(data) != len(indices):
        raise input_error(path, "/matrix/shape", f"shape {shape} disagrees with {len(var)} features, {len(barcodes)} "
                          f"barcodes, indptr of {len(indptr)} and {len(data)} values (a truncated or edited file).", _FIX)
    if len(indptr) and (indptr[-1] != len(data) or (np.diff(indptr) < 0).any()):
        raise input_error(path, "/matrix/indptr", "is not a valid column pointer for the data.", _FIX)
    if len(indices) and (indices.min() < 0 or indices.max() >= n_feat):
        raise input_error(path, "/matrix/indices", "points at features beyond /matrix/shape.", _FIX)
    _check_unique_barcodes(path, barcodes)
    mat = sp.csc_matrix((data, indices, indptr), shape=shape).T.tocsr()  # cells x features
    obs = pd.DataFrame(index=pd.Index(barcodes.astype(str), name="barcode"))
    is_gex, is_peak = (ftype == GEX), (ftype == PEAKS)
    if not is_peak.any():
        raise input_error(path, "/matrix/features/feature_type", f"has no {PEAKS!r} features (found "
                          f"{sorted(set(ftype.tolist()))}): this is not a multiome (ARC) matrix.",
                          "use the cellranger-arc output, or give ATAC separately with --atac-h5ad.")
    if not is_gex.any():
        raise input_error(path, "/matrix/features/feature_type", f"has no {GEX!r} features.",
                          "use the cellranger-arc output, or give RNA separately with --rna-h5ad.")
    gvar = var[is_gex].reset_index(drop=True)
    coords = parse_intervals(gvar["interval"])
    rna_var = pd.DataFrame({"name": gvar["name"], "gene_id": gvar["id"], "chrom": coords["chrom"],
                            "start": coords["start"], "end": coords["end"], "strand": None})
    pvar = var[is_peak].reset_index(drop=True)
    pc = parse_intervals(pvar["id"])
    bad = pc["start"].isna() | pc["end"].isna()
    if bad.any():
        alt = parse_intervals(pvar["interval"])
        pc = pc.where(~bad, alt)
        bad = pc["start"].isna() | pc["end"].isna()
    if bad.any():
        raise input_error(path, "/matrix/features/id", f"peak id {pvar['id'][bad].iloc[0]!r} is not 'chrom:start-end'.", _FIX)
    atac_var = pd.DataFrame({"chrom": pc["chrom"], "start": pc["start"].astype(np.int64),
                             "end": pc["end"].astype(np.int64), "name": pvar["id"]})
    rna = Modality("rna", mat[:, np.flatnonzero(is_gex)].tocsr(), obs, rna_var, path, "/matrix/data (Gene Expression)")
    atac = Modality("atac", mat[:, np.flatnonzero(is_peak)].tocsr(), obs.copy(), atac_var, path, "/matrix/data (Peaks)")
    return rna, atac


def _check_unique_barcodes(path, barcodes: np.ndarray) -> None:
    """A matrix's barcodes name its cells: a barcode listed twice cannot be matched to labels or metrics."""
    bc = pd.Index(barcodes.astype(str))
    dup = bc[bc.duplicated()]
    if len(dup):
        example = dup[0]
        raise input_error(path, "/matrix/barcodes",
                          f"lists {len(pd.unique(dup))} barcode(s) more than once ({len(dup)} duplicate columns), e.g. "
                          f"{example!r} appears {int((bc == example).sum())} times; each barcode must name one cell.",
                          "use the filtered_feature_bc_matrix.h5 of one cellranger-arc run, or for several "
                          "libraries the `cellranger-arc aggr` output (it gives each library its own suffix: "
                          "-1, -2, ...) with matching barcodes in --labels.")
