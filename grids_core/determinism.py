"""Scoped deterministic torch kernels, so a seed gives the same model and subset on CPU run after run."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def deterministic() -> Iterator[None]:
    """Use torch's deterministic algorithms inside the block (multi-threaded CPU scatter-adds otherwise
    accumulate in a run-dependent order); the caller's setting is restored afterwards."""
    was, warn_only = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was, warn_only=warn_only)
