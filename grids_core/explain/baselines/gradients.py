"""Gradient family: saliency (gradient x (v - x)), SmoothGrad and integrated gradients.

All three use the affine first stage: the gradient of J with respect to the input is
``dJ/dx_bj = <W_j, dJ/dh_b>``, so the attribution of the change ``x_bj -> v`` summed over samples is
``a_j = sum_b (v - x_bj) <W_j, G_b>`` for some stage-1 gradient G (``model.first_order``; sparse-aware,
no [B, N] tensor). Each method only chooses G; the score is ``-a_j`` (expected decrease of J).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from grids_core.errors import SettingsError
from grids_core.explain.base import Objective, to_dense
from grids_core.explain.baselines._common import (
    Cancel,
    Progress,
    active_pairs,
    as_pool,
    check_cancel,
    first_order_effect,
    grouped_delta,
    pool_scores,
    report,
    rows_of,
    samples,
    torch_generator,
    values,
    weighted_grad,
)


def saliency(objective: Objective, pool, *, L: int = 10, seed: int = 0, progress: Progress = None,
             cancel: Cancel = None, **_: object) -> np.ndarray:
    """``-sum_b (v - x_bj) dJ/dx_bj`` at the unperturbed input (first-order effect of setting j to v)."""
    n = objective.model.n_features
    pool = as_pool(pool, n)
    s = samples(objective)
    check_cancel(cancel)
    _, g = weighted_grad(objective, s.h0, s.weight)
    a = first_order_effect(objective, s, g)
    report(progress, 1.0, "saliency done")
    return pool_scores(n, pool, -a[pool])


def input_range(x) -> float:
    """``max(x) - min(x)`` over the inputs (1 when constant)."""
    if sp.issparse(x):
        lo, hi = float(x.min()), float(x.max())
    else:
        xd = to_dense(x)
        lo, hi = float(xd.min()), float(xd.max())
    return hi - lo if hi > lo else 1.0


def stage1_gram(model, n_features: int, chunk: int = 8192) -> torch.Tensor:
    """``W^T W`` [H, H] in float64, accumulated over feature chunks."""
    gram = None
    for st in range(0, n_features, chunk):
        w = rows_of(model, np.arange(st, min(st + chunk, n_features))).double()
        gram = w.T @ w if gram is None else gram + w.T @ w
    return gram


def smoothgrad(objective: Objective, pool, *, L: int = 10, seed: int = 0, progress: Progress = None,
               cancel: Cancel = None, n_samples: int = 50, noise: float = 0.15, noise_space: str = "stage1",
               **_: object) -> np.ndarray:
    """SmoothGrad: the stage-1 gradient averaged over ``n_samples`` Gaussian input perturbations.

    Noise: ``eps ~ N(0, sigma^2 I_N)`` on every input feature with ``sigma = noise * (max x - min x)``
    (default 0.15 of the input range; 0.15 for binary ATAC). Because stage 1 is affine,
    ``stage1(x + eps) = stage1(x) + eps @ W`` and ``eps @ W ~ N(0, sigma^2 W^T W)``: with
    ``noise_space="stage1"`` (default) the noise is drawn directly in stage-1 space from that Gaussian,
    which is exact in distribution and costs O(H^2) per sample instead of O(N H). ``noise_space="input"``
    draws ``eps`` on the N inputs (dense, chunked) and projects it. Score: ``-sum_b (v - x_bj)
    <W_j, mean_k G_b(x + eps_k)>`` (smoothed gradient times the clean change ``v - x``).
    """
    if n_samples < 1:
        raise SettingsError(f"smoothgrad needs n_samples >= 1 (got {n_samples}).")
    if noise_space not in ("stage1", "input"):
        raise SettingsError(f"noise_space must be 'stage1' or 'input' (got {noise_space!r}).")
    model = objective.model
    n = model.n_features
    pool = as_pool(pool, n)
    s = samples(objective)
    sigma = float(noise) * input_range(s.x)
    gen = torch_generator(seed)
    dev = s.h0.device
    b, h = s.h0.shape
    if noise_space == "stage1":
        evals, evecs = torch.linalg.eigh(stage1_gram(model, n))
        factor = (evecs * evals.clamp(min=0).sqrt()).T.to(torch.float32)  # z @ factor ~ N(0, W^T W)
    else:
        w_full = rows_of(model, np.arange(n)).to("cpu")
    g_sum = torch.zeros_like(s.h0)
    for k in range(n_samples):
        check_cancel(cancel)
        if noise_space == "stage1":
            eps_h = (torch.randn(b, h, generator=gen) @ factor).to(dev)
        else:
            eps_h = torch.cat(
                [torch.randn(min(256, b - st), n, generator=gen) @ w_full for st in range(0, b, 256)], 0
            ).to(dev)
        _, g = weighted_grad(objective, s.h0 + sigma * eps_h, s.weight)
        g_sum += g
        report(progress, (k + 1) / n_samples, f"smoothgrad sample {k + 1}/{n_samples}")
    a = first_order_effect(objective, s, g_sum / n_samples)
    return pool_scores(n, pool, -a[pool])


def perturbed_delta(objective: Objective, s, pool: np.ndarray) -> torch.Tensor:
    """``stage1(x with every pool feature set to v) - stage1(x)`` per sample: [B, H]."""
    rows, cols, d = active_pairs(s.x, pool, float(objective.value))
    return grouped_delta(objective.model, s.n, rows, cols, d, s.h0.device)


def ig_attributions(objective: Objective, pool, *, steps: int = 32, cancel: Cancel = None,
                    progress: Progress = None) -> tuple[np.ndarray, float]:
    """Integrated gradients of J along ``x -> x with the pool at v``: (a [N], J(pool) - J(empty)).

    Midpoint rule with ``steps`` points; by completeness ``a[pool].sum()`` approximates the returned
    difference. Stage 1 along the path is ``h0 + alpha * delta`` (affine), so each step is one
    readout forward/backward on the samples.
    """
    if steps < 1:
        raise SettingsError(f"ig needs steps >= 1 (got {steps}).")
    n = objective.model.n_features
    pool = as_pool(pool, n)
    s = samples(objective)
    delta = perturbed_delta(objective, s, pool)
    g_sum = torch.zeros_like(s.h0)
    j0 = float((s.weight * s.f0).sum())
    for k in range(steps):
        check_cancel(cancel)
        alpha = (k + 0.5) / steps
        _, g = weighted_grad(objective, s.h0 + alpha * delta, s.weight)
        g_sum += g
        report(progress, (k + 1) / steps, f"integrated gradients step {k + 1}/{steps}")
    j1 = float((s.weight * values(objective, s.h0 + delta)).sum())
    a = first_order_effect(objective, s, g_sum / steps)
    return a, j1 - j0


def integrated_gradients(objective: Objective, pool, *, L: int = 10, seed: int = 0, progress: Progress = None,
                         cancel: Cancel = None, steps: int = 32, **_: object) -> np.ndarray:
    """Integrated gradients from x to the perturbed baseline (every pool feature at v); score ``-a_j``."""
    n = objective.model.n_features
    pool = as_pool(pool, n)
    a, _ = ig_attributions(objective, pool, steps=steps, cancel=cancel, progress=progress)
    return pool_scores(n, pool, -a[pool])
