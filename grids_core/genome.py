"""Chromosome naming and natural ordering (chr1 < chr2 < ... < chr22 < chrX < chrY < chrM < others)."""

from __future__ import annotations

import pandas as pd

_SEX_AND_MITO = {"X": 1, "Y": 2, "M": 3, "MT": 3}


def natural_chrom_key(chrom: str) -> tuple[int, int, str]:
    """Sort key putting chr1..chr22 numerically first, then chrX, chrY, chrM, then other contigs by name."""
    name = str(chrom)
    bare = name[3:] if name.lower().startswith("chr") else name
    if bare.isdigit():
        return (0, int(bare), "")
    rank = _SEX_AND_MITO.get(bare.upper())
    if rank is not None:
        return (rank, 0, "")
    return (4, 0, name)


def sort_intervals(df: pd.DataFrame) -> pd.DataFrame:
    """Return ``df`` sorted by natural chromosome order, then start, then end (stable; index kept)."""
    if df.empty:
        return df.copy()
    order = {c: i for i, c in enumerate(sorted(df["chrom"].astype(str).unique(), key=natural_chrom_key))}
    rank = df["chrom"].astype(str).map(order).to_numpy()
    keys = pd.DataFrame({"_rank": rank, "_start": df["start"].to_numpy()}, index=df.index)
    by = ["_rank", "_start"]
    if "end" in df.columns:
        keys["_end"] = df["end"].to_numpy()
        by.append("_end")
    keys = keys.reset_index(drop=True)
    pos = keys.sort_values(by, kind="mergesort").index.to_numpy()
    return df.iloc[pos]
