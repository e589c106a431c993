"""The full-batch cis-hub fit (grids_core.cis_fit): exact product, OR learned, early stopping, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from grids_core.cis_fit import CisData, fit_cis_hubs, hub_design
from grids_core.evaluate import hub_groups, own_hubs
from grids_core.surrogate import CisHubs, SurrogateConfig, hub_output
from grids_core.train import build_model, paired_error, relu_error


def _hubs(n_peaks: int, n_genes: int, k: int, promoter: tuple[int, ...] = ()) -> CisHubs:
    """Hubs of every gene over every peak; the peaks in ``promoter`` also get the additive weight."""
    gene, peak = np.meshgrid(np.arange(n_genes), np.arange(n_peaks), indexing="xy")
    cfg = SurrogateConfig(n_peaks=n_peaks, n_genes=n_genes, n_cell_types=1, block_offsets=[0, n_peaks],
                          cis_hubs=k, n_cis_pairs=n_peaks * n_genes, promoter_window=1000 if promoter else 0)
    hubs = CisHubs(cfg)
    hubs.set_pairs(gene.ravel(), peak.ravel(), np.isin(peak.ravel(), promoter))  # sorted by peak, then gene
    return hubs


def _or_data(n: int, seed: int) -> tuple[sp.csr_matrix, torch.Tensor]:
    """Gene 0 = 0.3 + 1.5 * OR(peaks 0-2) + noise; peaks 3-9 drive nothing."""
    rng = np.random.default_rng(seed)
    q = np.array([0.45] * 3 + [0.2] * 7)
    x = (rng.random((n, 10)) < q).astype(np.float32)
    y = 0.3 + 1.5 * (x[:, :3].sum(1) > 0) + rng.normal(0, 0.1, n)
    return sp.csr_matrix(x), torch.tensor(y[:, None], dtype=torch.float32)


def _hub_drop(hubs: CisHubs, x: sp.csr_matrix, close: list[int]) -> float:
    x2 = x.tolil(copy=True)
    x2[:, close] = 0
    with torch.no_grad():
        return float(hubs(x).mean() - hubs(x2.tocsr()).mean())


def test_design_product_equals_the_hub_sums(small_bundle):
    model = build_model(small_bundle, cis_hubs=3)
    hubs = model.hubs
    with torch.no_grad():
        hubs.logits.normal_(generator=torch.Generator().manual_seed(0))
    x = small_bundle.atac[:50]
    m, mt = hub_design(hubs, x)
    a = F.softplus(hubs.logits).detach()
    s = (m @ a).reshape(50, hubs.n_genes, -1)
    torch.testing.assert_close(s, hubs.pre(x), rtol=1e-5, atol=1e-5)
    g = torch.randn(m.shape[0], a.shape[1], generator=torch.Generator().manual_seed(1))
    dense = m.to_dense()
    torch.testing.assert_close(mt @ g, dense.T @ g, rtol=1e-4, atol=1e-4)


def test_fit_learns_or_logic_that_single_peak_effects_miss():
    x, y = _or_data(1500, seed=0)
    hubs = _hubs(10, 1, k=2)
    report = fit_cis_hubs(hubs, CisData(x, y, torch.zeros(len(y), dtype=torch.int64)), None, 1, paired_error,
                             steps=300, lr=0.1, l1=1e-5)
    assert report["loss_end"] < 0.2 * report["loss_start"]
    group = _hub_drop(hubs, x, [0, 1, 2])
    singles = sum(_hub_drop(hubs, x, [j]) for j in range(3))
    assert group == pytest.approx(1.5 * (1 - 0.55**3), rel=0.15)  # closing the group removes the OR term
    assert group > 1.5 * singles  # redundant: the joint effect is far above the sum of single effects
    assert max(abs(_hub_drop(hubs, x, [j])) for j in range(3, 10)) < 0.05  # drives nothing


def test_overlap_penalty_keeps_an_or_group_in_one_hub():
    """One OR-group, two hubs: unpenalised, the second hub also takes the group's peaks (with a negative
    weight, shaping the saturation); with the overlap penalty one hub carries the group alone and the
    group's effect is unchanged."""
    x, y = _or_data(1500, seed=0)
    data = CisData(x, y, torch.zeros(len(y), dtype=torch.int64))
    fits = {}
    for overlap in (0.0, 3e-3):
        hubs = _hubs(10, 1, k=2)
        fit_cis_hubs(hubs, data, None, 1, paired_error, steps=300, lr=0.1, l1=1e-5, overlap=overlap)
        group = hubs.rows().detach()[:3, :2].mean(0)  # mean input weight of the members, per hub
        fits[overlap] = (float(group.min() / group.max()), _hub_drop(hubs, x, [0, 1, 2]))
    assert fits[0.0][0] > 0.1  # two hubs share the group
    assert fits[3e-3][0] < 0.02  # one hub has it
    assert fits[3e-3][1] == pytest.approx(fits[0.0][1], rel=0.02)
    assert fits[3e-3][1] == pytest.approx(1.5 * (1 - 0.55**3), rel=0.15)


