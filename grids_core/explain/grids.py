"""GRIDS subset search (ALGORITHM §3-4): find the L features whose joint perturbation minimises J.

``J(S) = mean_{b in target} sign * readout(stage1(x_b with S set to v))`` (plus the optional specificity
term with weight beta). The search is coordinate descent over the L rows of the subset: one first-order
vector ``a`` (dJ of setting each feature to v) proposes the k best swap candidates, and every candidate
is scored by its EXACT J, evaluated incrementally:

* ``stage1`` is affine, so the cache ``H = stage1(x with S set to v)`` of the batch changes by
  ``(x_{b,r} - v) W[r] + (v - x_{b,j}) W[j]`` when member r is swapped for j;
* only samples with ``x_{b,r} != v`` or ``x_{b,j} != v`` change at all, so the readout runs on those
  rows only (all k candidates stacked into one call) and the cached per-sample readouts of every other
  sample are reused. This is exact, not an approximation.

``full_evaluation=True`` scores candidates with full forwards of the perturbed inputs instead (the
reference cost profile); ``faithful=True`` reproduces the reference implementation's behaviour.

``precision="bf16"`` ranks the k candidates with stage-2 readouts in bfloat16 (autocast), then scores a
shortlist of the best ``SHORTLIST`` exactly in float32 and accepts only on that float32 value: the search
stays monotone in float32, and bfloat16 only decides which few candidates get the exact check.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch

from grids_core.errors import CancelledError, SettingsError
from grids_core.explain.base import Objective, to_dense

REL_TOL = 1e-9  # a swap is accepted only if it lowers J by more than this fraction of |J| (and float noise)
FAITHFUL_BATCH = 64  # the reference's minibatch of target samples per step
_EPS32 = float(np.finfo(np.float32).eps)
_MAX_COEF = 1 << 22  # entries of one [candidates, columns, samples] coefficient block
_MAX_ROWS = 1 << 15  # stage-1 rows per readout call
_INITS = ("random", "gradient", "single")
_ORDERS = ("cyclic", "random")
PRECISIONS = ("fp32", "bf16")
SHORTLIST = 4  # bf16 precision: candidates re-scored in float32 per step
# pairwise joint drops are evaluated among the first PAIRWISE_MAX members (by drop-one): L (L - 1) / 2 pairs
# grow past what one explanation should cost (L = 1000: ~500k evaluations; L = 20,000 ran out of memory)
PAIRWISE_MAX = 128


@dataclass
class SearchResult:
    """Outcome of :func:`grids_search` (see ALGORITHM §4.7)."""

    subset: np.ndarray  # int64 features, ordered by drop-one effect (largest first)
    objective: float  # J(subset)
    baseline_objective: float  # J(empty set)
    trajectory: list[float]  # best-so-far J after each step (faithful: J of the current subset)
    drop_one: np.ndarray  # J(S minus r) - J(S), per member
    pairwise: np.ndarray  # [L, L]: J(S minus {r_i, r_j}) - J(S); diagonal = drop_one
    single: np.ndarray  # J({r}) - J(empty), per member
    n_steps: int
    n_accepted: int
    n_evaluations: int
    converged: bool
    runtime_s: float
    settings: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------------
# inputs


def _as_csr(x) -> sp.csr_matrix:
    return sp.csr_matrix(x, dtype=np.float32)


def _perturb(x, feats: np.ndarray, value: float, device: torch.device):
    """``x`` with every feature in ``feats`` set to ``value`` (sparse stays sparse)."""
    feats = np.unique(np.asarray(feats, dtype=np.int64))
    if sp.issparse(x):
        out = _as_csr(x).copy()
        if feats.size == 0:
            return out
        out.data[np.isin(out.indices, feats)] = 0.0
        out.eliminate_zeros()
        if value != 0:
            n = out.shape[0]
            fill = sp.csr_matrix(
                (np.full(n * feats.size, value, np.float32), (np.repeat(np.arange(n), feats.size), np.tile(feats, n))),
                shape=out.shape,
            )
            out = (out + fill).tocsr()
        return out
    xd = to_dense(x, device).clone()
    if feats.size:
        xd[:, torch.as_tensor(feats, device=xd.device)] = value
    return xd


def _stack(xs: Sequence, device: torch.device):
    if all(sp.issparse(x) for x in xs):
        return sp.vstack([_as_csr(x) for x in xs]).tocsr()
    return torch.cat([to_dense(x, device) for x in xs])


class _Inputs:
    """The evaluation batch with fast column access (CSC built once for sparse inputs)."""

    def __init__(self, x, device: torch.device):
        self.device = device
        if sp.issparse(x):
            self.x = _as_csr(x)
            self.csc = self.x.tocsc()
            self.dense: torch.Tensor | None = None
        else:
            self.dense = to_dense(x, device)
            self.x = self.dense
            self.csc = None
        self.n_rows, self.n_features = int(self.x.shape[0]), int(self.x.shape[1])

    def cols(self, feats: np.ndarray, rows: torch.Tensor | None = None) -> torch.Tensor:
        """Dense [rows, len(feats)] float32 values of the given features."""
        if self.dense is not None:
            out = self.dense.index_select(1, torch.as_tensor(feats, dtype=torch.long, device=self.device))
        else:
            out = torch.from_numpy(np.asarray(self.csc[:, feats].toarray(), dtype=np.float32)).to(self.device)
        return out if rows is None else out[rows]

    def take(self, rows: torch.Tensor | None):
        """Model inputs of the given rows (CSR or dense tensor)."""
        if rows is None:
            return self.x
        if self.dense is not None:
            return self.dense[rows]
        return self.x[rows.cpu().numpy()]


# ----------------------------------------------------------------------------------------------------
# the engine: cached stage-1 activations and exact incremental evaluation


def _readout(objective: Objective, h: torch.Tensor) -> torch.Tensor:
    if h.shape[0] == 0:
        return h.new_zeros(0)
    if h.shape[0] <= _MAX_ROWS:
        return objective.readout(h).reshape(-1)
    return torch.cat([objective.readout(h[i : i + _MAX_ROWS]).reshape(-1) for i in range(0, h.shape[0], _MAX_ROWS)])


def _readout_bf16(objective: Objective, h: torch.Tensor) -> torch.Tensor:
    """``_readout`` with the stage-2 matmuls in bfloat16 (autocast), returned as float32."""
    with torch.autocast(device_type=h.device.type, dtype=torch.bfloat16):
        return _readout(objective, h).float()


class _Engine:
    """Per-sample weights, the cache ``H``/readouts at the current subset, and exact J deltas.

    Target and (when beta > 0) other samples form one batch; ``J = const + sum_b w_b * readout_b``
    with ``w_b = sign / n_target`` for targets and ``-beta * sign / n_other`` for the others.
    """

    def __init__(self, objective: Objective, full_evaluation: bool = False, precision: str = "fp32"):
        self.obj = objective
        self.low = precision == "bf16"  # keep bf16 readouts of the cache too, for bf16 candidate deltas
        self.model = objective.model
        self.device = torch.device(self.model.device)
        self.value = float(objective.value)
        self.sign = float(objective.sign)
        self.beta = float(objective.beta)
        self.full = bool(full_evaluation)
        xs = [objective.x_target]
        if self.beta != 0 and objective.x_other is not None and objective.x_other.shape[0] > 0:
            xs.append(objective.x_other)
        self.n_target = int(objective.x_target.shape[0])
        self.n_other = int(xs[1].shape[0]) if len(xs) > 1 else 0
        self.inp = _Inputs(xs[0] if len(xs) == 1 else _stack(xs, self.device), self.device)
        full_x = self.inp.csc if self.inp.csc is not None else self.inp.x
        prepare = getattr(self.model, "prepare_inputs", None)  # e.g. sparse non-zeros kept on the GPU
        self.first_order_x = prepare(full_x) if prepare is not None else full_x
        self.is_target = torch.zeros(self.inp.n_rows, dtype=torch.bool, device=self.device)
        self.is_target[: self.n_target] = True
        with torch.no_grad():
            h_o = [self.model.stage1(xs[1]).detach()] if len(xs) > 1 else []
            self.h0 = torch.cat([objective.target_stage1(), *h_o])
            self.r0 = _readout(objective, self.h0).detach()
            self.r0_low = _readout_bf16(objective, self.h0) if self.low else None
        self.const = self.beta * self.sign * float(self.r0[self.n_target :].double().mean()) if self.n_other else 0.0
        self.w = self.weights(None)
        self.h = self.h0.clone()
        self.r = self.r0.clone()
        self.r_low = None if self.r0_low is None else self.r0_low.clone()
        self.members = np.zeros(0, dtype=np.int64)

    # -- bookkeeping
    def weights(self, rows: torch.Tensor | None) -> torch.Tensor:
        tmask = self.is_target if rows is None else self.is_target[rows]
        nt = int(tmask.sum())
        no = int(tmask.numel()) - nt
        wt = self.sign / max(nt, 1)
        wo = -self.beta * self.sign / no if no else 0.0
        return torch.where(tmask, wt, wo).to(torch.float64)

    def value_j(self) -> float:
        return self.const + float((self.w * self.r.double()).sum())

    def noise(self) -> float:
        """Float32 rounding floor of a J difference (a swap must beat it to count as an improvement)."""
        return 8 * _EPS32 * float((self.w.abs() * self.r.double().abs()).sum())

    def _affine(self, feats: np.ndarray, rows: torch.Tensor | None) -> torch.Tensor:
        """Exact ``stage1`` of ``rows`` with ``feats`` set to v, from the unperturbed cache."""
        base = self.h0 if rows is None else self.h0[rows]
        if feats.size == 0:
            return base.clone()
        coef = self.value - self.inp.cols(feats, rows)
        w = self.model.stage1_rows(torch.as_tensor(feats, device=self.device)).detach().to(base.dtype)
        return base + coef.to(base.dtype) @ w

    def set_subset(self, feats) -> None:
        feats = np.unique(np.asarray(feats, dtype=np.int64))
        with torch.no_grad():
            if self.full:
                self.h = self.model.stage1(_perturb(self.inp.x, feats, self.value, self.device)).detach()
            else:
                self.h = self._affine(feats, None)
            self.r = _readout(self.obj, self.h).detach()
            if self.low:
                self.r_low = _readout_bf16(self.obj, self.h)
        self.members = feats

    def apply(self, feats: np.ndarray, signs: np.ndarray, new_members) -> None:
        """Move the cache to ``new_members`` after a swap whose changed columns are ``feats``."""
        new_members = np.unique(np.asarray(new_members, dtype=np.int64))
        if self.full:
            self.set_subset(new_members)
            return
        f = feats[signs != 0]
        self.members = new_members
        if f.size == 0:
            return
        with torch.no_grad():
            changed = (self.inp.cols(f) != self.value).any(1).nonzero().squeeze(1)
            if changed.numel():
                hb = self._affine(new_members, changed)  # recomputed from H0: no drift over many swaps
                self.h[changed] = hb
                self.r[changed] = _readout(self.obj, hb)
                if self.low:
                    self.r_low[changed] = _readout_bf16(self.obj, hb)

    # -- first order
    def scores(self, rows: torch.Tensor | None = None) -> np.ndarray:
        """``a_j``: first-order change of J when feature j is set to v, at the current subset."""
        w = self.weights(rows)
        h = (self.h if rows is None else self.h[rows]).detach().clone().requires_grad_(True)
        with torch.enable_grad():
            total = (_readout(self.obj, h).double() * w).sum()
            (g,) = torch.autograd.grad(total, h)
        with torch.no_grad():
            # first_order averages over samples; the weights already carry sign / n, so undo the mean.
            x = self.first_order_x if rows is None else self.inp.take(rows)
            a = self.model.first_order(x, g * h.shape[0], self.value)
        return a.detach().double().cpu().numpy()

    # -- exact evaluation
    def delta(
        self,
        feats: np.ndarray,
        signs: np.ndarray,
        rows: torch.Tensor | None = None,
        empty: bool = False,
        low: bool = False,
    ) -> np.ndarray:
        """Exact J change of m changes at once (incremental, ALGORITHM §4.5).

        Change c moves ``H[b]`` by ``sum_q signs[c, q] * (x[b, feats[c, q]] - v) * W[feats[c, q]]``:
        +1 restores a member to its original value, -1 sets a feature to v, 0 is padding. Only
        samples with a nonzero coefficient are re-read; every other sample keeps its cached readout.
        ``empty`` evaluates from the unperturbed state instead of the current subset. ``low`` (engine
        built with ``precision="bf16"``): readouts in bfloat16, against the cached bfloat16 readouts, so a
        ranking estimate rather than an exact value.
        """
        feats = np.asarray(feats, dtype=np.int64).reshape(len(feats), -1)
        signs = np.asarray(signs, dtype=np.float32).reshape(feats.shape)
        low = low and self.low
        read = _readout_bf16 if low else _readout
        hb = self.h0 if empty else self.h
        rb = (self.r0_low if empty else self.r_low) if low else (self.r0 if empty else self.r)
        if rows is not None:
            hb, rb = hb[rows], rb[rows]
        w = self.weights(rows)
        m, q = feats.shape
        n = hb.shape[0]
        out = torch.zeros(m, dtype=torch.float64, device=self.device)
        step = max(1, _MAX_COEF // max(1, q * n))
        with torch.no_grad():
            for s in range(0, m, step):
                f = np.where(signs[s : s + step] != 0, feats[s : s + step], 0)
                mc = f.shape[0]
                uniq, inv = np.unique(f, return_inverse=True)
                xc = self.inp.cols(uniq, rows) - self.value  # [n, U]
                wr = self.model.stage1_rows(torch.as_tensor(uniq, device=self.device)).detach().to(hb.dtype)
                inv_t = torch.as_tensor(inv.reshape(mc, q), dtype=torch.long, device=self.device)
                sg = torch.as_tensor(signs[s : s + step], dtype=hb.dtype, device=self.device)
                coef = xc.T.to(hb.dtype)[inv_t] * sg[..., None]  # [mc, q, n]
                ci, bi = (coef != 0).any(1).nonzero(as_tuple=True)
                if ci.numel() == 0:
                    continue
                # Identical (sample, active columns) pairs give identical rows: e.g. a sample where only
                # the removed member is open is shared by every candidate. Read each distinct row once.
                act = coef[ci, :, bi] != 0  # [P, q]
                codes = torch.where(act, (inv_t[ci] + 1) * 2 + (sg[ci] > 0).long(), 0)
                radix = 2 * uniq.size + 2
                if q * np.log2(radix) + np.log2(n + 1) < 62:  # one int64 key per pair (1-D unique is fast)
                    key = bi.clone()
                    for p in range(q):
                        key = key * radix + codes[:, p]
                    _, uinv = torch.unique(key, return_inverse=True)
                else:
                    _, uinv = torch.unique(torch.cat([codes, bi[:, None]], 1), dim=0, return_inverse=True)
                n_u = int(uinv.max()) + 1
                pos = torch.arange(ci.numel(), device=self.device)
                rep = torch.full((n_u,), ci.numel(), dtype=torch.long, device=self.device)
                rep = rep.scatter_reduce(0, uinv, pos, reduce="amin")
                du = torch.empty(n_u, dtype=torch.float64, device=self.device)
                for t in range(0, n_u, _MAX_ROWS):
                    c_, b_ = ci[rep[t : t + _MAX_ROWS]], bi[rep[t : t + _MAX_ROWS]]
                    hn = hb[b_].clone()
                    for p in range(q):
                        hn += coef[c_, p, b_].unsqueeze(1) * wr[inv_t[c_, p]]
                    du[t : t + _MAX_ROWS] = (read(self.obj, hn).double() - rb[b_].double()) * w[b_]
                out.index_add_(0, ci + s, du[uinv])
        return out.cpu().numpy()

    def delta_full(self, new_sets: Sequence[np.ndarray], rows: torch.Tensor | None = None) -> np.ndarray:
        """Exact J change of each candidate subset by full forwards of the perturbed inputs."""
        x = self.inp.take(rows)
        rb = (self.r if rows is None else self.r[rows]).double()
        w = self.weights(rows)
        out = np.zeros(len(new_sets))
        with torch.no_grad():
            for c, feats in enumerate(new_sets):
                hn = self.model.stage1(_perturb(x, feats, self.value, self.device))
                out[c] = float(((_readout(self.obj, hn).double() - rb) * w).sum())
        return out


# ----------------------------------------------------------------------------------------------------
# change specifications


def _swap_spec(cnt: Counter, r: int, cands: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Columns and signs of swapping one copy of member r for each candidate (multiset semantics)."""
    m = cands.size
    feats = np.empty((m, 2), dtype=np.int64)
    feats[:, 0] = r
    feats[:, 1] = cands
    moved = cands != r
    present = np.array([cnt.get(int(c), 0) > 0 for c in cands], dtype=bool)
    signs = np.zeros((m, 2), dtype=np.float32)
    signs[:, 0] = np.where(moved & (cnt.get(int(r), 0) == 1), 1.0, 0.0)
    signs[:, 1] = np.where(moved & ~present, -1.0, 0.0)
    return feats, signs


