"""LIME on the objective: a kernel-weighted linear surrogate of J over binary keep/perturb masks.

Interpretable features: the top ``n_features`` (M, default 512) pool features by |first-order effect|
(saliency). With pools of thousands of features a 1,024-neighbour regression on all of them is
under-determined; ranking by the cheap first-order effect keeps every feature that could matter to
first order. Pool features outside the top M rank after all of them, in first-order order.

Neighbourhood (as LIME's text/tabular samplers): row 0 keeps everything; every other row perturbs a
uniform number 1..M-1 of the M features, chosen uniformly (``numpy.random.default_rng(seed)``). A
perturbed feature is set to v in *every* sample; the response is ``J(perturbed) - J(empty)`` on the
objective's weighted samples. Kernel: cosine distance to the all-keep mask,
``d = 1 - cos(z, 1) = 1 - sqrt(|z| / M)``, weight ``sqrt(exp(-d^2 / width^2))`` with width 0.25 (the
``lime`` text explainer's 25 on distances scaled by 100). Ridge (alpha 1, unpenalised intercept, as
LIME's default ``Ridge``). Scores are the **signed** coefficients: ``coef_j`` is the change of J when j is
kept instead of perturbed, i.e. the decrease of J when j is perturbed (the reference took |coef| and
mixed directions).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from grids_core.errors import SettingsError
from grids_core.explain.base import Objective
from grids_core.explain.baselines._common import (
    Cancel,
    Progress,
    active_pairs,
    as_pool,
    check_cancel,
    first_order_effect,
    pool_scores,
    report,
    rows_of,
    samples,
    stage1_chunked,
    values,
    weighted_grad,
)


def kernel(distances: np.ndarray, width: float = 0.25) -> np.ndarray:
    """LIME's exponential kernel ``sqrt(exp(-d^2 / width^2))``."""
    return np.sqrt(np.exp(-(np.asarray(distances, dtype=np.float64) ** 2) / width**2))


def cosine_to_ones(z: np.ndarray) -> np.ndarray:
    """Cosine distance of each binary row to the all-ones row (1 for an all-zero row)."""
    m = z.shape[1]
    ones = z.sum(1).astype(np.float64)
    return 1.0 - np.sqrt(ones / m)