def test_promoter_term_takes_the_additive_promoter_and_leaves_the_or_to_the_hubs():
    """Gene 0 = 0.3 + 0.8 * promoter (peak 0) + 1.5 * OR(peaks 1-3), with peak 0 flagged as promoter:
    the additive weight carries the promoter and the hubs the OR-group."""
    rng = np.random.default_rng(5)
    q = np.array([0.6] + [0.45] * 3 + [0.2] * 6)
    x = (rng.random((2000, 10)) < q).astype(np.float32)
    y = 0.3 + 0.8 * x[:, 0] + 1.5 * (x[:, 1:4].sum(1) > 0) + rng.normal(0, 0.1, 2000)
    x, y = sp.csr_matrix(x), torch.tensor(y[:, None], dtype=torch.float32)
    hubs = _hubs(10, 1, k=2, promoter=(0,))
    fit_cis_hubs(hubs, CisData(x, y, torch.zeros(2000, dtype=torch.int64)), None, 1, paired_error,
                 steps=300, lr=0.1, l1=1e-5)
    assert _hub_drop(hubs, x, [0]) == pytest.approx(0.8 * 0.6, rel=0.15)  # the promoter, additive
    rows = hubs.rows().detach()
    assert float(rows[0, -1]) == pytest.approx(0.8, rel=0.1)  # the promoter's own weight, as planted
    assert float(rows[1:, -1].abs().max()) == 0  # only the promoter peak has an additive weight
    group = _hub_drop(hubs, x, [1, 2, 3])
    assert group == pytest.approx(1.5 * (1 - 0.55**3), rel=0.15)
    assert group > 1.5 * sum(_hub_drop(hubs, x, [j]) for j in (1, 2, 3))  # still redundant
    assert max(abs(_hub_drop(hubs, x, [j])) for j in range(4, 10)) < 0.05


def test_relu_error_lets_a_silent_type_gate_the_hub_off():
    """The OR peaks are also open in a second type where the gene is silent (a few cells with a count).
    With ``relu_error`` that type's intercept goes below zero and the hub saturates as planted; under
    ``paired_error`` those cells hold the intercept up and the hub stays small."""
    rng = np.random.default_rng(0)
    n0, n1 = 800, 2400
    q = np.tile([0.45] * 3 + [0.2] * 7, (n0 + n1, 1))
    q[n0:, :3] = 0.15
    x = sp.csr_matrix((rng.random(q.shape) < q).astype(np.float32))
    x0 = x[:n0]
    y0 = 0.3 + 1.5 * (np.asarray(x0[:, :3].sum(1)).ravel() > 0) + rng.normal(0, 0.1, n0)
    y = torch.tensor(np.r_[y0, (rng.random(n1) < 0.05).astype(float)][:, None], dtype=torch.float32)
    data = CisData(x, y, torch.tensor(np.r_[np.zeros(n0), np.ones(n1)], dtype=torch.int64))
    groups = {}
    for name, error in (("relu", relu_error), ("paired", paired_error)):
        hubs = _hubs(10, 1, k=2)
        fit_cis_hubs(hubs, data, None, 2, error, steps=300, lr=0.1, l1=1e-5)
        groups[name] = _hub_drop(hubs, x0, [0, 1, 2])
        singles = sum(_hub_drop(hubs, x0, [j]) for j in range(3))
        if name == "relu":
            assert groups[name] == pytest.approx(1.5 * (1 - 0.55**3), rel=0.15)
            assert groups[name] > 1.8 * singles
    assert groups["paired"] < 0.5 * groups["relu"]


