"""Peak-to-gene correlation (ArchR / Signac style): uses the bundle's observed data, not the model.

Score of a pool peak within ``window`` bp (default 500 kb) of the gene's TSS on its chromosome: the
Pearson r between the peak's accessibility and the gene's observed (log-normalised) expression across
cells, of the cell type (``scope="celltype"``, default) or of every type (``scope="all"``), from the
``split`` (default the training cells, as the perturbation sets; ``None`` = all cells). Peaks outside
the window get ``-inf``; a peak constant over those cells gets r = 0. Sign: closing (v = 0) a
positively correlated peak is expected to lower expression, opening (v = 1) a negatively correlated
one too, so ``score = sign * r`` for v = 0 and ``-sign * r`` for v = 1 (higher = perturbing is
expected to lower J). Called as ``fn(objective, pool, L=..., seed=..., progress=..., cancel=...,
bundle=..., gene=..., cell_type=..., scope=...)``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from grids_core.errors import SettingsError
from grids_core.explain.base import Objective
from grids_core.explain.baselines._common import Cancel, Progress, as_pool, check_cancel, pool_scores, report

WINDOW_BP = 500_000


def pearson_columns(x, y: np.ndarray) -> np.ndarray:
    """Pearson r of every column of x (sparse or dense, [n, m]) with y [n]; 0 where a column is constant."""
    n = x.shape[0]
    y = np.asarray(y, dtype=np.float64)
    yc = y - y.mean()
    sy = np.sqrt((yc**2).sum())
    if sp.issparse(x):
        x = sp.csc_matrix(x, dtype=np.float64)
        sx1 = np.asarray(x.sum(0)).ravel()
        sx2 = np.asarray(x.multiply(x).sum(0)).ravel()
        sxy = np.asarray(x.T @ yc).ravel()
    else:
        x = np.asarray(x, dtype=np.float64)
        sx1, sx2, sxy = x.sum(0), (x**2).sum(0), x.T @ yc
    varx = np.maximum(sx2 - sx1**2 / max(n, 1), 0.0)
    den = np.sqrt(varx) * sy
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(den > 1e-12, sxy / np.where(den > 0, den, 1.0), 0.0)
    return np.clip(r, -1.0, 1.0)


def correlation_scores(objective: Objective, pool, *, L: int = 10, seed: int = 0, progress: Progress = None,
                       cancel: Cancel = None, bundle=None, gene: str | None = None, cell_type: str | None = None,
                       scope: str = "celltype", window: int = WINDOW_BP, split: str | None = "train",
                       **_: object) -> np.ndarray:
    """Peak-to-gene Pearson r within ``window`` bp of the TSS (see the module docstring)."""
    if bundle is None or gene is None:
        raise SettingsError("The correlation method needs the bundle and the gene (pass bundle=, gene=).")
    if scope not in ("celltype", "all"):
        raise SettingsError(f"correlation scope must be 'celltype' or 'all' (got {scope!r}).")
    if scope == "celltype" and cell_type is None:
        raise SettingsError("scope='celltype' needs cell_type=.")
    n = int(bundle.atac.shape[1])
    pool = as_pool(pool, n)
    g = bundle.gene_index(gene)
    row = bundle.gene_row(gene)
    chrom = bundle.peaks["chrom"].to_numpy()[pool]
    mids = bundle.peak_midpoints()[pool]
    near = (chrom == row["chrom"]) & (np.abs(mids - int(row["tss"])) <= int(window))
    cand = pool[near]
    cells = bundle.cell_mask(cell_type if scope == "celltype" else None, split)
    check_cancel(cancel)
    r = pearson_columns(bundle.atac[np.flatnonzero(cells)][:, cand], bundle.rna[cells, g])
    direction = float(objective.sign) * (1.0 if float(objective.value) == 0.0 else -1.0)
    scores = pool_scores(n, pool, np.full(len(pool), -np.inf))
    scores[cand] = direction * r
    report(progress, 1.0, f"peak-to-gene correlation ({len(cand)} peaks within {window // 1000} kb)")
    return scores
