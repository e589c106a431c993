"""Training of the surrogate (ALGORITHM §2) and model checkpoints.

Phases: (1) ATAC autoencoder with focal BCE on the open positions plus an equal random sample of closed
ones; (2) RNA autoencoder with MSE on non-zeros plus an equal sample of zeros; (3) latent maps with
cycle L1, reconstruction through the cycle and cell-type-conditioned adversarial terms, autoencoders
frozen (eval mode, no grad), plus the paired term MSE(y_hat, y) when cells are co-assayed;
(4, co-assayed data only) paired fine-tuning of the ATAC encoder, the map and the RNA decoder on the
paired term, batch-norm statistics frozen, so that individual peaks can carry gene-specific signal; a
random 30 % of each cell's open peaks is hidden per step (input dropout) so cells cannot be memorised.
The cis hubs (``surrogate.CisHubs``, paired data only) are fitted between phases 2 and 3 on all training
cells at once with a free intercept per cell type and gene, error ``relu_error``, per-gene early
stopping on the validation cells (``cis_fit``), then frozen; with ``steps_cis=0`` they train in phases
3-4 on the paired term instead (higher learning rate, small L1), which left them additive (README,
"The surrogate").
A divergence guard checks the validation MSE every 250 steps: when it exceeds 1.5x its best so far (or a
loss is not finite), the best weights are restored and fine-tuning stops.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from grids_core.bundle import Bundle
from grids_core.cis_fit import CisData, fit_cis_hubs
from grids_core.determinism import deterministic
from grids_core.errors import CancelledError, ModelError, SettingsError
from grids_core.fileio import publish_mode
from grids_core.surrogate import (
    CisHubs,
    Surrogate,
    SurrogateConfig,
    block_offsets_from_chroms,
    cis_pairs,
    sparse_coo,
)

Progress = Callable[[float, str], None]
PREDICTABLE_R = 0.3  # below this held-out Pearson r a gene's explanations are flagged


@dataclass
class TrainConfig:
    """Step counts and optimiser settings (defaults sized for the default bundle on 2 CPU cores)."""

    seed: int = 0
    batch_size: int = 128
    lr: float = 1e-3
    steps_atac: int = 500
    steps_rna: int = 500
    steps_maps: int = 500
    steps_paired: int = 1000
    adv_weight: float = 0.3
    disc_every: int = 3
    focal_gamma: float = 2.0
    input_dropout: float = 0.3  # fraction of a cell's open peaks hidden in each paired fine-tuning step
    paired_lr: float | None = None  # paired phase learning rate (None: lr / 2)
    val_every: int = 250  # paired phase: validation MSE every this many steps ...
    diverge_factor: float = 1.5  # ... and above this factor x its best so far, restore the best weights and stop
    paired: bool | None = None  # None: use the paired terms when the bundle is co-assayed
    cis_hubs: int = 3  # saturating cis hubs per gene (0: reference architecture)
    cis_window: int = 500_000  # bp around each TSS feeding its hubs
    promoter_window: int = 1_000  # peaks this close to a TSS also get an additive weight (0: none)
    hub_lr: float = 1e-2  # hub_lr / hub_l1: joint training of the hubs (steps_cis=0) only
    hub_l1: float = 1e-3  # L1 on the hubs' input weights softplus(A), per gene
    steps_cis: int = 200  # full-batch hub fit before phase 3 (cis_fit); the hubs are then frozen (0: joint training)
    cis_lr: float = 0.03
    cis_l1: float = 1e-5
    cis_overlap: float = 3e-3  # penalty on the input weight two hubs share at a peak (cis_fit)
    device: str | None = None


@dataclass
class TrainedModel:
    """A surrogate with its provenance and held-out quality per gene."""

    model: Surrogate
    meta: dict = field(default_factory=dict)
    path: Path | None = None

    @property
    def model_id(self) -> str:
        return str(self.meta.get("model_id", ""))

    def gene_r(self, gene: str) -> float:
        return float(self.meta.get("quality", {}).get(gene, float("nan")))

    def predictable(self, gene: str) -> bool:
        return bool(self.gene_r(gene) >= PREDICTABLE_R)


def pick_device(device: str | None = None) -> torch.device:
    """The requested device, else CUDA when present, else CPU; a device this machine lacks is a SettingsError."""
    if not device:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise SettingsError(f"Unknown device {device!r}: use 'cpu', 'cuda' or 'cuda:N' (or leave --device out to "
                            "use CUDA when present, else the CPU).") from None
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise SettingsError(f"Device {device!r} was asked for, but no CUDA GPU is usable here (torch "
                                f"{torch.__version__}, CUDA build: {torch.version.cuda or 'none'}). Use --device cpu "
                                "or leave --device out.")
        if dev.index is not None and dev.index >= n:
            raise SettingsError(f"Device {device!r} does not exist: this machine has {n} CUDA GPU(s), cuda:0 to cuda:{n - 1}.")
    elif dev.type != "cpu":
        raise SettingsError(f"Device {device!r} is not supported: use 'cpu' or 'cuda[:N]'.")
    return dev


def build_model(bundle: Bundle, cis_hubs: int = 0, cis_window: int = 500_000, promoter_window: int = 0) -> Surrogate:
    """An untrained surrogate shaped for the bundle: with ``cis_hubs`` hubs per gene when > 0, and then
    an additive weight on each gene's peaks within ``promoter_window`` bp of its TSS when that is > 0."""
    chroms, mids, tss = bundle.peaks["chrom"].to_numpy(), bundle.peak_midpoints(), bundle.genes["tss"].to_numpy()
    gene, peak = cis_pairs(chroms, mids, bundle.genes["chrom"].to_numpy(), tss,
                           cis_window) if cis_hubs > 0 else (np.zeros(0, np.int64), np.zeros(0, np.int64))
    cfg = SurrogateConfig(
        n_peaks=bundle.atac.shape[1],
        n_genes=bundle.rna.shape[1],
        n_cell_types=len(bundle.cell_types),
        block_offsets=block_offsets_from_chroms(chroms),
        cis_hubs=cis_hubs,
        cis_window=cis_window,
        promoter_window=promoter_window if cis_hubs > 0 else 0,
        n_cis_pairs=len(gene),
    )
    model = Surrogate(cfg)
    if model.hubs is not None:
        model.hubs.set_pairs(gene, peak, np.abs(mids[peak] - tss[gene]) <= promoter_window)
    return model


