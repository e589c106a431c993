"""Surrogate quality within the explained cell type: measured per run, and explanations it cannot support flagged."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from grids_core.evaluate import pearson_r, type_r
from grids_core.explain.gene import ExplainRequest, explain_gene
from grids_core.train import PREDICTABLE_R
from layouts.components import heldout_card, quality_note
from tests.test_layouts import fake_result


def test_pearson_r_matches_numpy_and_is_undefined_for_constants():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=50), rng.normal(size=50)
    assert pearson_r(a, a + 0.5 * b) == pytest.approx(np.corrcoef(a, a + 0.5 * b)[0, 1])
    assert np.isnan(pearson_r(a, np.ones(50))) and np.isnan(pearson_r([1.0, 2.0], [2.0, 1.0]))


def test_each_run_records_the_surrogates_r_within_its_cell_type(small_bundle, small_model, one_thread):
    b, tm = small_bundle, small_model
    marker = explain_gene(b, tm, ExplainRequest(gene="GAD1", cell_type="VIP", L=3, k=8))
    test = np.flatnonzero(b.cell_mask("VIP", "test"))
    assert marker.heldout["r_in_type"] == pytest.approx(type_r(tm.model, b, "GAD1", test))
    pred = tm.model.predict_numpy(b.atac[test])[:, b.gene_index("GAD1")]
    assert marker.heldout["r_in_type"] == pytest.approx(np.corrcoef(pred, b.rna[test, b.gene_index("GAD1")])[0, 1])
    # the measured mean on the prediction's scale (counts per 10k; the RNA layer is log1p of it) is stored beside it
    measured = np.expm1(np.asarray(b.rna[test, b.gene_index("GAD1")], dtype=float)).mean()
    assert marker.heldout["mean_observed"] == pytest.approx(measured) and measured > 0
    assert f"{marker.heldout['mean_observed']:.4g}" in str(heldout_card(marker))
    # predictable needs both the pooled r and the r within the type
    for res in (marker, explain_gene(b, tm, ExplainRequest(gene="AQP4", cell_type="VIP", L=3, k=8))):
        r_type = res.heldout["r_in_type"]
        assert res.predictable == (res.gene_r >= PREDICTABLE_R and r_type >= PREDICTABLE_R)
        assert (res.quality_warning() is None) == res.predictable


def test_warning_names_the_weaker_r(small_bundle):
    res = fake_result(small_bundle, [0, 1, 2])
    ok = dataclasses.replace(res, gene_r=0.9, heldout={**res.heldout, "r_in_type": 0.7}, predictable=True)
    assert ok.quality_warning() is None
    inside = dataclasses.replace(ok, heldout={**ok.heldout, "r_in_type": -0.01}, predictable=False)
    assert "variation within VIP" in inside.quality_warning() and "-0.01" in inside.quality_warning()
    pooled = dataclasses.replace(ok, gene_r=0.1, heldout={**ok.heldout, "r_in_type": 0.5}, predictable=False)
    assert "poorly on held-out cells (r = 0.10)" in pooled.quality_warning()
    constant = dataclasses.replace(ok, heldout={**ok.heldout, "r_in_type": float("nan")}, predictable=False)
    assert "constant within VIP" in constant.quality_warning()
    old = dataclasses.replace(ok, gene_r=0.2, heldout={"n_cells": 10}, predictable=False)  # stored before r_in_type
    assert "r = 0.20" in old.quality_warning()
    card = json.dumps(heldout_card(inside).to_plotly_json(), default=lambda o: o.to_plotly_json())
    assert "surrogate r in VIP" in card and "not predictable" in card


def test_gene_note_warns_when_the_type_is_not_predicted():
    text = lambda c: json.dumps(c.to_plotly_json(), default=lambda o: o.to_plotly_json())  # noqa: E731
    assert "0.70 within VIP" in text(quality_note("GAD1", 0.9, True, "VIP", 0.7))
    warn = text(quality_note("NXPH1", 0.88, True, "VIP", -0.006))
    assert "not its variation inside VIP" in warn and "-0.01" in warn
    assert "constant" in text(quality_note("NXPH1", 0.88, True, "VIP", float("nan")))
    assert "within" not in text(quality_note("GAD1", 0.9, True))  # no cell type chosen yet