def _removal_spec(cnt: Counter, groups: Sequence[Sequence[int]], q: int) -> tuple[np.ndarray, np.ndarray]:
    """Columns/signs restoring the members of each group (a feature is restored when no copy is left)."""
    feats = np.zeros((len(groups), q), dtype=np.int64)
    signs = np.zeros((len(groups), q), dtype=np.float32)
    for g, members in enumerate(groups):
        removed = Counter(int(r) for r in members)
        p = 0
        for r, n in removed.items():
            if cnt.get(r, 0) == n:
                feats[g, p], signs[g, p] = r, 1.0
                p += 1
    return feats, signs


def _swapped(subset: np.ndarray, i: int, j: int) -> np.ndarray:
    out = subset.copy()
    out[i] = j
    return out


# ----------------------------------------------------------------------------------------------------
# public helpers


def candidate_pool(objective: Objective, window_mask: np.ndarray | None = None) -> np.ndarray:
    """Features that can change under v in at least one target sample (ALGORITHM §4.1), sorted int64.

    For sparse inputs and v = 0 these are the columns with any nonzero. ``window_mask`` (bool [N])
    further restricts the pool, e.g. to a cis window around the gene.
    """
    x = objective.x_target
    v = float(objective.value)
    n_rows, n_feat = int(x.shape[0]), int(x.shape[1])
    if sp.issparse(x):
        x = sp.csr_matrix(x)
        data = np.asarray(x.data)
        if v == 0:
            differs = np.zeros(n_feat, dtype=bool)
            differs[x.indices[data != 0]] = True
        else:
            equal = np.bincount(x.indices[data == v], minlength=n_feat)
            differs = equal < n_rows
    else:
        xd = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
        differs = (xd != v).any(0).cpu().numpy()
    if window_mask is not None:
        window_mask = np.asarray(window_mask)
        if window_mask.dtype != bool or window_mask.shape != (n_feat,):
            raise SettingsError(
                f"window_mask must be a boolean vector of length {n_feat} (one entry per feature), "
                f"got dtype {window_mask.dtype} and shape {window_mask.shape}."
            )
        differs = differs & window_mask
    return np.flatnonzero(differs).astype(np.int64)


