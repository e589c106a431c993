"""Stability across seeds (ALGORITHM §6): Jaccard of subsets, per-peak frequency, `grids stability`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from grids_core.cli import main
from grids_core.errors import SettingsError
from grids_core.explain.gene import ExplainRequest
from grids_core.jobs import load_context
from grids_core.settings import Settings
from grids_core.stability import jaccard, jaccard_matrix, mean_pairwise, parse_seeds, seed_stability


def test_jaccard_of_hand_made_subsets():
    assert jaccard([1, 2, 3], [2, 3, 4]) == pytest.approx(2 / 4)
    assert jaccard([5, 6], [7, 8]) == 0.0
    assert jaccard([], []) == 1.0
    m = jaccard_matrix([[1, 2], [1, 2], [3, 4]])
    assert m.tolist() == [[1, 1, 0], [1, 1, 0], [0, 0, 1]]
    assert mean_pairwise(m) == pytest.approx(1 / 3)


@pytest.mark.parametrize("text, seeds", [("0,1,2", [0, 1, 2]), ("0-3", [0, 1, 2, 3]), ("4, 0-1,4", [4, 0, 1])])
def test_parse_seeds(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text", ["3", "3,3", "a,b", "-1,2", "5-2", "1,,2"])
def test_bad_seeds_are_explained(text):
    with pytest.raises(SettingsError, match="seeds"):
        parse_seeds(text)


def test_seed_stability_of_a_seeded_method(small_bundle_dir, one_thread):
    """The random baseline draws a new subset per seed: the subsets differ, and the report agrees with them."""
    s = Settings(bundle_dir=small_bundle_dir)
    req = ExplainRequest("GAD1", "VIP", method="random", L=6)
    st = seed_stability(s, req, [0, 1, 2], force=True)
    subsets = [set(r.subset) for r in st.results]
    assert [r.settings["seed"] for r in st.results] == [0, 1, 2] and st.stored == [False] * 3
    assert st.jaccard[0, 1] == pytest.approx(len(subsets[0] & subsets[1]) / len(subsets[0] | subsets[1]))
    assert np.allclose(st.jaccard, st.jaccard.T) and np.allclose(np.diag(st.jaccard), 1)
    assert st.min_jaccard < 1.0 and st.mean_jaccard == pytest.approx(st.jaccard[np.triu_indices(3, 1)].mean())
    freq = st.frequency(load_context(s).bundle)
    assert set(freq["peak_index"]) == set().union(*subsets)
    assert freq["n_seeds"].sum() == 18 and freq["n_seeds"].is_monotonic_decreasing
    for _, row in freq.iterrows():
        assert row["n_seeds"] == sum(int(row["peak_index"]) in sub for sub in subsets)
        assert row["frequency"] == pytest.approx(row["n_seeds"] / 3)
    # a second call reuses the stored runs; the same seed twice is refused
    again = seed_stability(s, req, [0, 1, 2])
    assert again.stored == [True] * 3 and np.array_equal(again.jaccard, st.jaccard)
    with pytest.raises(SettingsError, match="two distinct seeds"):
        seed_stability(s, req, [4, 4])


def test_stability_cli_prints_and_writes_the_frequency_table(small_bundle_dir, small_bundle, tmp_path, capsys):
    table = tmp_path / "freq.tsv"
    args = ["stability", "--bundle", str(small_bundle_dir), "--gene", "GAD2", "--cell-type", "SST", "-L", "5",
            "--seeds", "0-1"]
    assert main([*args, "--table", str(table)]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "Jaccard of the subsets" in out and "seeds 0, 1" in out
    assert "uses no random numbers" in captured.err and "--init random" in captured.err  # default GRIDS
    assert "Jaccard of the subsets: mean 1.000" in out  # as the note says
    freq = pd.read_csv(table, sep="\t")
    assert {"peak", "n_seeds", "frequency", "mean_drop_one", "planted"} <= set(freq.columns)
    assert freq["n_seeds"].sum() == 10
    t = small_bundle.truth.query("gene == 'GAD2' and cell_type == 'SST'")
    role = dict(zip(t["peak_index"], t["group"], strict=True))
    assert freq["planted"].fillna("").tolist() == [role.get(j, "") for j in freq["peak_index"]]
    assert (freq["planted"] == "promoter").sum() == 1  # GRIDS keeps the planted promoter with every seed
    assert main([*args, "--table", str(tmp_path / "f.bedpe")]) == 2
    assert ".tsv or .csv" in capsys.readouterr().err
    assert main([*args[:-2], "--seeds", "7"]) == 2
    assert "two distinct seeds" in capsys.readouterr().err
