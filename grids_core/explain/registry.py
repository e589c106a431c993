"""Every explanation method behind one call: GRIDS and the baselines, all at equal L."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from grids_core.explain.base import Objective
from grids_core.explain.grids import candidate_pool, first_order_scores, grids_search, subset_effects

Progress = Callable[[float, str], None] | None
Cancel = Callable[[], bool] | None


@dataclass
class MethodOutput:
    """What the engine keeps from any method: the ranked subset and its exact effects."""

    subset: np.ndarray
    drop_one: np.ndarray
    single: np.ndarray
    pairwise: np.ndarray
    objective: float
    baseline_objective: float
    trajectory: list[float] = field(default_factory=list)
    converged: bool = True
    n_evaluations: int = 0
    scores: np.ndarray | None = None  # per-feature scores (baselines), for AUPRC


def _baseline_scorers() -> dict:
    try:
        from grids_core.explain.baselines import SCORERS
    except ImportError:  # the baselines package is optional for the engine core
        return {}
    return dict(SCORERS)


def methods() -> dict[str, str]:
    """Method name -> one-line description (GRIDS first)."""
    out = {"grids": "GRIDS subset search (first-order swap proposals, exact incremental evaluation)"}
    out.update({name: s.description for name, s in _baseline_scorers().items()})
    return out


METHODS = methods()


def uses_seed(method: str, settings: dict) -> bool:
    """Whether the seed can change a run: GRIDS with a random start or in faithful mode (minibatches), and the
    stochastic baselines, and any method with β > 0 (it samples the other cell types' cells); the default GRIDS
    search (gradient or single start, full batch, β = 0) uses no random numbers."""
    if float(settings.get("beta") or 0.0) > 0:
        return True
    if method == "grids":
        return bool(settings.get("faithful")) or settings.get("init") == "random"
    scorer = _baseline_scorers().get(method)
    return scorer is None or scorer.uses_seed


def grids_peak_scores(objective: Objective, subset: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """A per-peak ranking of a GRIDS result (for AUPRC): the members first, in drop-one order, then the rest of
    the pool by the first-order estimate of swapping them in at the final subset; off-pool peaks last."""
    a = first_order_scores(objective, subset)
    scores = np.full(len(a), np.nan)
    scores[pool] = -a[pool]  # a more negative a lowers J more
    top = np.nanmax(scores) if np.isfinite(scores).any() else 0.0
    scores[subset] = top + 1 + np.arange(len(subset))[::-1]  # subset is ordered by drop-one, largest first
    return np.where(np.isfinite(scores), scores, np.nanmin(scores) - 1)


def run_method(req, objective: Objective, window_mask: np.ndarray | None, progress: Progress = None,
               cancel: Cancel = None, bundle=None) -> MethodOutput:
    """Run ``req.method`` on the objective; every method returns a subset of size L from the same pool."""
    if req.method == "grids":
        pool = candidate_pool(objective, window_mask)
        r = grids_search(
            objective, req.L, k=req.k, init=req.init, candidates=pool,
            max_sweeps=req.max_sweeps, seed=req.seed, faithful=req.faithful, progress=progress, cancel=cancel,
            precision=req.precision,
        )
        truth = bundle.pair_truth(req.gene, req.cell_type) if bundle is not None else None
        has_truth = truth is not None and len(truth) > 0  # the ranking only feeds the planted-truth AUPRC
        return MethodOutput(
            subset=r.subset, drop_one=r.drop_one, single=r.single, pairwise=r.pairwise, objective=r.objective,
            baseline_objective=r.baseline_objective, trajectory=list(r.trajectory), converged=r.converged,
            n_evaluations=r.n_evaluations, scores=grids_peak_scores(objective, r.subset, pool) if has_truth else None,
        )
    from grids_core.errors import SettingsError, UnknownNameError
    from grids_core.explain.baselines import top_l

    scorers = _baseline_scorers()
    if req.method not in scorers:
        raise UnknownNameError(f"Unknown method {req.method!r}; available: {', '.join(methods())}.")
    pool = candidate_pool(objective, window_mask)
    if req.L > len(pool):
        raise SettingsError(
            f"L={req.L} is larger than the candidate pool ({len(pool)} peaks that can change in the target cells). "
            "Lower L or widen the window."
        )
    options = {}
    if scorers[req.method].needs_bundle:
        options = {"bundle": bundle, "gene": req.gene, "cell_type": req.cell_type}
    scores = scorers[req.method].fn(objective, pool, L=req.L, seed=req.seed, progress=progress, cancel=cancel, **options)
    subset = top_l(scores, pool, req.L)
    eff = subset_effects(objective, subset)  # members, effects and pairs come back together, largest drop first
    return MethodOutput(
        subset=eff.subset, drop_one=eff.drop_one, single=eff.single, pairwise=eff.pairwise, objective=eff.objective,
        baseline_objective=eff.baseline_objective, trajectory=[eff.objective], n_evaluations=eff.n_evaluations,
        scores=np.where(np.isfinite(scores), scores, np.nanmin(np.where(np.isfinite(scores), scores, np.nan)) - 1),
    )
