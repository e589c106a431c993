"""Readers for user multiome data (10x ARC h5, h5ad/h5mu, labels, GTF, TAD BED, Hi-C cooler) and ``prepare``.

``prepare(...)`` turns them into a validated :class:`grids_core.bundle.Bundle`; ``grids prepare`` is its CLI.
"""

from grids_core.ingest.prepare import PrepareInputs, PrepareOptions, prepare

__all__ = ["PrepareInputs", "PrepareOptions", "prepare"]
