"""Explain one gene in one cell type with the surrogate: build the objective, run a method, evaluate."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import numpy as np
import scipy.sparse as sp
import torch

from grids_core.bundle import MIN_TRAIN_CELLS, Bundle
from grids_core.determinism import deterministic
from grids_core.errors import SettingsError, UnknownNameError, suggest
from grids_core.evaluate import heldout_effect, locality, observed_mean, truth_metrics, type_r
from grids_core.explain.base import Objective
from grids_core.explain.grids import check_precision
from grids_core.results import DEFAULT_SETTINGS, ExplanationResult, run_key
from grids_core.train import PREDICTABLE_R, TrainedModel

BETA_MAX = 100.0  # the specificity weight; larger values only drown J in the other types' term
SEED_MAX = 2**63 - 1  # seeds are stored as SQLite integers
MAX_OTHER_CELLS = 512


@dataclass
class ExplainRequest:
    """Everything that defines one explanation (all of it goes into the run key)."""

    gene: str
    cell_type: str
    method: str = "grids"
    L: int = 10
    k: int = DEFAULT_SETTINGS["k"]
    value: float = 0.0  # v: 0 closes peaks, 1 opens them
    sign: float = 1.0  # sigma: +1 lowers expression, -1 raises it
    beta: float = DEFAULT_SETTINGS["beta"]
    seed: int = 0
    window: int | None = None  # cis window (bp around the TSS); None = genome-wide
    init: str = DEFAULT_SETTINGS["init"]
    faithful: bool = DEFAULT_SETTINGS["faithful"]
    max_sweeps: int = DEFAULT_SETTINGS["max_sweeps"]
    precision: str = DEFAULT_SETTINGS["precision"]  # "bf16": candidates ranked in bfloat16, accepted on float32 (GRIDS only)

    def __post_init__(self) -> None:
        # one canonical type per field, so the run key never depends on 0 vs 0.0 (e.g. after JSON)
        self.L, self.k, self.seed, self.max_sweeps = int(self.L), int(self.k), int(self.seed), int(self.max_sweeps)
        self.value, self.sign, self.beta = float(self.value), float(self.sign), float(self.beta)
        self.window = None if self.window in (None, "") else int(self.window)
        self.faithful = bool(self.faithful)
        if self.method != "grids":  # baselines have no search to rank: one key whatever the option
            self.precision = "fp32"

    def settings(self) -> dict:
        d = asdict(self)
        d.pop("gene")
        d.pop("cell_type")
        d.pop("method")
        if d["precision"] == "fp32":  # the default is not in the key: runs stored before the option keep theirs
            d.pop("precision")
        return d

    def validate(self) -> None:
        if self.value not in (0.0, 1.0):
            raise SettingsError(f"value must be 0 (close peaks) or 1 (open peaks), got {self.value}.")
        if self.sign not in (1.0, -1.0):
            raise SettingsError(f"sign must be +1 (lower expression) or -1 (raise it), got {self.sign}.")
        if self.L < 1 or self.k < 1:
            raise SettingsError(f"L and k must be at least 1 (got L={self.L}, k={self.k}).")
        if not 0.0 <= self.beta <= BETA_MAX:  # also refuses nan and inf
            raise SettingsError(f"β (beta, the specificity weight) must be a number from 0 to {BETA_MAX:g} (the paper uses 0.1), got {self.beta}.")
        if not 0 <= self.seed <= SEED_MAX:
            raise SettingsError(f"seed must be an integer from 0 to {SEED_MAX} (2**63 - 1), got {self.seed}.")
        check_precision(self.precision, self.faithful)
        if self.window is not None and self.window <= 0:
            raise SettingsError(f"window must be a positive number of bp, got {self.window}.")


def build_objective(bundle: Bundle, tm: TrainedModel, req: ExplainRequest) -> Objective:
    """The GRIDS objective for the request on the target type's training cells."""
    g = bundle.gene_index(req.gene)
    bundle.check_cell_type(req.cell_type)
    target = np.flatnonzero(bundle.cell_mask(req.cell_type, "train"))
    if len(target) < MIN_TRAIN_CELLS:
        raise SettingsError(
            f"Cell type {req.cell_type} has only {len(target)} training cells (need >= {MIN_TRAIN_CELLS}); "
            "choose another type or merge labels."
        )
    x_other = None
    if req.beta > 0:
        other = np.flatnonzero(bundle.cell_mask(split="train") & ~bundle.cell_mask(req.cell_type))
        rng = np.random.default_rng(req.seed)
        if len(other) > MAX_OTHER_CELLS:
            other = np.sort(rng.choice(other, MAX_OTHER_CELLS, replace=False))
        x_other = bundle.atac[other]
    x_target, h_enc = _target_stage1(bundle, tm, req.cell_type, target)
    view = tm.model.for_gene(g)
    with torch.no_grad():
        h_target = view.extend(x_target, h_enc)
    return Objective(
        model=view,
        readout=view.readout,
        x_target=x_target,
        h_target=h_target,
        value=req.value,
        sign=req.sign,
        beta=req.beta,
        x_other=x_other,
        name=f"{req.gene} in {req.cell_type}",
    )


_STAGE1_CACHE: OrderedDict[tuple, tuple] = OrderedDict()
_STAGE1_CACHE_SIZE = 4


