"""GRIDS dashboard: ``create_app(settings)`` factory and ``python app.py`` entry point.

    python app.py [--bundle DIR] [--model PATH] [--host 127.0.0.1] [--port 8050] [--debug]

Background jobs run in processes managed by Dash's DiskcacheManager (cache in ``settings.cache_dir``),
or in Celery workers when a Redis URL is configured (``GRIDS_REDIS_URL``); start a worker with
``GRIDS_REDIS_URL=redis://127.0.0.1:6379/0 GRIDS_BUNDLE=DIR celery -A app:celery_app worker``.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import dash
from dash import Dash

from callbacks import register_all
from callbacks.state import DEFAULT_PAIR, AppState, method_registry
from grids_core.settings import Settings
from layouts.components import cell_options, gene_options, method_options
from layouts.pages import Choices, shell

ASSETS = Path(__file__).resolve().parent / "assets"
log = logging.getLogger("grids.app")


def background_manager(settings: Settings):
    """CeleryManager when a Redis URL is configured, else a DiskcacheManager in ``settings.cache_dir``."""
    if settings.redis_url:
        try:
            from celery import Celery
        except ImportError as exc:  # celery/redis are optional extras
            raise SystemExit(
                "GRIDS_REDIS_URL is set but Celery is not installed: `pip install celery redis`, or unset it "
                "to use the built-in DiskcacheManager."
            ) from exc
        celery = Celery("grids_dashboard", broker=settings.redis_url, backend=settings.redis_url)
        return dash.CeleryManager(celery), celery
    import diskcache

    cache_dir = Path(settings.cache_dir) / "dash"
    cache_dir.mkdir(parents=True, exist_ok=True)
    return dash.DiskcacheManager(diskcache.Cache(str(cache_dir))), None


def choices_for(state: AppState) -> Choices:
    """What the controls offer, from the bundle, the model and the method registry (or the error why not)."""
    methods = method_options(method_registry())
    c, err = state.try_ctx()
    if c is None:
        return Choices(methods=methods, error=f"The data could not be loaded: {err}")
    b = c.bundle
    markers = b.marker_pairs()
    quality = dict(c.model.meta.get("quality", {}))
    cell, gene = DEFAULT_PAIR
    if gene not in set(b.gene_names) or cell not in b.cell_types:
        pair = next(((ct, g) for ct, g in markers if g in set(b.gene_names) and ct in b.cell_types), None)
        cell, gene = pair or (b.cell_types[0], b.gene_names[0])
    n_cells = len(b.cells)
    return Choices(
        genes=gene_options(b.gene_names, markers, quality), cells=cell_options(b.cell_types, markers, gene),
        methods=methods, default_gene=gene, default_cell=cell, manifest=b.manifest,
        bundle_label=f"bundle {b.bundle_id} · {n_cells:,} cells · {b.atac.shape[1]:,} peaks · model {c.model.model_id}",
    )


def create_app(settings: Settings) -> Dash:
    """Build the Dash app for ``settings`` (bundle, model, cache); nothing is read from the browser."""
    state = AppState(settings)
    manager, celery = background_manager(settings)
    app = Dash(
        __name__,
        title="GRIDS",
        assets_folder=str(ASSETS),
        assets_path_ignore=["vendor"],  # vendored igv.js 3 is served, not auto-loaded (the IGV tab uses dash-bio's)
        suppress_callback_exceptions=True,
        background_callback_manager=manager,
        update_title=None,
        serve_locally=True,
    )
    app._grids_state = state  # for tests and the Celery worker
    app._grids_celery = celery
    state.try_ctx()  # warm the bundle/model cache so the first page is fast
    defaults = (None, None)
    try:
        first = choices_for(state)
        defaults = (first.default_gene, first.default_cell)
    except Exception:  # noqa: BLE001 - the layout shows the problem in place
        log.exception("could not prepare the controls")

    def layout():
        return shell(choices_for(state))

    app.layout = layout
    register_all(app, state, manager, defaults)
    return app


def _celery_worker_app():
    """Module-level Celery app for ``celery -A app:celery_app worker`` (only when GRIDS_REDIS_URL is set)."""
    if not os.environ.get("GRIDS_REDIS_URL"):
        return None
    return create_app(Settings())._grids_celery


celery_app = _celery_worker_app() if __name__ != "__main__" else None


def main(argv: list[str] | None = None) -> int:
    """Serve the dashboard (binds 127.0.0.1 unless told otherwise)."""
    p = argparse.ArgumentParser(description="GRIDS dashboard")
    p.add_argument("--bundle", type=Path, default=None, help="bundle directory (default: $GRIDS_BUNDLE or .grids/default)")
    p.add_argument("--model", type=Path, default=None, help="model checkpoint (default: BUNDLE/models/default.pt)")
    p.add_argument("--host", default=None, help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default 8050)")
    p.add_argument("--cache-dir", type=Path, default=None, help="background-job cache (default: BUNDLE/cache)")
    p.add_argument("--debug", action="store_true", help="Dash debug mode (dev tools, reloader off)")
    args = p.parse_args(argv)
    kw = {k: v for k, v in (("bundle_dir", args.bundle), ("model_path", args.model), ("host", args.host),
                            ("port", args.port), ("cache_dir", args.cache_dir)) if v is not None}
    settings = Settings(debug=args.debug, **kw)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(settings)
    log.info("GRIDS dashboard on http://%s:%s (bundle %s)", settings.host, settings.port, settings.bundle_dir)
    app.run(host=settings.host, port=settings.port, debug=settings.debug, use_reloader=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
