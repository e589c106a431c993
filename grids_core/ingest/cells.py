"""Which cells go into the bundle: barcode matching, labels, cell types with too few cells, unpaired pairing."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from grids_core.bundle import MIN_TRAIN_CELLS, stratified_split
from grids_core.ingest import qc
from grids_core.ingest.common import input_error
from grids_core.ingest.labels import ROW_NAMES

_CORE = re.compile(r"([ACGTN]{12,})")


def _core(barcodes: np.ndarray) -> pd.Series:
    return pd.Series(barcodes, dtype=str).str.extract(_CORE, expand=False)


def _affix_change(old: str, new: str, where: str) -> str | None:
    """How to turn affix ``old`` into ``new`` ('prefix'/'suffix'), or None when they agree."""
    if old == new:
        return None
    if not new:
        return f"remove the {where} {old!r}"
    if not old:
        return f"add the {where} {new!r}"
    return f"replace the {where} {old!r} with {new!r}"


def _hint(sets: dict[str, np.ndarray], sources: dict[str, str]) -> tuple[str, str]:
    """(problem, fix) when two sets' barcodes differ only by a prefix/suffix (sample name, '-1'); else ('', '')."""
    names = list(sets)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            sa, sb = np.asarray(sets[a], dtype=str), np.asarray(sets[b], dtype=str)
            raw = len(np.intersect1d(sa, sb))
            ca, cb = _core(sa), _core(sb)
            shared = np.intersect1d(ca.dropna().to_numpy(), cb.dropna().to_numpy())
            if not (len(shared) > 2 * raw and len(shared) > 0):
                continue
            differs = np.flatnonzero(ca.isin(shared).to_numpy() & ~np.isin(sa, sb))
            b_of = dict(zip(cb.to_numpy()[::-1], sb[::-1], strict=True))  # core -> a barcode of b with it
            rules: dict[tuple[str, ...], list] = {}  # one (prefix, suffix) rewrite per sample of an aggr run
            for i in differs[:: max(1, len(differs) // 2000)]:
                ex_a = str(sa[i])
                core = str(ca.iat[i])
                ex_b = str(b_of[core])
                (pa, _, xa), (pb, _, xb) = ex_a.partition(core), ex_b.partition(core)
                steps = tuple(s for s in (_affix_change(pb, pa, "prefix"), _affix_change(xb, xa, "suffix")) if s)
                rules.setdefault(steps, [ex_b, ex_a, 0])[2] += 1
            ranked = sorted(rules.items(), key=lambda kv: -kv[1][2])
            (steps, (ex_b, ex_a, _)), more = ranked[0], ranked[1:4]
            problem = (f" The {a} and {b} barcodes share {len(shared)} cores once prefixes/suffixes are ignored "
                       f"(e.g. {ex_a!r} vs {ex_b!r}).")
            fix = (f"make the {b} barcodes ({sources[b]}) identical to the {a} ones: {' and '.join(steps)} "
                   f"(e.g. {ex_b!r} -> {ex_a!r})")
            if more:  # several samples, each with its own affixes
                fix += "; for the other samples: " + "; ".join(
                    f"{' and '.join(st) or 'nothing'} (e.g. {eb!r} -> {ea!r})" for st, (eb, ea, _) in more)
            return problem, fix + "."
    return "", ""


def match_barcodes(
    sets: dict[str, np.ndarray], sources: dict[str, str], min_fraction: float, fixes: dict[str, str] | None = None,
    must_cover: tuple[str, ...] = (),
) -> tuple[np.ndarray, dict]:
    """Barcodes present in every set (in the order of the first); too small an overlap raises.

    The overlap is measured against the smallest set; each set named in ``must_cover`` (e.g. a metrics table
    that also lists non-cell barcodes) must in addition hold ``min_fraction`` of the cells all other sets share.
    ``fixes`` says, per set name, how the user fixes that table when it does not match. The report counts, per
    later set, the first set's barcodes it lacks (``missing``), with an example.
    """
    fixes = fixes or {}
    names = list(sets)
    first = pd.Index(sets[names[0]])
    common = first
    for bcs in list(sets.values())[1:]:
        common = common[common.isin(bcs)]
    counts = {name: int(len(bcs)) for name, bcs in sets.items()}
    missing = {}
    for name in names[1:]:
        lacks = first[~first.isin(sets[name])]
        if len(lacks):
            missing[name] = {"count": int(len(lacks)), "of": int(len(first)), "example": str(lacks[0]),
                             "source": sources[name]}
    smallest = min(counts.values()) if counts else 0
    frac = len(common) / smallest if smallest else 0.0
    report = {"counts": counts, "shared": int(len(common)), "fraction_of_smallest": round(frac, 4),
              "min_fraction": min_fraction, "missing": missing}
    if len(common) == 0 or frac < min_fraction:
        desc = ", ".join(f"{name} {counts[name]} ({sources[name]})" for name in sets)
        hint, hint_fix = _hint(sets, sources)
        zero = [n for n in names[1:] if not first.isin(sets[n]).any()]
        generic = ("use labels and matrices of the same cells; for separately assayed ATAC and RNA pass --unpaired "
                   "with labels for each")
        if len(common) == 0:  # lowering the threshold cannot help
            fix = hint_fix or "; ".join(dict.fromkeys(fixes.get(n, generic) for n in zero or names[1:])) + "."
        else:
            lacking = [fixes.get(n, generic) for n in missing]
            fix = (hint_fix + " Or " if hint_fix else "") + "; ".join(dict.fromkeys(lacking or [generic])) + (
                f"; or lower --min-barcode-overlap (now {min_fraction:g}) to proceed on the {len(common)} shared cells.")
        raise input_error(
            "; ".join(dict.fromkeys(sources.values())), "barcodes",
            f"barcodes do not match: {desc}; only {len(common)} shared ({100 * frac:.1f}% of the smallest set, "
            f"the threshold is {100 * min_fraction:.0f}%).{hint}", fix,
        )
    for name in (n for n in must_cover if n in sets):
        others = first
        for n in names[1:]:
            if n != name:
                others = others[others.isin(sets[n])]
        cover = len(common) / len(others) if len(others) else 1.0
        report.setdefault("coverage", {})[name] = round(cover, 4)
        if cover < min_fraction:
            example = others[~others.isin(sets[name])][0]
            raise input_error(
                sources[name], "barcodes",
                f"the {name} table has rows for only {len(common)} of the {len(others)} cells of the other inputs "
                f"({100 * cover:.1f}%, the threshold is {100 * min_fraction:.0f}%), e.g. none for {str(example)!r}.",
                f"{fixes.get(name, 'pass a table covering these cells')}; or lower --min-barcode-overlap "
                f"(now {min_fraction:g}) to keep only the {len(common)} cells it covers.")
    return common.to_numpy(), report


MANY_TYPES = 20  # listed in an error; more distinct labels than half the cells is a per-cell column


def enforce_min_cells(
    counts: pd.Series, min_cells: int, drop: bool, source: str, before_qc: pd.Series | None = None,
    qc_note: tuple[str, str] | None = None,
) -> tuple[set[str], dict]:
    """Cell types kept (count >= min_cells); too-small types are dropped or raise.

    ``before_qc`` (cells per type before QC) and ``qc_note`` ((what QC removed, how to change it), see
    ``qc.describe_qc``) go into the error when QC shrank a too-small type, so that it is not blamed on the labels.
    """
    small = counts[counts < min_cells]
    report = {"min_cells": min_cells, "cells_per_type": {str(k): int(v) for k, v in counts.items()},
              "dropped_types": {str(k): int(v) for k, v in small.items()} if drop else {}}
    lost = {} if before_qc is None else {str(k): int(before_qc[k]) for k in small.index
                                         if k in before_qc.index and before_qc[k] > small[k]}
    qc_problem, qc_fix = qc_note if qc_note and (lost or len(small) == len(counts)) else ("", "")
    if lost:
        qc_problem = ("Before QC they had " + ", ".join(f"{k} {v}" for k, v in lost.items()) + " cells. "
                      + qc_problem)
    qc_problem = f" {qc_problem}" if qc_problem else ""
    if len(counts) > MANY_TYPES and len(counts) > 0.5 * counts.sum():
        raise input_error(source, "cell_type", f"the labels take {len(counts):,} distinct values over "
                          f"{int(counts.sum()):,} cells (e.g. {', '.join(map(str, counts.index[:3]))}): a per-cell "
                          "value (a count, a score, a barcode), not cell types.",
                          "name the column that holds the cell types with --label-col.")
    if len(small) and not drop:
        shown = small.head(MANY_TYPES)
        desc = ", ".join(f"{k} ({v})" for k, v in shown.items()) + (
            f", ... ({len(small) - MANY_TYPES} more)" if len(small) > MANY_TYPES else "")
        fix = "pass --drop-small-types to leave them out, lower --min-cells, or merge the labels."
        raise input_error(source, "cell_type", f"cell types with fewer than {min_cells} cells after QC: {desc}. "
                          f"Too few cells to train on and explain.{qc_problem}",
                          f"{qc_fix}; otherwise {fix}" if qc_fix else fix)
    keep = set(counts.index[counts >= min_cells].astype(str))
    if not keep:
        raise input_error(source, "cell_type", f"no cell type has at least {min_cells} cells after QC "
                          f"({report['cells_per_type']}).{qc_problem}",
                          f"{qc_fix}; or lower --min-cells." if qc_fix
                          else "lower --min-cells or the QC thresholds.")
    return keep, report


def explain_min_cells() -> tuple[int, int]:
    """(training cells ``grids explain`` needs per cell type, cells a type needs for that many after the split).

    Uses the bundle's ``MIN_TRAIN_CELLS`` (what explain checks) and ``stratified_split``.
    """
    n = MIN_TRAIN_CELLS
    while (stratified_split(np.zeros(n, dtype=int)) == "train").sum() < MIN_TRAIN_CELLS:
        n += 1
    return MIN_TRAIN_CELLS, n


def unexplainable_types(labels: np.ndarray, seed: int) -> tuple[dict[str, int], int, int]:
    """Cell types with fewer training cells (after ``stratified_split`` with ``seed``) than explain needs:
    ({type: training cells}, training cells needed, cells needed)."""
    need_train, need_cells = explain_min_cells()
    train = pd.Series(np.asarray(labels)[stratified_split(labels, seed=seed) == "train"]).value_counts()
    train = train.reindex(pd.unique(np.asarray(labels)), fill_value=0)
    return {str(k): int(v) for k, v in train.items() if v < need_train}, need_train, need_cells


def _missing_note(first: str, name: str, m: dict, unlabelled: dict[str, dict]) -> str:
    lost = f"{m['count']} of the {m['of']} {first} cells"
    if name.endswith("labels"):
        na = unlabelled.pop(m["source"], None)
        why = (f"{na['unlabelled_rows']} rows there have an empty or NA label, e.g. {na['unlabelled_example']!r}"
               if na else f"e.g. {m['example']!r}")
        return f"{lost} have no label in {m['source']} ({why}): they are left out."
    if name == "metrics":
        return (f"{lost} have no row in the metrics table {m['source']} (e.g. {m['example']!r}): they are left out, "
                "as their ATAC depth is unknown. Fix: pass a metrics table covering every cell, or leave --metrics "
                "unset to count ATAC depth in peaks.")
    return f"{lost} are not in the {name} cells ({m['source']}), e.g. {m['example']!r}: they are left out."


def notes(report: dict) -> list[str]:
    """Plain-language notes on what cell selection left out, from ``prepare``'s cells report."""
    out: list[str] = []
    unlabelled: dict[str, dict] = {}
    for key in ("labels", "labels_atac", "labels_rna", "metrics"):
        r = report.get(key)
        if not r:
            continue
        if r.get("barcode_column") == ROW_NAMES:
            out.append(f"{r['source']}: no 'barcode' column, so the barcodes were taken from its unnamed first "
                       "column (the row names of a Seurat/Scanpy export).")
        if r.get("unlabelled_rows"):
            unlabelled[r["source"]] = r
    for key in ("barcodes", "barcodes_atac", "barcodes_rna"):
        r = report.get(key)
        if r:
            first = next(iter(r["counts"]))
            out.extend(_missing_note(first, name, m, unlabelled) for name, m in r.get("missing", {}).items())
    out.extend(f"{src}: {r['unlabelled_rows']} rows have an empty or NA label (e.g. {r['unlabelled_example']!r}): "
               "they are left out." for src, r in unlabelled.items())
    q = report.get("qc", {})
    for key, what in (("atac_depth", "ATAC depth"), ("tss_enrichment", "TSS enrichment")):
        if q.get(f"{key}_not_numeric"):
            out.append(f"{q[f'{key}_not_numeric']} cells have no numeric {what} value ({q[f'{key}_source']} of "
                       f"{q[f'{key}_file']}): they failed the {what} QC.")
    if q and qc.removed_fraction(q) > qc.LARGE_QC_LOSS:
        problem, fix = qc.describe_qc(q)
        out.append(f"{problem} Fix: {fix}.")
    ct = report.get("cell_types", {})
    if ct.get("too_few_training_cells"):
        desc = ", ".join(f"{t} ({n} training cells of {ct['cells_per_type'].get(t, '?')})"
                         for t, n in ct["too_few_training_cells"].items())
        out.append(f"grids explain needs >= {ct['explain_min_training_cells']} training cells per cell type (so "
                   f">= {ct['explain_min_cells']} cells after the train/val/test split) and will refuse: {desc}. "
                   f"Fix: pass --min-cells {ct['explain_min_cells']} with --drop-small-types to leave such types "
                   "out, or merge the labels.")
    return out


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