def test_early_stopping_ends_no_worse_than_the_start_on_validation_and_is_deterministic():
    rng = np.random.default_rng(3)
    x, y_or = _or_data(300, seed=1)
    y = torch.cat([y_or, torch.tensor(rng.normal(1.0, 0.5, (300, 1)), dtype=torch.float32)], dim=1)  # gene 1: noise
    ct = torch.zeros(300, dtype=torch.int64)
    train, val = CisData(x[:200], y[:200], ct[:200]), CisData(x[200:], y[200:], ct[200:])

    fits = []
    for _ in range(2):
        hubs = _hubs(10, 2, k=2)
        with torch.no_grad():  # the start: per-type mean, hubs adding nothing (weights 0)
            before = paired_error(train.y.mean(0) + hub_output(hubs.weight, hubs.pre(val.x)), val.y).mean()
        report = fit_cis_hubs(hubs, train, val, 1, paired_error, steps=150, lr=0.1, l1=1e-5)
        fits.append((hubs.logits.clone(), hubs.weight.clone()))
    assert report["val_error"] <= float(before) + 1e-6
    assert float(hubs.weight.detach()[0].abs().sum()) > 0.5  # the OR gene kept a fitted hub
    assert torch.equal(fits[0][0], fits[1][0]) and torch.equal(fits[0][1], fits[1][1])  # deterministic


def test_hub_groups_reports_which_hub_holds_each_planted_group(small_bundle):
    """``evaluate.hub_groups`` on hubs set by hand: group A in hub 0, group B in hub 2, hub 1 unused."""
    hubs = build_model(small_bundle, cis_hubs=3).hubs
    t = small_bundle.truth[(small_bundle.truth.gene == "GAD1") & (small_bundle.truth.cell_type == "VIP")]
    names = sorted(t.loc[t.logic == "OR", "group"].unique())
    members = [t.loc[t.group == g, "peak_index"].to_numpy() for g in names]
    gene = hubs.pair_gene.numpy() == small_bundle.gene_index("GAD1")
    logit = np.full(hubs.logits.shape, -30.0, dtype=np.float32)  # softplus ~ 0
    for hub, peaks in zip((0, 2), members, strict=True):
        logit[gene & np.isin(hubs.pair_peak.numpy(), peaks), hub] = np.log(np.expm1(2.0))  # input weight 2
    with torch.no_grad():
        hubs.logits.copy_(torch.from_numpy(logit))
        hubs.weight[small_bundle.gene_index("GAD1")] = torch.tensor([1.5, 0.7, -0.5])
    h = hub_groups(small_bundle, hubs, "GAD1", "VIP")
    assert h.shape == (2, 3)
    np.testing.assert_allclose(h, [[3.0, 0, 0], [0, 0, -1.0]], atol=1e-5)
    assert not own_hubs(h)  # group B's hub lowers the gene: not held
    with torch.no_grad():
        hubs.weight[small_bundle.gene_index("GAD1"), 2] = 0.5
    assert own_hubs(hub_groups(small_bundle, hubs, "GAD1", "VIP"))
    with torch.no_grad():
        hubs.logits[:, 1] = hubs.logits[:, 2]  # group B also in hub 1 (weight 0.7): its best hub moves
        hubs.logits[:, 2] = -30.0
    assert own_hubs(hub_groups(small_bundle, hubs, "GAD1", "VIP"))
    with torch.no_grad():
        hubs.logits[:, 0] = torch.maximum(hubs.logits[:, 0], hubs.logits[:, 1])  # hub 0 takes group B too
    assert not own_hubs(hub_groups(small_bundle, hubs, "GAD1", "VIP"))
    assert hub_groups(small_bundle, hubs, "GAD2", "VIP") == pytest.approx(np.zeros((2, 3)), abs=1e-5)
    assert hub_groups(small_bundle, None, "GAD1", "VIP") is None
