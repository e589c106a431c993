"""`grids mnist`: the experiment is stored per method and a second call reloads it."""

from __future__ import annotations

import numpy as np

from grids_core.cli import main
from grids_core.mnist_runs import load_stored, run_and_store, summary_table


def test_run_store_reload_and_cli(tmp_path, capsys):
    res = run_and_store(tmp_path, L=16, k=8, seed=0, methods=("grids", "random"))
    assert set(res) == {"grids", "random"}
    g, r = res["grids"], res["random"]
    assert len(g.subset) == 16 and len(set(g.subset)) == 16 and max(g.subset) < 784
    assert len(g.heldout["delta_phi"]) == g.heldout["n_images"] > 0
    assert g.objective < r.objective  # GRIDS lowers the training log-odds more than random pixels
    table = summary_table(res).set_index("method")
    assert table.loc["grids", "median_dphi"] > table.loc["random", "median_dphi"]
    assert table.loc["random", "p_grids_greater"] < 0.01
    again = load_stored(tmp_path, 16, 8, 0, ("grids", "random"))
    assert again is not None and again["grids"].subset == g.subset and again["grids"].created == g.created
    assert main(["mnist", "--home", str(tmp_path), "-L", "16", "-k", "8", "--methods", "grids,random"]) == 0
    out = capsys.readouterr().out
    assert "median_dphi" in out and "grids" in out and np.isfinite(table.loc["grids", "mean_dphi"])
