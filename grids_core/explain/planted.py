"""The simulator's planted expression model as a two-stage model: an oracle to search on.

For a planted (gene, cell type) of a simulated bundle, stage 1 = (promoter open, number of open members of
each OR-group), affine in x; the readout is the planted log rate (promoter weight + group weight per
group), with each group's OR smoothed as ``1 - exp(-sharpness * open members)`` so that it has a
gradient. Searching it shows what GRIDS does when the model is exactly right, apart from what a trained
surrogate learned (``benchmarks/quality_markers.py --oracle``).
"""

from __future__ import annotations

import torch

from grids_core.bundle import Bundle
from grids_core.errors import SettingsError
from grids_core.explain.base import DenseAffineStage1, Objective
from grids_core.simulate import W_GROUP, W_PROMOTER

OR_SHARPNESS = 4.0  # one open member: 1 - exp(-4) = 0.98 of the group's weight


class PlantedModel(DenseAffineStage1):
    """``stage1(x) = x @ W``: W has a promoter column and one column per OR-group (1 at its members)."""

    def __init__(self, w: torch.Tensor):
        self.w, self.c = w, torch.zeros(w.shape[1])

    def stage1_params(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.c, self.w

    @property
    def device(self) -> torch.device:
        return self.w.device


def planted_objective(bundle: Bundle, gene: str, cell_type: str, sharpness: float = OR_SHARPNESS) -> Objective:
    """The planted log rate of ``gene`` on the training cells of ``cell_type`` (closing lowers it)."""
    truth = bundle.truth
    if truth is None or len(truth) == 0:
        raise SettingsError(f"Bundle {bundle.path} has no planted truth (only simulated bundles do).")
    t = truth[(truth["gene"] == gene) & (truth["cell_type"] == cell_type)]
    groups = ["promoter", *sorted(g for g in set(t["group"]) if g.startswith("enhancer"))]
    if t.empty or "promoter" not in set(t["group"]):
        raise SettingsError(f"{gene} in {cell_type} has no planted logic in this bundle; planted pairs: "
                            f"{', '.join(sorted(set(truth['gene'] + '/' + truth['cell_type'])))}.")
    w = torch.zeros(bundle.atac.shape[1], len(groups))
    for col, name in enumerate(groups):
        w[t.loc[t["group"] == name, "peak_index"].to_numpy(), col] = 1.0
    weights = torch.tensor([W_PROMOTER] + [W_GROUP] * (len(groups) - 1))

    def readout(h: torch.Tensor) -> torch.Tensor:
        ors = torch.cat([h[:, :1], -torch.expm1(-sharpness * h[:, 1:])], dim=1)
        return ors @ weights.to(h.dtype)

    x = bundle.atac[bundle.cell_mask(cell_type, "train")]
    return Objective(PlantedModel(w), readout, x, name=f"planted {gene}/{cell_type}")
