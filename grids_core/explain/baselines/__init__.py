"""Baseline explainers (ALGORITHM §5): one score per feature; the subset is the top-L of the pool.

Every scorer is called as ``fn(objective, pool, *, L, seed, progress, cancel, **options)`` and returns
a float64 vector over all N features: higher = perturbing that feature (setting it to the objective's
``value``) is expected to lower J more; features outside ``pool`` get ``-inf``. ``progress(fraction,
message)`` and ``cancel() -> bool`` may be None; a cancelled job raises ``CancelledError``. Every method
is deterministic on CPU for a given seed (private generators only).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from grids_core.explain.baselines.ablation import ablation, random_scores
from grids_core.explain.baselines.correlation import correlation_scores
from grids_core.explain.baselines.cxplain import cxplain_scores
from grids_core.explain.baselines.fimap import fimap_scores
from grids_core.explain.baselines.gradients import integrated_gradients, saliency, smoothgrad
from grids_core.explain.baselines.lime_local import lime_scores
from grids_core.explain.baselines.shapley import sage_scores


@dataclass(frozen=True)
class Scorer:
    """A baseline: ``fn(objective, pool, *, L, seed, progress, cancel, **options) -> scores [N]``."""

    description: str
    fn: Callable[..., np.ndarray]
    uses_L: bool = False  # scores depend on L (SAGE's coalition tail, FIMAP's sparsity weight)
    needs_bundle: bool = False  # needs bundle=, gene=, cell_type= in the options (observed data)
    uses_seed: bool = True  # False: the scores are the same for every seed


SCORERS: dict[str, Scorer] = {
    "saliency": Scorer(
        "Saliency: gradient x (v - x) summed over target samples (first-order effect of setting each "
        "feature to v, at the unperturbed input).",
        saliency,
        uses_seed=False,
    ),
    "smoothgrad": Scorer(
        "SmoothGrad: stage-1 gradient averaged over n_samples=50 Gaussian input perturbations "
        "(sigma = noise 0.15 x input range, drawn exactly in stage-1 space), times (v - x).",
        smoothgrad,
    ),
    "ig": Scorer(
        "Integrated gradients from x to the perturbed baseline (every pool feature at v), steps=32 "
        "midpoint rule; attributions sum to J(pool) - J(empty).",
        integrated_gradients,
        uses_seed=False,
    ),
    "ablation": Scorer(
        "Exact single-feature ablation: decrease of J when the feature alone is set to v (incremental "
        "stage-1 delta, readout only for samples the feature changes).",
        ablation,
        uses_seed=False,
    ),
    "random": Scorer("Random subset: seeded uniform random scores on the pool.", random_scores),
    "sage": Scorer(
        "SAGE (stratified permutation estimator, per-sample losses, removed features set to v): mean "
        "decrease of f when the feature is removed among the last tail=L positions of a random "
        "permutation; converges at stderr/range < 0.025 (cap max_passes=64; "
        "preset='paper' removes it; tail=0 = full SAGE).",
        sage_scores,
        uses_L=True,
    ),
    "lime": Scorer(
        "LIME: 1,024 binary keep/perturb neighbours over the top n_features=512 pool features by "
        "|first-order effect|, cosine kernel width 0.25, weighted ridge (alpha 1); signed coefficients.",
        lime_scores,
    ),
    "cxplain": Scorer(
        "CXPlain: U-Net (+ positional embedding) trained to predict normalised masked-loss importances of "
        "windows (w=4 consecutive pool peaks; 2x2 pixels with image_shape=(28, 28)); steps=200, channels=8, batch 16.",
        cxplain_scores,
    ),
    "fimap": Scorer(
        "FIMAP: learned sigmoid mask over the pool minimising J(x + (v - x) m) + lam mean(m) (Adam, "
        "steps=200, lr=0.1; lam defaults to |pool| x the L-th best first-order decrease); score = m.",
        fimap_scores,
        uses_L=True,
        uses_seed=False,
    ),
    "correlation": Scorer(
        "Peak-to-gene Pearson r of observed accessibility vs expression (ArchR/Signac style) within "
        "+-500 kb of the TSS (others -inf); scope='celltype' (default) or 'all'. Needs the bundle: pass "
        "bundle=, gene=, cell_type= as options.",
        correlation_scores,
        needs_bundle=True,
        uses_seed=False,
    ),
}


def top_l(scores: np.ndarray, pool, L: int) -> np.ndarray:
    """The top-L pool features by score (ties broken by lower index); non-finite scores are never picked.

    Returns fewer than L indices when fewer pool features have a finite score.
    """
    pool = np.unique(np.asarray(pool, dtype=np.int64).ravel())
    s = np.asarray(scores, dtype=np.float64)[pool]
    keep = np.isfinite(s)
    pool, s = pool[keep], s[keep]
    order = np.lexsort((pool, -s))
    return pool[order[: max(int(L), 0)]].astype(np.int64)


__all__ = ["SCORERS", "Scorer", "top_l"]
