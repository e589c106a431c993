"""Exact single-feature ablation (the reference "single" score) and the seeded random baseline."""

from __future__ import annotations

import numpy as np
import torch

from grids_core.explain.base import Objective
from grids_core.explain.baselines._common import (
    PAIR_CHUNK,
    Cancel,
    Progress,
    active_pairs,
    as_pool,
    check_cancel,
    pair_values,
    pool_scores,
    report,
    samples,
)


def single_effects(objective: Objective, s, pool: np.ndarray, cancel: Cancel = None,
                   progress: Progress = None) -> np.ndarray:
    """Exact ``J({j}) - J(empty)`` for every feature (0 off the pool): [N] float64.

    Only samples with ``x_bj != v`` change, and for them stage 1 moves by ``(v - x_bj) W_j``: the readout
    runs once per such (sample, feature) pair, in chunks of all features at once.
    """
    n = objective.model.n_features
    rows, cols, d = active_pairs(s.x, pool, float(objective.value))
    eff = torch.zeros(n, dtype=torch.float64, device=s.h0.device)
    step = PAIR_CHUNK * 8
    for st in range(0, len(rows), step):
        check_cancel(cancel)
        r, c = rows[st : st + step], cols[st : st + step]
        f = pair_values(objective, s, r, c, d[st : st + step], cancel=cancel)
        rt = torch.as_tensor(r, device=s.h0.device)
        contrib = (s.weight[rt] * (f - s.f0[rt])).double()
        eff.index_add_(0, torch.as_tensor(c, device=s.h0.device), contrib)
        report(progress, min(st + step, len(rows)) / max(len(rows), 1), "single-feature ablation")
    return eff.cpu().numpy()


def ablation(objective: Objective, pool, *, L: int = 10, seed: int = 0, progress: Progress = None,
             cancel: Cancel = None, **_: object) -> np.ndarray:
    """Score ``-(J({j}) - J(empty))``: the exact decrease of J when feature j alone is set to v."""
    n = objective.model.n_features
    pool = as_pool(pool, n)
    s = samples(objective)
    eff = single_effects(objective, s, pool, cancel=cancel, progress=progress)
    return pool_scores(n, pool, -eff[pool])


def random_scores(objective: Objective, pool, *, L: int = 10, seed: int = 0, progress: Progress = None,
                  cancel: Cancel = None, **_: object) -> np.ndarray:
    """Uniform random scores on the pool from ``numpy.random.default_rng(seed)`` (a random subset)."""
    n = objective.model.n_features
    pool = as_pool(pool, n)
    report(progress, 1.0, "random scores")
    return pool_scores(n, pool, np.random.default_rng(seed).random(len(pool)))
