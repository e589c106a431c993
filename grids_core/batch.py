"""Many genes x cell types at once on dask.distributed; results go to the store, stored keys are skipped.

A LocalCluster (one single-threaded worker process per core) is the default; ``scheduler`` connects to
an existing cluster (e.g. started by dask-jobqueue on SLURM). Each worker loads the bundle and the model
once (``jobs.load_context`` caches them per process), so tasks only pay for the search.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from grids_core.errors import GridsError, InputError, SettingsError, UnknownNameError
from grids_core.explain.gene import ExplainRequest
from grids_core.jobs import load_context, request_key, run_explanation
from grids_core.settings import Settings

DASHBOARD_REQUIREMENT = "bokeh>=3.1.0"  # what distributed's dashboard needs (distributed.versions.BOKEH_REQUIREMENT)


def _dashboard_requirement():
    try:
        from distributed.versions import BOKEH_REQUIREMENT

        return BOKEH_REQUIREMENT
    except ImportError:  # an older distributed: the same pin, parsed here
        from packaging.requirements import Requirement

        return Requirement(DASHBOARD_REQUIREMENT)


def bokeh_serves_dashboard() -> bool:
    """Whether this process can serve the Dask dashboard: without bokeh (>= 3.1) its page only says that Dask
    needs bokeh."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return _dashboard_requirement().specifier.contains(version("bokeh"), prereleases=True)
    except PackageNotFoundError:
        return False


def dashboard_link(client, local: bool) -> str | None:
    """The dashboard link of the client's scheduler, or None when that scheduler cannot serve the dashboard."""
    link = client.dashboard_link
    if not link:
        return None
    if local:  # a LocalCluster's scheduler runs in this process
        return link if bokeh_serves_dashboard() else None
    try:  # another cluster's scheduler: ask it (a lambda travels by value; the scheduler needs no grids_core)
        has_bokeh = client.run_on_scheduler(lambda: __import__("importlib.util").util.find_spec("bokeh") is not None)
    except Exception:  # the scheduler refuses to run code: it may serve it; give the link
        return link
    return link if has_bokeh else None


@dataclass
class BatchReport:
    """What a batch did: per pair, stored before / computed now / failed (with the error)."""

    total: int = 0
    skipped: list[str] = field(default_factory=list)
    computed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    duplicates: list[str] = field(default_factory=list)  # pairs named again (other case or a gene id): run once
    dashboard: str | None = None  # the Dask dashboard's link; None when its scheduler cannot serve it (no bokeh)


_PAIR_COLUMNS = {"gene": "gene", "genes": "gene", "gene_name": "gene", "symbol": "gene", "cell_type": "cell_type",
                 "celltype": "cell_type", "cell": "cell_type", "type": "cell_type"}


def read_pairs(path: str | os.PathLike) -> list[tuple[str, str]]:
    """(gene, cell_type) pairs from a TSV/CSV: columns gene and cell_type (any case; a file of two unnamed
    columns is read as gene, cell_type); ``#`` comment lines and an Excel byte-order mark are ignored."""
    path = Path(path)
    fix = "Give a TSV/CSV with columns gene, cell_type (one pair per line)."
    try:
        with open(path, encoding="utf-8-sig") as fh:
            first = next((ln for ln in fh if ln.strip() and not ln.startswith("#")), "")
    except (OSError, UnicodeError) as exc:
        raise InputError(f"{path}: cannot read the pairs table ({exc}). {fix}") from exc
    sep = next((d for d in ("\t", ",", ";") if d in first), r"\s+")
    opts = dict(sep=sep, engine="python", dtype=str, keep_default_na=False, na_filter=False, comment="#",
                encoding="utf-8-sig", skip_blank_lines=True)
    try:
        df = pd.read_csv(path, **opts)
        df.columns = [_PAIR_COLUMNS.get(str(c).strip().lower().replace(" ", "_").replace("-", "_"), str(c))
                      for c in df.columns]
        headerless = not ({"gene", "cell_type"} & set(df.columns)) and df.shape[1] == 2
        if headerless:
            df = pd.read_csv(path, header=None, names=["gene", "cell_type"], **opts)
    except Exception as exc:
        raise InputError(f"{path}: cannot read the pairs table ({exc}). {fix}") from exc
    missing = {"gene", "cell_type"} - set(df.columns)
    if missing:
        raise InputError(f"{path}: missing column(s) {sorted(missing)} (columns: {list(df.columns)[:6]}). {fix}")
    genes, cells = df["gene"].str.strip(), df["cell_type"].str.strip()
    empty = (genes == "") | (cells == "")
    if empty.any():
        shown = ", ".join(f"{g or '(empty)'}/{c or '(empty)'}" for g, c in zip(genes[empty][:5], cells[empty][:5],
                                                                               strict=True))
        raise InputError(f"{path}: {int(empty.sum())} row(s) with an empty gene or cell type ({shown}). Fill them in "
                         "or remove them.")
    return list(zip(genes, cells, strict=True))