def weighted_ridge(z: np.ndarray, y: np.ndarray, weights: np.ndarray, alpha: float = 1.0):
    """``argmin sum_k w_k (y_k - b - z_k . coef)^2 + alpha |coef|^2``: (intercept, coef)."""
    x = np.asarray(z, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    sw = w.sum()
    xm = (w[:, None] * x).sum(0) / sw
    ym = float((w * y).sum() / sw)
    xc, yc = x - xm, y - ym
    a = (xc * w[:, None]).T @ xc + alpha * np.eye(x.shape[1])
    coef = np.linalg.solve(a, (xc * w[:, None]).T @ yc)
    return ym - float(xm @ coef), coef


def lime_design(objective: Objective, pool, *, seed: int = 0, n_samples: int = 1024, n_features: int = 512,
                cancel: Cancel = None, progress: Progress = None):
    """The LIME regression problem: (features [M], first-order a [N], masks Z [K, M], responses y [K]).

    ``y_k = J(features with z_k = 0 set to v) - J(empty)`` (exact, on the weighted samples).
    """
    if n_samples < 2 or n_features < 1:
        raise SettingsError(f"lime needs n_samples >= 2 and n_features >= 1 (got {n_samples}, {n_features}).")
    model = objective.model
    n = model.n_features
    pool = as_pool(pool, n)
    s = samples(objective)
    _, g = weighted_grad(objective, s.h0, s.weight)
    a = first_order_effect(objective, s, g)
    order = np.lexsort((pool, -np.abs(a[pool])))
    feats = np.sort(pool[order[: min(n_features, len(pool))]])
    m = len(feats)
    rng = np.random.default_rng(seed)
    z = np.ones((n_samples, m), dtype=np.uint8)
    if m > 1:
        n_off = rng.integers(1, m, size=n_samples - 1)
    else:
        n_off = np.ones(n_samples - 1, dtype=np.int64)
    ranks = rng.random((n_samples - 1, m)).argsort(1).argsort(1)
    z[1:] = (ranks >= n_off[:, None]).astype(np.uint8)

    y = np.zeros(n_samples)
    j0 = float((s.weight * s.f0).sum())
    if sp.issparse(s.x) and float(objective.value) == 0.0:
        f_iter = _responses_sparse(objective, s, feats, z)
    else:
        f_iter = _responses_dense(objective, s, feats, z)
    for st, f in f_iter:
        check_cancel(cancel)
        y[st : st + f.shape[0]] = (f * s.weight[None]).sum(1).double().cpu().numpy() - j0
        report(progress, min(st + f.shape[0], n_samples) / n_samples, "LIME neighbourhood")
    return feats, a, z, y


def _responses_sparse(objective: Objective, s, feats: np.ndarray, z: np.ndarray):
    """Per-neighbour per-sample f for sparse x and v = 0: stage 1 of the masked non-zeros, chunked."""
    xs = sp.csr_matrix(s.x, dtype=np.float32)
    pos_of = np.full(xs.shape[1], -1, dtype=np.int64)
    pos_of[feats] = np.arange(len(feats))
    entry_pos = pos_of[xs.indices]
    in_m = entry_pos >= 0
    nnz, b = xs.nnz, xs.shape[0]
    chunk = max(1, (1 << 22) // max(nnz, 1))
    for st in range(0, z.shape[0], chunk):
        zc = z[st : st + chunk]
        c = zc.shape[0]
        factors = np.where(in_m[None, :], zc[:, np.maximum(entry_pos, 0)], 1).astype(np.float32)
        xk = sp.csr_matrix(
            ((xs.data[None, :] * factors).ravel(), np.tile(xs.indices, c),
             np.concatenate([[0], (xs.indptr[1:][None, :] + nnz * np.arange(c)[:, None]).ravel()])),
            shape=(c * b, xs.shape[1]),
        )
        yield st, values(objective, stage1_chunked(objective.model, xk)).reshape(c, b)


def _responses_dense(objective: Objective, s, feats: np.ndarray, z: np.ndarray):
    """Per-neighbour per-sample f in general: ``h0 + ((1 - z_k) * (v - x)) @ W_M``, chunked."""
    dev, m = s.h0.device, len(feats)
    rows, cols, d = active_pairs(s.x, feats, float(objective.value))
    dmat = torch.zeros(s.n, m, device=dev)
    dmat[torch.as_tensor(rows, device=dev), torch.as_tensor(np.searchsorted(feats, cols), device=dev)] = (
        torch.as_tensor(d, device=dev)
    )
    wm = rows_of(objective.model, feats).to(dev)
    off = torch.as_tensor(1 - z, dtype=torch.float32, device=dev)
    chunk = max(1, (1 << 22) // max(s.n * m, 1))
    for st in range(0, z.shape[0], chunk):
        o = off[st : st + chunk]
        delta = (o[:, None, :] * dmat[None]) @ wm  # [c, B, H]
        yield st, values(objective, (s.h0[None] + delta).reshape(-1, s.h0.shape[1])).reshape(len(o), s.n)


def lime_scores(objective: Objective, pool, *, L: int = 10, seed: int = 0, progress: Progress = None,
                cancel: Cancel = None, n_samples: int = 1024, n_features: int = 512, kernel_width: float = 0.25,
                alpha: float = 1.0, **_: object) -> np.ndarray:
    """Signed LIME coefficients on the top-M pool features (see the module docstring)."""
    n = objective.model.n_features
    pool = as_pool(pool, n)
    feats, a, z, y = lime_design(objective, pool, seed=seed, n_samples=n_samples, n_features=n_features,
                                 cancel=cancel, progress=progress)
    _, coef = weighted_ridge(z, y, kernel(cosine_to_ones(z), kernel_width), alpha)
    scores = pool_scores(n, pool, np.zeros(len(pool)))
    scores[feats] = coef
    rest = np.setdiff1d(pool, feats)
    if len(rest):
        lo = float(coef.min()) if len(coef) else 0.0
        span = float(coef.max() - coef.min()) if len(coef) else 1.0
        span = span if span > 0 else 1.0
        r = np.empty(len(rest))
        r[np.lexsort((rest, a[rest]))] = np.arange(len(rest))  # largest decrease (-a) first
        scores[rest] = lo - span * (1.0 + (r + 1.0) / (len(rest) + 1.0))
    return scores
