"""The result of one explanation (any method), serialisable to JSON for the store."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

import numpy as np


def run_key(bundle_id: str, model_id: str, gene: str, cell_type: str, method: str, settings: dict) -> str:
    """Stable id of a run: hash of the bundle, the model and every setting (ALGORITHM: results store)."""
    payload = {"bundle_id": bundle_id, "model_id": model_id, "gene": gene, "cell_type": cell_type, "method": method}
    payload.update({k: settings[k] for k in sorted(settings)})
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


# --direction -> (v, sigma): v = 0 closes peaks, 1 opens them; sigma = +1 lowers expression, -1 raises it
DIRECTIONS = {"close-lower": (0.0, 1.0), "close-raise": (0.0, -1.0), "open-raise": (1.0, -1.0), "open-lower": (1.0, 1.0)}
# the settings of a request and their defaults (ExplainRequest's; what `grids show` and `grids runs` leave out)
DEFAULT_SETTINGS = {"k": 32, "beta": 0.0, "window": None, "init": "gradient", "faithful": False, "max_sweeps": 20,
                    "precision": "fp32"}


def settings_family(model_id: str, settings: dict) -> str:
    """Id shared by runs that differ only in L and seed (same model, k, v, sigma, beta, window, ...):
    the runs an effect-vs-L curve may compare."""
    rest = {k: settings[k] for k in sorted(settings) if k not in ("L", "seed")}
    blob = json.dumps({"model_id": model_id, **rest}, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


@dataclass
class ExplanationResult:
    """Ordered peak subset for one gene x cell type, with effects, metrics and every setting."""

    run_id: str
    bundle_id: str
    model_id: str
    gene: str
    cell_type: str
    method: str
    settings: dict
    subset: list[int]  # peak indices, most important first
    peak_names: list[str]
    drop_one: list[float]  # J(S minus member) - J(S): how much the objective loses without it
    single: list[float] = field(default_factory=list)  # J({member}) - J(empty)
    pairwise: list[list[float]] = field(default_factory=list)  # J(S minus {i, j}) - J(S), first min(L, 128) members
    trajectory: list[float] = field(default_factory=list)
    objective: float = float("nan")
    baseline_objective: float = float("nan")
    heldout: dict = field(default_factory=dict)
    locality: dict = field(default_factory=dict)
    truth: dict | None = None
    gene_r: float = float("nan")
    predictable: bool = True
    converged: bool = False
    n_evaluations: int = 0
    runtime_s: float = 0.0
    created: str = ""

    def quality_warning(self) -> str | None:
        """Why this explanation may describe the model rather than the biology (None: the surrogate predicts the
        gene, pooled over cell types and within this one, on held-out cells)."""
        if self.predictable:
            return None
        r_type = (self.heldout or {}).get("r_in_type")  # absent in runs stored before it was measured
        pooled = self.gene_r
        if r_type is None or pooled != pooled or (r_type == r_type and pooled <= r_type):  # the pooled r is the weaker
            why = f"The surrogate predicts {self.gene} poorly on held-out cells (r = {pooled:.2f})"
        elif r_type == r_type:
            why = (f"The surrogate does not predict {self.gene}'s variation within {self.cell_type} (held-out r = "
                   f"{r_type:.2f} there; {self.gene_r:.2f} pooled over cell types, which differences between types "
                   "dominate)")
        else:
            why = (f"{self.gene}'s held-out expression or prediction is constant within {self.cell_type}, so the "
                   f"surrogate's r there is undefined ({self.gene_r:.2f} pooled over cell types)")
        return why + "; this explanation describes the model, not the biology."

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=_jsonable, allow_nan=True)

    @classmethod
    def from_json(cls, text: str) -> ExplanationResult:
        return cls(**json.loads(text))

    def summary(self) -> dict:
        """Small dict for listings (Runs page, CLI)."""
        return {
            "run_id": self.run_id,
            "gene": self.gene,
            "cell_type": self.cell_type,
            "method": self.method,
            "L": self.settings.get("L"),
            "seed": self.settings.get("seed"),
            "heldout_delta": self.heldout.get("delta"),
            "heldout_relative": self.heldout.get("relative"),
            "recall": (self.truth or {}).get("recall"),
            "runtime_s": round(self.runtime_s, 3),
            "created": self.created,
            "family": settings_family(self.model_id, self.settings),
        }


def _jsonable(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)
