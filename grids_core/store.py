"""Results store: SQLite in WAL mode next to the bundle, keyed by the run hash."""

from __future__ import annotations

import sqlite3
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from grids_core.errors import BundleError, UnknownNameError, suggest
from grids_core.results import ExplanationResult

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    bundle_id TEXT NOT NULL,
    model_id TEXT NOT NULL,
    gene TEXT NOT NULL,
    cell_type TEXT NOT NULL,
    method TEXT NOT NULL,
    L INTEGER,
    seed INTEGER,
    heldout_delta REAL,
    recall REAL,
    runtime_s REAL,
    created TEXT NOT NULL,
    payload BLOB NOT NULL,
    family TEXT
);
CREATE INDEX IF NOT EXISTS runs_lookup ON runs (gene, cell_type, method);
"""


STORE_VERSION = 2  # 2: baseline runs of earlier versions dropped (their effects were misattributed)


class ResultStore:
    """Concurrency-safe store of explanation results (one connection per operation)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            con.executescript(SCHEMA)
            if "family" not in {r[1] for r in con.execute("PRAGMA table_info(runs)")}:
                self._add_family_column(con)
            if con.execute("PRAGMA user_version").fetchone()[0] < STORE_VERSION:
                self._drop_misattributed_baselines(con)

    @staticmethod
    def _drop_misattributed_baselines(con: sqlite3.Connection) -> None:
        """Stores before version 2 hold baseline runs whose per-peak effects sit on the wrong peaks (fixed in the
        engine): delete them, so asking again recomputes them; GRIDS runs were right and stay."""
        con.execute("BEGIN IMMEDIATE")
        try:
            if con.execute("PRAGMA user_version").fetchone()[0] < STORE_VERSION:  # another process may have won
                con.execute("DELETE FROM runs WHERE method != 'grids'")
                con.execute(f"PRAGMA user_version = {STORE_VERSION}")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    @staticmethod
    def _add_family_column(con: sqlite3.Connection) -> None:
        """Migrate a store written before the settings-family column: add it and fill it in one transaction."""
        con.execute("BEGIN IMMEDIATE")
        try:
            if "family" not in {r[1] for r in con.execute("PRAGMA table_info(runs)")}:  # another process won
                con.execute("ALTER TABLE runs ADD COLUMN family TEXT")
                for run_id, blob in con.execute("SELECT run_id, payload FROM runs").fetchall():
                    res = ExplanationResult.from_json(zlib.decompress(blob).decode())
                    con.execute("UPDATE runs SET family = ? WHERE run_id = ?", (res.summary()["family"], run_id))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            con = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
        except sqlite3.Error as exc:
            raise BundleError(f"Cannot open results store {self.path}: {exc}.") from exc
        try:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA busy_timeout=60000")
            con.execute("PRAGMA synchronous=NORMAL")
            yield con
        except sqlite3.DatabaseError as exc:
            raise BundleError(
                f"Results store {self.path} is unreadable ({exc}). Move it aside; results will be recomputed."
            ) from exc
        finally:
            con.close()

    def put(self, result: ExplanationResult) -> None:
        """Insert or replace one result in a single transaction."""
        if not result.created:
            result.created = datetime.now(UTC).isoformat(timespec="seconds")
        s = result.summary()
        blob = zlib.compress(result.to_json().encode(), 6)
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            con.execute(
                "INSERT OR REPLACE INTO runs (run_id, bundle_id, model_id, gene, cell_type, method, L, seed, "
                "heldout_delta, recall, runtime_s, created, payload, family) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    result.run_id, result.bundle_id, result.model_id, result.gene, result.cell_type,
                    result.method, s["L"], s["seed"], s["heldout_delta"], s["recall"], result.runtime_s,
                    result.created, blob, s["family"],
                ),
            )
            con.execute("COMMIT")

    def get(self, run_id: str) -> ExplanationResult | None:
        with self._connect() as con:
            row = con.execute("SELECT payload FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return None if row is None else ExplanationResult.from_json(zlib.decompress(row[0]).decode())

    def require(self, run_id: str) -> ExplanationResult:
        """Like get, but an unknown id (or unique prefix) raises with suggestions."""
        if not run_id:
            raise UnknownNameError("Give a run id (or a unique prefix of one); list them with `grids runs`.")
        res = self.get(run_id)
        if res is not None:
            return res
        with self._connect() as con:
            ids = [r[0] for r in con.execute("SELECT run_id FROM runs")]
        matches = [i for i in ids if i.startswith(run_id)]
        if len(matches) == 1:
            return self.get(matches[0])  # type: ignore[return-value]
        if len(matches) > 1:
            shown = ", ".join(sorted(matches)[:5]) + (", ..." if len(matches) > 5 else "")
            raise UnknownNameError(f"Run id prefix {run_id!r} matches {len(matches)} stored runs ({shown}): give more characters.")
        raise UnknownNameError(f"No stored run {run_id!r} in {self.path}." + suggest(run_id, ids) + " List runs with `grids runs`.")

    def created(self, run_id: str) -> str | None:
        """When the stored copy of ``run_id`` was written (None: not stored); cheap, for cache checks."""
        with self._connect() as con:
            row = con.execute("SELECT created FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return None if row is None else str(row[0])

    def __contains__(self, run_id: str) -> bool:
        with self._connect() as con:
            return con.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is not None

    def stored(self, run_ids: list[str]) -> set[str]:
        """The ids among ``run_ids`` that are stored (one connection, for a batch's many keys)."""
        found: set[str] = set()
        with self._connect() as con:
            for i in range(0, len(run_ids), 500):  # below SQLite's limit on bound parameters
                chunk = run_ids[i:i + 500]
                sql = f"SELECT run_id FROM runs WHERE run_id IN ({','.join('?' * len(chunk))})"
                found.update(r[0] for r in con.execute(sql, chunk))
        return found

    def list(self, gene: str | None = None, cell_type: str | None = None, method: str | None = None,
             bundle_id: str | None = None, family: str | None = None) -> list[dict]:
        """Summaries of stored runs, newest first, optionally filtered (``family``: see settings_family)."""
        where, args = [], []
        for col, val in (("gene", gene), ("cell_type", cell_type), ("method", method), ("bundle_id", bundle_id),
                         ("family", family)):
            if val:
                where.append(f"{col} = ? COLLATE NOCASE" if col in ("gene", "cell_type", "method") else f"{col} = ?")
                args.append(val)
        sql = ("SELECT run_id, gene, cell_type, method, L, seed, heldout_delta, recall, runtime_s, created, model_id, "
               "family FROM runs")
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created DESC, run_id"
        cols = ["run_id", "gene", "cell_type", "method", "L", "seed", "heldout_delta", "recall", "runtime_s",
                "created", "model_id", "family"]
        with self._connect() as con:
            return [dict(zip(cols, r, strict=True)) for r in con.execute(sql, args)]

    def delete(self, run_id: str) -> None:
        with self._connect() as con:
            con.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))
