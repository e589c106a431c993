"""Atomic writes whose results get the permissions a plain ``open``/``mkdir`` would (the umask's), and the
writability check made before long work."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def umask() -> int:
    """The process umask, read without changing it where Linux exposes it."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def publish_mode(path: str | os.PathLike, directory: bool = False) -> None:
    """Give a file from ``mkstemp`` (0600) or a directory from ``mkdtemp`` (0700) the umask's mode."""
    os.chmod(path, (0o777 if directory else 0o666) & ~umask())


def probe_writable_parent(path: str | os.PathLike) -> None:
    """Raise ``OSError`` unless ``path`` can be created: its nearest existing ancestor is a folder this process
    can write in (folders still missing are created later, by the write itself; nothing is left behind)."""
    base = Path(path).absolute().parent
    while not base.exists() and base != base.parent:
        base = base.parent
    if not base.is_dir():
        raise NotADirectoryError(20, "not a directory", str(base))
    os.rmdir(tempfile.mkdtemp(prefix=f".{Path(path).name}.probe-", dir=base))