def expand_pairs(settings: Settings, cell_type: str | None, genes: str | None,
                 pairs: list[tuple[str, str]] | None) -> list[tuple[str, str]]:
    """The explicit pairs, or every requested gene ('all' = every gene of the bundle) in one cell type;
    every name is checked here, before any worker starts."""
    if pairs is not None and not pairs:
        raise GridsError("The pairs file has no rows: give one gene and cell type per line (columns gene, cell_type).")
    if not pairs and (not cell_type or not genes):
        raise GridsError("Give --pairs FILE, or --cell-type TYPE with --genes all|G1,G2,...")
    ctx = load_context(settings)
    if not pairs:
        ctx.bundle.check_cell_type(cell_type)
        names = ctx.bundle.gene_names if genes == "all" else [g.strip() for g in genes.split(",") if g.strip()]
        pairs = [(g, cell_type) for g in names]
    bad = []
    for gene, cell in dict.fromkeys(pairs):
        try:
            ctx.bundle.gene_index(gene)
            ctx.bundle.check_cell_type(cell)
        except GridsError as exc:
            bad.append(f"{gene}/{cell}: {exc}")
    if bad:
        raise UnknownNameError(f"{len(bad)} of {len(pairs)} pairs name an unknown gene or cell type; fix them "
                               "first. " + " | ".join(bad[:5]) + (" | ..." if len(bad) > 5 else ""))
    return pairs


def _run_one(settings: Settings, req: dict) -> tuple[str, str | None]:
    """Worker task: run (or load) one explanation; returns (run_id, error message or None)."""
    import torch

    torch.set_num_threads(1)
    try:
        result, _ = run_explanation(settings, ExplainRequest(**req))
        return result.run_id, None
    except GridsError as exc:
        return f"{req['gene']}/{req['cell_type']}", str(exc)


def run_batch(
    settings: Settings,
    pairs: list[tuple[str, str]],
    template: ExplainRequest,
    *,
    scheduler: str | None = None,
    n_workers: int | None = None,
    progress: Callable[[float, str], None] | None = None,
    on_start: Callable[[str | None], None] | None = None,
) -> BatchReport:
    """Explain every pair with the template's settings; already-stored runs are skipped (resumable)."""
    from dask.distributed import Client, LocalCluster, as_completed

    ctx = load_context(settings)
    report = BatchReport(total=len(pairs))
    todo, seen = [], set()
    for gene, cell_type in pairs:
        req = ExplainRequest(**{**asdict(template), "gene": gene, "cell_type": cell_type})
        try:
            req.gene = ctx.bundle.gene_name(gene)
            req.cell_type = ctx.bundle.check_cell_type(cell_type)
        except GridsError as exc:
            report.failed[f"{gene}/{cell_type}"] = str(exc)
            continue
        key = request_key(ctx, req)
        if key in seen:  # the same pair named twice (another case, a gene id): run once
            report.duplicates.append(f"{gene}/{cell_type}")
        elif key in ctx.store:
            report.skipped.append(key)
        else:
            todo.append(asdict(req))
        seen.add(key)
    if not todo:
        if progress:
            progress(1.0, "nothing to do: every pair is stored")
        return report
    cluster = None
    if scheduler:
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, ValueError, TimeoutError) as exc:
            raise SettingsError(f"Cannot reach the Dask scheduler at {scheduler} ({exc}). Start it (`dask scheduler`, "
                                "then `dask worker ADDRESS`) or leave --scheduler out to run on this machine.") from exc
    else:
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "error")  # our workers: no routine warnings over the bar
        workers = n_workers or max(1, min(len(todo), os.cpu_count() or 1))
        with _sigint_ignored():  # worker processes inherit it: Ctrl-C stops the batch here, and we close them
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                   dashboard_address="127.0.0.1:0")
        client = Client(cluster)
    futures = []
    try:
        report.dashboard = dashboard_link(client, local=cluster is not None)
        if on_start:
            on_start(report.dashboard)
        futures = [client.submit(_run_one, settings, req, pure=False) for req in todo]
        for i, fut in enumerate(as_completed(futures), start=1):
            run_id, err = fut.result()
            if err is None:
                report.computed.append(run_id)
            else:
                report.failed[run_id] = err
            if progress:
                progress(i / len(todo), f"{i}/{len(todo)} done, {len(report.failed)} failed")
    except KeyboardInterrupt:
        # Ctrl-C reaches the worker processes too; their shutdown noise would bury the one-line message
        logging.getLogger("distributed").setLevel(logging.CRITICAL)
        client.cancel(futures)
        raise
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return report


@contextmanager
def _sigint_ignored():
    """Ignore SIGINT while child processes start (they keep ignoring it), where this is the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
