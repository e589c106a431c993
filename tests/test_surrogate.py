"""Surrogate: the affine first stage, its per-feature deltas and first-order scores, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from grids_core.errors import ModelError
from grids_core.surrogate import Surrogate, SurrogateConfig, block_offsets_from_chroms
from grids_core.train import TrainConfig, load_model, save_model, train

from .test_bundle import tiny_bundle


def small_model(n_peaks: int = 40, n_genes: int = 6) -> Surrogate:
    chroms = np.array(["chr1"] * 15 + ["chr2"] * 20 + ["chrX"] * (n_peaks - 35))
    cfg = SurrogateConfig(n_peaks=n_peaks, n_genes=n_genes, n_cell_types=3, block_offsets=block_offsets_from_chroms(chroms),
                          rna_hidden=(16, 8))
    torch.manual_seed(0)
    m = Surrogate(cfg)
    with torch.no_grad():
        m.enc_atac.e0.normal_()
    return m.eval()


def random_x(n: int, p: int, seed: int = 0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    return sp.csr_matrix((rng.random((n, p)) < 0.2).astype(np.float32))


def dense_stage1(m: Surrogate, x: np.ndarray) -> torch.Tensor:
    """Reference: gather per-peak closed/open vectors and sum-pool per block (the slow dense way)."""
    e0, e1 = m.enc_atac.e0, m.enc_atac.e0 + m.enc_atac.delta
    xt = torch.from_numpy(x)[:, :, None]
    vec = (1 - xt) * e0[None] + xt * e1[None]  # [B, N, h0]
    offs = m.cfg.block_offsets
    return torch.cat([vec[:, a:b].sum(1) for a, b in zip(offs[:-1], offs[1:], strict=True)], dim=1)


def test_block_offsets():
    assert block_offsets_from_chroms(np.array(["chr1", "chr1", "chr2", "chrX"])) == [0, 2, 3, 4]


def test_stage1_equals_dense_gather_and_is_affine():
    m = small_model()
    x = random_x(7, 40)
    h = m.stage1(x)
    torch.testing.assert_close(h, dense_stage1(m, x.toarray()), rtol=1e-5, atol=1e-5)
    # setting feature j from 0 to 1 moves stage1 by exactly W[j]
    j = int(np.flatnonzero(x.toarray()[0] == 0)[0])
    x2 = x.tolil()
    x2[0, j] = 1
    diff = m.stage1(x2.tocsr())[0] - h[0]
    torch.testing.assert_close(diff, m.stage1_rows(torch.tensor([j]))[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("value", [0.0, 1.0])
@pytest.mark.parametrize("layout", ["csr", "csc", "dense"])
def test_first_order_matches_autograd_and_explicit_sum(value, layout):
    """Per-block sparse products (CSR/CSC) and the gather over non-zeros (dense input) agree with autograd."""
    m = small_model()
    x = random_x(9, 40, seed=1)
    h = m.stage1(x).detach().requires_grad_(True)
    readout = m.gene_readout(2)
    readout(h).sum().backward()
    grad = h.grad
    given = {"csr": x, "csc": x.tocsc(), "dense": torch.from_numpy(x.toarray())}[layout]
    a = m.first_order(given, grad, value)
    w = m.stage1_rows(torch.arange(40))  # [N, H]
    expected = ((value - torch.from_numpy(x.toarray())) * (grad @ w.T)).mean(0)
    torch.testing.assert_close(a, expected, rtol=1e-5, atol=1e-6)


def test_gene_readout_matches_full_prediction():
    m = small_model()
    x = random_x(5, 40, seed=2)
    full = m.predict(x)
    for g in (0, 3):
        torch.testing.assert_close(m.gene_readout(g)(m.stage1(x)), full[:, g], rtol=1e-5, atol=1e-5)


def test_training_is_deterministic_and_checkpoint_round_trips(tmp_path):
    b = tiny_bundle(n_cells=60, n_peaks=30, n_genes=5)
    from grids_core import bundle as bundle_io

    bundle_io.save(b, tmp_path / "b")
    b = bundle_io.load(tmp_path / "b")
    cfg = TrainConfig(steps_atac=5, steps_rna=5, steps_maps=5, steps_paired=5, batch_size=16, seed=1)
    t1, t2 = train(b, cfg), train(b, cfg)
    for (k, v1), v2 in zip(t1.model.state_dict().items(), t2.model.state_dict().values(), strict=True):
        assert torch.equal(v1, v2), k
    assert set(t1.meta["quality"]) == set(b.gene_names)
    path = save_model(t1, tmp_path / "m.pt")
    payload = torch.load(path, weights_only=True)  # loadable without pickle code execution
    assert payload["format"] == "grids-surrogate/1"
    back = load_model(path, b)
    x = b.atac[:10]
    np.testing.assert_allclose(back.model.predict_numpy(x), t1.model.predict_numpy(x), rtol=1e-5, atol=1e-6)
    assert back.model_id == t1.model_id


def test_model_bundle_mismatch_and_corrupt_checkpoint(tmp_path):
    from grids_core import bundle as bundle_io

    b1 = bundle_io.load(bundle_io.save(tiny_bundle(n_cells=60, n_peaks=30), tmp_path / "b1"))
    b2 = bundle_io.load(bundle_io.save(tiny_bundle(n_cells=60, n_peaks=24), tmp_path / "b2"))
    tm = train(b1, TrainConfig(steps_atac=2, steps_rna=2, steps_maps=2, steps_paired=2, batch_size=16))
    path = save_model(tm, tmp_path / "m.pt")
    with pytest.raises(ModelError, match="was not trained on bundle"):
        load_model(path, b2)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ModelError, match="not a readable"):
        load_model(path, b1)
    with pytest.raises(ModelError, match="No model"):
        load_model(tmp_path / "none.pt")


def test_training_is_reproducible_across_processes(small_bundle_dir):
    """Same seed, two fresh interpreters with 2 torch threads: bit-identical weights."""
    import os
    import subprocess
    import sys

    code = (
        "import hashlib, torch; torch.set_num_threads(2); from grids_core import bundle as bio; "
        "from grids_core.train import train, TrainConfig; "
        f"b = bio.load({str(small_bundle_dir)!r}); "
        "tm = train(b, TrainConfig(steps_atac=15, steps_rna=15, steps_maps=15, steps_paired=15)); "
        "print(hashlib.md5(b''.join(v.numpy().tobytes() for v in tm.model.state_dict().values())).hexdigest())"
    )
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env=os.environ).stdout.strip() for _ in range(2)}
    assert len(runs) == 1


def test_paired_fine_tuning_divergence_guard_restores_the_best_weights(small_sim, one_thread):
    """A fine-tune that blows up (absurd learning rate) is rolled back to its best validation state; a sane
    one runs to the end."""
    import torch.nn.functional as F

    from grids_core.train import _validation_cells

    b = small_sim[0]
    x, y = b.atac, torch.from_numpy(b.rna)
    val = _validation_cells(b, 0)
    base = dict(steps_atac=20, steps_rna=20, steps_maps=20, steps_paired=40, val_every=5, seed=0)
    bad = train(b, TrainConfig(**base, paired_lr=50.0))
    rep = bad.meta["paired_fine_tune"]
    assert rep["diverged_at"] is not None and rep["val_cells"] > 0
    assert rep["val_mse"] == pytest.approx(rep["best_val_mse"], rel=1e-5) and rep["val_mse"] <= rep["val_mse_start"]
    assert F.mse_loss(bad.model.predict(x[val]), y[val]).item() == pytest.approx(rep["best_val_mse"], rel=1e-5)
    good = train(b, TrainConfig(**base)).meta["paired_fine_tune"]
    assert good["diverged_at"] is None and good["val_mse"] < good["val_mse_start"]
