"""Baseline scorers: agreement with the field's packages (captum, sage, lime) on a small dense MLP, and
contract checks (pool, determinism, sign, completeness, exactness) on a sparse binary model."""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from scipy.stats import spearmanr

from grids_core.errors import CancelledError, SettingsError
from grids_core.explain.base import DenseAffineStage1, Objective
from grids_core.explain.baselines import SCORERS, top_l
from grids_core.explain.baselines.correlation import correlation_scores
from grids_core.explain.baselines.gradients import ig_attributions
from grids_core.explain.baselines.lime_local import cosine_to_ones, kernel, lime_design, weighted_ridge
from grids_core.explain.baselines.shapley import sage_scores
from grids_core.explain.grids import subset_effects

pytestmark = pytest.mark.usefixtures("one_thread")


class ToyMLP(DenseAffineStage1):
    """``f(x) = w3 . tanh(W2^T tanh(c + x W1)) + boost * h[:, 0]`` with a dense affine first stage."""

    def __init__(self, n: int = 30, h: int = 12, seed: int = 0, boost: float = 0.0):
        g = torch.Generator().manual_seed(seed)
        self.w1 = torch.randn(n, h, generator=g) / math.sqrt(n) * 2.0
        self.c = torch.randn(h, generator=g) * 0.1
        self.w2 = torch.randn(h, 8, generator=g) / math.sqrt(h) * 1.5
        self.w3 = torch.randn(8, generator=g)
        self.boost = boost
        if boost:
            self.w1[:, 0] = 0.0
            self.w1[0, 0] = 1.0

    def stage1_params(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.c, self.w1

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def readout(self, h: torch.Tensor) -> torch.Tensor:
        return torch.tanh(torch.tanh(h) @ self.w2) @ self.w3 + self.boost * h[:, 0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(self.c + x @ self.w1)


@pytest.fixture(scope="module")
def dense():
    """(model, objective) on 24 dense samples x 30 features in [0, 1]; v = 0, sign = +1."""
    model = ToyMLP()
    x = torch.rand(24, 30, generator=torch.Generator().manual_seed(1))
    return model, Objective(model=model, readout=model.readout, x_target=x, value=0.0, sign=1.0)


@pytest.fixture(scope="module")
def sparse():
    """(model, objective, pool): binary CSR 60 x 40, feature 0 open in 80% of cells and raising f strongly."""
    rng = np.random.default_rng(3)
    x = (rng.random((60, 40)) < 0.15).astype(np.float32)
    x[:, 0] = rng.random(60) < 0.8
    x[:, 39] = 0.0  # never open: outside the pool
    model = ToyMLP(n=40, seed=2, boost=4.0)
    obj = Objective(model=model, readout=model.readout, x_target=sp.csr_matrix(x), value=0.0, sign=1.0)
    pool = np.flatnonzero(x.any(0))
    return model, obj, pool


FAST = {
    "sage": {"max_passes": 8},
    "lime": {"n_samples": 256, "n_features": 24},
    "cxplain": {"steps": 40},
    "fimap": {"steps": 60},
    "smoothgrad": {"n_samples": 20},
}
MODEL_BASED = [n for n in SCORERS if not SCORERS[n].needs_bundle]


def _run(name: str, obj: Objective, pool, seed: int = 0, L: int = 5, **kw) -> np.ndarray:
    return SCORERS[name].fn(obj, pool, L=L, seed=seed, progress=None, cancel=None, **(FAST.get(name, {}) | kw))


def _J(model: ToyMLP, x: torch.Tensor, cols=(), value: float = 0.0) -> float:
    xp = x.clone()
    xp[:, list(cols)] = value
    return float(model.forward(xp).mean())


# ----------------------------------------------------------------------------------- peers: captum
def test_saliency_matches_captum(dense):
    from captum.attr import Saliency

    model, obj = dense
    x = obj.x_target
    grad = Saliency(model.forward).attribute(x.clone().requires_grad_(True), abs=False).detach()
    expected = -((0.0 - x) * grad).mean(0).numpy()
    ours = _run("saliency", obj, np.arange(30))
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-6)


def test_smoothgrad_agrees_with_captum_noise_tunnel(dense):
    from captum.attr import NoiseTunnel, Saliency

    model, obj = dense
    x = obj.x_target
    sigma = 0.15 * float(x.max() - x.min())
    torch.manual_seed(0)  # captum draws its noise from the global RNG
    nt = NoiseTunnel(Saliency(model.forward))
    grad = nt.attribute(x.clone().requires_grad_(True), nt_type="smoothgrad", nt_samples=1500, stdevs=sigma,
                        abs=False).detach()
    expected = (x * grad).mean(0).numpy()
    for space in ("stage1", "input"):
        ours = SCORERS["smoothgrad"].fn(obj, np.arange(30), L=5, seed=0, progress=None, cancel=None,
                                        n_samples=1500, noise_space=space)
        assert spearmanr(ours, expected)[0] > 0.97, space
        assert np.abs(ours - expected).max() < 0.08 * np.abs(expected).max(), space
    # smoothing changes the answer relative to plain saliency only by noise-level amounts
    assert spearmanr(_run("smoothgrad", obj, np.arange(30)), _run("saliency", obj, np.arange(30)))[0] > 0.8


def test_ig_matches_captum_and_is_complete(dense):
    from captum.attr import IntegratedGradients

    model, obj = dense
    x = obj.x_target
    pool = np.arange(3, 30)  # a restricted pool: the baseline sets only these to v
    base = x.clone()
    base[:, pool] = 0.0
    attr = IntegratedGradients(model.forward).attribute(x, baselines=base, n_steps=32, method="riemann_middle")
    expected = attr.mean(0).numpy()
    ours = _run("ig", obj, pool)
    np.testing.assert_allclose(ours[pool], expected[pool], rtol=1e-4, atol=1e-6)
    assert np.all(np.isneginf(ours[:3]))
    a, dj = ig_attributions(obj, pool, steps=32)
    assert dj == pytest.approx(_J(model, x, pool) - _J(model, x), rel=1e-5)
    assert a[pool].sum() == pytest.approx(dj, rel=0.02)


def test_ablation_matches_captum_feature_ablation(dense):
    from captum.attr import FeatureAblation

    model, obj = dense
    x = obj.x_target
    attr = FeatureAblation(model.forward).attribute(x, baselines=0.0)
    ours = _run("ablation", obj, np.arange(30))
    np.testing.assert_allclose(ours, attr.mean(0).numpy(), rtol=1e-4, atol=1e-6)


# ----------------------------------------------------------------------------------- peers: sage, lime
def test_sage_agrees_with_sage_package(dense):
    import sage

    model, obj = dense
    x = obj.x_target.numpy().astype(np.float64)
    shift = float(model.w3.abs().sum()) + 1.0  # f + shift > 0, so (sqrt(f + shift) - 0)^2 = f + shift

    def out(xn: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return np.sqrt(model.forward(torch.as_tensor(xn, dtype=torch.float32)).double().numpy() + shift)

    imputer = sage.DefaultImputer(out, np.zeros(30))
    est = sage.PermutationEstimator(imputer, loss="mse", random_state=0)
    theirs = -est(x, np.zeros(len(x)), batch_size=64, thresh=0.02, bar=False).values  # loss decrease -> f drop
    ours, info = sage_scores(obj, np.arange(30), L=5, seed=0, tail=0, thresh=0.02, max_passes=400,
                             max_seconds=None, return_info=True)
    assert info["tail"] == 30 and info["converged"]
    big = np.abs(theirs) > 0.1 * np.abs(theirs).max()
    assert big.sum() >= 8
    # measured over 3 model seeds: Spearman 0.990-0.998 on the large values, max |diff| 3.5-7.8% of the range
    assert spearmanr(ours[big], theirs[big])[0] > 0.95
    assert np.abs(ours - theirs).max() < 0.15 * np.abs(theirs).max()
    total = _J(model, obj.x_target) - _J(model, obj.x_target, range(30))
    assert ours.sum() == pytest.approx(total, rel=0.05)


def test_lime_matches_lime_base_on_same_neighbourhood(dense):
    from lime.lime_base import LimeBase
    from sklearn.metrics import pairwise_distances

    model, obj = dense
    pool = np.arange(30)
    ours = _run("lime", obj, pool, seed=4, n_samples=400, n_features=20)
    feats, _, z, y = lime_design(obj, pool, seed=4, n_samples=400, n_features=20)
    d = cosine_to_ones(z)
    np.testing.assert_allclose(d, pairwise_distances(z, z[:1], metric="cosine").ravel(), atol=1e-9)
    base = LimeBase(partial(kernel, width=0.25), random_state=0)
    _, coefs, _, _ = base.explain_instance_with_data(z, y[:, None], d, label=0, num_features=len(feats),
                                                     feature_selection="none")
    theirs = np.zeros(len(feats))
    for i, c in coefs:
        theirs[i] = c
    np.testing.assert_allclose(ours[feats], theirs, rtol=1e-6, atol=1e-9)
    # responses are exact subset effects: row k perturbs the features with z = 0
    k = 7
    cols = feats[z[k] == 0]
    assert y[k] == pytest.approx(_J(model, obj.x_target, cols) - _J(model, obj.x_target), rel=1e-4, abs=1e-6)
    # the rest of the pool ranks after every LIME feature
    rest = np.setdiff1d(pool, feats)
    assert ours[rest].max() < ours[feats].min()


def test_weighted_ridge_matches_sklearn():
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(0)
    z = rng.integers(0, 2, (50, 6)).astype(float)
    y = z @ rng.normal(size=6) + rng.normal(size=50) * 0.1
    w = rng.random(50)
    b, coef = weighted_ridge(z, y, w, alpha=1.0)
    ref = Ridge(alpha=1.0).fit(z, y, sample_weight=w)
    np.testing.assert_allclose(coef, ref.coef_, rtol=1e-8)
    assert b == pytest.approx(ref.intercept_)


# ----------------------------------------------------------------------------------- sparse contract
@pytest.mark.parametrize("name", MODEL_BASED)
def test_sparse_contract_and_determinism(sparse, name):
    _, obj, pool = sparse
    calls: list[float] = []
    s1 = SCORERS[name].fn(obj, pool, L=5, seed=11, progress=lambda f, m: calls.append(f), cancel=None,
                          **FAST.get(name, {}))
    s2 = _run(name, obj, pool, seed=11)
    assert s1.shape == (40,) and s1.dtype == np.float64
    assert np.all(np.isneginf(np.delete(s1, pool)))
    assert np.all(np.isfinite(s1[pool]))
    np.testing.assert_array_equal(s1, s2)
    assert calls and all(0.0 <= f <= 1.0 for f in calls)
    sub = top_l(s1, pool, 5)
    assert len(sub) == 5 and len(set(sub.tolist())) == 5 and set(sub.tolist()) <= set(pool.tolist())


@pytest.mark.parametrize("name", [n for n in MODEL_BASED if n != "random"])
def test_sign_convention_strong_feature_first(sparse, name):
    """Feature 0 raises f by 4 when open, so closing it lowers J most: every method ranks it first."""
    _, obj, pool = sparse
    assert top_l(_run(name, obj, pool), pool, 1)[0] == 0


def test_sign_flips_with_sign(sparse):
    model, obj, pool = sparse
    flipped = Objective(model=model, readout=model.readout, x_target=obj.x_target, value=0.0, sign=-1.0)
    for name in ("saliency", "ablation", "ig"):
        assert top_l(_run(name, flipped, pool), pool, 1)[0] != 0
        np.testing.assert_allclose(_run(name, flipped, pool)[pool], -_run(name, obj, pool)[pool], rtol=1e-6)


def test_random_differs_by_seed(sparse):
    _, obj, pool = sparse
    assert not np.array_equal(_run("random", obj, pool, seed=0), _run("random", obj, pool, seed=1))


def test_ig_completeness_sparse(sparse):
    model, obj, pool = sparse
    a, dj = ig_attributions(obj, pool, steps=32)
    x = torch.as_tensor(obj.x_target.toarray())
    assert dj == pytest.approx(_J(model, x, pool) - _J(model, x), rel=1e-5)
    assert a[pool].sum() == pytest.approx(dj, rel=0.02)


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_ablation_exact_with_beta(sparse, value):
    """ablation = -(J_beta({j}) - J_beta(empty)) by brute force, for v = 0 and v = 1, with beta > 0."""
    model, obj, pool = sparse
    rng = np.random.default_rng(5)
    other = sp.csr_matrix((rng.random((30, 40)) < 0.2).astype(np.float32))
    ob = Objective(model=model, readout=model.readout, x_target=obj.x_target, value=value, sign=1.0, beta=0.5,
                   x_other=other)
    pool_v = np.arange(40) if value == 1.0 else pool
    s = _run("ablation", ob, pool_v)
    xt, xo = torch.as_tensor(obj.x_target.toarray()), torch.as_tensor(other.toarray())

    def jb(cols) -> float:
        return _J(model, xt, cols, value) - 0.5 * (_J(model, xo, cols, value) - _J(model, xo))

    for j in (0, 5, 17):
        assert s[j] == pytest.approx(-(jb([j]) - jb([])), rel=1e-4, abs=1e-6)


def test_sage_short_tail_is_near_single_effect(sparse):
    """With tail 1 every removal happens from the full input: SAGE equals the exact single effect."""
    _, obj, pool = sparse
    s = sage_scores(obj, pool, L=1, seed=0, max_passes=3)
    np.testing.assert_allclose(s[pool], _run("ablation", obj, pool)[pool], rtol=1e-5, atol=1e-7)


def test_fimap_depends_on_L(sparse):
    _, obj, pool = sparse
    assert SCORERS["fimap"].uses_L and SCORERS["sage"].uses_L
    assert not np.allclose(_run("fimap", obj, pool, L=1), _run("fimap", obj, pool, L=20))


def test_cxplain_image_layout():
    """2x2 windows on a 8x8 image: the four pixels of a window share a score up to the activity tie-break."""
    model = ToyMLP(n=64, seed=5)
    x = (torch.rand(20, 64, generator=torch.Generator().manual_seed(2)) > 0.5).float()
    obj = Objective(model=model, readout=model.readout, x_target=x, value=0.0, sign=1.0)
    pool = np.arange(64)
    s = _run("cxplain", obj, pool, image_shape=(8, 8))
    assert np.all(np.isfinite(s))
    win = (np.arange(64) // 8 // 2) * 4 + (np.arange(64) % 8) // 2
    order = np.argsort(-s, kind="stable")
    # features are grouped by window in the ranking (window scores dominate the tie-break)
    ranked_windows = [win[i] for i in order]
    first_seen = list(dict.fromkeys(ranked_windows))
    assert ranked_windows == [w for w in first_seen for _ in range(4)]
    with pytest.raises(SettingsError):
        _run("cxplain", obj, pool, image_shape=(7, 7))


def test_cancel_and_bad_settings(sparse):
    _, obj, pool = sparse
    for name in ("ablation", "sage", "fimap", "smoothgrad", "cxplain"):
        with pytest.raises(CancelledError):
            SCORERS[name].fn(obj, pool, L=5, seed=0, progress=None, cancel=lambda: True)
    with pytest.raises(SettingsError):
        _run("smoothgrad", obj, pool, noise_space="pixels")
    with pytest.raises(SettingsError):
        _run("sage", obj, pool, preset="huge")


def test_top_l_rules():
    scores = np.array([1.0, 5.0, 5.0, -np.inf, 3.0, 9.0, np.nan])
    pool = np.array([4, 2, 1, 0, 3, 6])
    np.testing.assert_array_equal(top_l(scores, pool, 3), [1, 2, 4])  # 5 never (not in pool), ties by index
    np.testing.assert_array_equal(top_l(scores, pool, 10), [1, 2, 4, 0])  # non-finite never picked
    assert len(top_l(scores, pool, 0)) == 0


# ----------------------------------------------------------------------------------- correlation
def _tiny_bundle():
    from grids_core.bundle import Bundle

    rng = np.random.default_rng(0)
    n_cells, n_peaks = 80, 6
    atac = (rng.random((n_cells, n_peaks)) < 0.4).astype(np.float32)
    types = np.array(["A"] * 50 + ["B"] * 30)
    expr = 1.0 + 2.0 * atac[:, 1] - 1.5 * atac[:, 2] + rng.normal(0, 0.3, n_cells) + 3.0 * (types == "B")
    rna = np.stack([expr, rng.random(n_cells)], 1).astype(np.float32)
    peaks = pd.DataFrame({
        "chrom": ["chr1"] * 5 + ["chr2"],
        "start": [100_000, 400_000, 600_000, 900_000, 1_700_000, 500_000],
        "end": [100_500, 400_500, 600_500, 900_500, 1_700_500, 500_500],
        "name": [f"p{i}" for i in range(n_peaks)],
    })
    genes = pd.DataFrame({"name": ["G", "H"], "gene_id": ["g", "h"], "chrom": ["chr1", "chr1"],
                          "start": [500_000, 10], "end": [510_000, 20], "strand": ["+", "+"], "tss": [500_000, 10]})
    cells = pd.DataFrame({"barcode": [f"c{i}" for i in range(n_cells)], "cell_type": types, "split": "train"})
    return Bundle(atac=sp.csr_matrix(atac), rna=rna, cells=cells, peaks=peaks, genes=genes), atac, expr, types


def test_correlation_pearson_window_and_scope():
    b, atac, _, _ = _tiny_bundle()
    expr = b.rna[:, 0].astype(np.float64)
    obj = Objective(model=ToyMLP(n=6), readout=lambda h: h[:, 0], x_target=b.atac[:50], value=0.0, sign=1.0)
    pool = np.arange(6)
    s = correlation_scores(obj, pool, L=2, seed=0, bundle=b, gene="G", cell_type="A")
    near = [0, 1, 2, 3]  # within 500 kb of the TSS on chr1; peak 4 is 1.2 Mb away, peak 5 on chr2
    assert np.all(np.isneginf(s[[4, 5]]))
    for j in near:
        assert s[j] == pytest.approx(np.corrcoef(atac[:50, j], expr[:50])[0, 1], abs=1e-9)
    assert list(top_l(s, pool, 1)) == [1]
    s_all = correlation_scores(obj, pool, L=2, seed=0, bundle=b, gene="G", cell_type="A", scope="all")
    assert s_all[1] == pytest.approx(np.corrcoef(atac[:, 1], expr)[0, 1], abs=1e-9)
    opened = Objective(model=obj.model, readout=obj.readout, x_target=obj.x_target, value=1.0, sign=1.0)
    s_open = correlation_scores(opened, pool, L=2, seed=0, bundle=b, gene="G", cell_type="A")
    assert list(top_l(s_open, pool, 1)) == [2]  # opening the repressive peak lowers expression
    with pytest.raises(SettingsError):
        correlation_scores(obj, pool, L=2, seed=0, bundle=b, gene="G", cell_type="A", scope="tissue")
    assert SCORERS["correlation"].needs_bundle


@pytest.mark.parametrize("name", ["random", "saliency", "ablation"])
def test_baseline_effects_belong_to_their_peaks(sparse, name):
    """Drop-one, alone and pairwise effects are reported on the member they were measured on, whatever order
    the method ranked the members in (a review found them shifted onto other peaks)."""
    from grids_core.explain.gene import ExplainRequest
    from grids_core.explain.registry import run_method

    _, obj, _ = sparse
    out = run_method(ExplainRequest("g", "c", method=name, L=5, seed=4), obj, None)
    S = [int(r) for r in out.subset]

    def J(members) -> float:
        return subset_effects(obj, np.asarray(members, dtype=np.int64), with_redundancy=False).objective

    whole = subset_effects(obj, np.asarray(S, dtype=np.int64), with_redundancy=False)
    empty, full = whole.baseline_objective, whole.objective
    for i, r in enumerate(S):
        assert out.drop_one[i] == pytest.approx(J([m for m in S if m != r]) - full, abs=1e-5)
        assert out.single[i] == pytest.approx(J([r]) - empty, abs=1e-5)
    i, j = 0, len(S) - 1
    assert out.pairwise[i, j] == pytest.approx(J([m for m in S if m not in (S[i], S[j])]) - full, abs=1e-5)
    assert list(out.drop_one) == sorted(out.drop_one, reverse=True)  # members listed by drop-one effect


def test_sage_default_stops_by_passes_not_by_the_clock(dense, monkeypatch):
    """A slow or loaded machine must get the same SAGE scores for a seed: the default stop rule counts passes
    (a wall-clock cap made a run stop after 1 pass instead of 3 when it took longer)."""
    from grids_core.explain.baselines import shapley

    _, obj = dense
    ref, ref_info = sage_scores(obj, np.arange(30), L=5, seed=3, return_info=True)
    clock = iter(range(0, 10**9, 1000))  # every reading 1,000 s after the last
    monkeypatch.setattr(shapley.time, "perf_counter", lambda: float(next(clock)))
    slow, slow_info = sage_scores(obj, np.arange(30), L=5, seed=3, return_info=True)
    assert slow_info["passes"] == ref_info["passes"] >= 3
    np.testing.assert_array_equal(slow, ref)
