"""MNIST 3-vs-8 engine: IDX reader, split, log-odds metric, classifier, baselines and GRIDS vs random."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from grids_core import mnist
from grids_core.errors import InputError, ModelError
from grids_core.explain.base import TwoStageModel
from grids_core.explain.baselines import SCORERS
from grids_core.explain.grids import first_order_scores, per_sample_effect


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    return mnist.load_digits()


@pytest.fixture(scope="module")
def trained(digits):
    X, y = digits
    parts = mnist.split(y, seed=0)
    model, info = mnist.train_classifier(X, y, parts, seed=0)
    return model, info, parts


# ------------------------------------------------------------------------------------------ log-odds metric


def _tiny_model() -> mnist.MnistMLP:
    """2 inputs, identity hidden layers, output logits = (x0, x1) for x >= 0."""
    m = mnist.MnistMLP(n_in=2, hidden=(2, 2), n_classes=2)
    with torch.no_grad():
        for layer in (m.fc1, m.fc2, m.fc3):
            layer.weight.copy_(torch.eye(2))
            layer.bias.zero_()
    return m


def test_log_odds_hand_example():
    m = _tiny_model()
    x = torch.tensor([[1.0, 2.0], [0.0, 0.0], [3.0, 0.0]])
    # logits (1, 2): p8 = e^2 / (e^1 + e^2) = 1 / (1 + e^-1) = 0.7310586; φ = log(p/(1-p)) = 2 - 1 = 1.
    p8 = mnist.predict_proba_8(m, x)
    assert p8[0] == pytest.approx(0.7310585786, abs=1e-7)
    assert mnist.log_odds(p8[0]) == pytest.approx(1.0, abs=1e-6)
    # logits (0, 0): p8 = 1/2, φ = 0; logits (3, 0): φ = -3.
    assert mnist.log_odds_8(m, x) == pytest.approx([1.0, 0.0, -3.0], abs=1e-6)
    assert mnist.log_odds(p8) == pytest.approx(mnist.log_odds_8(m, x), abs=1e-6)


def test_log_odds_readout_equals_formula_on_probabilities():
    m = mnist._new_model(3)
    x = torch.rand(50, mnist.N_PIXELS, generator=torch.Generator().manual_seed(0))
    p8 = mnist.predict_proba_8(m, x)
    assert np.allclose(mnist.log_odds(p8), mnist.log_odds_8(m, x), atol=1e-6)
    # The readout stays finite where the probability formula saturates.
    assert mnist.log_odds_8(_tiny_model(), torch.tensor([[0.0, 60.0]]))[0] == pytest.approx(60.0)


# -------------------------------------------------------------------------------------------------- split


def test_split_deterministic_stratified_disjoint():
    y = np.array([0] * 500 + [1] * 500)
    a, b, c = mnist.split(y, seed=1), mnist.split(y, seed=1), mnist.split(y, seed=2)
    for k in ("train", "val", "test"):
        assert np.array_equal(a[k], b[k])
    assert not np.array_equal(a["train"], c["train"])
    assert [len(a[k]) for k in ("train", "val", "test")] == [700, 100, 200]
    for k in ("train", "val", "test"):
        assert y[a[k]].mean() == 0.5
    allidx = np.concatenate([a["train"], a["val"], a["test"]])
    assert len(np.unique(allidx)) == len(y) == len(allidx)
    plain = mnist.split(10, seed=0)
    assert sorted(np.concatenate(list(plain.values())).tolist()) == list(range(10))


# ---------------------------------------------------------------------------------------------- IDX reader


def _idx_bytes(arr: np.ndarray, code: int, be: str) -> bytes:
    head = struct.pack(">BBBB", 0, 0, code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return head + arr.astype(be).tobytes()


def test_idx_round_trip(tmp_path: Path):
    imgs = np.arange(3 * 28 * 28, dtype=np.int64).reshape(3, 28, 28) % 256
    (tmp_path / "a.idx").write_bytes(_idx_bytes(imgs, 0x08, ">u1"))
    back = mnist.read_idx(tmp_path / "a.idx")
    assert back.dtype == np.uint8 and back.shape == (3, 28, 28) and np.array_equal(back, imgs)
    floats = np.array([[1.5, -2.25], [3.0, 1e6]])
    (tmp_path / "f.idx.gz").write_bytes(gzip.compress(_idx_bytes(floats, 0x0D, ">f4")))
    assert np.array_equal(mnist.read_idx(tmp_path / "f.idx.gz"), floats.astype(np.float32))
    ints = np.array([-7, 70000, 3], dtype=np.int32)
    mnist.write_idx(tmp_path / "i.idx", ints)
    assert (tmp_path / "i.idx").read_bytes() == _idx_bytes(ints, 0x0C, ">i4")
    assert np.array_equal(mnist.read_idx(tmp_path / "i.idx"), ints)


def test_idx_truncated_and_bad_magic(tmp_path: Path):
    raw = _idx_bytes(np.zeros((4, 28, 28), np.uint8), 0x08, ">u1")
    (tmp_path / "cut").write_bytes(raw[:-100])
    with pytest.raises(InputError, match=r"cut.*truncated.*expected 3152 bytes.*found 3052.*Download"):
        mnist.read_idx(tmp_path / "cut")
    (tmp_path / "cut.gz").write_bytes(gzip.compress(raw)[:-20])
    with pytest.raises(InputError, match="cut.gz"):
        mnist.read_idx(tmp_path / "cut.gz")
    (tmp_path / "magic").write_bytes(b"\x12\x34" + raw[2:])
    with pytest.raises(InputError, match=r"magic.*not an IDX|not an IDX.*magic"):
        mnist.read_idx(tmp_path / "magic")
    (tmp_path / "code").write_bytes(b"\x00\x00\x07\x03" + raw[4:])
    with pytest.raises(InputError, match="magic number 0x00000703"):
        mnist.read_idx(tmp_path / "code")


def test_load_digits_from_idx_dir(tmp_path: Path):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(10, 28, 28), dtype=np.uint8)
    labels = np.array([3, 8, 1, 8, 3, 0, 8, 9, 3, 3], dtype=np.uint8)
    mnist.write_idx(tmp_path / "train-images-idx3-ubyte.gz", imgs)
    mnist.write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels)
    mnist.write_idx(tmp_path / "t10k-images-idx3-ubyte", imgs[:4])
    mnist.write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels[:4])
    X, y = mnist.load_digits(tmp_path)
    keep = np.isin(labels, [3, 8])
    assert X.shape == (keep.sum() + 3, 784) and X.dtype == np.float32
    assert np.array_equal(y[: keep.sum()], (labels[keep] == 8).astype(np.int64))
    assert np.allclose(X[0], imgs[0].ravel() / 255.0)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(InputError, match="t10k-labels-idx1-ubyte"):
        mnist.load_digits(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="No MNIST IDX files"):
        mnist.load_digits(tmp_path / "empty")


# ----------------------------------------------------------------------------------------------- classifier


def test_shipped_digits(digits):
    X, y = digits
    assert X.shape[1] == 784 and X.dtype == np.float32 and 0.0 <= X.min() and X.max() <= 1.0
    assert len(X) >= 900 and set(np.unique(y)) == {0, 1} and abs(y.mean() - 0.5) < 0.1


def test_training_is_deterministic(digits):
    X, y = digits
    parts = mnist.split(y, seed=0)
    a, ia = mnist.train_classifier(X, y, parts, seed=5, max_epochs=2)
    b, _ = mnist.train_classifier(X, y, parts, seed=5, max_epochs=2)
    c, _ = mnist.train_classifier(X, y, parts, seed=6, max_epochs=2)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["fc1.weight"], sc["fc1.weight"])
    assert ia["epochs"] == 2 and ia["steps"] > 0


def test_classifier_accuracy_and_two_stage(trained, tmp_path: Path):
    model, info, parts = trained
    # Observed 0.975 at seed 0 (0.955-0.985 over seeds 0-5); the paper reports 0.979 on full MNIST 3/8.
    assert info["test_accuracy"] >= 0.93, info
    assert isinstance(model, TwoStageModel) and model.n_features == 784
    x = torch.rand(5, 784)
    assert torch.allclose(model.stage2(model.stage1(x)), model(x), atol=1e-5)
    path = tmp_path / "clf.pt"
    mnist.save_classifier(model, path, info)
    back, binfo = mnist.load_classifier(path)
    assert torch.equal(back(x), model(x)) and binfo["test_accuracy"] == info["test_accuracy"]
    path.write_bytes(b"garbage")
    with pytest.raises(ModelError, match="corrupt"):
        mnist.load_classifier(path)


# ---------------------------------------------------------------------------------- objective and baselines


def test_objective_and_baselines(trained, digits):
    X, y = digits
    model, _, parts = trained
    tr = parts["train"]
    obj = mnist.mnist_objective(model, X[tr][y[tr] == 1])
    pool = mnist.candidate_pool(obj)
    assert 300 < len(pool) < 784
    # Exact single-pixel effects (the ablation baseline) agree with brute force.
    some = pool[:5]
    eff = -SCORERS["ablation"].fn(obj, some, L=5, seed=0, progress=None, cancel=None)[some]
    base = mnist.evaluate_subset(obj, np.zeros(0, np.int64))
    brute = [mnist.evaluate_subset(obj, np.array([j])) - base for j in some]
    assert eff == pytest.approx(brute, abs=1e-4)
    for name in ("random", "saliency", "ablation"):
        s = mnist.METHODS[name](obj, 64, 0)
        assert len(s) == 64 == len(np.unique(s)) and np.isin(s, pool).all()
    assert np.array_equal(mnist.METHODS["random"](obj, 64, 1), mnist.METHODS["random"](obj, 64, 1))
    assert mnist.evaluate_subset(obj, mnist.METHODS["saliency"](obj, 64)) < mnist.evaluate_subset(
        obj, mnist.METHODS["random"](obj, 64)
    )


def test_evaluate_masks_tables(trained, digits):
    X, y = digits
    model, _, parts = trained
    te = parts["test"]
    masks = {"grids": np.arange(300, 364), "random": np.arange(0, 64), "same": np.arange(0, 64)}
    ev = mnist.evaluate_masks(model, X[te], y[te], masks)
    n8 = int((y[te] == 1).sum())
    assert set(ev.summary.index) == set(masks) and (ev.summary["n_images"] == n8).all()
    assert np.allclose(ev.delta["random"], ev.delta["same"])
    x8 = X[te][y[te] == 1]
    manual = mnist.log_odds_8(model, x8) - mnist.log_odds_8(model, mnist.perturb(x8, masks["grids"]))
    assert np.allclose(ev.delta["grids"], manual)
    assert ev.summary.loc["grids", "median_delta_phi"] == pytest.approx(np.median(manual))
    assert set(ev.wilcoxon.index) == {"random", "same"} and 0 <= ev.wilcoxon.loc["random", "p_value"] <= 1


# ------------------------------------------------------------------------------------------------------ GRIDS


def test_grids_beats_random_on_test_eights(trained, digits):
    X, y = digits
    model, _, parts = trained
    ex = mnist.run_mnist_experiment(
        L=64, k=32, seed=0, methods=("grids", "random", "saliency"), data=(X, y), model=model
    )
    g = ex.subsets["grids"]
    assert len(g) == 64 == len(np.unique(g)) and ex.grids_result is not None
    assert np.array_equal(g, ex.grids_result.subset)
    # Observed at seed 0: median Δφ grids 7.6 vs random 0.92, Wilcoxon p ~ 2e-18; GRIDS ran in ~1.7 s.
    assert ex.summary.loc["grids", "median_delta_phi"] > ex.summary.loc["random", "median_delta_phi"] + 3.0
    assert ex.wilcoxon.loc["random", "p_value"] < 1e-6
    # GRIDS starts from the gradient (saliency) subset and accepts only improving swaps.
    tj = ex.train_objective
    assert tj["grids"] <= tj["saliency"] + 1e-6 and tj["saliency"] < tj["random"] < tj["none"]
    assert tj["grids"] == pytest.approx(ex.grids_result.objective, abs=1e-4)
    # Δφ agrees with the engine's per-sample effect (readout change, no sign) on the test 8s.
    te = parts["test"]
    x8 = torch.from_numpy(X[te][y[te] == 1])
    obj = mnist.mnist_objective(model, X[parts["train"]][y[parts["train"]] == 1])
    assert np.allclose(ex.delta["grids"], -per_sample_effect(obj, g, x8), atol=1e-4)


def test_saliency_matches_engine_first_order(trained, digits):
    X, y = digits
    model, _, parts = trained
    tr = parts["train"]
    obj = mnist.mnist_objective(model, X[tr][y[tr] == 1])
    a = first_order_scores(obj)
    pool = mnist.candidate_pool(obj)
    ours = SCORERS["saliency"].fn(obj, pool, L=64, seed=0, progress=None, cancel=None)
    assert np.corrcoef(-a[pool], ours[pool])[0, 1] > 0.999  # scores: higher = lowers J more
    assert set(mnist.METHODS["saliency"](obj, 64)) == set(pool[np.argsort(a[pool], kind="stable")[:64]])
