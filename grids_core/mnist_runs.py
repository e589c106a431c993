"""MNIST 3-vs-8 runs stored like the genomic ones (one ExplanationResult per method) in a ResultStore."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from grids_core.mnist import METHODS, load_digits, run_mnist_experiment, split
from grids_core.results import ExplanationResult, run_key
from grids_core.store import ResultStore

BUNDLE_ID = "mnist-3v8"
TARGET = "8"
CONTRAST = "3 vs 8"
DEFAULT_METHODS = tuple(METHODS)  # GRIDS and every baseline


def mnist_dir(home: str | Path, digits_dir: str | Path | None = None) -> Path:
    """Where the classifier and results of one digit source live: HOME/mnist for the shipped subset, a
    subfolder per content of a user's IDX folder (another data set must not reuse their classifier or runs)."""
    base = Path(home) / "mnist"
    return base if digits_dir is None else base / f"idx-{_digits_id(Path(digits_dir))}"


def _digits_id(folder: Path) -> str:
    """Content id of the IDX files in ``folder`` (names and bytes)."""
    h = hashlib.sha256()
    for f in sorted(p for p in folder.iterdir() if p.is_file() and "idx" in p.name):
        h.update(f.name.encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:12]


def classifier_path(home: str | Path, seed: int, digits_dir: str | Path | None = None) -> Path:
    return mnist_dir(home, digits_dir) / f"classifier-seed{seed}.pt"


def _file_id(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def _key(model_id: str, method: str, L: int, k: int, seed: int) -> str:
    return run_key(BUNDLE_ID, model_id, TARGET, CONTRAST, method, {"L": L, "k": k, "seed": seed, "value": 0.0})


def load_stored(home: str | Path, L: int, k: int, seed: int, methods=DEFAULT_METHODS,
                digits_dir: str | Path | None = None) -> dict[str, ExplanationResult] | None:
    """Stored results for every method, or None if any is missing."""
    path = classifier_path(home, seed, digits_dir)
    if not path.exists():
        return None
    store = ResultStore(mnist_dir(home, digits_dir) / "results.sqlite")
    mid = _file_id(path)
    out = {m: store.get(_key(mid, m, L, k, seed)) for m in methods}
    return None if any(v is None for v in out.values()) else out  # type: ignore[return-value]


def run_and_store(
    home: str | Path,
    L: int = 64,
    k: int = 32,
    seed: int = 0,
    methods: tuple[str, ...] = DEFAULT_METHODS,
    progress: Callable[[float, str], None] | None = None,
    force: bool = False,
    digits_dir: str | Path | None = None,
) -> dict[str, ExplanationResult]:
    """Run (or load) the MNIST experiment; every method's subset and Δφ per test 8 are stored."""
    if digits_dir is not None and not Path(digits_dir).is_dir():
        load_digits(digits_dir)  # says what is wrong with the folder
    if not force:
        stored = load_stored(home, L, k, seed, methods, digits_dir)
        if stored is not None:
            if progress:
                progress(1.0, "loaded stored results")
            return stored
    base = mnist_dir(home, digits_dir)
    base.mkdir(parents=True, exist_ok=True)
    model_path = classifier_path(home, seed, digits_dir)
    exp = run_mnist_experiment(L=L, k=k, seed=seed, methods=methods, progress=progress, mnist_dir=digits_dir,
                               model_path=model_path)
    mid = _file_id(model_path)
    store = ResultStore(base / "results.sqlite")
    summary = exp.summary.set_index("method") if "method" in exp.summary.columns else exp.summary
    wil = exp.wilcoxon.set_index("method") if "method" in exp.wilcoxon.columns else exp.wilcoxon
    out = {}
    now = datetime.now(UTC).isoformat(timespec="seconds")
    for m in methods:
        s = summary.loc[m].to_dict() if m in summary.index else {}
        held = {k2: _num(v) for k2, v in s.items()}
        held["delta_phi"] = [float(v) for v in exp.delta[m]]
        held["test_accuracy"] = float(exp.model_info.get("test_accuracy", float("nan")))
        if m in wil.index:
            held["wilcoxon"] = {k2: _num(v) for k2, v in wil.loc[m].to_dict().items()}
        res = ExplanationResult(
            run_id=_key(mid, m, L, k, seed), bundle_id=BUNDLE_ID, model_id=mid, gene=TARGET, cell_type=CONTRAST,
            method=m, settings={"L": L, "k": k, "seed": seed, "value": 0.0, "sign": 1.0},
            subset=[int(i) for i in exp.subsets[m]], peak_names=[f"px{int(i)}" for i in exp.subsets[m]],
            drop_one=[], objective=float(exp.train_objective[m]), baseline_objective=float(exp.train_objective["none"]),
            trajectory=list(exp.grids_result.trajectory) if m == "grids" and exp.grids_result else [],
            heldout=held, runtime_s=float(exp.timings.get(m, 0.0)), created=now,
        )
        store.put(res)
        out[m] = res
    return out


def _num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return str(v)


def summary_table(results: dict[str, ExplanationResult]) -> pd.DataFrame:
    """One row per method: median/mean Δφ, accuracy drop, fraction flipped to 3, Wilcoxon p vs GRIDS, time."""
    rows = []
    for m, r in results.items():
        d = np.asarray(r.heldout.get("delta_phi", []), dtype=float)
        w = r.heldout.get("wilcoxon", {}) or {}
        rows.append({
            "method": m,
            "median_dphi": float(np.median(d)) if d.size else float("nan"),
            "mean_dphi": float(d.mean()) if d.size else float("nan"),
            "train_J": r.objective,
            "p_grids_greater": w.get("p_value", w.get("p", float("nan"))),
            "runtime_s": r.runtime_s,
        })
    return pd.DataFrame(rows)


def test_images(seed: int = 0, digits_dir: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The test split's images (float [n, 784]) and labels (1 = digit 8), as the experiment used them."""
    X, y = load_digits(digits_dir)
    te = split(y, seed)["test"]
    return X[te], y[te]
