"""Errors a user can cause. Each message says what was wrong and how to fix it."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class GridsError(Exception):
    """Base class of every error caused by user input (bad file, unknown name, bad setting)."""


class BundleError(GridsError):
    """A bundle on disk is missing, corrupt or inconsistent."""


class InputError(GridsError):
    """An input file for ``grids prepare`` is malformed."""


class UnknownNameError(GridsError):
    """A gene, cell type, method or run id that does not exist."""


class SettingsError(GridsError):
    """A setting (L, k, window, ...) that cannot be honoured."""


class ModelError(GridsError):
    """A model checkpoint is missing, corrupt or does not match the bundle."""


class CancelledError(GridsError):
    """A job was cancelled by the user."""


def suggest(name: str, choices: Iterable[str], n: int = 3) -> str:
    """Return ' Did you mean: A, B?' for close matches of ``name`` among ``choices`` (or '')."""
    choices = list(choices)
    close = difflib.get_close_matches(name, choices, n=n, cutoff=0.5)
    if not close:
        upper = {c.upper(): c for c in choices}
        close = [upper[name.upper()]] if name.upper() in upper else []
    return f" Did you mean: {', '.join(close)}?" if close else ""
