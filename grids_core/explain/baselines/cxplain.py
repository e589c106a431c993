"""CXPlain: a small U-Net trained to predict Granger-causal (masked-loss) importances of feature windows.

Windows. Peaks: the pool features in genome (index) order, cut into windows of ``window`` (w = 4)
consecutive pool features (1-D). Images (``image_shape=(H, W)``): the full pixel grid in
``window x window`` (2 x 2) tiles (2-D).

Targets (CXPlain's causal objective). With the loss ``eps_b = -f_b`` (so that a larger loss means a
higher J, the quantity GRIDS lowers), the importance of window i for sample b is the loss increase when
the window is masked, ``delta_bi = max(0, f_b(x_b) - f_b(x_b with window i set to v))`` (exact, one
incremental readout per (sample, window holding a feature with x_bj != v)), normalised over windows to
a distribution ``omega_b = delta_b / sum_i delta_bi``; samples where no window lowers f are left out.
This is the GRIDS direction (the reference's brain run explained the opposite one).

Explainer. A U-Net (window embedding by a strided conv, two down/up levels with skips, ReLU) plus a
learned per-window positional embedding (convolutions alone are translation-equivariant and could not
tell one locus from another), trained with Adam on the cross-entropy to omega_b (= KL up to a
constant); the output is a softmax over the windows. Parameters come from a private seeded generator.
Scores: the mean predicted importance over the target samples of the feature's window; within a window,
features are ordered by how many target samples they are active in (a tie-break smaller than any gap
between windows). beta is not used (CXPlain explains the target samples).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from grids_core.errors import SettingsError
from grids_core.explain.base import Objective, to_dense
from grids_core.explain.baselines._common import (
    Cancel,
    Progress,
    active_pairs,
    as_pool,
    check_cancel,
    grouped_delta,
    pool_scores,
    report,
    samples,
    take_rows,
    torch_generator,
    values,
)


class _Layout:
    """Where each pool feature sits in the explainer's input and which window it belongs to."""

    def __init__(self, pool: np.ndarray, n_features: int, window: int, image_shape):
        self.pool = pool
        self.w = int(window)
        if image_shape is None:
            self.dims = 1
            n_win = math.ceil(len(pool) / self.w)
            self.grid = (int(math.ceil(n_win / 4) * 4),)
            self.length = self.grid[0] * self.w
            self.win_of_pool = np.arange(len(pool)) // self.w
        else:
            hh, ww = (int(v) for v in image_shape)
            if hh * ww != n_features:
                raise SettingsError(f"image_shape {image_shape} does not match {n_features} features.")
            self.dims = 2
            self.image = (hh, ww)
            self.grid = (int(math.ceil(hh / self.w / 4) * 4), int(math.ceil(ww / self.w / 4) * 4))
            r, c = np.divmod(pool, ww)
            self.win_of_pool = (r // self.w) * self.grid[1] + (c // self.w)
        self.n_win = int(np.prod(self.grid))
        self.valid = np.zeros(self.n_win, dtype=bool)
        self.valid[self.win_of_pool] = True

    def inputs(self, x, rows: np.ndarray, device) -> torch.Tensor:
        """Explainer input for the given sample rows: [b, 1, *spatial] (zero padded)."""
        xr = take_rows(x, rows)
        if self.dims == 1:
            xs = xr[:, self.pool]
            xd = torch.as_tensor(np.asarray(xs.toarray(), np.float32)) if sp.issparse(xs) else to_dense(xs)
            out = torch.zeros(len(rows), 1, self.length)
            out[:, 0, : xd.shape[1]] = xd.cpu()
        else:
            xd = to_dense(xr).cpu().reshape(len(rows), *self.image)
            out = torch.zeros(len(rows), 1, self.grid[0] * self.w, self.grid[1] * self.w)
            out[:, 0, : self.image[0], : self.image[1]] = xd
        return out.to(device)


def _init_params(dims: int, w: int, c: int, grid: tuple[int, ...], gen: torch.Generator) -> dict:
    """He-normal conv weights from the private generator, zero biases."""

    def conv(cout: int, cin: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (cout, cin, *([k] * dims))
        fan_in = cin * k**dims
        return torch.randn(*shape, generator=gen) * math.sqrt(2.0 / fan_in), torch.zeros(cout)

    p = {}
    p["patch"] = conv(c, 1, w)
    p["e1"] = conv(c, c, 3)
    p["e2"] = conv(2 * c, c, 3)
    p["mid"] = conv(4 * c, 2 * c, 3)
    p["d2"] = conv(2 * c, 6 * c, 3)
    p["d1"] = conv(c, 3 * c, 3)
    p["head"] = conv(1, c, 1)
    flat = {f"{k}.w": v[0] for k, v in p.items()} | {f"{k}.b": v[1] for k, v in p.items()}
    flat["pos"] = torch.randn(c, *grid, generator=gen) * 0.1
    return flat


def _unet(params: dict, x: torch.Tensor, dims: int, w: int) -> torch.Tensor:
    """Forward pass: [b, 1, *spatial] -> window logits [b, n_win]."""
    conv = F.conv1d if dims == 1 else F.conv2d
    pool = F.max_pool1d if dims == 1 else F.max_pool2d

    def layer(name: str, h: torch.Tensor, **kw) -> torch.Tensor:
        return conv(h, params[f"{name}.w"], params[f"{name}.b"], **kw)

    h = F.relu(layer("patch", x, stride=w)) + params["pos"]
    s1 = F.relu(layer("e1", h, padding=1))
    s2 = F.relu(layer("e2", pool(s1, 2), padding=1))
    mid = F.relu(layer("mid", pool(s2, 2), padding=1))
    u2 = F.relu(layer("d2", torch.cat([F.interpolate(mid, scale_factor=2), s2], 1), padding=1))
    u1 = F.relu(layer("d1", torch.cat([F.interpolate(u2, scale_factor=2), s1], 1), padding=1))
    return layer("head", u1).reshape(x.shape[0], -1)


def window_targets(objective: Objective, s, layout: _Layout, cancel: Cancel = None):
    """Normalised masked-loss importances over windows for the target samples: CSR [B_t, n_win]."""
    rows, cols, d = active_pairs(take_rows(s.x, np.arange(s.n_target)), layout.pool, float(objective.value))
    win = layout.win_of_pool[np.searchsorted(layout.pool, cols)]
    key = rows * layout.n_win + win
    uniq, grp = np.unique(key, return_inverse=True)
    dev = s.h0.device
    drops = np.zeros(len(uniq))
    chunk = 4096
    order = np.argsort(grp, kind="stable")
    bounds = np.searchsorted(grp[order], np.arange(0, len(uniq) + chunk, chunk))
    for i, st in enumerate(range(0, len(uniq), chunk)):
        check_cancel(cancel)
        sel = order[bounds[i] : bounds[i + 1]]
        n_g = min(chunk, len(uniq) - st)
        delta = grouped_delta(objective.model, n_g, grp[sel] - st, cols[sel], d[sel], dev)
        r = torch.as_tensor(uniq[st : st + n_g] // layout.n_win, device=dev)
        drops[st : st + n_g] = (s.f0[r] - values(objective, s.h0[r] + delta)).double().cpu().numpy()
    drops = np.maximum(drops, 0.0)
    t = sp.csr_matrix((drops, (uniq // layout.n_win, uniq % layout.n_win)), shape=(s.n_target, layout.n_win))
    t.eliminate_zeros()
    tot = np.asarray(t.sum(1)).ravel()
    t = sp.diags(np.where(tot > 0, 1.0 / np.maximum(tot, 1e-300), 0.0)) @ t
    return sp.csr_matrix(t), tot > 0


def cxplain_scores(objective: Objective, pool, *, L: int = 10, seed: int = 0, progress: Progress = None,
                   cancel: Cancel = None, window: int | None = None, image_shape=None, steps: int = 200,
                   batch_size: int = 16, lr: float = 3e-3, channels: int = 8, **_: object) -> np.ndarray:
    """CXPlain scores (see the module docstring). ``window`` defaults to 4 (peaks) or 2 (2x2 pixels)."""
    if steps < 1 or batch_size < 1 or channels < 1:
        raise SettingsError("cxplain needs steps, batch_size and channels >= 1.")
    model = objective.model
    n = model.n_features
    pool = as_pool(pool, n)
    w = int(window) if window is not None else (4 if image_shape is None else 2)
    if w < 1:
        raise SettingsError(f"cxplain window must be >= 1 (got {w}).")
    layout = _Layout(pool, n, w, image_shape)
    s = samples(objective, include_other=False)
    dev = s.h0.device
    report(progress, 0.0, "CXPlain: masked-loss targets")
    targets, usable = window_targets(objective, s, layout, cancel)
    gen = torch_generator(seed)
    params = {k: v.to(dev).requires_grad_(True) for k, v in _init_params(layout.dims, w, channels, layout.grid, gen).items()}
    invalid = torch.as_tensor(~layout.valid, device=dev)
    train_rows = np.flatnonzero(usable)
    rng = np.random.default_rng(seed)

    def predict(rows: np.ndarray) -> torch.Tensor:
        logits = _unet(params, layout.inputs(s.x, rows, dev), layout.dims, w)
        return torch.log_softmax(logits.masked_fill(invalid, -torch.inf), 1)

    if len(train_rows):
        opt = torch.optim.Adam(list(params.values()), lr=lr)
        perm, pos = rng.permutation(train_rows), 0
        for step in range(steps):
            check_cancel(cancel)
            if pos >= len(perm):
                perm, pos = rng.permutation(train_rows), 0
            rows = perm[pos : pos + batch_size]
            pos += batch_size
            tgt = torch.as_tensor(targets[rows].toarray(), dtype=torch.float32, device=dev)
            opt.zero_grad()
            with torch.enable_grad():
                logp = predict(rows)
                loss = -(tgt * logp.masked_fill(invalid, 0.0)).sum(1).mean()
                loss.backward()
            opt.step()
            if (step + 1) % 20 == 0 or step + 1 == steps:
                report(progress, 0.1 + 0.85 * (step + 1) / steps, f"CXPlain training {step + 1}/{steps}")
        with torch.no_grad():
            imp = torch.zeros(layout.n_win, dtype=torch.float64, device=dev)
            for st in range(0, s.n_target, 256):
                imp += predict(np.arange(st, min(st + 256, s.n_target))).exp().double().sum(0)
            win_score = (imp / s.n_target).cpu().numpy()
    else:
        win_score = np.zeros(layout.n_win)
    base = win_score[layout.win_of_pool]
    distinct = np.unique(base)
    gaps = np.diff(distinct)
    gap = float(gaps[gaps > 0].min()) if np.any(gaps > 0) else 1.0
    rows, cols, _ = active_pairs(take_rows(s.x, np.arange(s.n_target)), pool, float(objective.value))
    activity = np.bincount(np.searchsorted(pool, cols), minlength=len(pool)) / max(s.n_target, 1)
    report(progress, 1.0, "CXPlain done")
    return pool_scores(n, pool, base + 0.5 * gap * activity)
