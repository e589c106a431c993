"""Stability across seeds (ALGORITHM §6) on the marker pairs of the default bundle: per method, the mean
pairwise Jaccard of the L-subsets found with different seeds, and how many peaks every seed chose.

GRIDS is run as the engine's default (gradient initialisation), from a random start (``grids:random``,
the reference's initialisation with GRIDS's monotone search) and as the reference (``grids:faithful``).
Methods without randomness (saliency, integrated gradients, ablation, correlation, and FIMAP, whose mask
starts from a constant) give the same subset for every seed and are left out unless asked for. Each run
goes through ``explain_gene`` (nothing stored).

    nice .venv/bin/python benchmarks/stability.py [--bundle .grids/default] [-L 10] [--seeds 0,1,2]
        [--methods grids,grids:random,grids:faithful,smoothgrad,lime,sage,cxplain,random] [--pairs 16]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch

from grids_core import bundle as bundle_io
from grids_core.explain.gene import ExplainRequest, explain_gene
from grids_core.reference import MARKER_PAIRS
from grids_core.stability import jaccard_matrix, mean_pairwise, parse_seeds
from grids_core.train import default_model_path, load_model

DEFAULT_METHODS = "grids,grids:random,grids:faithful,smoothgrad,lime,sage,cxplain,random"


def request(method: str, gene: str, cell_type: str, L: int, seed: int) -> ExplainRequest:
    """'grids:random' / 'grids:faithful' are GRIDS variants; any other name is a registry method."""
    name, _, variant = method.partition(":")
    return ExplainRequest(gene=gene, cell_type=cell_type, method=name, L=L, seed=seed,
                          init="random" if variant == "random" else "gradient", faithful=variant == "faithful")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default=".grids/default")
    ap.add_argument("-L", type=int, default=10)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--methods", default=DEFAULT_METHODS)
    ap.add_argument("--pairs", type=int, default=len(MARKER_PAIRS), help="first N marker pairs")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is robust on shared cores)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    seeds = parse_seeds(args.seeds)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    b = bundle_io.load(args.bundle)
    tm = load_model(default_model_path(args.bundle), b)
    rows = []
    for cell_type, gene in MARKER_PAIRS[: args.pairs]:
        for method in methods:
            t0 = time.perf_counter()
            res = [explain_gene(b, tm, request(method, gene, cell_type, args.L, s)) for s in seeds]
            subsets = [r.subset for r in res]
            common = set(subsets[0]).intersection(*subsets[1:])
            recall = [(r.truth or {}).get("recall", np.nan) for r in res]
            rows.append({
                "pair": f"{cell_type}/{gene}", "method": method, "jaccard": mean_pairwise(jaccard_matrix(subsets)),
                "in_every_seed": len(common), "recall_mean": float(np.mean(recall)),
                "recall_range": float(np.max(recall) - np.min(recall)),
                "distinct_peaks": len(set().union(*map(set, subsets))), "seconds": time.perf_counter() - t0,
            })
            r = rows[-1]
            print(f"{cell_type:6s} {gene:8s} {method:15s} jaccard {r['jaccard']:.3f} in every seed "
                  f"{r['in_every_seed']:2d}/{args.L} recall {r['recall_mean']:.2f} (range {r['recall_range']:.2f}) "
                  f"{r['seconds']:6.1f}s", flush=True)
    df = pd.DataFrame(rows)
    print(f"\nPer pair: mean pairwise Jaccard over seeds {', '.join(map(str, seeds))} (L = {args.L})")
    print(df.pivot(index="pair", columns="method", values="jaccard")[methods].to_string(float_format=lambda v: f"{v:.2f}"))
    summary = df.groupby("method", sort=False).agg(
        jaccard_median=("jaccard", "median"), jaccard_min=("jaccard", "min"),
        pairs_identical=("jaccard", lambda j: int((j == 1.0).sum())), in_every_seed_mean=("in_every_seed", "mean"),
        recall_mean=("recall_mean", "mean"), recall_range_max=("recall_range", "max"), seconds=("seconds", "sum"),
    )
    print(f"\nSummary over {df['pair'].nunique()} pairs (pairs_identical: every seed chose the same subset)")
    print(summary.to_string(float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
