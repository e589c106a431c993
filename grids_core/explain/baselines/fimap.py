"""FIMAP-style learned continuous mask: minimise J along a soft perturbation plus a sparsity penalty.

``m = sigmoid(theta)`` over the pool; the perturbed input is ``x + (v - x) * m`` (each pool feature
moved a fraction m toward v in every sample). Stage 1 is affine, so
``stage1(x(m)) = stage1(x) + ((v - x) * m) @ W_pool`` (for sparse inputs and v = 0 simply ``stage1`` of
the rescaled non-zeros), and ``dJ/dm_j = sum_b (v - x_bj) <W_j, dJ/dh_b>`` is the model's sparse-aware
``first_order`` product: one readout forward/backward per step, no [B, N] tensor.
Loss ``J(x(m)) + lam * mean(m)``, Adam, fixed steps; score = m (computed in float64 from theta, so
saturated masks still rank). ``lam`` defaults to ``|pool| * q_L`` where ``q_L`` is the L-th largest
first-order decrease of J at m = 0: a feature's mask grows only while it lowers J faster than the
L-th best feature does to first order, so about L features survive (the scores depend on L).
Adam's ``eps`` defaults to the largest |gradient| at the first step: plain Adam normalises every
coordinate, so every feature that lowers J rises at the same speed and the mask only says *which*
features help (ties among the saturated ones); with eps at the gradient's scale the updates stay
proportional to each feature's gradient and the mask ranks features by how strongly they lower J.
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
    grouped_delta,
    pool_scores,
    report,
    samples,
    stage1_chunked,
    weighted_grad,
)


def fimap_scores(objective: Objective, pool, *, L: int = 10, seed: int = 0, progress: Progress = None,
                 cancel: Cancel = None, steps: int = 200, lr: float = 0.1, lam: float | None = None,
                 init: float = -4.0, adam_eps: float | None = None, **_: object) -> np.ndarray:
    """Learned mask scores (see the module docstring). Deterministic: no randomness at all."""
    if steps < 1 or lr <= 0:
        raise SettingsError(f"fimap needs steps >= 1 and lr > 0 (got {steps}, {lr}).")
    model = objective.model
    n = model.n_features
    pool = as_pool(pool, n)
    s = samples(objective)
    dev = s.h0.device
    if lam is None:
        _, g = weighted_grad(objective, s.h0, s.weight)
        dec = -first_order_effect(objective, s, g)[pool]
        q = np.sort(dec)[::-1][min(L, len(dec)) - 1] if len(dec) else 0.0
        if q <= 0:
            q = float(np.abs(dec).max()) if len(dec) else 0.0
        lam = float(len(pool) * q)
    rows, cols, d = active_pairs(s.x, pool, float(objective.value))
    pair_pos = np.searchsorted(pool, cols)
    fast = sp.issparse(s.x) and float(objective.value) == 0.0
    if fast:  # x(m) = x * (1 - m) stays sparse: stage 1 straight from the scaled non-zeros
        xs = sp.csr_matrix(s.x, dtype=np.float32)
        pos_of = np.full(n, -1, dtype=np.int64)
        pos_of[pool] = np.arange(len(pool))
        entry_pos = pos_of[xs.indices]
    theta = torch.full((len(pool),), float(init), device=dev, requires_grad=True)
    opt = None
    for step in range(steps):
        check_cancel(cancel)
        m = torch.sigmoid(theta.detach())
        m_np = m.double().cpu().numpy()
        if fast:
            xm = xs.copy()
            xm.data = xs.data * np.where(entry_pos >= 0, 1.0 - m_np[np.maximum(entry_pos, 0)], 1.0).astype(np.float32)
            h = stage1_chunked(model, xm)
        else:
            h = s.h0 + grouped_delta(model, s.n, rows, cols, (d * m_np[pair_pos]).astype(np.float32), dev)
        j, g = weighted_grad(objective, h, s.weight)
        # dJ/dm_j = sum_b (v - x_bj) <W_j, dJ/dh_b>: the model's sparse-aware first-order product.
        grad_m = torch.as_tensor(first_order_effect(objective, s, g)[pool], dtype=torch.float32, device=dev)
        grad_m = grad_m + lam / len(pool)
        g_theta = grad_m * m * (1.0 - m)
        if opt is None:  # eps at the gradient's scale: updates stay proportional to each feature's gradient
            eps = float(g_theta.abs().max()) if adam_eps is None else float(adam_eps)
            opt = torch.optim.Adam([theta], lr=lr, eps=max(eps, 1e-12))
        opt.zero_grad()
        theta.grad = g_theta
        opt.step()
        if (step + 1) % 10 == 0 or step + 1 == steps:
            report(progress, (step + 1) / steps, f"FIMAP step {step + 1}/{steps} (J {j:.4g})")
    th = theta.detach().double().cpu().numpy()
    return pool_scores(n, pool, 1.0 / (1.0 + np.exp(-th)))