def _target_stage1(bundle: Bundle, tm: TrainedModel, cell_type: str, target: np.ndarray):
    """(x, encoder stage1(x)) of a cell type's training cells, computed once per (bundle, model, type) and
    shared by every gene explained in that type (the batch runner explains many genes per type); each
    gene only adds its few hub columns."""
    key = (bundle.bundle_id, tm.model_id, id(tm.model), cell_type, len(target), str(tm.model.device))
    hit = _STAGE1_CACHE.get(key)
    if hit is None:
        x = sp.csr_matrix(bundle.atac[target], dtype=np.float32)
        with torch.no_grad():
            h = tm.model.stage1(x).detach()
        hit = _STAGE1_CACHE[key] = (x, h, tm.model)  # holding the model keeps id(model) unique
        while len(_STAGE1_CACHE) > _STAGE1_CACHE_SIZE:
            _STAGE1_CACHE.popitem(last=False)
    _STAGE1_CACHE.move_to_end(key)
    return hit[0], hit[1]


def window_mask(bundle: Bundle, gene: str, window: int | None) -> np.ndarray | None:
    """Peaks whose midpoint lies within ``window`` bp of the gene's TSS (None: no restriction)."""
    if window is None:
        return None
    row = bundle.gene_row(gene)
    mids = bundle.peak_midpoints()
    return ((bundle.peaks["chrom"] == row["chrom"]).to_numpy()) & (np.abs(mids - int(row["tss"])) <= window)


def pool_size(bundle: Bundle, req: ExplainRequest) -> int:
    """How many peaks can change in the type's training cells under the request's perturbation (in its window):
    the candidate pool, computed from the data alone (no model), so a request can be checked before it runs."""
    from types import SimpleNamespace

    from grids_core.explain.grids import candidate_pool

    gene, cell = bundle.gene_name(req.gene), bundle.check_cell_type(req.cell_type)
    x = bundle.atac[np.flatnonzero(bundle.cell_mask(cell, "train"))]
    return len(candidate_pool(SimpleNamespace(x_target=x, value=req.value), window_mask(bundle, gene, req.window)))


def check_pool(bundle: Bundle, req: ExplainRequest) -> int:
    """The pool size; a ``SettingsError`` saying how to fix it when L does not fit in the pool."""
    n = pool_size(bundle, req)
    if req.L > n:
        where = f" within {req.window / 1000:g} kb of the TSS" if req.window else ""
        raise SettingsError(f"L={req.L} is larger than the candidate pool: {n} peaks can "
                            f"{'open' if req.value else 'close'} in {bundle.check_cell_type(req.cell_type)}'s "
                            f"training cells{where}. Lower L" + (" or widen the cis window." if req.window else "."))
    return n


def explain_gene(
    bundle: Bundle,
    tm: TrainedModel,
    req: ExplainRequest,
    progress: Callable[[float, str], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> ExplanationResult:
    """Run ``req.method`` for one gene x cell type and evaluate it (held-out, locality, truth)."""
    from grids_core.explain.registry import METHODS, run_method

    req.validate()
    if req.method not in METHODS:
        raise UnknownNameError(f"Unknown method {req.method!r}; available: {', '.join(METHODS)}." + suggest(req.method, METHODS))
    req.gene = bundle.gene_name(req.gene)  # the bundle's names (run key, store)
    req.cell_type = bundle.check_cell_type(req.cell_type)
    t0 = time.perf_counter()
    with deterministic():
        objective = build_objective(bundle, tm, req)
        mask = window_mask(bundle, req.gene, req.window)
        out = run_method(req, objective, mask, progress=progress, cancel=cancel, bundle=bundle)
        runtime = time.perf_counter() - t0
        subset = [int(i) for i in out.subset]
        test = np.flatnonzero(bundle.cell_mask(req.cell_type, "test"))
        held = heldout_effect(objective.model, objective.readout, bundle.atac[test], subset, req.value)
        held["r_in_type"] = type_r(tm.model, bundle, req.gene, test)
        held["mean_observed"] = observed_mean(bundle, req.gene, test)
    settings = req.settings()
    return ExplanationResult(
        run_id=run_key(bundle.bundle_id, tm.model_id, req.gene, req.cell_type, req.method, settings),
        bundle_id=bundle.bundle_id,
        model_id=tm.model_id,
        gene=req.gene,
        cell_type=req.cell_type,
        method=req.method,
        settings=settings,
        subset=subset,
        peak_names=bundle.peaks["name"].iloc[subset].tolist(),
        drop_one=[float(v) for v in out.drop_one],
        single=[float(v) for v in out.single],
        pairwise=np.asarray(out.pairwise, dtype=float).tolist(),
        trajectory=[float(v) for v in out.trajectory],
        objective=float(out.objective),
        baseline_objective=float(out.baseline_objective),
        heldout=held,
        locality=locality(bundle, req.gene, subset),
        truth=truth_metrics(bundle, req.gene, req.cell_type, subset, out.scores),
        gene_r=tm.gene_r(req.gene),
        predictable=tm.predictable(req.gene) and bool(held["r_in_type"] >= PREDICTABLE_R),
        converged=bool(out.converged),
        n_evaluations=int(out.n_evaluations),
        runtime_s=runtime,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
    )
