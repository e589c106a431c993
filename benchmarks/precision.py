"""bf16 candidate ranking vs float32 GRIDS on the 16 marker pairs (issue 8: mixed precision).

Both searches run on the same objective in the same process (best of ``--repeats`` timings each, run
alternately); the table says whether the chosen subset and J are the same and the time ratio. bf16 only
ranks the k candidates of a step; a shortlist of 4 is re-scored in float32 and acceptance is float32,
so every reported J is exact.

    .venv/bin/python benchmarks/precision.py [--bundle .grids/default] [-L 10] [--device cuda]
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
import torch

from grids_core import bundle as bundle_io
from grids_core.explain.gene import ExplainRequest, build_objective
from grids_core.explain.grids import grids_search
from grids_core.reference import MARKER_PAIRS
from grids_core.train import default_model_path, load_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default=".grids/default")
    ap.add_argument("--model", default=None, help="checkpoint (default: the bundle's models/default.pt)")
    ap.add_argument("-L", type=int, default=10)
    ap.add_argument("-k", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--device", default=None, help="torch device (default: cuda when present, else cpu)")
    ap.add_argument("--pairs", type=int, default=len(MARKER_PAIRS), help="first N marker pairs")
    args = ap.parse_args()
    b = bundle_io.load(args.bundle)
    tm = load_model(args.model or default_model_path(args.bundle), b, device=args.device)
    rows = []
    for cell_type, gene in MARKER_PAIRS[: args.pairs]:
        obj = build_objective(b, tm, ExplainRequest(gene, cell_type, L=args.L, seed=args.seed))
        best: dict[str, tuple] = {}
        for _ in range(args.repeats):
            for prec in ("fp32", "bf16"):
                if tm.model.device.type == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                r = grids_search(obj, args.L, k=args.k, seed=args.seed, precision=prec, with_redundancy=False)
                if tm.model.device.type == "cuda":
                    torch.cuda.synchronize()
                dt = time.perf_counter() - t0
                if prec not in best or dt < best[prec][1]:
                    best[prec] = (r, dt)
        (a, ta), (c, tc) = best["fp32"], best["bf16"]
        rows.append({
            "gene": gene, "cell_type": cell_type,
            "same_subset": set(a.subset.tolist()) == set(c.subset.tolist()),
            "J_fp32": a.objective, "J_bf16": c.objective, "steps_fp32": a.n_steps, "steps_bf16": c.n_steps,
            "swaps_fp32": a.n_accepted, "swaps_bf16": c.n_accepted, "t_fp32_s": ta, "t_bf16_s": tc,
            "speedup": ta / tc,
        })
        print(f"{gene}/{cell_type}: fp32 {ta:.2f} s, bf16 {tc:.2f} s", flush=True)
    df = pd.DataFrame(rows)
    pd.set_option("display.width", 250)
    print(df.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"\nL={args.L}, k={args.k}, seed={args.seed}, device {tm.model.device}, torch threads {torch.get_num_threads()}")
    print(f"same subset: {int(df.same_subset.sum())}/{len(df)}; max |J_bf16 - J_fp32| {abs(df.J_bf16 - df.J_fp32).max():.3g}")
    print(f"speed-up (fp32 time / bf16 time): median {df.speedup.median():.2f}, min {df.speedup.min():.2f}, "
          f"max {df.speedup.max():.2f}; total {df.t_fp32_s.sum():.2f} s vs {df.t_bf16_s.sum():.2f} s")


if __name__ == "__main__":
    main()
