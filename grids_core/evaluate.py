"""Evaluation of an explanation: held-out effect, locality, planted-truth recovery (ALGORITHM §6)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
import torch

from grids_core.bundle import Bundle

TEN_MB = 10_000_000


def perturb(x: sp.csr_matrix, subset, value: float) -> sp.csr_matrix:
    """Copy of binary CSR ``x`` with the columns in ``subset`` set to ``value`` (0 or 1)."""
    x = sp.csr_matrix(x, dtype=np.float32)
    cols = np.asarray(subset, dtype=np.int64)
    if len(cols) == 0:
        return x
    mask = np.ones(x.shape[1], dtype=np.float32)
    mask[cols] = 0.0
    out = x @ sp.diags(mask)
    if value != 0.0:
        fill = sp.csr_matrix(
            (np.full(x.shape[0] * len(cols), value, np.float32),
             (np.repeat(np.arange(x.shape[0]), len(cols)), np.tile(cols, x.shape[0]))),
            shape=x.shape,
        )
        out = out + fill
    out = sp.csr_matrix(out)
    out.eliminate_zeros()
    return out


@torch.no_grad()
def readout_values(model, readout: Callable[[torch.Tensor], torch.Tensor], x, batch: int = 1024) -> np.ndarray:
    """Per-sample readout of the model's stage 2 on inputs x (no perturbation)."""
    outs = [readout(model.stage1(x[s : s + batch])).cpu().numpy() for s in range(0, x.shape[0], batch)]
    return np.concatenate(outs) if outs else np.zeros(0, np.float32)


def heldout_effect(model, readout, x_test, subset, value: float) -> dict:
    """Effect on held-out cells: delta = mean(expm1 y') - mean(expm1 y) on the normalised count scale."""
    if x_test.shape[0] == 0:
        return {"n_cells": 0, "delta": float("nan"), "relative": float("nan")}
    before = readout_values(model, readout, x_test)
    after = readout_values(model, readout, perturb(x_test, subset, value))
    b, a = np.expm1(before), np.expm1(after)
    base = float(b.mean())
    delta = float((a - b).mean())
    return {
        "n_cells": int(x_test.shape[0]),
        "mean_before": base,
        "mean_after": float(a.mean()),
        "delta": delta,
        "relative": float(delta / base) if base > 0 else float("nan"),
        "log_delta": float((after - before).mean()),
    }


def pearson_r(a, b) -> float:
    """Pearson r of two vectors; NaN with fewer than 3 values or when either is constant."""
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if a.size < 3:
        return float("nan")
    ac, bc = a - a.mean(), b - b.mean()
    denom = math.sqrt(float((ac**2).sum()) * float((bc**2).sum()))
    return float((ac * bc).sum() / denom) if denom > 0 else float("nan")


def type_r(model, bundle: Bundle, gene: str, cells: np.ndarray) -> float:
    """Held-out Pearson r of the surrogate for one gene within one cell type's ``cells`` (test cells).

    The model's stored quality is pooled over every type, which on/off differences between types dominate;
    an explanation within one type needs the gene's variation inside it predicted (r near 0: it is not)."""
    g = bundle.gene_index(gene)
    if len(cells) == 0:
        return float("nan")
    pred = model.predict_numpy(bundle.atac[cells])[:, g]
    return pearson_r(pred, bundle.rna[cells, g])


def observed_mean(bundle: Bundle, gene: str, cells: np.ndarray) -> float:
    """Measured expression of ``gene`` in ``cells``, counts per 10,000 UMIs (the scale of ``heldout_effect``;
    the RNA layer is log1p of it): what the surrogate's predicted mean is calibrated against."""
    if len(cells) == 0:
        return float("nan")
    return float(np.expm1(np.asarray(bundle.rna[cells, bundle.gene_index(gene)], dtype=np.float64)).mean())


def gene_tads(bundle: Bundle, gene: str) -> list[tuple[int, int, str, bool]]:
    """The TADs holding the gene's TSS as (start, end, source, simulated): simulated domains first (in a
    semi-synthetic bundle they are the domains its Hi-C and planted enhancers were drawn in), then real ones."""
    g = bundle.gene_row(gene)
    t = bundle.tads
    if t is None or len(t) == 0:
        return []
    hit = t[(t["chrom"] == g["chrom"]) & (t["start"] <= g["tss"]) & (t["end"] > g["tss"])]
    hit = hit.sort_values("simulated", ascending=False, kind="stable")
    return [(int(a), int(b), str(src), bool(sim))
            for a, b, src, sim in hit[["start", "end", "source", "simulated"]].itertuples(index=False)]