def _objective_rows(objective: Objective, x, feats) -> tuple[torch.Tensor, torch.Tensor]:
    """(readout of x perturbed, readout of x original), by full forwards."""
    model = objective.model
    device = torch.device(model.device)
    with torch.no_grad():
        r1 = _readout(objective, model.stage1(_perturb(x, feats, float(objective.value), device)))
        r0 = _readout(objective, model.stage1(_perturb(x, np.zeros(0, np.int64), 0.0, device)))
    return r1.double(), r0.double()


def evaluate_subset(objective: Objective, subset, x=None) -> float:
    """Exact ``J(subset)`` by full forwards (``x`` replaces the target samples when given).

    Duplicated members count once. Includes the beta term when beta > 0 and ``x_other`` is set.
    """
    feats = np.unique(np.asarray(subset, dtype=np.int64))
    xt = objective.x_target if x is None else x
    r1, _ = _objective_rows(objective, xt, feats)
    j = float(objective.sign) * float(r1.mean())
    if objective.beta and objective.x_other is not None and objective.x_other.shape[0] > 0:
        o1, o0 = _objective_rows(objective, objective.x_other, feats)
        j -= float(objective.beta) * float(objective.sign) * float((o1 - o0).mean())
    return j


def per_sample_effect(objective: Objective, subset, x) -> np.ndarray:
    """``readout(x with subset set to v) - readout(x)`` per sample (no sign), float64 [B]."""
    r1, r0 = _objective_rows(objective, x, np.asarray(subset, dtype=np.int64))
    return (r1 - r0).cpu().numpy()