def _focal_bce(logits: torch.Tensor, target: torch.Tensor, gamma: float) -> torch.Tensor:
    p = torch.sigmoid(logits)
    pt = torch.where(target > 0, p, 1 - p)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return ((1 - pt) ** gamma * bce).mean()


def _sample_positions(x, gen: torch.Generator, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Open positions of the batch plus an equal number of random (mostly closed) positions."""
    rows, cols, _, n = sparse_coo(x, device)
    m = max(len(rows), 1)
    rr_np = torch.randint(0, n, (m,), generator=gen).numpy().copy()
    cc_np = torch.randint(0, x.shape[1], (m,), generator=gen).numpy().copy()
    neg_target = torch.from_numpy(np.asarray(x.tocsr()[rr_np, cc_np]).ravel().astype(np.float32)).to(device)
    rr, cc = torch.from_numpy(rr_np).to(device), torch.from_numpy(cc_np).to(device)
    r = torch.cat([rows, rr])
    c = torch.cat([cols, cc])
    t = torch.cat([torch.ones(len(rows), device=device), neg_target])
    return r, c, t


def _rna_ae_loss(pred: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    nz = y > 0
    loss_nz = ((pred - y)[nz] ** 2).mean() if nz.any() else pred.sum() * 0
    zeros = (~nz).nonzero(as_tuple=False)
    if len(zeros):
        pick = zeros[torch.randint(0, len(zeros), (max(int(nz.sum()), 1),), generator=gen).to(zeros.device)]
        loss_z = (pred[pick[:, 0], pick[:, 1]] ** 2).mean()
    else:
        loss_z = pred.sum() * 0
    return loss_nz + loss_z


def train(
    bundle: Bundle,
    config: TrainConfig | None = None,
    progress: Progress | None = None,
    cancel: Callable[[], bool] | None = None,
) -> TrainedModel:
    """Train the surrogate on the bundle's training cells; returns it with held-out quality per gene."""
    with deterministic():
        return _train(bundle, config, progress, cancel)


def _train(
    bundle: Bundle,
    config: TrainConfig | None,
    progress: Progress | None,
    cancel: Callable[[], bool] | None,
) -> TrainedModel:
    cfg = config or TrainConfig()
    say = progress or (lambda f, m: None)
    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    paired = cfg.paired if cfg.paired is not None else bool(bundle.manifest.get("paired", True))
    model = build_model(bundle, cfg.cis_hubs if paired else 0, cfg.cis_window, cfg.promoter_window).to(device)  # hubs train on the paired term
    t0 = time.perf_counter()

    train_idx = np.flatnonzero(bundle.cell_mask(split="train"))
    x_all = bundle.atac
    y_all = torch.from_numpy(bundle.rna).to(device)
    types = {t: i for i, t in enumerate(bundle.cell_types)}
    ct_all = torch.tensor([types[t] for t in bundle.cells["cell_type"]], device=device)
    paired_report: dict = {}  # filled by the paired phase
    cis_report: dict = {}  # filled by the hub fit
    fit_hubs = model.hubs is not None and cfg.steps_cis > 0
    total = (cfg.steps_atac + cfg.steps_rna + cfg.steps_maps + (cfg.steps_paired if paired else 0)
             + (cfg.steps_cis if fit_hubs else 0))
    done = 0

    def batch() -> np.ndarray:
        return np.sort(rng.choice(train_idx, size=min(cfg.batch_size, len(train_idx)), replace=False))

    def tick(phase: str, loss: float) -> None:
        nonlocal done
        done += 1
        if cancel is not None and cancel():
            raise CancelledError("Training cancelled.")
        if done % 25 == 0 or done == total:
            say(done / total, f"{phase} loss {loss:.4f}")

    # phase 1: ATAC autoencoder
    opt = torch.optim.Adam(list(model.enc_atac.parameters()) + list(model.dec_atac.parameters()), lr=cfg.lr)
    model.train()
    for _ in range(cfg.steps_atac):
        b = batch()
        xb = x_all[b]
        z = model.enc_atac(xb)
        r, c, t = _sample_positions(xb, gen, device)
        loss = _focal_bce(model.dec_atac.logits_at(z, r, c), t, cfg.focal_gamma)
        opt.zero_grad()
        loss.backward()
        opt.step()
        tick("ATAC AE", loss.item())

    # phase 2: RNA autoencoder
    opt = torch.optim.Adam(model.rna.parameters(), lr=cfg.lr)
    for _ in range(cfg.steps_rna):
        yb = y_all[batch()]
        loss = _rna_ae_loss(model.rna.decode(model.rna.encoder(yb)), yb, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        tick("RNA AE", loss.item())

    # cis hubs, full batch, then frozen (cis_fit)
    if fit_hubs:
        say(done / total, "fitting cis hubs")
        cis_report = fit_bundle_hubs(model.hubs, bundle, cfg, tick=lambda loss: tick("cis hubs", loss))
        model.hubs.requires_grad_(False)

    # phase 3: latent maps, autoencoders frozen
    frozen = [model.enc_atac, model.dec_atac, model.rna]
    for m in frozen:
        m.eval()
        m.requires_grad_(False)
    hub_params = list(model.hubs.parameters()) if model.hubs is not None and not fit_hubs else []
    opt_g = torch.optim.Adam([{"params": list(model.a2r.parameters()) + list(model.r2a.parameters())},
                              {"params": hub_params, "lr": cfg.hub_lr}], lr=cfg.lr)
    opt_d = torch.optim.Adam(list(model.disc_rna.parameters()) + list(model.disc_atac.parameters()), lr=cfg.lr)
    for step in range(cfg.steps_maps):
        b = batch()
        xb, yb, cb = x_all[b], y_all[b], ct_all[b]
        if not paired:  # unpaired: RNA cells of the same types, drawn independently
            b_rna = np.array([rng.choice(train_idx[ct_all[train_idx].cpu().numpy() == int(t)]) for t in cb.cpu()])
            yb = y_all[b_rna]
        with torch.no_grad():
            za, zr = model.enc_atac(xb), model.rna.encoder(yb)
        za2r, zr2a = model.a2r(za), model.r2a(zr)
        if step % cfg.disc_every == 0:
            d_loss = _disc_loss(model.disc_rna, zr, za2r.detach(), cb) + _disc_loss(model.disc_atac, za, zr2a.detach(), cb)
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
        cyc_r, cyc_a = model.a2r(zr2a), model.r2a(za2r)
        r, c, t = _sample_positions(xb, gen, device)
        loss = (
            F.l1_loss(cyc_r, zr)
            + F.l1_loss(cyc_a, za)
            + F.mse_loss(model.rna.decode(cyc_r), yb)
            + _focal_bce(model.dec_atac.logits_at(cyc_a, r, c), t, cfg.focal_gamma)
            + cfg.adv_weight * (_gen_loss(model.disc_rna, za2r, cb) + _gen_loss(model.disc_atac, zr2a, cb))
        )
        if paired:
            pre = model.rna.decode(za2r)
            if model.hubs is not None:
                pre = pre + model.hubs(xb)
            loss = loss + paired_loss(pre, yb) + _hub_penalty(model, cfg)
        opt_g.zero_grad()
        loss.backward()
        opt_g.step()
        tick("latent maps", loss.item())

    # phase 4: paired fine-tuning (BN statistics frozen)
    if paired and cfg.steps_paired:
        tuned = [model.enc_atac, model.a2r, model.rna.decoder_body, model.rna.decoder_out]
        for m in tuned:
            m.requires_grad_(True)
        model.eval()
        params = [p for m in tuned for p in m.parameters()]
        if hub_params:
            tuned.append(model.hubs)
            model.hubs.requires_grad_(True)
        opt = torch.optim.Adam([{"params": params}, {"params": hub_params, "lr": cfg.hub_lr}],
                               lr=cfg.lr * 0.5 if cfg.paired_lr is None else cfg.paired_lr)
        val = _validation_cells(bundle, cfg.seed)
        start_mse = _val_mse(model, x_all, y_all, val)
        best = (start_mse, 0, _snapshot(tuned))
        paired_report = {"val_cells": int(len(val)), "val_mse_start": start_mse, "diverged_at": None}
        for step in range(1, cfg.steps_paired + 1):
            b = batch()
            xb = x_all[b]
            if cfg.input_dropout > 0:  # regulariser: the model cannot memorise cells by their exact peak sets
                xb = xb.copy()
                xb.data = xb.data * (rng.random(xb.nnz) >= cfg.input_dropout)
                xb.eliminate_zeros()
            loss = paired_loss(model.predict_pre(xb), y_all[b]) + _hub_penalty(model, cfg)
            check = len(val) and (step % cfg.val_every == 0 or step == cfg.steps_paired)
            if torch.isfinite(loss):
                opt.zero_grad()
                loss.backward()
                opt.step()
                tick("paired fine-tune", loss.item())
                mse = _val_mse(model, x_all, y_all, val) if check else best[0]
            else:
                mse = float("inf")
            if mse < best[0]:
                best = (mse, step, _snapshot(tuned))
            elif mse > cfg.diverge_factor * best[0]:  # diverged: back to the best weights, stop
                _restore(tuned, best[2])
                paired_report["diverged_at"] = step
                break
        paired_report.update(best_step=best[1], best_val_mse=best[0], val_mse=_val_mse(model, x_all, y_all, val))

    model.eval()
    model.requires_grad_(False)
    say(1.0, "evaluating on test cells")
    quality = gene_quality(model, bundle)
    meta = {
        "bundle_id": bundle.bundle_id,
        "n_peaks": int(bundle.atac.shape[1]),
        "n_genes": int(bundle.rna.shape[1]),
        "cell_types": list(bundle.cell_types),
        "config": model.cfg.to_dict(),
        "train": {k: v for k, v in asdict(cfg).items() if k != "device"},
        "paired": paired,
        "paired_fine_tune": paired_report,
        "cis_fit": cis_report,
        "device": str(device),
        # CPU results depend on these (reductions split across threads add up in another order)
        "torch_threads": torch.get_num_threads(),
        "torch_version": str(torch.__version__),
        "train_seconds": round(time.perf_counter() - t0, 2),
        "quality": quality,
        "median_r": float(np.nanmedian(list(quality.values()))) if quality else float("nan"),
    }
    return TrainedModel(model, meta)


def paired_error(pre: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Element-wise ``(relu(pre) - y)^2``, except that where ``y > 0`` the error is ``pre - y`` even when ``pre < 0``.

    Same minimiser, but a gene whose prediction fell below zero on expressing cells still gets a gradient
    (with the plain ReLU error such a gene can stay predicted 0 for good).
    """
    return torch.where(y > 0, pre - y, torch.relu(pre)) ** 2


def relu_error(pre: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Element-wise ``(relu(pre) - y)^2``: the error of the cis-hub fit.

    A free per-(type, gene) intercept can then go below zero where a gene is silent, so a hub's peaks
    that are open in those cells add nothing after the ReLU, as with the planted logic. Under
    ``paired_error`` the few silent-type cells with a count pulled such intercepts back up, and the hubs
    had to stay small (nearly linear) to limit what they added outside the type that uses them.
    """
    return (torch.relu(pre) - y) ** 2


def paired_loss(pre: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean of ``paired_error``: the paired term of phases 3-4."""
    return paired_error(pre, y).mean()


def _hub_penalty(model: Surrogate, cfg: TrainConfig) -> torch.Tensor | float:
    if model.hubs is None or cfg.hub_l1 <= 0 or not model.hubs.logits.requires_grad:  # absent, off or frozen
        return 0.0
    return cfg.hub_l1 * F.softplus(model.hubs.logits).sum() / model.cfg.n_genes


def fit_bundle_hubs(hubs: CisHubs, bundle: Bundle, cfg: TrainConfig, tick: Callable[[float], None] | None = None) -> dict:
    """The cis-hub fit of ``grids train`` (``cis_fit.fit_cis_hubs`` with ``cfg``'s settings) on the bundle's
    training cells, early-stopped on its validation cells; returns the fit's report."""
    device = hubs.logits.device
    types = {t: i for i, t in enumerate(bundle.cell_types)}
    y = torch.from_numpy(bundle.rna).to(device)
    cell_type = torch.tensor([types[t] for t in bundle.cells["cell_type"]], device=device)
    train_idx = np.flatnonzero(bundle.cell_mask(split="train"))
    val = _validation_cells(bundle, cfg.seed)
    return fit_cis_hubs(
        hubs, CisData(bundle.atac[train_idx], y[train_idx], cell_type[train_idx]),
        CisData(bundle.atac[val], y[val], cell_type[val]) if len(val) else None, len(types), relu_error,
        cfg.steps_cis, cfg.cis_lr, cfg.cis_l1, cfg.cis_overlap, tick=tick)


def _validation_cells(bundle: Bundle, seed: int, limit: int = 1024) -> np.ndarray:
    """Validation cells watched by the divergence guard (a seeded subset of at most ``limit``)."""
    val = np.flatnonzero(bundle.cell_mask(split="val"))
    if len(val) > limit:
        val = np.sort(np.random.default_rng(seed).choice(val, limit, replace=False))
    return val


@torch.no_grad()
def _val_mse(model: Surrogate, x_all, y_all: torch.Tensor, val: np.ndarray) -> float:
    if len(val) == 0:
        return float("inf")
    mse = F.mse_loss(model.predict(x_all[val]), y_all[val]).item()
    return mse if np.isfinite(mse) else float("inf")


def _snapshot(modules: list[nn.Module]) -> list[dict]:
    return [{k: v.detach().clone() for k, v in m.state_dict().items()} for m in modules]


def _restore(modules: list[nn.Module], states: list[dict]) -> None:
    for m, st in zip(modules, states, strict=True):
        m.load_state_dict(st)


def _disc_loss(disc: nn.Module, real: torch.Tensor, fake: torch.Tensor, ct: torch.Tensor) -> torch.Tensor:
    lr, lf = disc(real, ct), disc(fake, ct)
    return F.binary_cross_entropy_with_logits(lr, torch.ones_like(lr)) + F.binary_cross_entropy_with_logits(
        lf, torch.zeros_like(lf)
    )


def _gen_loss(disc: nn.Module, fake: torch.Tensor, ct: torch.Tensor) -> torch.Tensor:
    lf = disc(fake, ct)
    return F.binary_cross_entropy_with_logits(lf, torch.ones_like(lf))


def gene_quality(model: Surrogate, bundle: Bundle) -> dict[str, float]:
    """Held-out Pearson r of predicted vs observed expression per gene, on test cells."""
    test = np.flatnonzero(bundle.cell_mask(split="test"))
    pred = model.predict_numpy(bundle.atac[test])
    obs = bundle.rna[test]
    pc, oc = pred - pred.mean(0), obs - obs.mean(0)
    denom = np.sqrt((pc**2).sum(0) * (oc**2).sum(0))
    r = np.where(denom > 0, (pc * oc).sum(0) / np.where(denom > 0, denom, 1), np.nan)
    return {g: (round(float(v), 4) if np.isfinite(v) else float("nan")) for g, v in zip(bundle.gene_names, r, strict=True)}


# ---- checkpoints --------------------------------------------------------------------------------
def save_model(tm: TrainedModel, path: str | os.PathLike) -> Path:
    """Write the checkpoint atomically (loadable with ``torch.load(weights_only=True)``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in tm.model.state_dict().items()}
    meta = {k: v for k, v in tm.meta.items() if k != "model_id"}
    meta["id_scheme"] = "weights"
    payload = {"format": "grids-surrogate/1", "meta": meta, "state_dict": state}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        torch.save(payload, tmp)
        publish_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    tm.meta = {**meta, "model_id": weights_id(state, meta)}
    tm.path = path
    return path


def load_model(path: str | os.PathLike, bundle: Bundle | None = None, device: str | None = None) -> TrainedModel:
    """Load a checkpoint; with ``bundle``, check that it was trained on that bundle's peaks and genes."""
    path = Path(path)
    bdir = bundle.path if bundle is not None else None
    retrain = train_command(bdir, path)
    if not path.exists():
        raise ModelError(f"No model at {path}. Train one with `{retrain}`.")
    # torch's own messages are left out: for a damaged file they advise loading with weights_only=False, i.e.
    # running whatever code the file holds, which is never the fix for a checkpoint of ours
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(
            f"{path} is not a readable GRIDS model checkpoint: the file is damaged or was not written by "
            f"`grids train` ({type(exc).__name__} while reading it). Train the model again: `{retrain}`."
        ) from None
    try:
        meta = payload["meta"]
        model = Surrogate(SurrogateConfig.from_dict(meta["config"]))
    except Exception as exc:
        raise ModelError(
            f"{path} is not a readable GRIDS model checkpoint: it is a PyTorch file but holds no GRIDS model "
            f"(no valid 'meta'/'config': {type(exc).__name__}). Train the model again: `{retrain}`."
        ) from None
    try:
        model.load_state_dict(payload["state_dict"])
    except Exception as exc:
        raise ModelError(
            f"{path} is not a readable GRIDS model checkpoint: its weights do not fit the architecture its metadata "
            f"describes ({type(exc).__name__}). Train the model again: `{retrain}`."
        ) from None
    if bundle is not None:
        problems = []
        if meta.get("bundle_id") != bundle.bundle_id:
            problems.append(f"bundle id {meta.get('bundle_id')!r} != {bundle.bundle_id!r}")
        if meta.get("n_peaks") != bundle.atac.shape[1] or meta.get("n_genes") != bundle.rna.shape[1]:
            problems.append(f"shape {meta.get('n_peaks')} peaks x {meta.get('n_genes')} genes != bundle {bundle.atac.shape[1]} x {bundle.rna.shape[1]}")
        if problems:
            raise ModelError(
                f"Model {path} was not trained on bundle {bundle.path} ({'; '.join(problems)}). "
                f"Train a model for this bundle: `grids train --bundle {bundle.path}`"
                + ("." if retrain == f"grids train --bundle {bundle.path}" else
                   " (its default model; then leave --model out), or pass --model with a model trained on it.")
            )
    model.to(pick_device(device)).eval().requires_grad_(False)
    meta["model_id"] = _payload_id(payload, path)
    return TrainedModel(model, meta, path)


def weights_id(state: dict[str, torch.Tensor], meta: dict) -> str:
    """A model id from what the model computes: its weights, architecture and bundle. Training the same bundle
    with the same settings again gives the same id (the checkpoint's training time and device are left out)."""
    h = hashlib.sha256(json.dumps({"bundle_id": meta.get("bundle_id"), "config": meta.get("config")},
                                  sort_keys=True, default=str).encode())
    for key in sorted(state):
        t = state[key].detach().cpu().contiguous()
        h.update(f"{key}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:12]


def _payload_id(payload: dict, path: Path) -> str:
    """The id of a loaded checkpoint: by weights, or for checkpoints written before ids were (session 16) by
    the file's bytes, so that runs stored with such a model still match it."""
    if payload["meta"].get("id_scheme") == "weights":
        return weights_id(payload["state_dict"], payload["meta"])
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def model_file_id(path: str | os.PathLike) -> str | None:
    """The model id a checkpoint file gets when loaded (None when there is no file or it is unreadable)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return _payload_id(torch.load(path, map_location="cpu", weights_only=True), path)
    except Exception:  # noqa: BLE001 - an unreadable checkpoint has no id; loading it says why
        return None


def train_command(bundle_dir: str | os.PathLike | None, model_path: str | os.PathLike) -> str:
    """The `grids train` command that writes ``model_path`` for the bundle at ``bundle_dir`` (DIR when unknown)."""
    if bundle_dir is None:
        return f"grids train --bundle DIR --out {model_path}"
    cmd = f"grids train --bundle {bundle_dir}"
    return cmd if Path(model_path).resolve() == default_model_path(bundle_dir).resolve() else f"{cmd} --out {model_path}"


def default_model_path(bundle_dir: str | os.PathLike) -> Path:
    return Path(bundle_dir) / "models" / "default.pt"
