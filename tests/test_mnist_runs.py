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


def test_another_digit_source_gets_its_own_classifier_and_runs(tmp_path):
    """`--mnist-dir` with other digits must not reuse the shipped subset's classifier (and its accuracy) nor
    overwrite its stored runs (it did both)."""
    from grids_core import mnist
    from grids_core.mnist_runs import classifier_path
    from grids_core.reference import mnist_digits

    imgs, labels = mnist_digits()
    other = tmp_path / "idx"
    other.mkdir()
    flipped = np.ascontiguousarray(np.transpose(imgs, (0, 2, 1)))  # the same digits, transposed: another data set
    for prefix, sl in (("train", slice(0, 800)), ("t10k", slice(800, None))):
        mnist.write_idx(other / f"{prefix}-images-idx3-ubyte", flipped[sl])
        mnist.write_idx(other / f"{prefix}-labels-idx1-ubyte", np.asarray(labels)[sl])
    home = tmp_path / "home"
    shipped = run_and_store(home, L=16, k=8, seed=0, methods=("grids", "random"))
    theirs = run_and_store(home, L=16, k=8, seed=0, methods=("grids", "random"), digits_dir=other)
    assert classifier_path(home, 0, other) != classifier_path(home, 0) and classifier_path(home, 0, other).exists()
    assert theirs["grids"].model_id != shipped["grids"].model_id and theirs["grids"].subset != shipped["grids"].subset
    again = run_and_store(home, L=16, k=8, seed=0, methods=("grids", "random"))  # the shipped runs are intact
    assert again["grids"].subset == shipped["grids"].subset and again["grids"].created == shipped["grids"].created
    assert again["grids"].heldout["test_accuracy"] == shipped["grids"].heldout["test_accuracy"]