def first_order_scores(objective: Objective, subset=()) -> np.ndarray:
    """The first-order vector ``a`` [N] at ``subset`` (ALGORITHM §4.3; ``a`` at () is saliency)."""
    eng = _Engine(objective)
    eng.set_subset(np.asarray(subset, dtype=np.int64))
    return eng.scores()


# ----------------------------------------------------------------------------------------------------
# the search


def _check_settings(L: int, k: int, pool_size: int, init: str, order: str, max_sweeps: int, batch_size, max_steps):
    if L < 1:
        raise SettingsError(f"L (subset size) must be at least 1, got {L}.")
    if k < 1:
        raise SettingsError(f"k (candidates per step) must be at least 1, got {k}.")
    if init not in _INITS:
        raise SettingsError(f"init must be one of {', '.join(_INITS)}, got {init!r}.")
    if order not in _ORDERS:
        raise SettingsError(f"order must be one of {', '.join(_ORDERS)}, got {order!r}.")
    if max_sweeps < 1:
        raise SettingsError(f"max_sweeps must be at least 1, got {max_sweeps}.")
    if batch_size is not None and batch_size < 1:
        raise SettingsError(f"batch_size must be at least 1 (or None for all samples), got {batch_size}.")
    if max_steps is not None and max_steps < 0:
        raise SettingsError(f"max_steps must be >= 0 (or None), got {max_steps}.")
    if L > pool_size:
        raise SettingsError(
            f"L={L} exceeds the candidate pool: only {pool_size} features can change under the perturbation "
            "in at least one target sample. Lower L, widen the window, or choose a cell type/value with more "
            "variable features."
        )


