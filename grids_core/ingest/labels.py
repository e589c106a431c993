"""Cell-type label tables (TSV/CSV, optionally gzipped) and per-cell QC metric tables.

Labels: one row per barcode with a barcode column and a label column (names configurable, default
``barcode`` and ``cell_type``); rows with an empty or NA label are left out and counted. A metrics table
(e.g. Cell Ranger ARC ``per_barcode_metrics.csv``) adds per-cell QC columns such as ``atac_fragments``.
The delimiter (tab, comma or semicolon; spaces with quoted strings, as R ``write.table`` writes by default)
is sniffed from the first lines, and a delimiter ending every data line is ignored; a table without a ``barcode``
column whose first column is unnamed (Seurat ``write.csv(meta.data)``, Scanpy ``obs.to_csv()``) or whose
barcodes are row names (R ``write.table``) uses that column.
"""

from __future__ import annotations

import csv
import gzip
import io
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from grids_core.ingest.common import PathLike, input_error, reading, require_file

DELIMITERS = ("\t", ",", ";")
DEFAULT_BARCODE_COL = "barcode"
ROW_NAMES = "(unnamed first column)"
NA_LABELS = ("NA", "NAN", "NONE", "<NA>", "NULL")
_SNIFF_LINES = 50


def _by_extension(path: Path) -> str | None:
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".csv"):
        return ","
    if name.endswith((".tsv", ".txt", ".bed", ".sizes", ".tab")):
        return "\t"
    return None


def _separator(path: Path, lines: list[str]) -> str:
    """The delimiter giving every line the same number (> 1) of fields; the extension's on a tie or no data.

    The header may have one field fewer than the rows (R ``write.table`` row names).
    """
    ext = _by_extension(path)
    consistent = {d: w for d in DELIMITERS if (w := _width(lines, d))}
    if not consistent and _width(lines, " "):  # R write.table's default: space-separated, strings quoted
        return " "
    if ext in consistent or (not consistent and ext):
        return ext  # type: ignore[return-value]
    if consistent:
        return max(consistent, key=lambda d: consistent[d])
    return "\t"


def _width(lines: list[str], delimiter: str) -> int:
    """The number (> 1) of fields every data line has with ``delimiter``, the header having as many or one fewer;
    0 when they differ."""
    data = lines[1:] or lines[:1]
    widths = {len(row) for row in csv.reader(data, delimiter=delimiter)}
    head = len(next(csv.reader(lines[:1], delimiter=delimiter), []))
    w = widths.pop() if len(widths) == 1 else 0
    return w if w > 1 and head in (w, w - 1) else 0


def _head_lines(path: Path, skip_prefixes: tuple[str, ...]) -> list[str]:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    out: list[str] = []
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
        for ln in fh:
            if ln.strip() and not (skip_prefixes and ln.startswith(skip_prefixes)):
                out.append(ln.lstrip("\ufeff").rstrip("\r\n"))
                if len(out) >= _SNIFF_LINES:
                    break
    return out


def read_table(
    path: PathLike, what: str, header: int | None | str = "infer", skip_prefixes: tuple[str, ...] = ()
) -> pd.DataFrame:
    """A delimited text table as strings, with read failures turned into ``InputError``.

    The delimiter (tab, comma, semicolon, else space) is sniffed from the first lines. Lines starting with any of
    ``skip_prefixes`` (e.g. BED ``track``/``browser``/``#`` lines) are ignored.
    """
    path = require_file(path, what)
    with reading(path, f"a {what} table (TSV/CSV)", "pass a tab- or comma-separated text file (optionally .gz)."):
        with open(path, "rb") as fh:
            head = fh.read(4096)
        if head.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise input_error(path, "text encoding", "is UTF-16 text.", "save the file as UTF-8 (e.g. Excel: "
                              "'CSV UTF-8'; iconv -f utf-16 -t utf-8).")
        if head.startswith(b"\x89HDF") or (b"\x00" in head and not head.startswith(b"\x1f\x8b")):
            raise input_error(path, "file type", f"is a binary file, not a {what} text table.",
                              "pass a tab- or comma-separated text file (optionally .gz).")
        source = path
        if skip_prefixes:
            opener = gzip.open if path.name.lower().endswith(".gz") else open
            with opener(path, "rt") as fh:
                source = io.StringIO("".join(ln for ln in fh if not ln.startswith(skip_prefixes) and ln.strip()))
        lines = _head_lines(path, skip_prefixes)
        sep = _separator(path, lines)
        # every data line ending in the delimiter (Excel/awk exports) is not R row names: no index column
        trailing = len(lines) > 1 and all(ln.endswith(sep) for ln in lines[1:])
        df = pd.read_csv(source, sep=sep, dtype=str, keep_default_na=False, na_filter=False,
                         header=header, comment=None, index_col=False if trailing else None)
    if df.empty:
        raise input_error(path, "rows", f"the {what} table has no rows.", "pass a table with one row per record.")
    return df


