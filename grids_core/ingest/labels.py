"""Cell-type label tables (TSV/CSV, optionally gzipped) and per-cell QC metric tables.

Labels: one row per barcode with a barcode column and a label column (names configurable, default
``barcode`` and ``cell_type``); rows with an empty label are left out. A metrics table (e.g. Cell
Ranger ARC ``per_barcode_metrics.csv``) adds per-cell QC columns such as ``atac_fragments``.
"""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

import pandas as pd

from grids_core.ingest.common import PathLike, input_error, reading, require_file


def _separator(path: Path) -> str:
    """Tab or comma: by extension, else by sniffing the first line."""
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".csv"):
        return ","
    if name.endswith((".tsv", ".txt", ".bed", ".sizes", ".tab")):
        return "\t"
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt") as fh:
        line = fh.readline()
    try:
        return csv.Sniffer().sniff(line, delimiters="\t,").delimiter
    except csv.Error:
        return "\t"


def read_table(
    path: PathLike, what: str, header: int | None | str = "infer", skip_prefixes: tuple[str, ...] = ()
) -> pd.DataFrame:
    """A delimited text table as strings, with read failures turned into ``InputError``.

    Lines starting with any of ``skip_prefixes`` (e.g. BED ``track``/``browser``/``#`` lines) are ignored.
    """
    path = require_file(path, what)
    with reading(path, f"a {what} table (TSV/CSV)", "pass a tab- or comma-separated text file (optionally .gz)."):
        with open(path, "rb") as fh:
            head = fh.read(4096)
        if head.startswith(b"\x89HDF") or (b"\x00" in head and not head.startswith(b"\x1f\x8b")):
            raise input_error(path, "file type", f"is a binary file, not a {what} text table.",
                              "pass a tab- or comma-separated text file (optionally .gz).")
        source = path
        if skip_prefixes:
            opener = gzip.open if path.name.lower().endswith(".gz") else open
            with opener(path, "rt") as fh:
                source = io.StringIO("".join(ln for ln in fh if not ln.startswith(skip_prefixes) and ln.strip()))
        df = pd.read_csv(source, sep=_separator(path), dtype=str, keep_default_na=False, na_filter=False,
                         header=header, comment=None)
    if df.empty:
        raise input_error(path, "rows", f"the {what} table has no rows.", "pass a table with one row per record.")
    return df


def read_labels(path: PathLike, barcode_col: str = "barcode", label_col: str = "cell_type") -> pd.Series:
    """Cell type per barcode (index = barcode) from a TSV/CSV; conflicting duplicates raise."""
    df = read_table(path, "cell-type labels")
    df.columns = [str(c).lstrip("#").strip() for c in df.columns]
    for col, opt in ((barcode_col, "--label-barcode-col"), (label_col, "--label-col")):
        if col not in df.columns:
            raise input_error(path, col, f"has no column {col!r} (columns: {list(df.columns)[:10]}).",
                              f"name the right column with {opt}.")
    bc = df[barcode_col].astype(str).str.strip()
    lab = df[label_col].astype(str).str.strip()
    keep = (lab != "") & ~lab.str.upper().isin(["NA", "NAN", "NONE"])
    bc, lab = bc[keep], lab[keep]
    dup = bc.duplicated(keep=False)
    if dup.any():
        conflicting = pd.DataFrame({"b": bc[dup], "l": lab[dup]}).groupby("b")["l"].nunique()
        if (conflicting > 1).any():
            b = conflicting[conflicting > 1].index[0]
            raise input_error(path, barcode_col, f"barcode {b!r} has more than one label.",
                              "keep one row (one label) per barcode.")
    out = pd.Series(lab.to_numpy(), index=pd.Index(bc.to_numpy(), name="barcode"), name="cell_type")
    return out[~out.index.duplicated()]


def read_metrics(path: PathLike, barcode_col: str = "barcode") -> pd.DataFrame:
    """Per-cell QC metrics indexed by barcode (all other columns kept as strings)."""
    df = read_table(path, "per-cell metrics")
    df.columns = [str(c).lstrip("#").strip() for c in df.columns]
    if barcode_col not in df.columns:
        raise input_error(path, barcode_col, f"has no column {barcode_col!r} (columns: {list(df.columns)[:10]}).",
                          "name the barcode column with --metrics-barcode-col.")
    return df.drop_duplicates(barcode_col).set_index(barcode_col)
