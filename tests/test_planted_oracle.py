"""GRIDS on the simulator's own planted model (small simulated bundle): the redundancy claim itself."""

from __future__ import annotations

import dataclasses

import pytest

from grids_core.errors import SettingsError
from grids_core.evaluate import truth_metrics
from grids_core.explain.grids import evaluate_subset, grids_search
from grids_core.explain.planted import planted_objective

pytestmark = pytest.mark.usefixtures("one_thread")


def test_planted_model_matches_the_simulator(small_sim):
    b, gen = small_sim
    obj = planted_objective(b, "GAD1", "VIP", sharpness=50.0)  # sharp: the smoothed OR is the OR
    ours = obj.readout(obj.model.stage1(obj.x_target)).numpy()
    exact = gen.planted_log_rate(obj.x_target, "GAD1", "VIP")  # = ours + the pair's baseline a0
    assert ours + gen.pairs[("GAD1", "VIP")].a0 == pytest.approx(exact, abs=1e-5)
    assert exact.std() > 0.3  # cells really differ in which groups are open


def test_grids_completes_an_or_group_that_the_gradient_init_splits(small_sim):
    """L = 4 < 7 drivers: the best subset is the promoter + one whole OR-group; single-peak scores rank
    members of both groups alike (each alone barely matters), so the gradient top 4 splits them."""
    b, gen = small_sim
    grids_groups = init_groups = 0
    for gene, cell_type in gen.pairs:
        obj = planted_objective(b, gene, cell_type)
        res = grids_search(obj, 4, k=16, with_redundancy=False)
        init = grids_search(obj, 4, k=16, max_steps=0, with_redundancy=False)
        assert res.objective <= init.objective + 1e-9
        assert res.objective == pytest.approx(evaluate_subset(obj, res.subset), abs=1e-5)
        promoter = gen.pairs[(gene, cell_type)].promoter
        assert promoter in res.subset.tolist()
        grids_groups += truth_metrics(b, gene, cell_type, res.subset)["groups_fully_recovered"]
        init_groups += truth_metrics(b, gene, cell_type, init.subset)["groups_fully_recovered"]
    n = len(gen.pairs)
    assert grids_groups == n, "GRIDS should close a whole OR-group for every planted pair"
    assert init_groups <= n // 2, "single-peak scores should miss the group on most pairs"


def test_planted_objective_errors(small_sim):
    b, _ = small_sim
    with pytest.raises(SettingsError, match="no planted logic"):
        planted_objective(b, "GAD1", "Astro")
    with pytest.raises(SettingsError, match="no planted truth"):
        planted_objective(dataclasses.replace(b, truth=None), "GAD1", "VIP")
