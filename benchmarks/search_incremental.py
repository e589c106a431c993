"""Incremental vs full exact evaluation in one GRIDS search (ALGORITHM §4.5).

A synthetic sparse two-stage model: N binary features (CSR, ~3% open, like ATAC peaks), stage1 = an
affine map to 64 activations, readout = an MLP shaped like the gene decoder (64 -> 20 -> 320 -> 640 -> 1).
Both modes run the same search (same seed, same decisions) and are timed in the same process.

    .venv/bin/python benchmarks/search_incremental.py [--threads 1] [--sweeps 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.sparse as sp
import torch

from grids_core.explain.base import DenseAffineStage1, Objective
from grids_core.explain.grids import grids_search


class SyntheticModel(DenseAffineStage1):
    """stage1(x) = c + x @ W with fixed random tensors."""

    def __init__(self, n: int, h: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        self.w = torch.randn(n, h, generator=g) * 0.3
        self.c = torch.randn(h, generator=g) * 0.1

    def stage1_params(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.c, self.w

    @property
    def device(self) -> torch.device:
        return self.w.device


def make_objective(n: int = 20_000, b: int = 300, density: float = 0.03, seed: int = 0) -> Objective:
    rng = np.random.default_rng(seed)
    x = sp.random(b, n, density=density, format="csr", random_state=rng, data_rvs=np.ones, dtype=np.float32)
    model = SyntheticModel(n, 64, seed)
    torch.manual_seed(seed)
    readout_net = torch.nn.Sequential(
        torch.nn.Linear(64, 20), torch.nn.PReLU(), torch.nn.Linear(20, 320), torch.nn.Tanh(),
        torch.nn.Linear(320, 640), torch.nn.Tanh(), torch.nn.Linear(640, 1),
    ).eval()
    for p in readout_net.parameters():
        p.requires_grad_(False)
    return Objective(model, lambda h: readout_net(h)[:, 0], x, name="synthetic")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--sweeps", type=int, default=2, help="max sweeps per search (both modes)")
    ap.add_argument("--k", type=int, default=32)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    obj = make_objective()
    print(f"N={obj.model.n_features} B={obj.n_target()} nnz={obj.x_target.nnz} k={args.k} "
          f"max_sweeps={args.sweeps} threads={args.threads} device={obj.model.device}")
    print(f"{'L':>4} {'mode':>12} {'steps':>6} {'evals':>6} {'time_s':>8} {'ms/step':>8} {'J0':>8} {'J':>8} {'ratio':>7} same")
    for L in (10, 64):
        res = {}
        for mode in ("incremental", "full"):
            t = time.perf_counter()
            r = grids_search(obj, L, k=args.k, max_sweeps=args.sweeps, seed=0,
                             full_evaluation=(mode == "full"), with_redundancy=False)
            res[mode] = (r, time.perf_counter() - t)
        ratio = res["full"][1] / res["incremental"][1]
        same = np.array_equal(np.sort(res["full"][0].subset), np.sort(res["incremental"][0].subset))
        for mode, (r, dt) in res.items():
            print(f"{L:>4} {mode:>12} {r.n_steps:>6} {r.n_evaluations:>6} {dt:>8.2f} "
                  f"{1000 * dt / max(r.n_steps, 1):>8.1f} {r.baseline_objective:>8.4f} {r.objective:>8.4f} "
                  f"{(f'{ratio:.1f}x' if mode == 'full' else ''):>7} {same if mode == 'full' else ''}")


if __name__ == "__main__":
    main()
