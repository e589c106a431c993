"""TAD domains from a BED file and Hi-C contacts from a ``.cool``/``.mcool`` (via cooler).

Hi-C: for each requested gene, the contact matrix of its body +/- ``flank`` (default 1 Mb), at the chosen
resolution, balanced when the cooler has weights (NaN from balancing become 0), raw counts otherwise.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from grids_core.ingest.common import PathLike, input_error, reading, require_file
from grids_core.ingest.intervals import GenomeSpec, check_build
from grids_core.ingest.labels import read_table

_TAD_FIX = "pass a BED file: chrom<TAB>start<TAB>end per domain (0-based), optional header/track lines."
_COOL_FIX = "pass a .cool or .mcool file written by cooler (re-copy it if truncated)."


def read_tads(path: PathLike, spec: GenomeSpec) -> pd.DataFrame:
    """TAD domains as the bundle's tads table (chrom, start, end, source, simulated=0)."""
    df = read_table(path, "TAD BED", header=None, skip_prefixes=("#", "track", "browser"))
    if df.shape[1] < 3:
        raise input_error(path, "columns", f"has {df.shape[1]} column(s); a BED needs chrom, start, end.", _TAD_FIX)
    start, end = pd.to_numeric(df.iloc[:, 1], errors="coerce"), pd.to_numeric(df.iloc[:, 2], errors="coerce")
    header_like = start.isna() & end.isna()
    df, start, end = df[~header_like], start[~header_like], end[~header_like]
    if df.empty or start.isna().any() or end.isna().any():
        raise input_error(path, "start/end", "has non-integer coordinates (or no records).", _TAD_FIX)
    tads = pd.DataFrame({"chrom": df.iloc[:, 0].astype(str).to_numpy(), "start": start.to_numpy(np.int64),
                         "end": end.to_numpy(np.int64)})
    tads, keep = check_build(tads, spec, path, "TAD domains")
    tads = tads[keep].reset_index(drop=True)
    tads["source"] = Path(path).name
    tads["simulated"] = 0
    return tads


def _open_cooler(path: Path, resolution: int | None):
    import cooler

    with reading(path, "a cooler (.cool/.mcool) file", _COOL_FIX):
        if not h5py.is_hdf5(path):
            with open(path, "rb") as fh:
                if fh.read(4) == b"HIC\x00":
                    raise input_error(path, "file type", "is a Juicer .hic file; GRIDS reads coolers.",
                                      "convert it: `hic2cool convert in.hic out.mcool`, then pass out.mcool.")
            raise input_error(path, "file type", "is not an HDF5 file, so not a .cool/.mcool.", _COOL_FIX)
        with h5py.File(path, "r") as f:
            multires = "resolutions" in f
            if not multires and "pixels" not in f:
                raise input_error(path, "/pixels", "is not a cooler file (no pixels or resolutions group).", _COOL_FIX)
            available = sorted(int(r) for r in f["resolutions"].keys()) if multires else []
        if multires:
            res = resolution or available[0]
            if res not in available:
                raise input_error(path, "/resolutions", f"has no {res} bp resolution (has {available}).",
                                  f"pick one of {available} with --hic-resolution.")
            return cooler.Cooler(f"{path}::resolutions/{res}")
        c = cooler.Cooler(str(path))
        if resolution and c.binsize != resolution:
            raise input_error(path, "binsize", f"has {c.binsize} bp bins, not the requested {resolution}.",
                              f"pass --hic-resolution {c.binsize}, or an .mcool holding {resolution} bp.")
        return c


def read_hic(
    path: PathLike,
    genes: pd.DataFrame,
    spec: GenomeSpec,
    resolution: int | None = 10_000,
    flank: int = 1_000_000,
    balance: bool | None = None,
) -> tuple[dict[str, dict], dict]:
    """Bundle.hic entries for ``genes`` (rows name/chrom/start/end) and a report for the manifest."""
    path = require_file(path, "Hi-C cooler")
    c = _open_cooler(path, resolution)
    with reading(path, "a cooler (.cool/.mcool) file", _COOL_FIX):
        names = list(c.chromnames)
        sizes = c.chromsizes.to_dict()
        weighted = "weight" in c.bins().columns
        use_balance = weighted if balance is None else balance
        if use_balance and not weighted:
            raise input_error(path, "bins/weight", "has no balancing weights.",
                              "balance it with `cooler balance`, or leave balancing off (--hic-raw).")
        _check_chromsizes(path, names, sizes, spec)
        bin_size = int(c.binsize)
        out: dict[str, dict] = {}
        missing: list[str] = []
        for _, g in genes.iterrows():
            chrom = _cooler_chrom(str(g["chrom"]), names)
            if chrom is None:
                missing.append(str(g["name"]))
                continue
            size = int(sizes[chrom])
            if int(g["end"]) > size:
                raise input_error(path, "chromsizes", f"{chrom} is {size:,} bp in the cooler but gene {g['name']} ends at "
                                  f"{int(g['end']):,} in {spec.build}: the Hi-C map uses another genome build.",
                                  f"use a Hi-C map on {spec.build}.")
            lo = max(0, (int(g["start"]) - flank) // bin_size * bin_size)
            hi = min(size, -(-(int(g["end"]) + flank) // bin_size) * bin_size)
            mat = np.asarray(c.matrix(balance=use_balance).fetch(f"{chrom}:{lo}-{hi}"), dtype=np.float64)
            mat = np.nan_to_num(mat, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)
            out[str(g["name"])] = {"matrix": mat, "chrom": str(g["chrom"]), "start": lo, "bin_size": bin_size,
                                   "simulated": False}
    report = {"file": str(path), "bin_size": bin_size, "balanced": bool(use_balance), "flank": flank,
              "genes": sorted(out), "genes_without_chromosome": missing}
    return out, report


def _check_chromsizes(path: Path, names: list[str], sizes: dict, spec: GenomeSpec) -> None:
    """The cooler's own chromosome lengths must be the build's (an hg19 map fits inside most hg38 loci)."""
    differ = []
    for name in names:
        ours = next((spec.sizes[c] for c in (name, f"chr{name}", "chrM" if name == "MT" else "") if c in spec.sizes), None)
        if ours is not None and int(sizes[name]) != int(ours):
            differ.append((name, int(sizes[name]), int(ours)))
    if differ:
        name, theirs, ours = differ[0]
        raise input_error(path, "chromsizes", f"{len(differ)} chromosome length(s) differ from {spec.build}'s, e.g. "
                          f"{name} is {theirs:,} bp in the cooler and {ours:,} bp in {spec.build}: the Hi-C map uses "
                          "another genome build.", f"use a Hi-C map on {spec.build} (or declare the data's build with "
                          "--genome/--chrom-sizes).")


def _cooler_chrom(chrom: str, names: list[str]) -> str | None:
    """The cooler's name for ``chrom`` ('chr1' or '1')."""
    if chrom in names:
        return chrom
    bare = chrom[3:] if chrom.startswith("chr") else chrom
    for cand in (bare, "MT" if bare == "M" else bare, f"chr{bare}"):
        if cand in names:
            return cand
    return None