def _with_barcodes(df: pd.DataFrame, path: Path, requested: str, option: str) -> tuple[pd.DataFrame, str]:
    """``df`` with clean column names and the barcode column's name (``ROW_NAMES`` for an unnamed first column).

    Without ``requested`` among the columns, the default ``barcode`` falls back to an unnamed first column or
    to row names; anything else raises naming ``option``.
    """
    if not isinstance(df.index, pd.RangeIndex) and df.index.nlevels == 1:  # header one field short (R row names)
        df = df.reset_index()
        df.columns = ["", *df.columns[1:]]
    cols = [str(c).lstrip("\ufeff").lstrip("#").strip() for c in df.columns]
    df.columns = cols
    if requested in cols:
        return df, requested
    first = cols[0] if cols else None
    if requested == DEFAULT_BARCODE_COL and first is not None and (first == "" or first.startswith("Unnamed: 0")):
        return df.rename(columns={first: ROW_NAMES}), ROW_NAMES
    raise input_error(path, requested, f"has no column {requested!r} (columns: {cols[:10]}).",
                      f"name the barcode column with {option}.")


@dataclass
class LabelTable:
    """A labels file read: labels per barcode plus what was left out."""

    labels: pd.Series  # cell type, index = barcode
    barcode_col: str  # the column used (``ROW_NAMES`` for an unnamed first column)
    unlabelled: int  # rows with an empty/NA label, left out
    unlabelled_example: str | None

    def report(self) -> dict:
        """JSON-ready summary (for the manifest)."""
        return {"barcode_column": self.barcode_col, "labelled_barcodes": int(len(self.labels)),
                "unlabelled_rows": self.unlabelled, "unlabelled_example": self.unlabelled_example}


def is_na_label(labels: pd.Series) -> pd.Series:
    """True where a label (string) is empty or an NA spelling (NA, NaN, None, <NA>, NULL)."""
    s = labels.astype(str).str.strip()
    return (s == "") | s.str.upper().isin(NA_LABELS)


def read_label_table(
    path: PathLike, barcode_col: str = DEFAULT_BARCODE_COL, label_col: str = "cell_type"
) -> LabelTable:
    """Cell type per barcode from a TSV/CSV; empty/NA labels are left out (and counted); conflicting
    duplicates raise."""
    path = require_file(path, "cell-type labels")
    df, bcol = _with_barcodes(read_table(path, "cell-type labels"), path, barcode_col, "--label-barcode-col")
    if label_col not in df.columns:
        raise input_error(path, label_col, f"has no column {label_col!r} (columns: {list(df.columns)[:10]}).",
                          "name the label column with --label-col.")
    bc = df[bcol].astype(str).str.strip()
    lab = df[label_col].astype(str).str.strip()
    na = is_na_label(lab)
    example = str(bc[na].iloc[0]) if na.any() else None
    if na.all():
        others = [c for c in df.columns if c not in (bcol, label_col)]
        raise input_error(path, label_col, f"every one of its {len(lab)} labels in column {label_col!r} is empty or NA "
                          f"(e.g. barcode {example!r}).", "fill in the cell types, or name the column that holds them "
                          "with --label-col" + (f" (other columns: {others[:10]})." if others else "."))
    bc, lab = bc[~na], lab[~na]
    dup = bc.duplicated(keep=False)
    if dup.any():
        conflicting = pd.DataFrame({"b": bc[dup], "l": lab[dup]}).groupby("b")["l"].nunique()
        if (conflicting > 1).any():
            b = conflicting[conflicting > 1].index[0]
            raise input_error(path, bcol, f"barcode {b!r} has more than one label.",
                              "keep one row (one label) per barcode.")
    out = pd.Series(lab.to_numpy(), index=pd.Index(bc.to_numpy(), name="barcode"), name="cell_type")
    return LabelTable(out[~out.index.duplicated()], bcol, int(na.sum()), example)


def read_metrics(path: PathLike, barcode_col: str = DEFAULT_BARCODE_COL) -> pd.DataFrame:
    """Per-cell metrics indexed by barcode (other columns kept as strings; first row per barcode).

    The index is named after the barcode column used (``ROW_NAMES`` for an unnamed first column).
    """
    path = require_file(path, "per-cell metrics")
    df, bcol = _with_barcodes(read_table(path, "per-cell metrics"), path, barcode_col, "--metrics-barcode-col")
    df[bcol] = df[bcol].astype(str).str.strip()
    return df.drop_duplicates(bcol).set_index(bcol)
