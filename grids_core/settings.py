"""One settings object for the CLI and the app, built from flags and environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_HOME = Path(os.environ.get("GRIDS_HOME", ".grids"))


@dataclass
class Settings:
    """Paths and server options. Paths come from here, never from the browser."""

    bundle_dir: Path = field(default_factory=lambda: Path(os.environ.get("GRIDS_BUNDLE", DEFAULT_HOME / "default")))
    model_path: Path | None = None
    host: str = os.environ.get("GRIDS_HOST", "127.0.0.1")
    port: int = int(os.environ.get("GRIDS_PORT", "8050"))
    device: str | None = os.environ.get("GRIDS_DEVICE") or None
    redis_url: str | None = os.environ.get("GRIDS_REDIS_URL") or None
    cache_dir: Path | None = None
    debug: bool = False

    def __post_init__(self) -> None:
        self.bundle_dir = Path(self.bundle_dir)
        if self.model_path is None:
            self.model_path = self.bundle_dir / "models" / "default.pt"
        self.model_path = Path(self.model_path)
        if self.cache_dir is None:
            self.cache_dir = self.bundle_dir / "cache"

    @property
    def home(self) -> Path:
        """Folder holding the bundle; MNIST runs live in HOME/mnist."""
        return self.bundle_dir.parent

    @property
    def store_path(self) -> Path:
        """The results store lives next to the bundle."""
        return self.bundle_dir / "results.sqlite"
