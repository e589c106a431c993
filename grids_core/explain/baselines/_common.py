"""Shared machinery of the baseline scorers: the weighted sample set, chunked readouts, gradients in
stage-1 space, the (sample, feature) pairs a perturbation can change, and incremental stage-1 deltas.

Every scorer works on the objective's *weighted sample set*: the target samples with weight ``1/B_t``
and, when ``beta > 0``, the other samples with weight ``-beta/B_o``. Then, up to a constant,
``J(S) = sum_b w_b * f_b(x_b with S set to v)`` with ``f_b = sign * readout(stage1(x_b))``, which is
exactly ALGORITHM §3's ``J_beta``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from grids_core.errors import CancelledError, SettingsError
from grids_core.explain.base import Objective, to_dense

Progress = Callable[[float, str], None] | None
Cancel = Callable[[], bool] | None

READOUT_CHUNK = 1024  # samples per readout call (fastest batch size measured on CPU)
PAIR_CHUNK = 4096  # (sample, feature) pairs per incremental stage-1 chunk


def check_cancel(cancel: Cancel) -> None:
    """Raise ``CancelledError`` when the job was cancelled."""
    if cancel is not None and cancel():
        raise CancelledError("The explanation was cancelled.")


def report(progress: Progress, fraction: float, message: str) -> None:
    """Call the progress callback if there is one (fraction clipped to [0, 1])."""
    if progress is not None:
        progress(float(min(max(fraction, 0.0), 1.0)), message)


def as_pool(pool, n_features: int) -> np.ndarray:
    """Sorted unique int64 feature indices, checked to lie in ``[0, n_features)``."""
    p = np.unique(np.asarray(pool, dtype=np.int64).ravel())
    if len(p) and (p[0] < 0 or p[-1] >= n_features):
        raise SettingsError(f"Candidate pool has indices outside [0, {n_features}).")
    return p


def pool_scores(n_features: int, pool: np.ndarray, values) -> np.ndarray:
    """Float64 score vector: ``values`` on the pool, ``-inf`` elsewhere."""
    out = np.full(n_features, -np.inf, dtype=np.float64)
    out[pool] = np.asarray(values, dtype=np.float64)
    return out


def stack_inputs(a, b):
    """Row-concatenate two input matrices of the same kind (sparse or dense)."""
    if sp.issparse(a):
        return sp.vstack([sp.csr_matrix(a), sp.csr_matrix(b)]).tocsr()
    return torch.cat([to_dense(a), to_dense(b)], 0)


def take_rows(x, rows: np.ndarray):
    """Rows of sparse or dense inputs."""
    if sp.issparse(x):
        return sp.csr_matrix(x)[rows]
    return to_dense(x)[torch.as_tensor(rows, dtype=torch.long)]


@dataclass
class Samples:
    """The weighted sample set of an objective with its unperturbed stage-1 activations and values."""

    x: object  # [B, N] inputs: target rows first, then other rows (beta > 0)
    weight: torch.Tensor  # [B]: 1/B_t for target rows, -beta/B_o for other rows
    h0: torch.Tensor  # [B, H] stage1(x)
    f0: torch.Tensor  # [B] sign * readout(h0)
    n_target: int

    @property
    def n(self) -> int:
        return int(self.h0.shape[0])


def samples(objective: Objective, include_other: bool = True) -> Samples:
    """Build the weighted sample set (see the module docstring)."""
    model = objective.model
    x = objective.x_target
    if sp.issparse(x):
        x = sp.csr_matrix(x, dtype=np.float32)
    n_t = int(x.shape[0])
    if n_t == 0:
        raise SettingsError("The objective has no target samples.")
    w = [torch.full((n_t,), 1.0 / n_t)]
    h = [objective.target_stage1()]
    if include_other and objective.beta > 0 and objective.x_other is not None and objective.x_other.shape[0] > 0:
        xo = objective.x_other
        xo = sp.csr_matrix(xo, dtype=np.float32) if sp.issparse(xo) else xo
        x = stack_inputs(x, xo)
        w.append(torch.full((int(xo.shape[0]),), -float(objective.beta) / int(xo.shape[0])))
        h.append(stage1_chunked(model, xo))
    weight = torch.cat(w).to(model.device)
    with torch.no_grad():
        h0 = torch.cat(h, 0)
        f0 = values(objective, h0)
    return Samples(x=x, weight=weight, h0=h0, f0=f0, n_target=n_t)


def stage1_chunked(model, x, chunk: int = 4096) -> torch.Tensor:
    """``model.stage1`` over row chunks (bounded memory)."""
    parts = [model.stage1(take_rows(x, np.arange(s, min(s + chunk, x.shape[0])))) for s in range(0, x.shape[0], chunk)]
    return torch.cat(parts, 0).detach()


def values(objective: Objective, h: torch.Tensor, chunk: int = READOUT_CHUNK) -> torch.Tensor:
    """Per-sample ``sign * readout(h)`` without gradients, in chunks: [n]."""
    out = []
    with torch.no_grad():
        for s in range(0, h.shape[0], chunk):
            out.append(objective.readout(h[s : s + chunk]).reshape(-1))
    if not out:
        return torch.zeros(0, device=h.device)
    return float(objective.sign) * torch.cat(out)


def weighted_grad(objective: Objective, h: torch.Tensor, weight: torch.Tensor, chunk: int = READOUT_CHUNK):
    """``(J, dJ/dh)`` for ``J = sum_b weight_b * sign * readout(h_b)``; gradient [B, H]."""
    grads, total = [], 0.0
    for s in range(0, h.shape[0], chunk):
        hc = h[s : s + chunk].detach().clone().requires_grad_(True)
        with torch.enable_grad():
            jc = (float(objective.sign) * objective.readout(hc).reshape(-1) * weight[s : s + chunk]).sum()
            (g,) = torch.autograd.grad(jc, hc)
        grads.append(g)
        total += float(jc.detach())
    return total, torch.cat(grads, 0)


def first_order_effect(objective: Objective, s: Samples, grad: torch.Tensor) -> np.ndarray:
    """``a_j = sum_b (v - x_bj) <W_j, grad_b>`` for every feature: [N] float64.

    ``grad`` already carries the sample weights, so ``a_j`` is the first-order change of J when feature j
    alone is set to ``v`` (the model's ``first_order`` averages over samples, hence the factor B).
    """
    a = objective.model.first_order(s.x, grad, float(objective.value))
    return a.detach().double().cpu().numpy() * grad.shape[0]


def active_pairs(x, pool: np.ndarray, value: float, chunk_cells: int = 1 << 22):
    """Every (sample b, feature j in pool) with ``x_bj != value``: rows, cols (int64), ``d = value - x_bj``.

    Sorted by row then column. For sparse inputs and ``value = 0`` these are the stored non-zeros.
    """
    pool = np.asarray(pool, dtype=np.int64)
    if sp.issparse(x):
        xs = sp.csr_matrix(x)[:, pool].tocsr()
        if value == 0.0:
            coo = xs.tocoo()
            keep = coo.data != 0
            r, c, d = coo.row[keep], coo.col[keep], -coo.data[keep]
        else:
            rs, cs, ds = [], [], []
            step = max(1, chunk_cells // max(xs.shape[0], 1))
            for c0 in range(0, len(pool), step):
                blk = np.asarray(xs[:, c0 : c0 + step].toarray(), dtype=np.float32)
                rr, cc = np.nonzero(blk != value)
                rs.append(rr)
                cs.append(cc + c0)
                ds.append(value - blk[rr, cc])
            r, c, d = np.concatenate(rs), np.concatenate(cs), np.concatenate(ds)
    else:
        xd = to_dense(x)[:, torch.as_tensor(pool, dtype=torch.long)].cpu().numpy()
        r, c = np.nonzero(xd != value)
        d = value - xd[r, c]
    order = np.lexsort((c, r))
    return (
        r[order].astype(np.int64),
        pool[c[order]].astype(np.int64),
        np.asarray(d[order], dtype=np.float32),
    )


def rows_of(model, cols: np.ndarray) -> torch.Tensor:
    """``W[cols]`` of the model's affine stage 1 (float32, model device)."""
    return model.stage1_rows(torch.as_tensor(np.asarray(cols, dtype=np.int64))).to(torch.float32)


def pair_values(objective: Objective, s: Samples, rows: np.ndarray, cols: np.ndarray, d: np.ndarray,
                cancel: Cancel = None, chunk: int = PAIR_CHUNK) -> torch.Tensor:
    """``f_b`` after setting the single feature ``cols[i]`` of sample ``rows[i]`` to v: [n_pairs]."""
    model = objective.model
    out = []
    for st in range(0, len(rows), chunk):
        check_cancel(cancel)
        r = torch.as_tensor(rows[st : st + chunk], device=s.h0.device)
        dd = torch.as_tensor(d[st : st + chunk], device=s.h0.device)
        h = s.h0[r] + dd[:, None] * rows_of(model, cols[st : st + chunk]).to(s.h0.device)
        out.append(values(objective, h))
    return torch.cat(out) if out else torch.zeros(0, device=s.h0.device)


def grouped_delta(model, n_groups: int, group: np.ndarray, cols: np.ndarray, d: np.ndarray,
                  device: torch.device, chunk: int = PAIR_CHUNK) -> torch.Tensor:
    """``delta[g] = sum_{i: group_i = g} d_i * W[cols_i]``: [n_groups, H] (several features per row)."""
    delta = None
    for st in range(0, len(group), chunk):
        w = rows_of(model, cols[st : st + chunk]).to(device)
        if delta is None:
            delta = torch.zeros(n_groups, w.shape[1], device=device)
        dd = torch.as_tensor(d[st : st + chunk], device=device)
        delta.index_add_(0, torch.as_tensor(group[st : st + chunk], device=device), dd[:, None] * w)
    if delta is None:
        h = model.stage1_rows(torch.zeros(1, dtype=torch.long)).shape[1]
        delta = torch.zeros(n_groups, h, device=device)
    return delta


def torch_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A private, seeded torch generator (never the global RNG)."""
    return torch.Generator(device=device).manual_seed(int(seed))
