"""Shared pieces of the readers: the in-memory modality, error construction and read guards."""

from __future__ import annotations

import os
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from grids_core.errors import GridsError, InputError

Progress = Callable[[float, str], None]
PathLike = str | os.PathLike

# what a reader may raise on a truncated, corrupt or wrong-type file
READ_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    EOFError,
    ValueError,
    KeyError,
    TypeError,
    IndexError,
    AttributeError,
    UnicodeDecodeError,
    zlib.error,
    zipfile.BadZipFile,
    RuntimeError,
)


def input_error(path: PathLike | None, field_: str, problem: str, fix: str) -> InputError:
    """An ``InputError`` whose message names the file, the field, the problem and the fix."""
    where = f"{path}" if path is not None else "input"
    return InputError(f"{where} [{field_}]: {problem} Fix: {fix}")


@contextmanager
def reading(path: PathLike, what: str, fix: str) -> Iterator[None]:
    """Turn any low-level read failure inside the block into an ``InputError`` naming ``path``."""
    try:
        yield
    except GridsError:
        raise
    except UnicodeError as exc:
        raise input_error(path, "text encoding", f"is not UTF-8 text ({type(exc).__name__}: {str(exc)[:120]}).",
                          "save the file as UTF-8 (e.g. Excel: 'CSV UTF-8'; iconv -f cp1252 -t utf-8).") from exc
    except READ_ERRORS as exc:
        raise input_error(
            path, what, f"could not be read as {what} ({type(exc).__name__}: {str(exc)[:200]}); "
            "the file is truncated, corrupt or of another type.", fix,
        ) from exc


def require_file(path: PathLike, what: str) -> Path:
    """``path`` as a Path, or an ``InputError`` when it does not exist or is not a file."""
    p = Path(path)
    if not p.is_file():
        raise input_error(p, what, "file not found." if not p.exists() else "is not a regular file.",
                          "check the path (relative paths are resolved from the current directory).")
    return p


def decode(values: np.ndarray) -> np.ndarray:
    """HDF5 byte strings (or anything) as a numpy array of Python ``str``."""
    arr = np.asarray(values)
    if arr.dtype.kind == "S" or arr.dtype == object:
        return np.array([v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in arr], dtype=object)
    return arr.astype(str).astype(object)


@dataclass
class Modality:
    """One assay read from a file: cells x features counts plus per-cell and per-feature tables.

    ``x`` is CSR (cells x features); ``obs`` is indexed by barcode; ``var`` has one row per feature
    (RNA: ``name``, ``gene_id`` and optional coordinates; ATAC: ``chrom``, ``start``, ``end``).
    ``source_field`` names where the values came from (e.g. ``/matrix/data`` or ``layers['counts']``).
    """

    kind: str
    x: sp.csr_matrix
    obs: pd.DataFrame
    var: pd.DataFrame
    path: Path
    source_field: str = "X"
    extra: dict = field(default_factory=dict)

    @property
    def barcodes(self) -> np.ndarray:
        return self.obs.index.to_numpy().astype(str)

    def subset_cells(self, rows: np.ndarray) -> Modality:
        """A copy holding only ``rows`` (integer positions), in that order."""
        return Modality(self.kind, self.x[rows], self.obs.iloc[rows], self.var, self.path, self.source_field, self.extra)

    def subset_features(self, cols: np.ndarray) -> Modality:
        """A copy holding only feature columns ``cols`` (integer positions), in that order."""
        return Modality(self.kind, self.x[:, cols].tocsr(), self.obs, self.var.iloc[cols].reset_index(drop=True),
                        self.path, self.source_field, self.extra)


def to_csr(x, path: PathLike, field_: str) -> sp.csr_matrix:
    """Any dense/sparse matrix as float-or-int CSR, with a clear error for anything else."""
    if sp.issparse(x):
        return sp.csr_matrix(x)
    if isinstance(x, np.ndarray) and x.ndim == 2:
        return sp.csr_matrix(x)
    raise input_error(path, field_, f"holds a {type(x).__name__}, not a cells x features matrix.",
                      "store raw counts as a dense or sparse (CSR/CSC) matrix.")
