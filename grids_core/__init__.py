"""GRIDS engine: multiome bundle, ATAC->RNA surrogate, subset search, baselines, evaluation, store.

This package never imports Dash or plotly; the app in ``app.py`` / ``layouts`` / ``callbacks`` does.
"""

from grids_core.errors import GridsError

__version__ = "0.1.0"
__all__ = ["GridsError", "__version__"]
