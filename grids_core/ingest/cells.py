"""Which cells go into the bundle: barcode matching, labels, cell types with too few cells, unpaired pairing."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from grids_core.ingest.common import input_error

_CORE = re.compile(r"([ACGTN]{12,})")


def _core(barcodes: np.ndarray) -> pd.Series:
    return pd.Series(barcodes, dtype=str).str.extract(_CORE, expand=False)


def _hint(sets: dict[str, np.ndarray]) -> str:
    """Suggest the usual fix when barcodes differ only by a prefix/suffix (sample name, '-1')."""
    names = list(sets)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            raw = len(np.intersect1d(sets[a], sets[b]))
            ca, cb = _core(sets[a]).dropna(), _core(sets[b]).dropna()
            core = len(np.intersect1d(ca.to_numpy(), cb.to_numpy()))
            if core > 2 * raw and core > 0:
                return (f" The {a} and {b} barcodes share {core} cores once prefixes/suffixes are ignored "
                        f"(e.g. {str(sets[a][0])!r} vs {str(sets[b][0])!r}): make them identical, e.g. strip or add the "
                        "sample prefix / '-1' suffix in the labels table.")
    return ""


def match_barcodes(
    sets: dict[str, np.ndarray], sources: dict[str, str], min_fraction: float
) -> tuple[np.ndarray, dict]:
    """Barcodes present in every set (in the order of the first); too small an overlap raises."""
    first = next(iter(sets.values()))
    common = pd.Index(first)
    for bcs in list(sets.values())[1:]:
        common = common[common.isin(bcs)]
    counts = {name: int(len(bcs)) for name, bcs in sets.items()}
    smallest = min(counts.values()) if counts else 0
    frac = len(common) / smallest if smallest else 0.0
    report = {"counts": counts, "shared": int(len(common)), "fraction_of_smallest": round(frac, 4),
              "min_fraction": min_fraction}
    if len(common) == 0 or frac < min_fraction:
        desc = ", ".join(f"{name} {counts[name]} ({sources[name]})" for name in sets)
        raise input_error(
            "; ".join(dict.fromkeys(sources.values())), "barcodes",
            f"barcodes do not match: {desc}; only {len(common)} shared ({100 * frac:.1f}% of the smallest set, "
            f"the threshold is {100 * min_fraction:.0f}%).{_hint(sets)}",
            "use labels and matrices of the same cells; lower --min-barcode-overlap to proceed on the "
            "intersection; for separately assayed ATAC and RNA pass --unpaired with labels for each.",
        )
    return common.to_numpy(), report


def enforce_min_cells(
    counts: pd.Series, min_cells: int, drop: bool, source: str
) -> tuple[set[str], dict]:
    """Cell types kept (count >= min_cells); too-small types are dropped or raise."""
    small = counts[counts < min_cells]
    report = {"min_cells": min_cells, "cells_per_type": {str(k): int(v) for k, v in counts.items()},
              "dropped_types": {str(k): int(v) for k, v in small.items()} if drop else {}}
    if len(small) and not drop:
        desc = ", ".join(f"{k} ({v})" for k, v in small.items())
        raise input_error(source, "cell_type", f"cell types with fewer than {min_cells} cells after QC: {desc}. "
                          "Too few cells to train on and explain.",
                          "pass --drop-small-types to leave them out, lower --min-cells, or merge the labels.")
    keep = set(counts.index[counts >= min_cells].astype(str))
    if not keep:
        raise input_error(source, "cell_type", f"no cell type has at least {min_cells} cells after QC "
                          f"({report['cells_per_type']}).", "lower --min-cells or the QC thresholds.")
    return keep, report


def pair_unpaired(atac_types: np.ndarray, rna_types: np.ndarray, seed: int) -> np.ndarray:
    """For each ATAC cell, the index of an RNA cell of the same type (a seeded permutation, cycled)."""
    rng = np.random.default_rng(seed)
    out = np.empty(len(atac_types), dtype=np.int64)
    for t in sorted(set(atac_types.tolist())):
        a = np.flatnonzero(atac_types == t)
        r = np.flatnonzero(rna_types == t)
        r = r[rng.permutation(len(r))]
        out[a] = r[np.arange(len(a)) % len(r)]
    return out
