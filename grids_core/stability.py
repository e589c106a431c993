"""Stability of an explanation across seeds (ALGORITHM §6): Jaccard of the subsets and how often each
peak is chosen. Every seed runs through ``jobs.run_explanation``, so its result is stored like any run."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from grids_core.bundle import Bundle
from grids_core.errors import SettingsError
from grids_core.explain.gene import ExplainRequest
from grids_core.links import linkage_table
from grids_core.results import ExplanationResult
from grids_core.settings import Settings

Progress = Callable[[float, str], None]


def jaccard(a: Sequence[int], b: Sequence[int]) -> float:
    """|A ∩ B| / |A ∪ B| of two subsets (1.0 when both are empty)."""
    sa, sb = {int(i) for i in a}, {int(i) for i in b}
    union = sa | sb
    return len(sa & sb) / len(union) if union else 1.0


def jaccard_matrix(subsets: Sequence[Sequence[int]]) -> np.ndarray:
    """Pairwise Jaccard of the subsets: [n, n], ones on the diagonal."""
    n = len(subsets)
    out = np.ones((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            out[i, j] = out[j, i] = jaccard(subsets[i], subsets[j])
    return out


def mean_pairwise(matrix: np.ndarray) -> float:
    """Mean of the off-diagonal entries (1.0 for a single subset)."""
    n = len(matrix)
    return float(matrix[~np.eye(n, dtype=bool)].mean()) if n > 1 else 1.0


@dataclass
class Stability:
    """One request run with several seeds."""

    seeds: list[int]
    results: list[ExplanationResult]
    stored: list[bool]  # whether each seed's result came from the store
    jaccard: np.ndarray  # [seeds, seeds]

    @property
    def mean_jaccard(self) -> float:
        return mean_pairwise(self.jaccard)

    @property
    def min_jaccard(self) -> float:
        return float(self.jaccard.min())

    def frequency(self, bundle: Bundle) -> pd.DataFrame:
        """One row per peak chosen with any seed: how many seeds chose it, its mean rank and drop-one effect
        over those seeds, distance to the TSS and (with planted truth) its planted role; most frequent first."""
        links = pd.concat([linkage_table(bundle, r).assign(seed=s) for s, r in zip(self.seeds, self.results, strict=True)])
        links["peak_index"] = np.concatenate([np.asarray(r.subset, dtype=np.int64) for r in self.results])
        out = (
            links.groupby("peak_index", sort=False)
            .agg(peak=("peak", "first"), peak_chrom=("peak_chrom", "first"), peak_start=("peak_start", "first"),
                 peak_end=("peak_end", "first"), distance_to_tss=("distance_to_tss", "first"),
                 n_seeds=("seed", "nunique"), mean_rank=("rank", "mean"), mean_drop_one=("drop_one", "mean"))
            .reset_index()
        )
        out["frequency"] = out["n_seeds"] / len(self.seeds)
        first = self.results[0]
        out["planted"] = _planted_roles(bundle, first.gene, first.cell_type, out["peak_index"])
        return out.sort_values(["n_seeds", "mean_rank"], ascending=[False, True], kind="stable").reset_index(drop=True)


def _planted_roles(bundle: Bundle, gene: str, cell_type: str, peaks: pd.Series) -> pd.Series:
    """The planted group of each peak ('promoter', 'enhancer-A', 'decoy', ...) or '' (none, or no truth)."""
    t = bundle.pair_truth(gene, cell_type)
    if t is None:
        return pd.Series([""] * len(peaks), index=peaks.index)
    role = dict(zip(t["peak_index"].astype(int), t["group"].astype(str), strict=True))
    return peaks.map(lambda j: role.get(int(j), ""))


def parse_seeds(text: str) -> list[int]:
    """'0,1,2', '0-4' (inclusive) or a mix -> distinct non-negative seeds in the given order; at least two."""
    seeds: list[int] = []
    for part in (p.strip() for p in str(text).split(",")):
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m or (m[2] is not None and int(m[2]) < int(m[1])):
            raise SettingsError(f"Could not read seeds {text!r}: give non-negative integers like 0,1,2 or a range like 0-4.")
        seeds.extend(range(int(m[1]), int(m[2] or m[1]) + 1))
    return _distinct(seeds, text)


def _distinct(seeds: Sequence[int], given) -> list[int]:
    """The seeds without repeats (order kept); at least two are needed."""
    out = list(dict.fromkeys(int(s) for s in seeds))
    if len(out) < 2:
        raise SettingsError(f"Stability needs at least two distinct seeds, got {given!r} (e.g. --seeds 0-4).")
    return out


def seed_stability(
    settings: Settings,
    req: ExplainRequest,
    seeds: Sequence[int],
    progress: Progress | None = None,
    cancel: Callable[[], bool] | None = None,
    force: bool = False,
) -> Stability:
    """Run ``req`` once per seed (stored results are reused unless ``force``) and compare the subsets."""
    from grids_core.jobs import run_explanation

    seeds = [int(s) for s in seeds]
    _distinct(seeds, seeds)
    results, stored = [], []
    for i, seed in enumerate(seeds):
        def step(frac: float, msg: str, i: int = i, seed: int = seed) -> None:
            if progress:
                progress((i + frac) / len(seeds), f"seed {seed}: {msg}")

        res, was_stored = run_explanation(settings, replace(req, seed=seed), progress=step, cancel=cancel, force=force)
        results.append(res)
        stored.append(was_stored)
    return Stability(seeds, results, stored, jaccard_matrix([r.subset for r in results]))
