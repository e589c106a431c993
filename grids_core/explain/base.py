"""The two-stage model interface every explainer works on, and the GRIDS objective.

A model is explainable when it splits as ``f(x) = stage2(stage1(x))`` with ``stage1`` affine in x:
``stage1(x) = c + x @ W`` (W: [N, H]). Setting feature j of sample b from ``a`` to ``v`` then moves
``stage1(x)[b]`` by ``(v - a) * W[j]`` exactly, which is what makes incremental exact evaluation cheap.

Inputs ``x`` are either a ``scipy.sparse.csr_matrix`` (ATAC: binary, sparse) or a dense
``torch.Tensor`` (MNIST pixels), shape [B, N].
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import scipy.sparse as sp
import torch


@runtime_checkable
class TwoStageModel(Protocol):
    """What the search and the baselines need from a model.

    Optionally ``prepare_inputs(x)`` returns what ``first_order`` is given for repeated passes over the
    same batch (the surrogate keeps sparse non-zeros on its GPU); without it, ``x`` itself.
    """

    n_features: int

    def stage1(self, x) -> torch.Tensor:
        """Affine first stage: [B, N] inputs -> [B, H] activations (float32, model device)."""

    def stage1_rows(self, idx: torch.Tensor) -> torch.Tensor:
        """Rows ``W[idx]`` of the affine map: [m] feature indices -> [m, H]."""

    def first_order(self, x, grad: torch.Tensor, value: float) -> torch.Tensor:
        """``a_j = mean_b (value - x[b, j]) * <W[j], grad[b]>`` for every feature j -> [N].

        ``x`` are the *original* inputs, ``grad`` [B, H] is dJ/d stage1 at the current perturbed input.
        """

    @property
    def device(self) -> torch.device:
        """Device the model's tensors live on."""


class DenseAffineStage1:
    """Mixin giving ``stage1`` / ``stage1_rows`` / ``first_order`` from a dense (c, W) pair.

    Subclasses implement ``stage1_params() -> (c [H], W [N, H])``. Fine for N up to ~1e4 (MNIST).
    """

    def stage1_params(self) -> tuple[torch.Tensor, torch.Tensor]:  # pragma: no cover - interface
        raise NotImplementedError

    @property
    def n_features(self) -> int:
        return int(self.stage1_params()[1].shape[0])

    def stage1(self, x) -> torch.Tensor:
        c, w = self.stage1_params()
        return c + matmul_inputs(x, w)

    def stage1_rows(self, idx: torch.Tensor) -> torch.Tensor:
        return self.stage1_params()[1][idx.to(self.stage1_params()[1].device)]

    def first_order(self, x, grad: torch.Tensor, value: float) -> torch.Tensor:
        # mean_b (v - x_bj) <W_j, g_b> = (v <W_j, sum_b g_b> - <W_j, (x^T g)_j>) / B: no [B, N] tensor.
        _, w = self.stage1_params()
        grad = grad.to(device=w.device, dtype=w.dtype)
        xtg = matmul_inputs(transpose_inputs(x), grad)  # [N, H]
        return (value * (w @ grad.sum(0)) - (xtg * w).sum(1)) / grad.shape[0]


def to_dense(x, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Dense float tensor of inputs given as scipy sparse, numpy or torch."""
    if sp.issparse(x):
        return torch.from_numpy(np.asarray(x.toarray(), dtype=np.float32)).to(device=device, dtype=dtype)
    if isinstance(x, np.ndarray):
        return torch.from_numpy(x.astype(np.float32, copy=False)).to(device=device, dtype=dtype)
    return x.to(device=device, dtype=dtype)


def transpose_inputs(x):
    """``x.T`` of sparse (as CSR), numpy or torch inputs."""
    if sp.issparse(x):
        return x.T.tocsr()
    return x.T


def torch_csr(m, device: torch.device | str = "cpu") -> torch.Tensor:
    """A scipy sparse matrix as a float32 torch CSR tensor on ``device`` (int32 indices when they fit:
    ~2.6x faster products on CPU than int64)."""
    m = sp.csr_matrix(m)
    index = np.int32 if m.nnz < np.iinfo(np.int32).max else np.int64
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(
            torch.from_numpy(m.indptr.astype(index, copy=False)), torch.from_numpy(m.indices.astype(index, copy=False)),
            torch.from_numpy(np.asarray(m.data, dtype=np.float32)), m.shape, device=device, check_invariants=False,
        )


def matmul_inputs(x, w: torch.Tensor) -> torch.Tensor:
    """``x @ w`` for sparse (scipy CSR) or dense inputs, without densifying sparse x."""
    if sp.issparse(x):
        return (torch_csr(x, w.device) @ w.to(torch.float32)).to(w.dtype)
    return to_dense(x, w.device, w.dtype) @ w


@dataclass
class Objective:
    """``J(S) = mean_{b in target} sign * readout(stage1(x_b with S set to value))`` (ALGORITHM §3).

    With ``beta > 0`` and ``x_other`` given, the specificity term
    ``- beta * mean_{b in other} sign * (readout(perturbed) - readout(original))`` is added.
    The search *minimises* J. ``readout`` maps stage-1 activations [B, H] to one score per sample [B]
    (for a gene: the surrogate's prediction of that gene only; for MNIST: log-odds of class 8).
    """

    model: TwoStageModel
    readout: Callable[[torch.Tensor], torch.Tensor]
    x_target: object
    value: float = 0.0
    sign: float = 1.0
    beta: float = 0.0
    x_other: object | None = None
    name: str = ""
    h_target: torch.Tensor | None = None  # stage1(x_target) when already computed (shared across genes)

    def n_target(self) -> int:
        return int(self.x_target.shape[0])

    def target_stage1(self) -> torch.Tensor:
        """``stage1(x_target)``: the precomputed ``h_target`` when given, else computed now."""
        if self.h_target is not None:
            return self.h_target.to(self.model.device)
        with torch.no_grad():
            return self.model.stage1(self.x_target).detach()
