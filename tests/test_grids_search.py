"""GRIDS subset search (ALGORITHM §3-4) on small toy two-stage models: real computations, no fixtures."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from grids_core.errors import CancelledError, SettingsError
from grids_core.explain.base import DenseAffineStage1, Objective, TwoStageModel
from grids_core.explain.grids import (
    SearchResult,
    candidate_pool,
    evaluate_subset,
    first_order_scores,
    grids_search,
    per_sample_effect,
)

pytestmark = pytest.mark.usefixtures("one_thread")


class AffineModel(DenseAffineStage1):
    """stage1(x) = c + x @ W from fixed tensors."""

    def __init__(self, c: torch.Tensor, w: torch.Tensor):
        self.c, self.w = c, w

    def stage1_params(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.c, self.w

    @property
    def device(self) -> torch.device:
        return self.w.device


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def mlp_objective(n: int = 40, b: int = 60, hidden: int = 16, seed: int = 0, scale: float = 0.4) -> Objective:
    """(a) Small MLP on dense inputs: stage1 = first Linear, readout = one output unit."""
    g = _gen(seed)
    w1 = torch.randn(n, hidden, generator=g) * scale / math.sqrt(n) * 3
    c1 = torch.randn(hidden, generator=g) * 0.1
    w2 = torch.randn(hidden, 8, generator=g) / math.sqrt(hidden)
    w3 = torch.randn(8, generator=g) / math.sqrt(8)
    x = torch.rand(b, n, generator=g)
    x[x < 0.3] = 0.0  # some zeros so v = 0 leaves some samples unchanged

    def readout(h: torch.Tensor) -> torch.Tensor:
        return torch.tanh(torch.tanh(h) @ w2) @ w3 + 1.0

    return Objective(AffineModel(c1, w1), readout, x, name="mlp")


def linear_objective(n: int = 12, b: int = 30, seed: int = 0, sparse: bool = False) -> Objective:
    """Linear readout: J is affine in x, so the first-order swap estimate is exact."""
    g = _gen(seed)
    w = torch.randn(n, 3, generator=g)
    u = torch.randn(3, generator=g)
    if sparse:
        x = sp.random(b, n, density=0.3, format="csr", random_state=seed, data_rvs=np.ones, dtype=np.float32)
    else:
        x = torch.rand(b, n, generator=g)

    def readout(h: torch.Tensor) -> torch.Tensor:
        return h @ u

    return Objective(AffineModel(torch.zeros(3), w), readout, x, name="linear")


GROUP_A = np.array([101, 202, 303, 404])
DECOYS = np.array([55, 66])


def planted_objective(n: int = 500, b: int = 200, seed: int = 0, value: float = 0.0) -> Objective:
    """(b) Sparse binary inputs (~5% density) with an OR-like redundant group A.

    readout = 10 * (1 - 0.3 ** s_A) + decoys + small noise, s_A = number of open group-A features.
    Each A member alone barely matters (the others still keep the OR high); the whole group matters most.
    Two decoys have larger single effects than any A member.
    """
    rng = np.random.default_rng(seed)
    x = rng.random((b, n)) < 0.05
    active = rng.random(b) < 0.8
    x[:, GROUP_A] = (rng.random((b, GROUP_A.size)) < np.where(active, 0.9, 0.05)[:, None])
    x[:, DECOYS] = rng.random((b, DECOYS.size)) < 0.6
    xs = sp.csr_matrix(x.astype(np.float32))
    w = torch.zeros(n, 3)
    w[GROUP_A, 0] = 1.0
    w[DECOYS, 1] = 1.0
    w[:, 2] = torch.rand(n, generator=_gen(seed)) * 0.05
    w[GROUP_A, 2] = 0.0
    w[DECOYS, 2] = 0.0
    log03 = math.log(0.3)

    def readout(h: torch.Tensor) -> torch.Tensor:
        return 10.0 * (1.0 - torch.exp(h[:, 0] * log03)) + h[:, 1] + h[:, 2]

    return Objective(AffineModel(torch.zeros(3), w), readout, xs, value=value, name="planted")


def test_toy_model_satisfies_protocol():
    assert isinstance(mlp_objective().model, TwoStageModel)


# ---------------------------------------------------------------------------------------------- pool


def test_candidate_pool_sparse_dense_and_window():
    x = sp.csr_matrix(np.array([[1, 0, 0, 1], [0, 0, 0, 1], [1, 0, 0, 1]], dtype=np.float32))
    obj = Objective(AffineModel(torch.zeros(1), torch.ones(4, 1)), lambda h: h[:, 0], x)
    assert candidate_pool(obj).tolist() == [0, 3]
    obj.value = 1.0  # v = 1: features not already 1 everywhere
    assert candidate_pool(obj).tolist() == [0, 1, 2]
    obj.value, obj.x_target = 0.0, torch.from_numpy(x.toarray())
    assert candidate_pool(obj).tolist() == [0, 3]
    assert candidate_pool(obj, np.array([False, True, True, False])).tolist() == []
    with pytest.raises(SettingsError, match="window_mask"):
        candidate_pool(obj, np.ones(3, dtype=bool))


def test_settings_errors():
    x = sp.csr_matrix(np.eye(5, 20, dtype=np.float32))  # only 5 features ever open
    obj = Objective(AffineModel(torch.zeros(1), torch.ones(20, 1)), lambda h: h[:, 0], x)
    with pytest.raises(SettingsError, match="pool"):
        grids_search(obj, 6)
    with pytest.raises(SettingsError, match="L"):
        grids_search(obj, 0)
    with pytest.raises(SettingsError, match="k"):
        grids_search(obj, 2, k=0)
    with pytest.raises(SettingsError, match="init"):
        grids_search(obj, 2, init="magic")
    assert grids_search(obj, 5).subset.size == 5  # L == pool is fine


# ------------------------------------------------------------------------------------- first order


@pytest.mark.parametrize("sparse", [False, True])
def test_first_order_swap_estimate_exact_for_linear_readout(sparse):
    obj = linear_objective(sparse=sparse)
    pool = candidate_pool(obj)
    subset = pool[:3]
    a = first_order_scores(obj, subset)
    j_s = evaluate_subset(obj, subset)
    for i in range(subset.size):
        for j in np.setdiff1d(pool, subset):
            new = subset.copy()
            new[i] = j
            exact = evaluate_subset(obj, new) - j_s
            assert abs((a[j] - a[subset[i]]) - exact) < 1e-5


def test_first_order_swap_estimate_approximate_for_mlp():
    obj = mlp_objective()
    pool = candidate_pool(obj)
    subset = pool[:4]
    a = first_order_scores(obj, subset)
    j_s = evaluate_subset(obj, subset)
    est, exact = [], []
    for j in np.setdiff1d(pool, subset):
        new = subset.copy()
        new[0] = j
        est.append(a[j] - a[subset[0]])
        exact.append(evaluate_subset(obj, new) - j_s)
    est, exact = np.array(est), np.array(exact)
    assert np.corrcoef(est, exact)[0, 1] > 0.95
    assert np.abs(est - exact).max() < 0.3 * np.abs(exact).max()


# ---------------------------------------------------------------------------------- search basics


def _check_valid(res: SearchResult, obj: Objective, L: int):
    pool = candidate_pool(obj)
    assert res.subset.dtype == np.int64 and res.subset.size == L
    assert len(set(res.subset.tolist())) == L, "duplicate members"
    assert np.isin(res.subset, pool).all()
    traj = np.array(res.trajectory)
    assert traj.size == res.n_steps + 1
    assert (np.diff(traj) <= 1e-12).all(), "best-so-far trajectory must not increase"
    assert res.objective == pytest.approx(evaluate_subset(obj, res.subset), rel=1e-5, abs=1e-5)
    assert res.baseline_objective == pytest.approx(evaluate_subset(obj, []), rel=1e-5, abs=1e-5)
    assert res.objective <= res.trajectory[0] + 1e-5
    assert (np.diff(res.drop_one) <= 0).all(), "subset is ordered by drop-one effect"


@pytest.mark.parametrize("init", ["gradient", "single", "random"])
@pytest.mark.parametrize("order", ["cyclic", "random"])
def test_search_valid_monotone_and_local_optimum(init, order):
    obj = mlp_objective()
    res = grids_search(obj, 5, k=8, init=init, order=order, seed=1)
    _check_valid(res, obj, 5)
    assert res.converged and res.objective < res.baseline_objective
    assert (res.drop_one >= -1e-6).all()  # at a local optimum no member is harmful
    for key in ("seed", "init", "k", "L", "faithful", "value", "sign", "beta"):
        assert key in res.settings


def test_redundancy_outputs_are_exact():
    obj = planted_objective()
    res = grids_search(obj, 4, k=8)
    s, j_s, j_0 = res.subset, res.objective, res.baseline_objective
    for i in range(4):
        assert res.drop_one[i] == pytest.approx(evaluate_subset(obj, np.delete(s, i)) - j_s, abs=1e-5)
        assert res.single[i] == pytest.approx(evaluate_subset(obj, s[i : i + 1]) - j_0, abs=1e-5)
        for j in range(i + 1, 4):
            exact = evaluate_subset(obj, np.delete(s, [i, j])) - j_s
            assert res.pairwise[i, j] == pytest.approx(exact, abs=1e-5)
            assert res.pairwise[j, i] == res.pairwise[i, j]
    assert np.allclose(np.diag(res.pairwise), res.drop_one)


def test_determinism_and_seed_dependence():
    obj = mlp_objective()
    r1 = grids_search(obj, 5, k=6, init="random", seed=3)
    r2 = grids_search(obj, 5, k=6, init="random", seed=3)
    assert np.array_equal(r1.subset, r2.subset) and r1.trajectory == r2.trajectory
    starts = {tuple(grids_search(obj, 5, k=6, init="random", seed=s, max_steps=0).trajectory) for s in range(4)}
    assert len(starts) > 1, "different seeds should give different random initial subsets"
    m1 = grids_search(obj, 4, k=6, batch_size=16, seed=5, order="random")
    m2 = grids_search(obj, 4, k=6, batch_size=16, seed=5, order="random")
    assert np.array_equal(m1.subset, m2.subset) and m1.trajectory == m2.trajectory


@pytest.mark.parametrize(
    "make", [mlp_objective, planted_objective, lambda: planted_objective(value=1.0)], ids=["dense", "sparse", "sparse-v1"]
)
def test_incremental_equals_full_evaluation(make):
    obj = make()
    kw = {"k": 8, "init": "random", "seed": 2, "max_sweeps": 3}
    inc = grids_search(obj, 4, **kw)
    full = grids_search(obj, 4, full_evaluation=True, **kw)
    assert np.array_equal(inc.subset, full.subset)
    assert inc.n_accepted == full.n_accepted > 0
    np.testing.assert_allclose(inc.trajectory, full.trajectory, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(inc.drop_one, full.drop_one, rtol=1e-5, atol=1e-5)


def test_minibatch_search_polishes_on_full_batch():
    obj = mlp_objective(b=150)
    res = grids_search(obj, 4, k=8, batch_size=32, seed=0)
    _check_valid(res, obj, 4)
    assert res.settings["batch_size"] == 32 and res.converged
    # the full-batch polish ends at a local optimum: no swap with the k first-order candidates improves J
    a = first_order_scores(obj, res.subset)
    outside = np.setdiff1d(candidate_pool(obj), res.subset)
    cands = outside[np.argsort(a[outside], kind="stable")[:8]]
    for i in range(4):
        for j in cands:
            new = res.subset.copy()
            new[i] = j
            assert evaluate_subset(obj, new) >= res.objective - 1e-6


# ------------------------------------------------------------------------------------- faithful


def test_faithful_mode_accepts_worse_swaps_and_returns_last_subset():
    g = _gen(4)
    n = 12
    w = torch.rand(n, 1, generator=g) + 0.5  # every feature raises the readout: removing any lowers J
    obj = Objective(AffineModel(torch.zeros(1), w), lambda h: h[:, 0], torch.rand(30, n, generator=g) + 0.5)
    res = grids_search(obj, 2, k=1, faithful=True, max_steps=6, seed=0)
    traj = np.array(res.trajectory)
    assert (np.diff(traj) > 1e-6).any(), "faithful mode replaces unconditionally, so J can get worse"
    assert res.n_steps == 6 and not res.converged and res.settings["init"] == "random"
    # the last subset is returned: the strongest feature twice (a duplicate), not the best subset seen
    single = np.array([evaluate_subset(obj, [j]) for j in range(n)])
    best_feature = int(np.argmin(single))
    assert res.subset.tolist() == [best_feature, best_feature]
    assert res.objective == pytest.approx(traj[-1], abs=1e-6) and res.objective > traj.min() + 1e-6
    assert res.objective == pytest.approx(evaluate_subset(obj, res.subset), abs=1e-6)
    # the improved search on the same problem never gets worse and picks the two strongest features
    ours = grids_search(obj, 2, k=1, seed=0)
    assert sorted(ours.subset.tolist()) == sorted(np.argsort(single)[:2].tolist())
    assert ours.objective < res.objective


def test_faithful_uses_minibatches_of_64():
    obj = mlp_objective(b=100)
    res = grids_search(obj, 3, k=4, faithful=True, max_steps=5, seed=0)
    assert res.settings["batch_size"] == 64 and res.n_steps == 5 and len(res.trajectory) == 6


# ------------------------------------------------------------------------------------- planted


def test_grids_finds_redundant_group_that_single_effects_miss():
    obj = planted_objective()
    pool = candidate_pool(obj)
    j0 = evaluate_subset(obj, [])
    single = np.array([evaluate_subset(obj, [j]) - j0 for j in pool])
    top_single = pool[np.argsort(single, kind="stable")[:4]]
    # the planted redundancy: each member alone is weak, the group jointly is strong
    group_effect = evaluate_subset(obj, GROUP_A) - j0
    assert single[np.isin(pool, GROUP_A)].min() > 0.2 * group_effect / 4
    assert set(top_single.tolist()) != set(GROUP_A.tolist())
    res = grids_search(obj, 4, k=8)
    assert set(res.subset.tolist()) == set(GROUP_A.tolist())
    assert res.objective < evaluate_subset(obj, top_single) - 1.0
    # redundancy outputs expose it: alone small, jointly large
    assert np.abs(res.single).sum() < 0.5 * abs(res.objective - res.baseline_objective)
    assert res.drop_one.min() > np.abs(res.single).max()


# ----------------------------------------------------------------------------------- beta, misc


def test_beta_specificity_prefers_type_specific_feature():
    g = _gen(7)
    n = 10
    w = torch.full((n, 1), 0.01)
    w[0, 0], w[1, 0] = 1.1, 1.0  # feature 0 slightly stronger on target cells
    xt = torch.rand(40, n, generator=g)
    xt[:, :2] = 1.0
    xo = torch.rand(40, n, generator=g)
    xo[:, 0], xo[:, 1] = 1.0, 0.0  # feature 0 also drives the gene in other cell types, feature 1 does not
    obj = Objective(AffineModel(torch.zeros(1), w), lambda h: h[:, 0], xt, x_other=xo)
    plain = grids_search(obj, 1, k=4)
    assert plain.subset.tolist() == [0]
    obj.beta = 0.5
    spec = grids_search(obj, 1, k=4)
    assert spec.subset.tolist() == [1] and spec.settings["beta"] == 0.5
    assert spec.objective == pytest.approx(evaluate_subset(obj, [1]), abs=1e-6)
    # expected direction: less effect on the other cell types, at little cost on the target
    assert abs(per_sample_effect(obj, spec.subset, xo).mean()) < abs(per_sample_effect(obj, plain.subset, xo).mean())


def test_cancel_and_progress_and_limits():
    obj = mlp_objective()
    calls = iter(range(100))
    with pytest.raises(CancelledError):
        grids_search(obj, 4, k=4, cancel=lambda: next(calls) >= 3)
    seen: list[float] = []
    res = grids_search(obj, 4, k=4, progress=lambda f, msg: seen.append(f), max_steps=2)
    assert res.n_steps == 2 and not res.converged
    assert seen[0] == 0.0 and seen[-1] == 1.0 and all(0.0 <= f <= 1.0 for f in seen)
    assert (np.diff(seen) >= 0).all()
    quick = grids_search(obj, 4, k=4, max_time_s=0.0)
    assert quick.n_steps == 0 and len(quick.trajectory) == 1
    nored = grids_search(obj, 3, k=4, with_redundancy=False)
    assert np.isnan(nored.single).all() and np.allclose(np.diag(nored.pairwise), nored.drop_one)


# ------------------------------------------------------------------------------------ bf16 ranking


def test_bf16_ranking_accepts_on_float32():
    """bf16 only shortlists candidates: the search stays monotone and every reported J is exact float32."""
    obj = mlp_objective(n=60, b=80, seed=4)
    kw = {"k": 12, "init": "random", "seed": 1}
    lo = grids_search(obj, 6, precision="bf16", **kw)
    hi = grids_search(obj, 6, **kw)
    _check_valid(lo, obj, 6)
    assert lo.converged and lo.n_accepted > 0 and lo.settings["precision"] == "bf16"
    assert np.array_equal(np.sort(lo.subset), np.sort(hi.subset))
    assert lo.objective == pytest.approx(hi.objective, abs=1e-6)
    assert lo.n_evaluations > hi.n_evaluations  # the float32 shortlist checks are counted


def test_bf16_candidate_deltas_approximate_float32():
    from grids_core.explain.grids import _Engine, _swap_spec

    obj = mlp_objective(n=60, b=80, seed=4)  # its readout has matmuls, which autocast runs in bf16
    eng = _Engine(obj, precision="bf16")
    subset = np.array([3, 14, 15, 9])
    eng.set_subset(subset)
    cands = np.setdiff1d(candidate_pool(obj), subset)
    feats, signs = _swap_spec(Counter(subset.tolist()), 9, cands)
    exact, low = eng.delta(feats, signs), eng.delta(feats, signs, low=True)
    assert np.abs(low - exact).max() <= 0.02 * np.abs(exact).max() + 1e-3
    assert not np.array_equal(low, exact)  # really computed in lower precision
    assert np.argmin(low) == np.argmin(exact)


def test_precision_settings_errors():
    obj = mlp_objective()
    with pytest.raises(SettingsError, match="precision"):
        grids_search(obj, 3, precision="fp16")
    with pytest.raises(SettingsError, match="float32"):
        grids_search(obj, 3, precision="bf16", faithful=True)
    with pytest.raises(SettingsError, match="float32"):
        grids_search(obj, 3, precision="bf16", full_evaluation=True)


def test_pairwise_effects_cover_the_first_members_only_beyond_the_cap(small_bundle, small_model, monkeypatch):
    """Pairs grow as L²: beyond PAIRWISE_MAX members only the top block (by drop-one) is evaluated, exactly."""
    from grids_core.explain import grids as g
    from grids_core.explain.gene import ExplainRequest, build_objective

    obj = build_objective(small_bundle, small_model, ExplainRequest(gene="GAD1", cell_type="VIP", L=12))
    subset = g.candidate_pool(obj)[:12]
    full = g.subset_effects(obj, subset)
    monkeypatch.setattr(g, "PAIRWISE_MAX", 5)
    capped = g.subset_effects(obj, subset)
    assert full.pairwise.shape == (12, 12) and capped.pairwise.shape == (5, 5)
    np.testing.assert_array_equal(capped.subset, full.subset)  # the same members, the same order
    np.testing.assert_allclose(capped.pairwise, full.pairwise[:5, :5], rtol=1e-5, atol=1e-8)  # float32 sums
    np.testing.assert_allclose(capped.single, full.single, rtol=1e-5, atol=1e-8)  # singles for every member
    assert capped.n_evaluations == full.n_evaluations - (12 * 11 // 2 - 5 * 4 // 2)