def check_precision(precision: str, faithful: bool, full_evaluation: bool = False) -> None:
    """Raise ``SettingsError`` for an unknown precision or bf16 with a float32-only reference mode."""
    if precision not in PRECISIONS:
        raise SettingsError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}.")
    if precision != "fp32" and (faithful or full_evaluation):
        raise SettingsError(
            "precision='bf16' applies to GRIDS's incremental candidate ranking only; the faithful / "
            "full-evaluation reference modes run in float32. Drop --faithful or --precision."
        )


@dataclass
class SubsetEffects:
    """Exact effects of one subset: ordered members, drop-one, pairwise joint drops, singles."""

    subset: np.ndarray  # ordered by drop_one, largest first
    drop_one: np.ndarray  # J(S minus r) - J(S)
    pairwise: np.ndarray  # J(S minus {r_i, r_j}) - J(S) of the first min(L, PAIRWISE_MAX) members; diagonal = drop_one
    single: np.ndarray  # J({r}) - J(empty)
    objective: float
    baseline_objective: float
    n_evaluations: int


def _effects(eng: _Engine, subset: np.ndarray, with_redundancy: bool = True) -> SubsetEffects:
    subset = np.asarray(subset, dtype=np.int64)
    L = subset.size
    eng.set_subset(np.zeros(0, dtype=np.int64))
    baseline = eng.value_j()
    eng.set_subset(subset)
    cnt = Counter(int(r) for r in subset)
    J = eng.value_j()
    f1, s1 = _removal_spec(cnt, [[int(r)] for r in subset], 1)
    drop = eng.delta(f1, s1)
    order_idx = np.argsort(-drop, kind="stable")
    subset, drop = subset[order_idx], drop[order_idx]
    P = min(L, PAIRWISE_MAX)
    pairwise = np.full((P, P), np.nan)
    single = np.full(L, np.nan)
    n = 2 + L
    if with_redundancy:
        iu, ju = np.triu_indices(P, 1)
        if iu.size:
            f2, s2 = _removal_spec(cnt, [[int(subset[i]), int(subset[j])] for i, j in zip(iu, ju, strict=True)], 2)
            pw = eng.delta(f2, s2)
            pairwise[iu, ju] = pw
            pairwise[ju, iu] = pw
        single = eng.delta(subset[:, None], -np.ones((L, 1), np.float32), empty=True)
        n += iu.size + L
    np.fill_diagonal(pairwise, drop[:P])
    return SubsetEffects(subset, drop, pairwise, np.asarray(single, np.float64), J, baseline, n)


