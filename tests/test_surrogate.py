"""Surrogate: the affine first stage, its per-feature deltas and first-order scores, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from grids_core.errors import ModelError
from grids_core.surrogate import (
    DeviceSparse,
    Surrogate,
    SurrogateConfig,
    block_offsets_from_chroms,
    cis_pairs,
    hub_output,
)
from grids_core.train import TrainConfig, load_model, save_model, train

from .test_bundle import tiny_bundle


def small_model(n_peaks: int = 40, n_genes: int = 6, hubs: int = 0, promoter: int = 0) -> Surrogate:
    """Random small surrogate; with ``hubs`` > 0, gene g has hubs over the peaks within 8 kb of its TSS
    (and, with ``promoter`` > 0, an additive weight on those within ``promoter`` bp)."""
    chroms = np.array(["chr1"] * 15 + ["chr2"] * 20 + ["chrX"] * (n_peaks - 35))
    mids = np.concatenate([np.arange(n) * 1000 for n in (15, 20, n_peaks - 35)])
    gene_chroms = np.array(["chr1", "chr2"] * n_genes)[:n_genes]
    tss = 3000 * np.arange(n_genes)
    gene, peak = cis_pairs(chroms, mids, gene_chroms, tss, 8000)
    cfg = SurrogateConfig(n_peaks=n_peaks, n_genes=n_genes, n_cell_types=3, block_offsets=block_offsets_from_chroms(chroms),
                          rna_hidden=(16, 8), cis_hubs=hubs, n_cis_pairs=len(gene), promoter_window=promoter)
    torch.manual_seed(0)
    m = Surrogate(cfg)
    with torch.no_grad():
        m.enc_atac.e0.normal_()
        if hubs:
            m.hubs.set_pairs(gene, peak, np.abs(mids[peak] - tss[gene]) <= promoter)
            m.hubs.logits.normal_()
            m.hubs.weight.normal_()
            if promoter:
                m.hubs.linear.normal_()
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


CIS = [(0, 0), (3, 0), (3, 1500)]  # (hubs, promoter window): reference, hubs, hubs + promoter term


@pytest.mark.parametrize(("hubs", "promoter"), CIS)
def test_stage1_equals_dense_gather_and_is_affine(hubs, promoter):
    m = small_model(hubs=hubs, promoter=promoter)
    x = random_x(7, 40)
    torch.testing.assert_close(m.stage1(x), dense_stage1(m, x.toarray()), rtol=1e-5, atol=1e-5)
    view = m.for_gene(2)
    h = view.stage1(x)
    assert h.shape[1] == m.cfg.n_blocks * m.cfg.h0 + hubs + (promoter > 0)
    # setting feature j from 0 to 1 moves a gene's stage1 by exactly W[j] (hub columns included)
    for j in np.flatnonzero(x.toarray()[0] == 0):
        x2 = x.tolil()
        x2[0, j] = 1
        diff = view.stage1(x2.tocsr())[0] - h[0]
        torch.testing.assert_close(diff, view.stage1_rows(torch.tensor([j]))[0], rtol=1e-5, atol=1e-5)


def test_hub_sums_match_explicit_window_sums():
    m = small_model(hubs=3, promoter=1500)
    x = random_x(6, 40, seed=4)
    s = m.hubs.pre(x)  # [B, G, K + 1]: the hub sums, then the additive promoter sum
    w = torch.nn.functional.softplus(m.hubs.logits)
    xd = torch.from_numpy(x.toarray())
    for g in range(m.cfg.n_genes):
        sel = m.hubs.pair_gene == g
        assert 0 < int(sel.sum()) < 40  # a local window, not the genome
        peaks = m.hubs.pair_peak[sel]
        torch.testing.assert_close(s[:, g, :3], xd[:, peaks] @ w[sel], rtol=1e-5, atol=1e-6)
        mids = torch.cat([torch.arange(n) * 1000 for n in (15, 20, 5)])  # as in small_model
        near = (mids[peaks] - 3000 * g).abs() <= 1500  # the promoter peaks: 1-3 around the TSS
        assert 1 <= int(near.sum()) <= 3
        torch.testing.assert_close(s[:, g, 3], xd[:, peaks[near]] @ m.hubs.linear[sel][near], rtol=1e-5, atol=1e-6)
    # a hub saturates: its contribution is bounded by |W_gk| whatever opens
    with torch.no_grad():
        saturating = hub_output(m.hubs.weight, m.hubs.pre(torch.ones(1, 40))[..., :3])
        assert float(saturating.abs().max()) <= float(m.hubs.weight.abs().sum(1).max()) + 1e-6


@pytest.mark.parametrize(("hubs", "promoter"), CIS)
@pytest.mark.parametrize("value", [0.0, 1.0])
@pytest.mark.parametrize("layout", ["csr", "csc", "dense", "device"])
def test_first_order_matches_autograd_and_explicit_sum(value, layout, hubs, promoter):
    """Per-block sparse products (CSR/CSC) and the gather over non-zeros (dense input; ``DeviceSparse``,
    the GPU path, here on CPU) agree with autograd."""
    m = small_model(hubs=hubs, promoter=promoter)
    view = m.for_gene(2)
    x = random_x(9, 40, seed=1)
    h = view.stage1(x).detach().requires_grad_(True)
    view.readout(h).sum().backward()
    grad = h.grad
    given = {"csr": x, "csc": x.tocsc(), "dense": torch.from_numpy(x.toarray()), "device": DeviceSparse.of(x, "cpu")}[layout]
    a = view.first_order(given, grad, value)
    w = view.stage1_rows(torch.arange(40))  # [N, H]
    expected = ((value - torch.from_numpy(x.toarray())) * (grad @ w.T)).mean(0)
    torch.testing.assert_close(a, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("hubs", "promoter"), CIS)
def test_gene_readout_matches_full_prediction(hubs, promoter):
    m = small_model(hubs=hubs, promoter=promoter)
    x = random_x(5, 40, seed=2)
    full = m.predict(x)
    for g in (0, 3):
        view = m.for_gene(g)
        torch.testing.assert_close(view.readout(view.stage1(x)), full[:, g], rtol=1e-5, atol=1e-5)


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


def test_model_id_names_the_weights_not_the_file(tmp_path):
    """Retraining with the same bundle and settings gives the same id (the checkpoint's training time differs);
    other weights another id; a checkpoint written before ids named weights keeps its file-hash id."""
    import hashlib

    from grids_core import bundle as bundle_io
    from grids_core.train import model_file_id

    b = bundle_io.load(bundle_io.save(tiny_bundle(n_cells=60, n_peaks=30, n_genes=5), tmp_path / "b"))
    cfg = TrainConfig(steps_atac=3, steps_rna=3, steps_maps=3, steps_paired=3, batch_size=16, seed=1)
    first, again = save_model(train(b, cfg), tmp_path / "a.pt"), save_model(train(b, cfg), tmp_path / "b.pt")
    assert first.read_bytes() != again.read_bytes()  # the meta differs (training time) ...
    assert load_model(first, b).model_id == load_model(again, b).model_id == model_file_id(first)  # ... the id not
    other = save_model(train(b, TrainConfig(**{**cfg.__dict__, "seed": 2})), tmp_path / "c.pt")
    assert load_model(other, b).model_id != model_file_id(first)
    payload = torch.load(first, weights_only=True)
    del payload["meta"]["id_scheme"]
    torch.save(payload, tmp_path / "old.pt")
    legacy = hashlib.sha256((tmp_path / "old.pt").read_bytes()).hexdigest()[:12]
    assert load_model(tmp_path / "old.pt", b).model_id == model_file_id(tmp_path / "old.pt") == legacy
    assert model_file_id(tmp_path / "none.pt") is None


def test_model_bundle_mismatch_and_corrupt_checkpoint(tmp_path):
    from grids_core import bundle as bundle_io

    b1 = bundle_io.load(bundle_io.save(tiny_bundle(n_cells=60, n_peaks=30), tmp_path / "b1"))
    b2 = bundle_io.load(bundle_io.save(tiny_bundle(n_cells=60, n_peaks=24), tmp_path / "b2"))
    tm = train(b1, TrainConfig(steps_atac=2, steps_rna=2, steps_maps=2, steps_paired=2, batch_size=16))
    path = save_model(tm, tmp_path / "m.pt")
    with pytest.raises(ModelError, match="was not trained on bundle") as err:
        load_model(path, b2)
    # m.pt is not b2's default model: training the default one alone would not help, so the message says both ways
    assert f"`grids train --bundle {b2.path}` (its default model; then leave --model out)" in str(err.value)
    with pytest.raises(ModelError, match="No model") as err:
        load_model(tmp_path / "none.pt", b1)
    assert f"`grids train --bundle {b1.path} --out {tmp_path / 'none.pt'}`" in str(err.value)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ModelError, match="not a readable"):
        load_model(path, b1)
    with pytest.raises(ModelError, match="No model"):
        load_model(tmp_path / "none.pt")


def test_training_is_reproducible_across_processes(small_bundle_dir):
    """Same seed, two fresh interpreters with 2 torch threads on CPU: bit-identical weights."""
    import os
    import subprocess
    import sys

    code = (
        "import hashlib, torch; torch.set_num_threads(2); from grids_core import bundle as bio; "
        "from grids_core.train import train, TrainConfig; "
        f"b = bio.load({str(small_bundle_dir)!r}); "
        "tm = train(b, TrainConfig(steps_atac=15, steps_rna=15, steps_maps=15, steps_paired=15, device='cpu')); "
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
    assert F.mse_loss(bad.model.predict(x[val]).cpu(), y[val]).item() == pytest.approx(rep["best_val_mse"], rel=1e-5)
    good = train(b, TrainConfig(**base)).meta["paired_fine_tune"]
    assert good["diverged_at"] is None and good["val_mse"] < good["val_mse_start"]


def test_paired_loss_keeps_a_gradient_for_genes_predicted_below_zero():
    from grids_core.train import paired_loss

    pre = torch.tensor([[-1.0, 2.0], [-0.5, -3.0]], requires_grad=True)
    y = torch.tensor([[0.5, 1.0], [0.0, 2.0]])
    loss = paired_loss(pre, y)
    # value: pre - y where y > 0 (even below zero), relu(pre) where y == 0
    assert loss.item() == pytest.approx(((-1.5) ** 2 + 1.0**2 + 0.0 + (-5.0) ** 2) / 4)
    loss.backward()
    assert pre.grad[0, 0] < 0 and pre.grad[1, 1] < 0  # pushed up towards the observed expression
    assert pre.grad[1, 0] == 0  # not expressed and predicted below zero: nothing to fix


def test_hubs_are_trained_saved_and_optional(tmp_path):
    from grids_core import bundle as bundle_io

    b = bundle_io.load(bundle_io.save(tiny_bundle(n_cells=60, n_peaks=30, n_genes=5), tmp_path / "b"))
    gene, peak = cis_pairs(b.peaks["chrom"].to_numpy(), b.peak_midpoints(), b.genes["chrom"].to_numpy(),
                           b.genes["tss"].to_numpy(), TrainConfig().cis_window)
    dist = np.abs(b.peak_midpoints()[peak] - b.genes["tss"].to_numpy()[gene])
    window = int(np.quantile(dist, 0.1))  # the tiny bundle's peaks are sparse: a wider "promoter" window
    steps = dict(steps_atac=3, steps_rna=3, steps_maps=3, steps_paired=10, batch_size=16, device="cpu",
                 promoter_window=window)  # bit-equality below
    tm = train(b, TrainConfig(**steps))
    hubs = tm.model.hubs
    assert hubs is not None and len(gene) > 0
    assert torch.equal(hubs.pair_gene, torch.from_numpy(gene)) and torch.equal(hubs.pair_peak, torch.from_numpy(peak))
    assert float(hubs.weight.abs().sum()) > 0  # trained on the paired term (initialised at zero)
    near = dist <= window
    assert near.any() and torch.equal(hubs.pair_promoter.bool(), torch.from_numpy(near))
    promoter = hubs.rows().detach()[:, -1]  # the additive column: fitted on promoter peaks, zero elsewhere
    assert float(promoter[near].abs().sum()) > 0 and float(promoter[~near].abs().sum()) == 0
    back = load_model(save_model(tm, tmp_path / "m.pt"), b)
    x = b.atac[:12]
    np.testing.assert_allclose(back.model.predict_numpy(x), tm.model.predict_numpy(x), rtol=1e-5, atol=1e-6)
    assert tm.meta["cis_fit"]["steps"] == TrainConfig().steps_cis
    longer = train(b, TrainConfig(**{**steps, "steps_paired": 30}))  # hubs fitted first, then frozen
    assert torch.equal(longer.model.hubs.logits, hubs.logits) and torch.equal(longer.model.hubs.weight, hubs.weight)
    joint = train(b, TrainConfig(**steps, steps_cis=0))  # the previous default: hubs trained with the network
    assert joint.meta["cis_fit"] == {} and float(joint.model.hubs.weight.abs().sum()) > 0
    hubs_only = train(b, TrainConfig(**{**steps, "promoter_window": 0}))
    assert hubs_only.model.hubs.linear is None and hubs_only.model.for_gene(0).n_cis == 3
    assert load_model(save_model(hubs_only, tmp_path / "h.pt"), b).model.cfg.promoter_window == 0
    older = {k: v for k, v in tm.model.cfg.to_dict().items() if k != "promoter_window"}  # a checkpoint from before
    assert SurrogateConfig.from_dict(older).promoter_window == 0
    plain = train(b, TrainConfig(**steps, cis_hubs=0))
    assert plain.model.hubs is None and plain.model.cfg.cis_hubs == 0
    assert load_model(save_model(plain, tmp_path / "p.pt"), b).model.hubs is None
