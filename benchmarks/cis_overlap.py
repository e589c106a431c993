"""The cis-hub fit alone at several overlap penalties (``TrainConfig.cis_overlap``, README "The surrogate").

For each penalty: the full-batch hub fit exactly as ``grids train`` runs it (``train.fit_bundle_hubs``:
same cells, steps, learning rate, L1, validation cells and early stopping), then its validation error and, over the 16 marker pairs,
how many have both planted OR-groups held by a hub of their own (``evaluate.hub_groups``: mean member
input weight x hub weight above 0.3 on distinct hubs), and the weakest group's value.

    .venv/bin/python benchmarks/cis_overlap.py [--bundle .grids/default] [--overlaps 0,1e-3,3e-3,1e-2]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
import pandas as pd
import torch

from grids_core import bundle as bundle_io
from grids_core.evaluate import hub_groups, own_hubs
from grids_core.reference import MARKER_PAIRS
from grids_core.train import TrainConfig, build_model, fit_bundle_hubs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default=".grids/default")
    ap.add_argument("--overlaps", default="0,1e-3,3e-3,1e-2,3e-2,1e-1", help="comma-separated penalties")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    b = bundle_io.load(args.bundle)
    cfg = TrainConfig(seed=args.seed)
    rows = []
    for overlap in (float(v) for v in args.overlaps.split(",")):
        torch.manual_seed(cfg.seed)
        hubs = build_model(b, cfg.cis_hubs, cfg.cis_window, cfg.promoter_window).hubs
        t0 = time.perf_counter()
        report = fit_bundle_hubs(hubs, b, replace(cfg, cis_overlap=overlap))
        seconds = time.perf_counter() - t0
        held, weakest = 0, np.inf
        for ct, gene in MARKER_PAIRS:
            h = hub_groups(b, hubs, gene, ct)
            weakest = min(weakest, float(h.max(1).min()))
            held += own_hubs(h)
        rows.append({"overlap": overlap, "val_error": report["val_error"], "pairs_groups_held": held,
                     "weakest_group": weakest, "fit_s": seconds})
    pd.set_option("display.width", 200)
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.5g}"))
    print(f"\nbundle {args.bundle}, {len(MARKER_PAIRS)} marker pairs, {cfg.cis_hubs} hubs per gene, "
          f"{cfg.steps_cis} steps, lr {cfg.cis_lr}, L1 {cfg.cis_l1}; default overlap {cfg.cis_overlap}")


if __name__ == "__main__":
    main()
