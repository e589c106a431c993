"""Paper-scale benchmark: 127,219 peaks x 3,000 genes x 10,266 cells (the seed's data width).

Simulates the bundle, trains the surrogate (time, peak RSS), then runs GRIDS at L = 10 and L = 128
(k = 32) for the marker pairs and prints wall time, peak RSS, J and held-out effect per pair, plus the
reference cost profile measured in the same run: ``faithful=True`` with full (non-incremental)
candidate evaluation. Ratios:

* ``step_speedup``: reference ms per step (timed on ``--faithful-steps`` steps) / GRIDS ms per step;
* ``search_speedup_est``: the reference runs a fixed L x 20 steps (its whole search), so its search
  time is estimated as measured ms per step x L x 20, divided by GRIDS's measured wall time;
* ``--faithful-full N``: for the first N pairs at L = 10 the whole reference search is run and timed
  (``search_speedup`` measured, no estimate).

``objective_s`` is the time to build the objective: the first gene of a cell type pays the stage-1
pass over that type's cells, later genes of the same type reuse it.

    .venv/bin/python benchmarks/paper_scale.py [--cells 10266 --peaks 127219 --genes 3000] [--pairs 16]
        [--train-scale 1.0] [--faithful-steps 3] [--out /tmp/paper_scale] [--device cuda]

Smaller widths (e.g. --cells 3000 --peaks 40000 --genes 1000) give the same table faster.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from grids_core import bundle as bundle_io
from grids_core.evaluate import heldout_effect
from grids_core.explain.gene import ExplainRequest, build_objective
from grids_core.explain.grids import grids_search
from grids_core.reference import MARKER_PAIRS
from grids_core.simulate import simulate
from grids_core.train import TrainConfig, default_model_path, load_model, save_model, train


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=10_266)
    ap.add_argument("--peaks", type=int, default=127_219)
    ap.add_argument("--genes", type=int, default=3_000)
    ap.add_argument("--pairs", type=int, default=16)
    ap.add_argument("--Ls", default="10,128")
    ap.add_argument("--train-scale", type=float, default=1.0, help="multiply the default step counts")
    ap.add_argument("--faithful-steps", type=int, default=3)
    ap.add_argument("--faithful-full", type=int, default=0, help="run the whole reference search for N pairs at L=10")
    ap.add_argument("--out", default="/tmp/grids_paper_scale")
    ap.add_argument("--device", default=None)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"], help="GRIDS candidate ranking precision")
    ap.add_argument("--reuse", action="store_true", help="reuse the bundle/model in --out if present")
    args = ap.parse_args()
    out = Path(args.out)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    print(f"device {device}, torch threads {torch.get_num_threads()}, GRIDS precision {args.precision}")

    if not (args.reuse and (out / "manifest.json").exists()):
        t0 = time.perf_counter()
        b, _ = simulate(n_cells=args.cells, n_peaks=args.peaks, n_genes=args.genes, seed=0)
        t_sim = time.perf_counter() - t0
        bundle_io.save(b, out, overwrite=True)
        print(f"simulate: {t_sim:.1f} s, {b.atac.shape[0]} cells x {b.atac.shape[1]} peaks x {b.rna.shape[1]} genes, "
              f"nnz {b.atac.nnz:,}, peak RSS {peak_rss_gb():.2f} GB")
    b = bundle_io.load(out)
    mpath = default_model_path(out)
    if not (args.reuse and mpath.exists()):
        base = TrainConfig()
        cfg = TrainConfig(device=device, **{k: max(1, int(getattr(base, k) * args.train_scale))
                                            for k in ("steps_atac", "steps_rna", "steps_maps", "steps_paired", "steps_cis")})
        t0 = time.perf_counter()
        tm = train(b, cfg)
        print(f"train: {time.perf_counter() - t0:.1f} s, median held-out r {tm.meta['median_r']:.3f}, "
              f"peak RSS {peak_rss_gb():.2f} GB")
        save_model(tm, mpath)
    tm = load_model(mpath, b, device)

    rows = []
    for L in [int(v) for v in args.Ls.split(",")]:
        for p_i, (cell_type, gene) in enumerate(sorted(MARKER_PAIRS[: args.pairs])):
            t0 = time.perf_counter()
            obj = build_objective(b, tm, ExplainRequest(gene, cell_type, L=L))
            t_obj = time.perf_counter() - t0
            test = b.atac[b.cell_mask(cell_type, "test")]
            t0 = time.perf_counter()
            r = grids_search(obj, L, k=32, seed=0, precision=args.precision)
            t_grids = time.perf_counter() - t0
            per_step = t_grids / max(r.n_steps, 1)
            t0 = time.perf_counter()
            f = grids_search(obj, L, k=32, seed=0, faithful=True, full_evaluation=True,
                             max_steps=args.faithful_steps, with_redundancy=False)
            per_step_ref = (time.perf_counter() - t0) / max(f.n_steps, 1)
            ref_budget = L * 20
            ref_full_s = float("nan")
            if L == 10 and p_i < args.faithful_full:
                t0 = time.perf_counter()
                grids_search(obj, L, k=32, seed=0, faithful=True, full_evaluation=True, max_steps=ref_budget,
                             with_redundancy=False)
                ref_full_s = time.perf_counter() - t0
            held = heldout_effect(obj.model, obj.readout, test, r.subset, 0.0)
            rows.append({
                "L": L, "gene": gene, "cell_type": cell_type, "cells": obj.n_target(), "objective_s": t_obj,
                "grids_s": t_grids, "steps": r.n_steps, "swaps": r.n_accepted, "ms_per_step": 1000 * per_step,
                "ref_ms_per_step": 1000 * per_step_ref, "step_speedup": per_step_ref / per_step,
                "search_speedup_est": per_step_ref * ref_budget / t_grids,
                "ref_search_s": ref_full_s, "search_speedup": ref_full_s / t_grids,
                "J0": r.baseline_objective, "J": r.objective, "heldout_rel": held["relative"],
                "peak_rss_gb": peak_rss_gb(),
            })
            print(f"L={L:3d} {gene:8s} {cell_type:6s} GRIDS {t_grids:6.2f} s ({r.n_steps} steps), reference "
                  f"{1000 * per_step_ref:8.1f} ms/step vs {1000 * per_step:6.1f} ms/step", flush=True)
    df = pd.DataFrame(rows)
    pd.set_option("display.width", 250)
    print(df.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    for L, g in df.groupby("L"):
        print(f"L={L}: GRIDS wall per pair median {g.grids_s.median():.2f} s (max {g.grids_s.max():.2f}); "
              f"speed-up over the reference profile: per step median {np.median(g.step_speedup):.0f}x, "
              f"whole search (estimated) median {np.median(g.search_speedup_est):.0f}x"
              + (f", whole search (measured, {g.search_speedup.notna().sum()} pairs) median "
                 f"{g.search_speedup.median():.0f}x" if g.search_speedup.notna().any() else ""))
    print(f"peak RSS {peak_rss_gb():.2f} GB")


if __name__ == "__main__":
    main()
