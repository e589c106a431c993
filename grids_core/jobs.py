"""One entry point that runs an explanation end to end (CLI, app and Dask batch all use it)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from grids_core import bundle as bundle_io
from grids_core.bundle import Bundle
from grids_core.explain.gene import ExplainRequest, explain_gene
from grids_core.results import ExplanationResult, run_key
from grids_core.settings import Settings
from grids_core.store import ResultStore
from grids_core.train import TrainedModel, load_model

Progress = Callable[[float, str], None]


@dataclass
class Context:
    """A loaded bundle, its model and its results store."""

    bundle: Bundle
    model: TrainedModel
    store: ResultStore


_CACHE: dict[tuple, Context] = {}
_LOCK = threading.Lock()


def load_context(settings: Settings) -> Context:
    """Load (once per process, until files change) the bundle, the model and the store."""
    bdir, mpath = Path(settings.bundle_dir), Path(settings.model_path)
    key = (str(bdir.resolve()), str(mpath.resolve()), _mtime(bdir / "manifest.json"), _mtime(mpath), settings.device)
    with _LOCK:
        ctx = _CACHE.get(key)
        if ctx is None:
            b = bundle_io.load(bdir)
            m = load_model(mpath, b, settings.device)
            ctx = Context(b, m, ResultStore(settings.store_path))
            _CACHE.clear()
            _CACHE[key] = ctx
        return ctx


def _mtime(p: Path) -> float:
    return p.stat().st_mtime if p.exists() else -1.0


def request_key(ctx: Context, req: ExplainRequest) -> str:
    return run_key(ctx.bundle.bundle_id, ctx.model.model_id, req.gene, req.cell_type, req.method, req.settings())


def run_explanation(
    settings: Settings,
    req: ExplainRequest,
    progress: Progress | None = None,
    cancel: Callable[[], bool] | None = None,
    force: bool = False,
) -> tuple[ExplanationResult, bool]:
    """Return (result, was_stored): a stored result at once, else compute, store and return it."""
    req.validate()
    ctx = load_context(settings)
    req.gene = ctx.bundle.gene_name(req.gene)
    req.cell_type = ctx.bundle.check_cell_type(req.cell_type)
    key = request_key(ctx, req)
    if not force:
        stored = ctx.store.get(key)
        if stored is not None:
            if progress:
                progress(1.0, "loaded stored result")
            return stored, True
    result = explain_gene(ctx.bundle, ctx.model, req, progress=progress, cancel=cancel)
    ctx.store.put(result)
    return result, False
