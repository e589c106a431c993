"""The cross-modal ATAC -> RNA surrogate (ALGORITHM §2) and its two-stage interface.

The ATAC encoder's first stage is affine in x: every peak j has a closed vector E0[j] and an open vector
E0[j] + D[j]; block c (one chromosome) sum-pools its peaks, so
``s_c = sum_{j in c} E0[j] + sum_{j in c} x_j D[j]``. We compute it as a per-block constant plus a
scatter-add over the non-zeros of x (never a [cells, peaks, dim] tensor).

Beyond the reference architecture, each gene can have K saturating *cis hubs* (``CisHubs``) over the
peaks near its TSS: ``u_gk = 1 - exp(-sum_j softplus(A_gjk) x_j)`` adds ``sum_k W_gk u_gk`` to the gene's
pre-ReLU prediction. A hub whose members carry large weights is an OR over them (one open member
saturates it), which the chromosome-pooled encoder alone did not learn (README, "The surrogate").
Optionally (``promoter_window`` > 0) the peaks near the TSS also add a signed weight each, linearly: a
*promoter term*, so that the hubs are not needed for an additive promoter. For one gene these sums are
affine in x too, so ``GeneModel`` appends them to stage 1.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from grids_core.explain.base import to_dense


@dataclass
class SurrogateConfig:
    """Architecture of the surrogate (defaults as in the paper's reference)."""

    n_peaks: int
    n_genes: int
    n_cell_types: int
    block_offsets: list[int]  # peak index where each chromosome block starts, plus n_peaks at the end
    h0: int = 16
    h1: int = 32
    latent: int = 20
    rna_hidden: tuple[int, int] = (640, 320)
    atac_dec_hidden: int = 64
    n_maps: int = 9
    gate_hidden: int = 128
    map_depth: int = 3
    disc_hidden: tuple[int, int] = (20, 10)
    cis_hubs: int = 0  # K saturating hubs per gene (0: the reference architecture)
    cis_window: int = 500_000  # bp around each TSS whose peaks feed that gene's hubs
    promoter_window: int = 0  # > 0: an additive (signed) weight per gene on its peaks this close to the TSS
    n_cis_pairs: int = 0  # (gene, peak) pairs within the window (set by build_model)
    extra: dict = field(default_factory=dict)

    @property
    def n_blocks(self) -> int:
        return len(self.block_offsets) - 1

    def to_dict(self) -> dict:
        d = asdict(self)
        d["rna_hidden"] = list(self.rna_hidden)
        d["disc_hidden"] = list(self.disc_hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> SurrogateConfig:
        d = dict(d)
        d["rna_hidden"] = tuple(d["rna_hidden"])
        d["disc_hidden"] = tuple(d["disc_hidden"])
        return cls(**d)


def block_offsets_from_chroms(chroms: np.ndarray) -> list[int]:
    """Start index of each run of equal chromosome names (peaks sorted by chromosome), plus the end."""
    chroms = np.asarray(chroms)
    change = np.flatnonzero(chroms[1:] != chroms[:-1]) + 1
    return [0, *change.tolist(), len(chroms)]


@dataclass(eq=False)
class DeviceSparse:
    """Scipy-sparse inputs with their non-zeros also held on a torch device.

    GRIDS takes one first-order pass over the same batch after every accepted swap; on a GPU, converting
    and copying the batch's non-zeros each time cost more than the pass itself. ``x`` stays available for
    column slicing.
    """

    x: sp.spmatrix
    coo: tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]

    @classmethod
    def of(cls, x, device: torch.device | str) -> DeviceSparse:
        return cls(x, sparse_coo(x, torch.device(device)))


def sparse_coo(x, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """(row, col, value, n_rows) of the non-zeros of x (scipy sparse, ``DeviceSparse`` or dense tensor)."""
    if isinstance(x, DeviceSparse):
        return tuple(t.to(device) for t in x.coo[:3]) + (x.coo[3],)
    if sp.issparse(x):
        x = x.tocoo()
        return (
            torch.from_numpy(x.row.astype(np.int64)).to(device),
            torch.from_numpy(x.col.astype(np.int64)).to(device),
            torch.from_numpy(np.asarray(x.data, dtype=np.float32)).to(device),
            x.shape[0],
        )
    xd = to_dense(x, device)
    rows, cols = torch.nonzero(xd, as_tuple=True)
    return rows, cols, xd[rows, cols], xd.shape[0]


class ATACEncoder(nn.Module):
    """Per-peak closed/open vectors, chromosome-block sum-pooling, then the per-block MLP."""

    def __init__(self, cfg: SurrogateConfig):
        super().__init__()
        self.cfg = cfg
        g = torch.Generator().manual_seed(0)
        self.e0 = nn.Parameter(torch.randn(cfg.n_peaks, cfg.h0, generator=g) * 0.01)
        self.delta = nn.Parameter(torch.randn(cfg.n_peaks, cfg.h0, generator=g) * 0.1)
        offsets = torch.tensor(cfg.block_offsets, dtype=torch.int64)
        block_of_peak = torch.repeat_interleave(torch.arange(cfg.n_blocks), offsets[1:] - offsets[:-1])
        self.register_buffer("block_of_peak", block_of_peak, persistent=False)
        c, h0, h1 = cfg.n_blocks, cfg.h0, cfg.h1
        self.bn0 = nn.BatchNorm1d(c * h0)
        self.act0 = nn.PReLU(c * h0)
        self.block_w = nn.Parameter(torch.randn(c, h0, h1, generator=g) / h0**0.5)
        self.block_b = nn.Parameter(torch.zeros(c, h1))
        self.bn1 = nn.BatchNorm1d(c * h1)
        self.act1 = nn.PReLU(c * h1)
        self.fc1 = nn.Linear(c * h1, cfg.latent)
        self.fc2 = nn.Linear(cfg.latent, cfg.latent)

    # stage 1: affine in x
    def block_constant(self) -> torch.Tensor:
        """Sum of the closed vectors per block, flattened: [C * h0]."""
        const = torch.zeros(self.cfg.n_blocks, self.cfg.h0, device=self.e0.device, dtype=self.e0.dtype)
        const.index_add_(0, self.block_of_peak, self.e0)
        return const.reshape(-1)

    def stage1(self, x) -> torch.Tensor:
        rows, cols, vals, n = sparse_coo(x, self.e0.device)
        c, h0 = self.cfg.n_blocks, self.cfg.h0
        out = torch.zeros(n * c, h0, device=self.e0.device, dtype=self.e0.dtype)
        out.index_add_(0, rows * c + self.block_of_peak[cols], self.delta[cols] * vals[:, None])
        return out.reshape(n, c * h0) + self.block_constant()

    def stage1_rows(self, idx: torch.Tensor) -> torch.Tensor:
        idx = idx.to(self.e0.device)
        c, h0 = self.cfg.n_blocks, self.cfg.h0
        rows = torch.zeros(len(idx), c, h0, device=self.e0.device, dtype=self.e0.dtype)
        rows[torch.arange(len(idx), device=idx.device), self.block_of_peak[idx]] = self.delta[idx]
        return rows.reshape(len(idx), c * h0)

    def first_order(self, x, grad: torch.Tensor, value: float, chunk: int = 1 << 20) -> torch.Tensor:
        """a_j = mean_b (value - x_bj) <D_j, grad_b[c(j)]>, via the non-zeros of x (sparse-friendly).

        On CPU with scipy-sparse x (CSC preferred: its transpose is CSR for free) this is one sparse x dense
        product per block, ``X[:, c]^T G_c``; elsewhere (and for ``DeviceSparse`` x) a gather over the non-zeros.
        """
        n, c, h0 = grad.shape[0], self.cfg.n_blocks, self.cfg.h0
        g = grad.reshape(n, c, h0)
        delta = self.delta.detach()
        a = torch.zeros(self.cfg.n_peaks, device=grad.device, dtype=grad.dtype)
        if value != 0.0:
            gsum = g.sum(0)  # [C, h0]
            a += value * (delta * gsum[self.block_of_peak]).sum(1)
        if sp.issparse(x) and grad.device.type == "cpu":
            xt = x.T.tocsr()  # peaks x cells
            gn = g.detach().numpy()
            dn = delta.to(grad.dtype).numpy()
            offs = self.cfg.block_offsets
            for b in range(c):
                lo, hi = offs[b], offs[b + 1]
                m = xt[lo:hi] @ gn[:, b, :]  # [peaks in block, h0]: sum_b x_bj grad_b
                a[lo:hi] -= torch.from_numpy(np.einsum("ij,ij->i", np.asarray(m, dtype=dn.dtype), dn[lo:hi]))
            return a / n
        rows, cols, vals, _ = sparse_coo(x, grad.device)
        for s in range(0, len(rows), chunk):
            r, j, v = rows[s : s + chunk], cols[s : s + chunk], vals[s : s + chunk]
            dots = (delta[j] * g[r, self.block_of_peak[j]]).sum(1)
            a.index_add_(0, j, -v * dots)
        return a / n

    # stage 2: everything after the pooled sums
    def stage2(self, h: torch.Tensor) -> torch.Tensor:
        c = self.cfg.n_blocks
        h = self.act0(self.bn0(h)).reshape(-1, c, self.cfg.h0)
        h = torch.einsum("bci,cio->bco", h, self.block_w) + self.block_b
        h = self.act1(self.bn1(h.reshape(-1, c * self.cfg.h1)))
        return self.fc2(self.fc1(h))

    def forward(self, x) -> torch.Tensor:
        return self.stage2(self.stage1(x))


class ATACDecoder(nn.Module):
    """Latent -> per-peak open logits, evaluated only at requested (cell, peak) positions."""

    def __init__(self, cfg: SurrogateConfig):
        super().__init__()
        self.hidden = nn.Sequential(nn.Linear(cfg.latent, cfg.atac_dec_hidden), nn.PReLU())
        self.out_w = nn.Parameter(torch.randn(cfg.n_peaks, cfg.atac_dec_hidden) * 0.01)
        self.out_b = nn.Parameter(torch.full((cfg.n_peaks,), -3.0))

    def logits_at(self, z: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        h = self.hidden(z)
        return (h[rows] * self.out_w[cols]).sum(1) + self.out_b[cols]


def _mlp(sizes: list[int], final_act: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2 or final_act:
            layers += [nn.BatchNorm1d(b), nn.PReLU()]
    return nn.Sequential(*layers)


class RNAAutoencoder(nn.Module):
    """G -> 640 -> 320 -> 20 -> 320 -> 640 -> G (BN + PReLU between, linear output)."""

    def __init__(self, cfg: SurrogateConfig):
        super().__init__()
        h1, h2 = cfg.rna_hidden
        self.encoder = _mlp([cfg.n_genes, h1, h2, cfg.latent], final_act=False)
        self.decoder_body = _mlp([cfg.latent, h2, h1], final_act=True)
        self.decoder_out = nn.Linear(h1, cfg.n_genes)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder_out(self.decoder_body(z))

    def decode_gene(self, z: torch.Tensor, g: int) -> torch.Tensor:
        """Only output row ``g`` of the decoder: [B]."""
        h = self.decoder_body(z)
        return h @ self.decoder_out.weight[g] + self.decoder_out.bias[g]


class MixtureAffineMap(nn.Module):
    """Soft mixture of K affine maps per layer, gated by softmax(MLP(z)); PReLU between layers."""

    def __init__(self, cfg: SurrogateConfig):
        super().__init__()
        d, k = cfg.latent, cfg.n_maps
        self.weights = nn.ParameterList(
            [nn.Parameter(torch.eye(d).repeat(k, 1, 1) + 0.05 * torch.randn(k, d, d)) for _ in range(cfg.map_depth)]
        )
        self.biases = nn.ParameterList([nn.Parameter(torch.zeros(k, d)) for _ in range(cfg.map_depth)])
        self.gates = nn.ModuleList(
            [
                nn.Sequential(nn.Linear(d, cfg.gate_hidden), nn.ReLU(), nn.Linear(cfg.gate_hidden, k))
                for _ in range(cfg.map_depth)
            ]
        )
        self.acts = nn.ModuleList([nn.PReLU() for _ in range(cfg.map_depth - 1)])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        for i, (w, b, gate) in enumerate(zip(self.weights, self.biases, self.gates, strict=True)):
            p = torch.softmax(gate(z), dim=1)  # [B, K]
            z = torch.einsum("bk,kij,bj->bi", p, w, z) + p @ b
            if i < len(self.acts):
                z = self.acts[i](z)
        return z


class Discriminator(nn.Module):
    """Trunk 20 -> 20 -> 10 with one real/fake logit per cell type."""

    def __init__(self, cfg: SurrogateConfig):
        super().__init__()
        a, b = cfg.disc_hidden
        self.trunk = nn.Sequential(
            nn.Linear(cfg.latent, a), nn.PReLU(), nn.Dropout(0.1), nn.Linear(a, b), nn.PReLU(), nn.Dropout(0.1)
        )
        self.head = nn.Linear(b, cfg.n_cell_types)

    def forward(self, z: torch.Tensor, cell_type: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(z)).gather(1, cell_type[:, None]).squeeze(1)


def cis_pairs(chroms: np.ndarray, mids: np.ndarray, gene_chroms: np.ndarray, tss: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """(gene, peak) index pairs with the peak midpoint within ``window`` bp of the gene's TSS, sorted by peak.

    Peaks must be sorted by chromosome then position (the bundle's order).
    """
    genes, peaks = [], []
    offsets = block_offsets_from_chroms(chroms) if len(chroms) else [0]
    span = {chroms[a]: (a, b) for a, b in zip(offsets[:-1], offsets[1:], strict=True)}
    for g, (c, t) in enumerate(zip(gene_chroms, tss, strict=True)):
        if c not in span:
            continue
        lo, hi = span[c]
        a = lo + np.searchsorted(mids[lo:hi], t - window, side="left")
        b = lo + np.searchsorted(mids[lo:hi], t + window, side="right")
        genes.append(np.full(b - a, g, dtype=np.int64))
        peaks.append(np.arange(a, b, dtype=np.int64))
    if not genes:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    gene, peak = np.concatenate(genes), np.concatenate(peaks)
    order = np.lexsort((gene, peak))
    return gene[order], peak[order]


def hub_output(weight: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """What cis sums ``s`` [..., K (+1)] add to a gene's pre-ReLU prediction.

    ``sum_k W_k (1 - exp(-s_k))`` over the K hubs, plus ``s_K`` itself when the additive column is there.
    """
    k = weight.shape[-1]
    out = (weight * -torch.expm1(-s[..., :k])).sum(-1)
    return out + s[..., k] if s.shape[-1] > k else out


class CisHubs(nn.Module):
    """K saturating hubs per gene over the peaks within its cis window (module docstring)."""

    def __init__(self, cfg: SurrogateConfig):
        super().__init__()
        p, k = cfg.n_cis_pairs, cfg.cis_hubs
        self.n_genes, self.n_peaks = cfg.n_genes, cfg.n_peaks
        g = torch.Generator().manual_seed(1)
        self.register_buffer("pair_gene", torch.zeros(p, dtype=torch.int64))
        self.register_buffer("pair_peak", torch.zeros(p, dtype=torch.int64))
        self.logits = nn.Parameter(torch.randn(p, k, generator=g) * 0.5 - 3.0)  # softplus ~ 0.05: nearly off
        self.weight = nn.Parameter(torch.zeros(cfg.n_genes, k))
        self.linear = nn.Parameter(torch.zeros(p)) if cfg.promoter_window > 0 else None
        if self.linear is not None:
            self.register_buffer("pair_promoter", torch.zeros(p))  # 1 where the pair's peak is a promoter peak
        self._ptr: torch.Tensor | None = None
        self.register_load_state_dict_post_hook(lambda module, keys: module.reset_index())

    def set_pairs(self, gene: np.ndarray, peak: np.ndarray, promoter: np.ndarray | None = None) -> None:
        """Install the (gene, peak) pairs (sorted by peak), as from ``cis_pairs``; ``promoter`` flags the
        pairs whose peak gets the additive promoter weight (needed when the config has a promoter term)."""
        self.pair_gene.copy_(torch.from_numpy(np.asarray(gene, dtype=np.int64)))
        self.pair_peak.copy_(torch.from_numpy(np.asarray(peak, dtype=np.int64)))
        if self.linear is not None:
            if promoter is None:
                raise ValueError("this surrogate has a promoter term: set_pairs needs the promoter flags")
            self.pair_promoter.copy_(torch.from_numpy(np.asarray(promoter, dtype=np.float32)))
        self.reset_index()

    def reset_index(self) -> None:
        self._ptr = None

    def peak_ptr(self) -> torch.Tensor:
        """CSR pointer of pairs by peak: pairs of peak j are ``ptr[j]:ptr[j+1]``."""
        if self._ptr is None or self._ptr.device != self.pair_peak.device:
            grid = torch.arange(self.n_peaks + 1, device=self.pair_peak.device)
            self._ptr = torch.searchsorted(self.pair_peak, grid)
        return self._ptr

    def rows(self) -> torch.Tensor:
        """Per-pair input weights [pairs, K (+1)]: ``softplus(A)``, then the additive promoter weight if any."""
        w = F.softplus(self.logits)
        return w if self.linear is None else torch.cat([w, (self.linear * self.pair_promoter)[:, None]], dim=1)

    def pre(self, x) -> torch.Tensor:
        """Cis sums ``s[b, g, k] = sum_j rows()[(g, j), k] x_bj`` of every gene: [B, G, K (+1)]."""
        rows, cols, vals, n = sparse_coo(x, self.logits.device)
        ptr = self.peak_ptr()
        count = ptr[cols + 1] - ptr[cols]
        nz = torch.repeat_interleave(torch.arange(len(cols), device=cols.device), count)  # non-zero of each pair
        pair = torch.arange(len(nz), device=cols.device) + (ptr[cols] - (torch.cumsum(count, 0) - count))[nz]
        w = self.rows().index_select(0, pair)
        if not bool((vals == 1).all()):
            w = w * vals[nz, None]
        out = torch.zeros(n * self.n_genes, w.shape[1], device=self.logits.device, dtype=self.logits.dtype)
        out.index_add_(0, rows[nz] * self.n_genes + self.pair_gene[pair], w)
        return out.reshape(n, self.n_genes, -1)

    def forward(self, x) -> torch.Tensor:
        """Contribution of the hubs to every gene's pre-ReLU prediction: [B, G]."""
        return hub_output(self.weight, self.pre(x))


class Surrogate(nn.Module):
    """ATAC AE + RNA AE + latent maps + discriminators (+ optional cis hubs).

    Prediction: ``relu(dec_rna(a2r(enc_atac(x))) + hubs(x))``.
    """

    def __init__(self, cfg: SurrogateConfig):
        super().__init__()
        self.cfg = cfg
        self.enc_atac = ATACEncoder(cfg)
        self.dec_atac = ATACDecoder(cfg)
        self.rna = RNAAutoencoder(cfg)
        self.a2r = MixtureAffineMap(cfg)
        self.r2a = MixtureAffineMap(cfg)
        self.disc_rna = Discriminator(cfg)
        self.disc_atac = Discriminator(cfg)
        self.hubs = CisHubs(cfg) if cfg.cis_hubs > 0 and cfg.n_cis_pairs > 0 else None

    @property
    def device(self) -> torch.device:
        return self.enc_atac.e0.device

    @property
    def n_features(self) -> int:
        return self.cfg.n_peaks

    # encoder stage 1 (shared by every gene; GeneModel adds a gene's hub sums)
    def stage1(self, x) -> torch.Tensor:
        return self.enc_atac.stage1(x)

    def for_gene(self, g: int) -> GeneModel:
        """The two-stage model (``explain.base.TwoStageModel``) whose readout is gene ``g``'s prediction."""
        return GeneModel(self, g)

    def predict_pre(self, x) -> torch.Tensor:
        """Prediction before the final ReLU: [B, G]."""
        pre = self.rna.decode(self.a2r(self.enc_atac(x)))
        return pre + self.hubs(x) if self.hubs is not None else pre

    def predict(self, x) -> torch.Tensor:
        """Predicted log-normalised expression of every gene: [B, G]."""
        return torch.relu(self.predict_pre(x))

    @torch.no_grad()
    def predict_numpy(self, x, batch: int = 1024) -> np.ndarray:
        was = self.training
        self.eval()
        outs = []
        n = x.shape[0]
        for s in range(0, n, batch):
            outs.append(self.predict(x[s : s + batch]).cpu().numpy())
        self.train(was)
        return np.concatenate(outs) if outs else np.zeros((0, self.cfg.n_genes), np.float32)


def _columns(x, cols: np.ndarray, device: torch.device) -> torch.Tensor:
    """Dense float32 ``x[:, cols]`` of scipy-sparse, ``DeviceSparse``, numpy or torch inputs: [B, len(cols)]."""
    if isinstance(x, DeviceSparse):
        x = x.x
    if sp.issparse(x) and x.format not in ("csr", "csc"):
        x = x.tocsr()
    if sp.issparse(x) or isinstance(x, np.ndarray):
        return to_dense(x[:, cols], device)
    return to_dense(x[:, torch.as_tensor(cols, device=x.device)], device)


class GeneModel:
    """The surrogate seen through one gene g, as a two-stage model.

    Stage 1 = the encoder's pooled block sums followed by gene g's K hub sums and, with a promoter term,
    its promoter sum (all affine in x);
    ``readout`` = the rest of the network, only decoder row g: ``relu(dec_g(a2r(stage2(h))) + hubs_g)``.
    """

    def __init__(self, model: Surrogate, g: int):
        self.model, self.g = model, int(g)
        self.n_enc = model.cfg.n_blocks * model.cfg.h0
        self.n_features = model.cfg.n_peaks
        hubs = model.hubs
        if hubs is None:
            self.peaks = np.zeros(0, np.int64)
            self.hub_rows = torch.zeros(0, 0, device=model.device)
            self.hub_weight = torch.zeros(0, device=model.device)
        else:
            sel = hubs.pair_gene == self.g
            self.peaks = hubs.pair_peak[sel].cpu().numpy()
            self.hub_rows = hubs.rows()[sel].detach()  # [m, K (+1)]
            self.hub_weight = hubs.weight[self.g].detach()  # [K]
        self.n_cis = int(self.hub_rows.shape[1])  # cis stage-1 columns: K hub sums (+ the promoter sum)
        self._hub_table: torch.Tensor | None = None

    @property
    def device(self) -> torch.device:
        return self.model.device

    def hub_stage1(self, x) -> torch.Tensor:
        """Gene g's cis sums ``x[:, peaks] @ rows_g`` (hubs, then the promoter sum if any): [B, n_cis]."""
        if self.n_cis == 0:
            return torch.zeros(x.shape[0], 0, device=self.device)
        return _columns(x, self.peaks, self.device) @ self.hub_rows

    def extend(self, x, h_enc: torch.Tensor) -> torch.Tensor:
        """Full stage 1 from an already computed encoder stage 1 (shared across genes)."""
        return torch.cat([h_enc.to(self.device), self.hub_stage1(x)], dim=1)

    def stage1(self, x) -> torch.Tensor:
        return self.extend(x, self.model.enc_atac.stage1(x))

    def stage1_rows(self, idx: torch.Tensor) -> torch.Tensor:
        rows = self.model.enc_atac.stage1_rows(idx)
        if self.n_cis == 0:
            return rows
        if self._hub_table is None:  # [N, n_cis]: the cis rows of the window's peaks, zero elsewhere
            self._hub_table = torch.zeros(self.n_features, self.n_cis, device=self.device, dtype=self.hub_rows.dtype)
            self._hub_table[torch.as_tensor(self.peaks, device=self.device)] = self.hub_rows
        return torch.cat([rows, self._hub_table[idx.to(self.device)].to(rows.dtype)], dim=1)

    def prepare_inputs(self, x):
        """Inputs for repeated ``first_order`` calls: off the CPU, sparse x keeps its non-zeros on the device."""
        if sp.issparse(x) and self.device.type != "cpu":
            return DeviceSparse.of(x, self.device)
        return x

    def first_order(self, x, grad: torch.Tensor, value: float) -> torch.Tensor:
        a = self.model.enc_atac.first_order(x, grad[:, : self.n_enc], value)
        if self.n_cis and len(self.peaks):
            gh = grad[:, self.n_enc :].to(self.hub_rows.dtype)  # [B, n_cis]
            xg = _columns(x, self.peaks, grad.device).to(gh.dtype)  # [B, m]
            part = (value * (self.hub_rows @ gh.sum(0)) - ((xg.T @ gh) * self.hub_rows).sum(1)) / grad.shape[0]
            a[torch.as_tensor(self.peaks, device=a.device)] += part.to(a.dtype)
        return a

    def readout(self, h: torch.Tensor) -> torch.Tensor:
        """Stage-1 activations [B, H] -> predicted expression of gene g [B]."""
        m = self.model
        pre = m.rna.decode_gene(m.a2r(m.enc_atac.stage2(h[:, : self.n_enc])), self.g)
        if self.n_cis:
            pre = pre + hub_output(self.hub_weight, h[:, self.n_enc :])
        return torch.relu(pre)
