"""Full-batch fit of the cis hubs before the rest of the surrogate trains (``train``, phase "cis").

Trained together with the network on minibatches, the hubs stayed in their linear regime (input weights
~0.1, so ``1 - exp(-s)`` ~ s): the surrogate was additive over redundant enhancers and the chromosome
encoder took the peaks' effects. Fitted first, on all paired training cells at once, with a free
intercept per (cell type, gene) standing in for the cell-type programme, the hubs only have the
within-type variation to explain, which is where enhancer logic shows; deterministic full-batch Adam
steps then move the input weights of redundant enhancers towards saturation (README, "The surrogate").
The error is taken after the output ReLU (``train.relu_error``), so an intercept below zero switches a
gene's hubs off in the types where it is silent and a hub need not stay small to be harmless there.

Started from nearly equal small input weights, two hubs could settle on the same enhancer group and
leave another group unlearned (default bundle: one group missing on 3 of the 16 marker pairs). A penalty
on the input that two hubs of a gene share at one peak keeps each peak mostly in one hub.

With a promoter term (``CisHubs.linear``) the same fit learns each gene's additive promoter weights.
The cis sums of all cells and genes are one sparse product ``s = M @ hubs.rows()`` with a fixed design
``M[(cell, gene), pair] = x[cell, peak(pair)]``, built once (CSR, and its transpose for the gradient).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from grids_core.explain.base import torch_csr
from grids_core.surrogate import CisHubs, hub_output


class _SparseProduct(torch.autograd.Function):
    """``M @ a`` with gradient ``M.T @ g`` (both CSR, precomputed)."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, m: torch.Tensor, mt: torch.Tensor) -> torch.Tensor:
        ctx.mt = mt
        return m @ a

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        return ctx.mt @ g, None, None


def hub_design(hubs: CisHubs, x: sp.csr_matrix, transpose: bool = True,
               chunk: int = 256) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``M`` [cells * genes, pairs] and (when ``transpose``) its transpose, as torch CSR on the hubs' device.

    Built ``chunk`` cells at a time so that the temporaries stay small next to ``M`` itself.
    """
    x = sp.csr_matrix(x)
    ptr = hubs.peak_ptr().cpu().numpy()
    gene = hubs.pair_gene.cpu().numpy()
    blocks = []
    for lo in range(0, x.shape[0], chunk):
        xc = x[lo : lo + chunk].tocoo()
        count = ptr[xc.col + 1] - ptr[xc.col]
        nz = np.repeat(np.arange(len(xc.col)), count)
        pair = np.arange(len(nz)) + (ptr[xc.col] - (np.cumsum(count) - count))[nz]
        rows = xc.row[nz].astype(np.int64) * hubs.n_genes + gene[pair]
        blocks.append(sp.csr_matrix((np.asarray(xc.data, np.float32)[nz], (rows, pair)),
                                    shape=(xc.shape[0] * hubs.n_genes, len(gene))))
    m = sp.vstack(blocks, format="csr") if blocks else sp.csr_matrix((0, len(gene)), dtype=np.float32)
    del blocks
    dev = hubs.logits.device
    return torch_csr(m, dev), torch_csr(m.T.tocsr(), dev) if transpose else None


@dataclass
class CisData:
    """Cells for the hub fit: ATAC, targets [cells, genes] and cell-type indices."""

    x: sp.csr_matrix
    y: torch.Tensor
    cell_type: torch.Tensor


def fit_cis_hubs(
    hubs: CisHubs,
    train: CisData,
    val: CisData | None,
    n_types: int,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    steps: int,
    lr: float,
    l1: float,
    overlap: float = 0.0,
    check_every: int = 10,
    tick: Callable[[float], None] | None = None,
) -> dict:
    """Fit ``hubs`` in place: ``y ~ intercept[cell type, gene] + hubs(x)`` on ``train``.

    ``loss_fn(pre, y)`` is the element-wise squared error [cells, genes]; ``l1`` weighs
    ``sum |hubs.rows()|`` (hub input weights and promoter weights) per gene; ``overlap`` weighs the input
    two hubs share, ``sum_k<l w_jk w_jl`` over each gene's pairs, so that hubs take distinct peak groups
    (module docstring). With ``val`` cells, every ``check_every`` steps each gene keeps its cis parameters
    from the step with its lowest validation error so far (per-gene early stopping: genes with nothing
    cis to learn keep hubs that add ~nothing). The intercepts are discarded (the rest of the network
    replaces them). Returns a report.
    """
    n_genes = train.y.shape[1]
    onehot = F.one_hot(train.cell_type, n_types).to(train.y.dtype)
    with torch.no_grad():  # start from the per-type means: the hubs explain what varies inside a type
        intercept = (onehot.T @ train.y) / onehot.sum(0).clamp_min(1)[:, None]
    intercept.requires_grad_(True)
    m, mt = hub_design(hubs, train.x)
    if val is not None:
        mv, _ = hub_design(hubs, val.x, transpose=False)
        onehot_v = F.one_hot(val.cell_type, n_types).to(val.y.dtype)

    def val_error() -> torch.Tensor:  # [genes]
        with torch.no_grad():
            s = (mv @ hubs.rows()).reshape(len(val.y), n_genes, -1)
            return loss_fn(onehot_v @ intercept + hub_output(hubs.weight, s), val.y).mean(0)

    if val is not None:
        best_err = val_error()
        best = [p.detach().clone() for p in hubs.parameters()]
    opt = torch.optim.Adam([*hubs.parameters(), intercept], lr=lr)
    first = last = None
    for step in range(1, steps + 1):
        rows = hubs.rows()
        s = _SparseProduct.apply(rows, m, mt).reshape(len(train.y), n_genes, -1)
        loss = loss_fn(onehot @ intercept + hub_output(hubs.weight, s), train.y).mean()
        loss = loss + l1 * rows.abs().sum() / n_genes
        if overlap:
            w = rows[:, : hubs.weight.shape[1]]
            loss = loss + overlap * (w.sum(1) ** 2 - (w**2).sum(1)).sum() / (2 * n_genes)
        opt.zero_grad()
        loss.backward()
        opt.step()
        last = loss.item()
        first = last if first is None else first
        if val is not None and (step % check_every == 0 or step == steps):
            err = val_error()
            better = err < best_err
            best_err = torch.where(better, err, best_err)
            pairs = better[hubs.pair_gene]
            for p, b in zip(hubs.parameters(), best, strict=True):  # per gene: weight [genes, K]; logits, linear by pair
                sel = better if p is hubs.weight else pairs
                b[sel] = p.detach()[sel]
        if tick is not None:
            tick(last)
    if val is not None:
        with torch.no_grad():
            for p, b in zip(hubs.parameters(), best, strict=True):
                p.copy_(b)
    return {"steps": steps, "loss_start": first, "loss_end": last,
            "val_error": float(best_err.mean()) if val is not None else None}