def subset_effects(objective: Objective, subset, with_redundancy: bool = True) -> SubsetEffects:
    """Exact, incremental drop-one / pairwise / single effects of any subset (e.g. a baseline's top-L)."""
    return _effects(_Engine(objective), np.asarray(subset, dtype=np.int64), with_redundancy)


def grids_search(
    objective: Objective,
    L: int,
    *,
    k: int = 32,
    init: str = "gradient",
    candidates: np.ndarray | None = None,
    max_sweeps: int = 20,
    max_steps: int | None = None,
    max_time_s: float | None = None,
    order: str = "cyclic",
    batch_size: int | None = None,
    seed: int = 0,
    faithful: bool = False,
    full_evaluation: bool = False,
    progress: Callable[[float, str], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    with_redundancy: bool = True,
    precision: str = "fp32",
) -> SearchResult:
    """Minimise J over subsets of L features by first-order-guided coordinate descent (ALGORITHM §4).

    * ``candidates``: restrict the pool (intersected with :func:`candidate_pool`).
    * Step budget: ``max_steps`` (default ``L * max_sweeps``); stops earlier when every row has been
      tried since the last accepted swap (``converged``), or at ``max_time_s``.
    * ``batch_size``: when the target (or other) set is larger, each step draws a seeded minibatch to
      rank and score the candidates; the best is accepted only if it lowers the full-batch J (exact,
      incremental), then full-batch polish sweeps run until convergence (at most the same budget).
    * ``faithful``: the reference behaviour — random init, candidates may be members (duplicates),
      the best candidate on a minibatch of 64 target samples replaces the row unconditionally, a fixed
      ``max_steps`` (default ``L * max_sweeps``) steps, and the LAST subset is returned. The trajectory
      is then J of the current subset after each step.
    * ``n_evaluations`` counts exact subset evaluations of the search (init, candidates, checks);
      the redundancy outputs (``with_redundancy``) add L + L(L-1)/2 + L more. Without them ``pairwise``
      and ``single`` are NaN (``drop_one`` is always computed: it orders the subset).
    * ``precision``: ``"bf16"`` ranks candidates with bfloat16 readouts and accepts on float32 (module
      docstring); every reported J and effect is float32. Not with ``faithful`` or ``full_evaluation``.
    """
    t0 = time.perf_counter()
    L, k = int(L), int(k)
    pool = candidate_pool(objective)
    if candidates is not None:
        pool = np.intersect1d(pool, np.asarray(candidates, dtype=np.int64))
    _check_settings(L, k, pool.size, init, order, max_sweeps, batch_size, max_steps)
    check_precision(precision, faithful, full_evaluation)
    rng = np.random.default_rng(seed)
    eng = _Engine(objective, full_evaluation, precision)
    init_used = "random" if faithful else init
    n_eval = 1
    baseline = eng.value_j()

    # --- initial subset
    if init_used == "random":
        subset = rng.choice(pool, size=L, replace=False).astype(np.int64)
    elif init_used == "gradient":
        a0 = eng.scores()
        subset = pool[np.argsort(a0[pool], kind="stable")[:L]]
    else:
        eff = eng.delta(pool[:, None], -np.ones((pool.size, 1), np.float32), empty=True)
        n_eval += pool.size
        subset = pool[np.argsort(eff, kind="stable")[:L]]
    subset = np.asarray(subset, dtype=np.int64)
    eng.set_subset(subset)
    cnt = Counter(int(r) for r in subset)
    J = eng.value_j()
    trajectory = [J]
    best_J, best_subset = J, subset.copy()
    pool_pos = {int(f): p for p, f in enumerate(pool)}

    # --- minibatches
    def covers_all(size: int | None) -> bool:
        return size is None or (eng.n_target <= size and eng.n_other <= size)

    def sampler(size: int | None):
        if covers_all(size):
            return None
        t = rng.choice(eng.n_target, size=min(size, eng.n_target), replace=False)
        parts = [np.sort(t)]
        if eng.n_other:
            o = rng.choice(eng.n_other, size=min(size, eng.n_other), replace=False)
            parts.append(eng.n_target + np.sort(o))
        return torch.as_tensor(np.concatenate(parts), dtype=torch.long, device=eng.device)

    base_budget = L * max_sweeps if max_steps is None else int(max_steps)
    mb = FAITHFUL_BATCH if faithful and batch_size is None else batch_size
    use_mb = not covers_all(mb)
    if faithful:
        phases = [("faithful", base_budget)]
    elif use_mb:
        phases = [("minibatch", base_budget), ("polish", min(base_budget, L * max_sweeps))]
    else:
        phases = [("full", base_budget)]
    total_budget = max(1, sum(b for _, b in phases))

    n_steps = n_accepted = 0
    converged = False
    last_report = 0.0
    a_cache: np.ndarray | None = None
    tol_noise = eng.noise()
    timed_out = False
    if progress:
        progress(0.0, f"GRIDS: L={L}, k={k}, pool {pool.size} features, J0={J:.4g}")

    def candidates_for(a: np.ndarray) -> np.ndarray:
        score = a[pool].copy()
        if not faithful:
            score[[pool_pos[int(f)] for f in cnt]] = np.inf
        kk = min(k, int(np.isfinite(score).sum()))
        if kk <= 0:
            return np.zeros(0, dtype=np.int64)
        part = np.argpartition(score, kk - 1)[:kk] if kk < score.size else np.arange(score.size)
        part = part[np.lexsort((part, score[part]))]
        return pool[part]

    for phase, budget in phases:
        if timed_out:
            break
        rows_tried: set[int] = set()
        perm: list[int] = []
        a_cache = None
        for step in range(budget):
            if cancel is not None and cancel():
                raise CancelledError("GRIDS search cancelled by the user.")
            if max_time_s is not None and time.perf_counter() - t0 > max_time_s:
                timed_out = True
                break
            if order == "random":
                if not perm:
                    perm = list(rng.permutation(L))
                i = int(perm.pop(0))
            else:
                i = step % L
            rows = sampler(mb) if phase in ("minibatch", "faithful") else None
            if rows is None:
                if a_cache is None:
                    a_cache = eng.scores()
                a = a_cache
            else:
                a = eng.scores(rows)
            cands = candidates_for(a)
            r = int(subset[i])
            accepted = False
            if cands.size:
                feats, signs = _swap_spec(cnt, r, cands)
                if eng.full:
                    deltas = eng.delta_full([_swapped(subset, i, int(c)) for c in cands], rows)
                else:
                    deltas = eng.delta(feats, signs, rows, low=eng.low)
                n_eval += cands.size
                if eng.low:  # bf16 ranked; the shortlist is scored exactly (float32) and decides
                    short = np.argsort(deltas, kind="stable")[:SHORTLIST]
                    deltas = np.full(cands.size, np.inf)
                    deltas[short] = eng.delta(feats[short], signs[short], rows)
                    n_eval += short.size
                b = int(np.argmin(deltas))
                if faithful:
                    accepted = True
                else:
                    d = deltas[b]
                    if rows is not None:  # minibatch choice, full-batch acceptance
                        n_eval += 1
                        if eng.full:
                            d = eng.delta_full([_swapped(subset, i, int(cands[b]))])[0]
                        else:
                            d = eng.delta(feats[b : b + 1], signs[b : b + 1])[0]
                    accepted = d < -max(REL_TOL * abs(J), tol_noise)
                if accepted and int(cands[b]) != r:
                    new = _swapped(subset, i, int(cands[b]))
                    eng.apply(feats[b], signs[b], new)
                    cnt[r] -= 1
                    if cnt[r] == 0:
                        del cnt[r]
                    cnt[int(cands[b])] += 1
                    subset = new
                    J = eng.value_j()
                    tol_noise = eng.noise()
                    a_cache = None
                    n_accepted += 1
                    rows_tried = set()
                else:
                    accepted = False
            n_steps += 1
            if J < best_J:
                best_J, best_subset = J, subset.copy()
            trajectory.append(J if faithful else min(trajectory[-1], J))
            if not accepted:
                rows_tried.add(i)
            now = time.perf_counter()
            if progress and now - last_report > 0.2:
                last_report = now
                progress(min(0.99, n_steps / total_budget), f"{phase} step {n_steps}: J={J:.4g}, {n_accepted} swaps")
            if not faithful and len(rows_tried) >= L:
                converged = phase != "minibatch"
                break

    # --- outputs
    eff = _effects(eng, subset if faithful else best_subset, with_redundancy)
    final, drop, pairwise, single, J_final = eff.subset, eff.drop_one, eff.pairwise, eff.single, eff.objective
    if progress:
        progress(1.0, f"GRIDS done: J={J_final:.4g} (baseline {baseline:.4g}), {n_steps} steps")
    settings = {
        "L": L,
        "k": k,
        "init": init_used,
        "candidates": None if candidates is None else int(np.asarray(candidates).size),
        "max_sweeps": max_sweeps,
        "max_steps": max_steps,
        "max_time_s": max_time_s,
        "order": order,
        "batch_size": mb,
        "seed": seed,
        "faithful": faithful,
        "full_evaluation": full_evaluation,
        "with_redundancy": with_redundancy,
        "precision": precision,
        "value": eng.value,
        "sign": eng.sign,
        "beta": eng.beta,
        "rel_tol": REL_TOL,
        "objective": objective.name,
        "n_target": eng.n_target,
        "n_other": eng.n_other,
        "pool_size": int(pool.size),
        "device": str(eng.device),
    }
    return SearchResult(
        subset=final.astype(np.int64),
        objective=J_final,
        baseline_objective=baseline,
        trajectory=[float(t) for t in trajectory],
        drop_one=drop,
        pairwise=pairwise,
        single=np.asarray(single, dtype=np.float64),
        n_steps=n_steps,
        n_accepted=n_accepted,
        n_evaluations=n_eval,
        converged=converged,
        runtime_s=time.perf_counter() - t0,
        settings=settings,
    )
