"""GRIDS vs every baseline at equal L on the 16 marker pairs of the default bundle (issue 5's table).

Each method runs through the engine's own path (``explain_gene``: objective on the type's training
cells, the registry's candidate pool, top-L of the scores, exact subset effects, held-out evaluation on
the type's test cells, planted-truth metrics). Per method, averaged over the pairs: held-out effect
(delta of mean normalised expression and relative change), recall of the planted drivers, AUPRC of the
per-peak scores (GRIDS: members in drop-one order, then the rest of the pool by its first-order swap estimate), overlap with the GRIDS subset (|S & S_grids| / L) and runtime. A second
table gives the runtime per pair. ``--store`` goes through ``jobs.run_explanation(force=True)`` instead,
which also writes every result into the bundle's results store (for the app's overlays).

    nice .venv/bin/python benchmarks/compare_methods.py [--bundle .grids/default] [-L 10] [--threads 1]
        [--methods grids,saliency,...] [--pairs 16] [--json out.json] [--store]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd
import torch

from grids_core import bundle as bundle_io
from grids_core.explain.baselines import SCORERS
from grids_core.explain.gene import ExplainRequest, explain_gene
from grids_core.reference import MARKER_PAIRS
from grids_core.train import default_model_path, load_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default=".grids/default")
    ap.add_argument("-L", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is robust on shared cores)")
    ap.add_argument("--methods", default=",".join(["grids", *SCORERS]))
    ap.add_argument("--pairs", type=int, default=len(MARKER_PAIRS), help="first N marker pairs")
    ap.add_argument("--json", default=None, help="write every row as JSON here")
    ap.add_argument("--store", action="store_true", help="run via jobs.run_explanation(force=True) and store")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if "grids" in methods:
        methods = ["grids", *[m for m in methods if m != "grids"]]
    b = bundle_io.load(args.bundle)
    tm = load_model(default_model_path(args.bundle), b)
    rows = []
    t_all = time.perf_counter()
    for cell_type, gene in MARKER_PAIRS[: args.pairs]:
        grids_subset: set[int] | None = None
        for method in methods:
            req = ExplainRequest(gene=gene, cell_type=cell_type, method=method, L=args.L, seed=args.seed)
            t0 = time.perf_counter()
            if args.store:
                from grids_core.jobs import run_explanation
                from grids_core.settings import Settings

                res, _ = run_explanation(Settings(bundle_dir=args.bundle), req, force=True)
            else:
                res = explain_gene(b, tm, req)
            wall = time.perf_counter() - t0
            sub = set(res.subset)
            if method == "grids":
                grids_subset = sub
            truth = res.truth or {}
            rows.append({
                "pair": f"{cell_type}/{gene}", "method": method,
                "delta": res.heldout.get("delta", np.nan), "relative": res.heldout.get("relative", np.nan),
                "recall": truth.get("recall", np.nan), "auprc": truth.get("auprc", np.nan),
                "overlap_grids": len(sub & grids_subset) / args.L if grids_subset is not None else np.nan,
                "J_train": res.objective - res.baseline_objective, "runtime_s": res.runtime_s, "wall_s": wall,
            })
            print(f"{cell_type:6s} {gene:8s} {method:12s} delta {rows[-1]['delta']:9.4f} rel {rows[-1]['relative']:7.3f} "
                  f"recall {rows[-1]['recall']:.2f} overlap {rows[-1]['overlap_grids']:.1f} {res.runtime_s:7.2f}s",
                  flush=True)
    df = pd.DataFrame(rows)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1, default=float)
    summary = df.groupby("method", sort=False).agg(
        heldout_delta=("delta", "mean"), heldout_relative=("relative", "mean"), recall=("recall", "mean"),
        auprc=("auprc", "mean"), overlap_grids=("overlap_grids", "mean"), train_dJ=("J_train", "mean"),
        runtime_mean_s=("runtime_s", "mean"), runtime_max_s=("runtime_s", "max"),
    )
    wins = df.pivot(index="pair", columns="method", values="delta")
    if "grids" in wins:
        summary["pairs_grids_better_or_equal"] = [
            int((wins["grids"] <= wins[m] + 1e-9).sum()) if m != "grids" else np.nan for m in summary.index
        ]
    pd.set_option("display.width", 200)
    print(f"\nL = {args.L}, seed {args.seed}, {len(df['pair'].unique())} pairs, torch threads {args.threads}, "
          f"total {time.perf_counter() - t_all:.0f} s")
    print("\nPer method (mean over pairs; held-out delta = mean(expm1 y') - mean(expm1 y) on test cells, lower = "
          "stronger; overlap = |S & S_grids| / L):")
    print(summary.to_markdown(floatfmt=".3f"))
    print("\nRuntime per pair (s, end to end: objective + method + subset effects + evaluation):")
    print(df.pivot(index="pair", columns="method", values="runtime_s")[summary.index].to_markdown(floatfmt=".1f"))
    print("\nHeld-out delta per pair:")
    print(wins[summary.index].to_markdown(floatfmt=".3f"))


if __name__ == "__main__":
    main()
