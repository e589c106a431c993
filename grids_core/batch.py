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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from grids_core.errors import GridsError, InputError, SettingsError, UnknownNameError
from grids_core.explain.gene import ExplainRequest
from grids_core.jobs import load_context, request_key, run_explanation
from grids_core.settings import Settings

if TYPE_CHECKING:
    from dask.distributed import Client

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
    """What a batch did: per pair, stored before / computed now / failed (with the error) / left."""

    total: int = 0
    skipped: list[str] = field(default_factory=list)
    computed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    duplicates: list[str] = field(default_factory=list)  # pairs named again (other case or a gene id): run once
    runs: list[str] = field(default_factory=list)  # run id of every distinct valid pair, in the order given
    replaced: list[str] = field(default_factory=list)  # computed again over a stored run (force)
    left: list[str] = field(default_factory=list)  # not computed when the batch was interrupted
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


def _run_one(settings: Settings, req: dict, force: bool = False) -> tuple[str, str | None]:
    """Worker task: run (or load) one explanation; returns (run_id, error message or None)."""
    import torch

    torch.set_num_threads(1)
    try:
        result, _ = run_explanation(settings, ExplainRequest(**req), force=force)
        return result.run_id, None
    except GridsError as exc:
        return f"{req['gene']}/{req['cell_type']}", str(exc)


class BatchInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a batch; ``report`` says what was stored and what is left."""

    def __init__(self, report: BatchReport):
        super().__init__()
        self.report = report


def _silence_level() -> int:
    """Level of distributed's logs while our LocalCluster runs: errors only, unless DASK_LOGGING__DISTRIBUTED
    asks for more (e.g. warning)."""
    level = logging.getLevelName(os.environ.get("DASK_LOGGING__DISTRIBUTED", "error").upper())
    return level if isinstance(level, int) else logging.ERROR


def run_batch(
    settings: Settings,
    pairs: list[tuple[str, str]],
    template: ExplainRequest,
    *,
    scheduler: str | None = None,
    n_workers: int | None = None,
    force: bool = False,
    progress: Callable[[float, str], None] | None = None,
    on_plan: Callable[[BatchReport, int], None] | None = None,
    on_start: Callable[[str | None], None] | None = None,
) -> BatchReport:
    """Explain every pair with the template's settings; already-stored runs are skipped (resumable), or with
    ``force`` computed again and replaced. ``on_plan(report, n_to_compute)`` is called before any cluster
    starts; Ctrl-C raises BatchInterrupted."""
    from dask.distributed import as_completed

    ctx = load_context(settings)
    report = BatchReport(total=len(pairs))
    reqs: dict[str, dict] = {}
    for gene, cell_type in pairs:
        req = ExplainRequest(**{**asdict(template), "gene": gene, "cell_type": cell_type})
        try:
            req.gene = ctx.bundle.gene_name(gene)
            req.cell_type = ctx.bundle.check_cell_type(cell_type)
        except GridsError as exc:
            report.failed[f"{gene}/{cell_type}"] = str(exc)
            continue
        key = request_key(ctx, req)
        if key in reqs:  # the same pair named twice (another case, a gene id): run once
            report.duplicates.append(f"{gene}/{cell_type}")
        else:
            reqs[key] = asdict(req)
    report.runs = list(reqs)
    stored = ctx.store.stored(report.runs)
    report.skipped = [] if force else [k for k in report.runs if k in stored]
    todo = [k for k in report.runs if force or k not in stored]
    if on_plan:
        on_plan(report, len(todo))
    if not todo:
        if progress:
            progress(1.0, "nothing to do: every pair is stored")
        return report
    interrupted, failed_keys = False, set()
    with _client(scheduler, n_workers or max(1, min(len(todo), os.cpu_count() or 1))) as (client, local):
        futures: dict = {}  # future -> its run key
        try:
            report.dashboard = dashboard_link(client, local=local)
            if on_start:
                on_start(report.dashboard)
            futures = {client.submit(_run_one, settings, reqs[k], force, pure=False): k for k in todo}
            for i, fut in enumerate(as_completed(list(futures)), start=1):
                run_id, err = fut.result()
                if err is None:
                    report.computed.append(run_id)
                else:
                    report.failed[run_id] = err
                    failed_keys.add(futures[fut])
                if progress:
                    progress(i / len(todo), f"{i}/{len(todo)} done, {len(report.failed)} failed")
        except KeyboardInterrupt:
            # Ctrl-C reaches the worker processes too; their shutdown noise would bury the one-line message
            for lg in _distributed_loggers():
                lg.setLevel(logging.CRITICAL)
            client.cancel(list(futures))
            interrupted = True
    if force:
        report.replaced = [k for k in report.computed if k in stored]
    if interrupted:
        if not force:  # a task may have finished after the last one counted: the store knows (no worker is left)
            now = ctx.store.stored(todo)
            report.computed = [k for k in todo if k in now]
        done = set(report.computed) | failed_keys
        report.left = [k for k in todo if k not in done]
        raise BatchInterrupted(report)
    return report


@contextmanager
def _client(scheduler: str | None, n_workers: int) -> Iterator[tuple[Client, bool]]:
    """(client, is local): a client of the scheduler at ``scheduler``, else of a new LocalCluster whose workers,
    nannies and scheduler log errors only; both are closed on exit."""
    from dask.distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, ValueError, TimeoutError) as exc:
            raise SettingsError(f"Cannot reach the Dask scheduler at {scheduler} ({exc}). Start it (`dask scheduler`, "
                                "then `dask worker ADDRESS`) or leave --scheduler out to run on this machine.") from exc
        with client:
            yield client, False
        return
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "error")  # read by the worker processes as they start
    level = _silence_level()
    with _distributed_logs(level):
        with _sigint_ignored():  # worker processes inherit it: Ctrl-C stops the batch here, and we close them
            cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                                   dashboard_address="127.0.0.1:0", silence_logs=level)
        with cluster, Client(cluster) as client:
            yield client, True


def _distributed_loggers() -> list[logging.Logger]:
    """distributed's loggers in this process (those named so far; later ones inherit from 'distributed')."""
    names = ["distributed", *(n for n in logging.root.manager.loggerDict if n.startswith("distributed."))]
    return [logging.getLogger(n) for n in names]


@contextmanager
def _distributed_logs(level: int) -> Iterator[None]:
    """distributed's loggers in this process (scheduler, nannies, client) at ``level`` or above meanwhile. A
    LocalCluster's ``silence_logs`` alone quiets distributed's own stderr handler only, which distributed leaves
    out when the root logger has handlers."""
    loggers = [(lg, lg.level) for lg in _distributed_loggers()]
    for lg, before in loggers:
        lg.setLevel(max(before, level))
    try:
        yield
    finally:
        for lg, before in loggers:
            if lg.level == max(before, level):  # raised meanwhile (Ctrl-C: CRITICAL): leave it so
                lg.setLevel(before)


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
