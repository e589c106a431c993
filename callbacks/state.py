"""Server-side state of one app: settings, the loaded engine context, and small caches of immutable results."""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from grids_core import jobs, links
from grids_core.errors import GridsError
from grids_core.results import ExplanationResult
from grids_core.settings import Settings

DEFAULT_PAIR = ("VIP", "GAD1")
OBJECTIVE_SETTINGS = ("value", "sign", "beta", "window")  # runs with equal values explain the same objective


def method_registry() -> dict[str, str]:
    """Method name -> description, from the engine's registry."""
    from grids_core.explain.registry import methods

    return dict(methods())


@dataclass
class AppState:
    """Everything the callbacks of one app share. Paths come from ``settings`` only, never the browser."""

    settings: Settings
    pid: int = field(default_factory=os.getpid)  # the process that built the app (job processes differ)
    _results: OrderedDict = field(default_factory=OrderedDict)
    _links: OrderedDict = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _reference: dict = field(default_factory=dict)

    # ---- engine context -------------------------------------------------------------------------
    def ctx(self) -> jobs.Context:
        """The loaded bundle/model/store (raises a GridsError with a fix when something is missing)."""
        return jobs.load_context(self.settings)

    def try_ctx(self) -> tuple[jobs.Context | None, str | None]:
        """(context, None) or (None, message) so layouts can show the problem in place."""
        try:
            return self.ctx(), None
        except GridsError as exc:
            return None, str(exc)

    # ---- results (cached per run id while the store holds the same copy) ------------------------
    def result(self, run_id: str | None) -> ExplanationResult | None:
        """A stored result by id (None when unknown). The cache is checked against the store's ``created`` stamp:
        a run replaced (``grids explain --force``) or deleted elsewhere is not served from an old copy."""
        if not run_id:
            return None
        store = self.ctx().store
        created = store.created(run_id)
        with self._lock:
            cached = self._results.get(run_id)
            if cached is not None and cached.created == created:
                self._results.move_to_end(run_id)
                return cached
            self._results.pop(run_id, None)
            self._links.pop(run_id, None)  # its table was built from the old copy
        res = store.get(run_id) if created is not None else None
        if res is not None:
            with self._lock:
                self._results[run_id] = res
                while len(self._results) > 64:
                    self._results.popitem(last=False)
        return res

    def links(self, run_id: str | None) -> pd.DataFrame | None:
        """The linkage table of a stored run (the same rows every export uses)."""
        res = self.result(run_id)
        if res is None:
            return None
        with self._lock:
            if run_id in self._links:
                return self._links[run_id]
        df = links.linkage_table(self.ctx().bundle, res)
        with self._lock:
            self._links[run_id] = df
            while len(self._links) > 64:
                self._links.popitem(last=False)
        return df

    def find_run(self, gene: str | None, cell_type: str | None, method: str | None, L: int | None = None,
                 seed: int | None = None, any_l: bool = False, objective_of: dict | None = None) -> str | None:
        """Newest stored run of this gene/type/method (same model) with this L (any L if ``any_l``), same seed first;
        with ``objective_of`` (a run's settings) only runs of the same objective (direction, β, window)."""
        if not (gene and cell_type and method):
            return None
        ctx = self.ctx()
        rows = [r for r in ctx.store.list(gene=gene, cell_type=cell_type, method=method)
                if r.get("model_id") in (None, ctx.model.model_id)]
        if objective_of is not None:
            want = {k: objective_of.get(k) for k in OBJECTIVE_SETTINGS}
            rows = [r for r in rows if {k: self.result(r["run_id"]).settings.get(k) for k in OBJECTIVE_SETTINGS} == want]
        if L is not None:
            same_l = [r for r in rows if r.get("L") == L]
            rows = same_l or (rows if any_l else [])
        if seed is not None and rows:
            rows = [r for r in rows if r.get("seed") == seed] or rows
        return rows[0]["run_id"] if rows else None

    # ---- reference data (cached; missing files only cost a track, never the page) -----------------
    def _manifest(self) -> dict:
        try:
            return json.loads((Path(self.settings.bundle_dir) / "manifest.json").read_text())
        except (OSError, ValueError):
            return {}

    def _hg38(self) -> bool:
        return str(self._manifest().get("genome_build", "hg38")).lower() in ("hg38", "grch38")

    def cytobands(self) -> pd.DataFrame | None:
        """hg38's bands (the shipped ones); none for a bundle of another build."""
        if "cyto" not in self._reference:
            try:
                from grids_core.reference import cytobands

                self._reference["cyto"] = cytobands() if self._hg38() else None
            except Exception:  # noqa: BLE001
                self._reference["cyto"] = None
        return self._reference["cyto"]

    def chrom_sizes(self) -> dict[str, int]:
        """The bundle's chromosome lengths: hg38's, or those ``grids prepare`` kept for another build (else the
        extent of its peaks and genes)."""
        if "sizes" not in self._reference:
            try:
                from grids_core.reference import chrom_sizes

                if self._hg38():
                    self._reference["sizes"] = chrom_sizes()
                elif sizes := self._manifest().get("chrom_sizes"):
                    self._reference["sizes"] = {str(k): int(v) for k, v in sizes.items()}
                else:
                    b = self.ctx().bundle
                    extent = pd.concat([b.peaks[["chrom", "end"]], b.genes[["chrom", "end"]]]).groupby("chrom")["end"].max()
                    self._reference["sizes"] = {str(k): int(v) for k, v in extent.items()}
            except Exception:  # noqa: BLE001  (no bundle or reference data yet: nothing to cache)
                return {}
        return self._reference["sizes"]