def locality(bundle: Bundle, gene: str, subset) -> dict:
    """The reference's locality metrics of a peak subset relative to the gene."""
    subset = np.asarray(subset, dtype=np.int64)
    g = bundle.gene_row(gene)
    p = bundle.peaks.iloc[subset]
    same = (p["chrom"] == g["chrom"]).to_numpy()
    mid = ((p["start"] + p["end"]) // 2).to_numpy()
    dist = np.abs(mid - int(g["tss"]))
    overlaps = same & (p["start"].to_numpy() < int(g["end"])) & (p["end"].to_numpy() > int(g["start"]))
    tads = gene_tads(bundle, gene)
    n = max(len(subset), 1)
    out = {
        "overlaps_gene": float(overlaps.sum() / n),
        "within_10mb": float((same & (dist <= TEN_MB)).sum() / n),
        "closest_distance": int(dist[same].min()) if same.any() else None,
        "median_distance": float(np.median(dist[same])) if same.any() else None,
        "same_chromosome": float(same.sum() / n),
        "inside_tad": None,
        "tad": None,
    }
    if tads:  # the first TAD, and the first of the other kind (a real domain next to a simulated one) if any
        other = next((t for t in tads if t[3] != tads[0][3]), None)
        for key, tad in (("tad", tads[0]), ("other_tad", other)):
            if tad is not None:
                out[f"inside_{key}"] = float((same & (mid >= tad[0]) & (mid < tad[1])).sum() / n)
                out[key] = list(tad[:3])
    return out


def truth_metrics(bundle: Bundle, gene: str, cell_type: str, subset, scores: np.ndarray | None = None) -> dict | None:
    """Recall@L / precision of planted drivers (promoter + enhancers); AUPRC when per-peak scores are given."""
    t = bundle.pair_truth(gene, cell_type)
    if t is None or len(t) == 0:
        return None
    planted = set(t.loc[t["logic"] != "none", "peak_index"].astype(int))
    decoys = set(t.loc[t["logic"] == "none", "peak_index"].astype(int))
    s = {int(i) for i in subset}
    hits = s & planted
    out = {
        "n_planted": len(planted),
        "hits": len(hits),
        "recall": len(hits) / max(len(planted), 1),
        "precision": len(hits) / max(len(s), 1),
        "decoys_selected": len(s & decoys),
        "groups_fully_recovered": int(
            sum(set(g["peak_index"].astype(int)) <= s for _, g in t[t["logic"] == "OR"].groupby("group"))
        ),
    }
    if scores is not None:
        from sklearn.metrics import average_precision_score

        y = np.zeros(len(scores), dtype=int)
        y[list(planted)] = 1
        out["auprc"] = float(average_precision_score(y, scores))
    return out


def hub_groups(bundle: Bundle, hubs, gene: str, cell_type: str) -> np.ndarray | None:
    """How the cis hubs of ``gene`` hold its planted OR-groups in ``cell_type``: [groups, K], the mean
    input weight of a group's members in each hub times that hub's output weight (groups in name order).

    None without planted truth for the pair or without hubs; ``own_hubs`` reads the result.
    """
    t = bundle.pair_truth(gene, cell_type)
    if hubs is None or t is None:
        return None
    t = t[t["logic"] == "OR"]
    if len(t) == 0:
        return None
    k = hubs.weight.shape[1]
    gi = bundle.gene_index(gene)
    gene_pairs = (hubs.pair_gene == gi).cpu().numpy()
    peak_of = hubs.pair_peak.cpu().numpy()
    with torch.no_grad():
        rows = hubs.rows()[:, :k].cpu().numpy()
        weight = hubs.weight[gi].cpu().numpy()
    out = []
    for _, grp in sorted(t.groupby("group"), key=lambda item: item[0]):
        pairs = np.flatnonzero(gene_pairs & np.isin(peak_of, grp["peak_index"].to_numpy()))
        out.append(rows[pairs].sum(0) / len(grp) * weight)  # members outside the cis window count as 0
    return np.array(out)


HUB_HELD = 0.3  # a group whose best hub entry exceeds this is held by that hub


def own_hubs(h: np.ndarray, held: float = HUB_HELD) -> bool:
    """Whether every group of a ``hub_groups`` result is held by a hub (best entry > ``held``) and no two
    groups share their best hub."""
    best = h.argmax(1)
    return bool((h.max(1) > held).all() and len(set(best.tolist())) == len(best))
