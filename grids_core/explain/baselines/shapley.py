"""SAGE values by a (stratified) permutation estimator with per-sample losses.

The game. Players are the pool features. A coalition S keeps its features at their original values;
every removed feature is *set to v* (a default-value imputer: the same marginalisation as GRIDS' own
perturbation, and as ``sage.DefaultImputer(model, v)``). The per-sample loss is ``f_b = sign *
readout`` (never a batch mean: averaging over the batch before the permutation walk dilutes every value
by the batch size, the reference's bug). The score of feature j is the expected *decrease* of f when j is
removed, averaged over samples with the objective's weights (so ``sum_j score_j = J(empty) - J(pool)``
for the full game); this is minus the SAGE value of the loss f, i.e. positive = removing j lowers J.

Coalitions limited to the last L features. In a uniformly random permutation of the pool, the
marginal contribution of j is measured against the features *before* it. We keep only the last
``tail = L`` positions of each permutation: j's contribution is measured when at most ``L - 1`` other
pool features are already removed (those after j), which is the regime of a GRIDS subset of size L.
The score is the mean contribution *given* j falls in the tail; ``tail >= |pool|`` gives the full SAGE
value (what the ``sage`` package computes). Scores therefore depend on L (``uses_L``).

Estimator. For j in the tail at position s (s features after it, s uniform on 0..tail-1), the features
after j are a uniform random s-subset of the pool. Only features with ``x_bj != v`` ("active" in b)
change anything, so per (sample b, active feature j) we draw s, then the number k of active features
among the s (hypergeometric), then which ones (uniform), and evaluate
``f_b(x with those k removed) - f_b(x with those k and j removed)``. Inactive (b, j) contribute exactly
0. Every active pair gets one such draw per *pass* (a stratified version of the permutation estimator:
each pair is sampled once per pass instead of one permutation per sample); k = 0 draws reuse the exact
single-feature effect computed once. Convergence (as in the ``sage`` package): stop when the largest
standard error of the running means is below ``thresh`` times the range (max - min) of the values, after
``min_passes``; or at ``max_passes``. A wall-clock cap ``max_seconds`` is opt-in (off by default: where it
stops would depend on the machine and its load, and the result would no longer be fixed by the seed).
``preset="paper"`` removes both caps (run to convergence, thresh 0.025).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from grids_core.errors import SettingsError
from grids_core.explain.base import Objective
from grids_core.explain.baselines._common import (
    PAIR_CHUNK,
    Cancel,
    Progress,
    active_pairs,
    as_pool,
    check_cancel,
    grouped_delta,
    pair_values,
    pool_scores,
    report,
    rows_of,
    samples,
    values,
)

MAX_ENTRIES = 1 << 22  # candidate entries materialised per context-sampling chunk


def _sample_contexts(rng: np.random.Generator, pair_row: np.ndarray, pair_pos: np.ndarray, k: np.ndarray,
                     row_start: np.ndarray, row_len: np.ndarray):
    """For each pair i, k[i] distinct active features of its sample other than itself.

    Returns (pair id, position into the row-sorted active arrays) of the chosen context members.
    """
    out_pair, out_pos = [], []
    idx = np.flatnonzero(k > 0)
    if len(idx) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    lens = row_len[pair_row[idx]]
    bounds = np.concatenate([[0], np.cumsum(lens)])
    st = 0
    while st < len(idx):
        en = int(np.searchsorted(bounds, bounds[st] + MAX_ENTRIES, side="right")) - 1
        en = max(en, st + 1)
        sel = idx[st:en]
        ln = lens[st:en]
        grp = np.repeat(np.arange(len(sel)), ln)
        offs = np.arange(len(grp)) - np.repeat(np.cumsum(ln) - ln, ln)
        pos = np.repeat(row_start[pair_row[sel]], ln) + offs
        keys = rng.random(len(grp))
        keys[pos == np.repeat(pair_pos[sel], ln)] = np.inf  # never the feature itself
        order = np.lexsort((keys, grp))
        rank = np.arange(len(grp)) - np.repeat(np.cumsum(ln) - ln, ln)
        chosen = order[rank < np.repeat(k[sel], ln)]
        out_pair.append(sel[grp[chosen]])
        out_pos.append(pos[chosen])
        st = en
    return np.concatenate(out_pair), np.concatenate(out_pos)


def sage_scores(objective: Objective, pool, *, L: int = 10, seed: int = 0, progress: Progress = None,
                cancel: Cancel = None, tail: int | None = None, thresh: float = 0.025, min_passes: int = 3,
                max_passes: int | None = 64, max_seconds: float | None = None, preset: str = "default",
                return_info: bool = False, **_: object):
    """SAGE scores (see the module docstring). ``tail`` defaults to L; ``tail=0`` means the full game."""
    if preset == "paper":
        max_passes, max_seconds = None, None
    elif preset != "default":
        raise SettingsError(f"sage preset must be 'default' or 'paper' (got {preset!r}).")
    if not 0 < thresh < 1:
        raise SettingsError(f"sage thresh must be in (0, 1) (got {thresh}).")
    t_start = time.perf_counter()
    model = objective.model
    n = model.n_features
    pool = as_pool(pool, n)
    n_pool = len(pool)
    tail = L if tail is None else int(tail)
    tail = n_pool if tail <= 0 or tail > n_pool else tail
    rng = np.random.default_rng(seed)
    s = samples(objective)
    dev = s.h0.device
    rows, cols, d = active_pairs(s.x, pool, float(objective.value))  # sorted by row
    n_pairs = len(rows)
    row_len = np.bincount(rows, minlength=s.n)
    row_start = np.concatenate([[0], np.cumsum(row_len)[:-1]])
    pair_pos = np.arange(n_pairs)
    col_pos = np.searchsorted(pool, cols)
    w = s.weight.double().cpu().numpy()[rows]

    # k = 0 stratum: the exact single-feature effect, once.
    f_single = pair_values(objective, s, rows, cols, d, cancel=cancel)
    delta0 = (s.f0[torch.as_tensor(rows, device=dev)] - f_single).double().cpu().numpy()

    mean = np.zeros(n_pool)
    m2 = np.zeros(n_pool)
    passes, converged, ratio = 0, False, np.inf
    while True:
        check_cancel(cancel)
        pos_s = rng.integers(0, tail, size=n_pairs)
        ngood = row_len[rows] - 1
        nbad = n_pool - row_len[rows]
        k = rng.hypergeometric(np.maximum(ngood, 0), np.maximum(nbad, 0), np.minimum(pos_s, ngood + nbad)) \
            if n_pairs else np.zeros(0, np.int64)
        k = np.where(ngood > 0, k, 0)
        contrib = delta0.copy()
        ctx_pair, ctx_pos = _sample_contexts(rng, rows, pair_pos, k, row_start, row_len)
        todo = np.flatnonzero(k > 0)
        if len(todo):
            local = np.full(n_pairs, -1, np.int64)
            local[todo] = np.arange(len(todo))
            for st in range(0, len(todo), PAIR_CHUNK):
                check_cancel(cancel)
                blk = todo[st : st + PAIR_CHUNK]
                a, b = np.searchsorted(ctx_pair, [blk[0], blk[-1] + 1])  # ctx_pair is sorted
                grp = local[ctx_pair[a:b]] - st
                ctx = grouped_delta(model, len(blk), grp, cols[ctx_pos[a:b]], d[ctx_pos[a:b]], dev)
                r = torch.as_tensor(rows[blk], device=dev)
                h_with = s.h0[r] + ctx
                h_without = h_with + torch.as_tensor(d[blk], device=dev)[:, None] * rows_of(model, cols[blk]).to(dev)
                contrib[blk] = (values(objective, h_with) - values(objective, h_without)).double().cpu().numpy()
        est = np.bincount(col_pos, weights=w * contrib, minlength=n_pool)
        passes += 1
        diff = est - mean
        mean += diff / passes
        m2 += diff * (est - mean)
        if passes >= 2:
            se = np.sqrt(m2 / (passes - 1) / passes)
            gap = max(float(mean.max() - mean.min()), 1e-12)
            ratio = float(se.max() / gap)
            converged = passes >= min_passes and ratio < thresh
        elapsed = time.perf_counter() - t_start
        frac = passes / max_passes if max_passes else 0.0
        if np.isfinite(ratio) and ratio > 0:
            frac = max(frac, min(1.0, (thresh / ratio) ** 2))  # stderr shrinks as 1/sqrt(passes)
        report(progress, frac, f"SAGE pass {passes} (stderr/range {ratio:.3g}, target {thresh})")
        if converged or (max_passes and passes >= max_passes) or (max_seconds and elapsed > max_seconds):
            break
    scores = pool_scores(n, pool, mean)
    if return_info:
        return scores, {"passes": passes, "converged": converged, "ratio": ratio, "tail": tail}
    return scores
