"""A tiny job board on diskcache shared by the web process and the background workers.

It records each run's state and progress under its run id and carries the cancel token the engine's
``cancel()`` polls. Because it is keyed by run id (not by browser tab), a reloaded page finds its running
job again, and a Cancel stops the engine wherever it runs (a Dash job process or a Celery worker). The
Runs page lists the board (``jobs``), so a job whose tab was closed can still be followed or cancelled.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import diskcache

STALE_S = 600.0  # a record from another host counts as alive this long after its last update


class JobBoard:
    """State, progress and cancel flags of runs, by run id."""

    def __init__(self, directory: str | os.PathLike):
        Path(directory).mkdir(parents=True, exist_ok=True)
        self.cache = diskcache.Cache(str(directory))

    def start(self, run_id: str, what: dict | None = None) -> None:
        """Mark ``run_id`` running in this process and clear any old cancel request; ``what`` (gene, cell type,
        method, L) is kept for the job list."""
        self.cache.delete(f"cancel:{run_id}")
        self._put(run_id, state="running", frac=0.0, msg="starting", pid=os.getpid(), host=socket.gethostname(),
                  started=time.time(), what=dict(what or {}))

    def claim(self, run_id: str, what: dict | None = None) -> bool:
        """Start ``run_id`` here unless another live process already runs it (checked and recorded in one
        transaction, so two processes asked for the same run at once never both compute it)."""
        with self.cache.transact():
            rec = self.get(run_id)
            if _record_alive(rec) and not _is_me(rec):
                return False
            self.start(run_id, what)
            return True

    def follower_replaced(self, run_id: str, tab: str | None) -> bool:
        """Has the page ``tab`` been reloaded since this process began showing it ``run_id`` (its newer load follows
        the run from another process)?"""
        return dict(self.cache.get(f"subs:{run_id}", {})).get(str(tab), os.getpid()) != os.getpid()

    def progress(self, run_id: str, frac: float, msg: str) -> None:
        rec = self.get(run_id) or {}
        rec.update(frac=float(frac), msg=str(msg))
        self._put(run_id, **rec)

    def finish(self, run_id: str, state: str, message: str = "") -> None:
        """Record a terminal state: done, cancelled or failed."""
        rec = self.get(run_id) or {}
        rec.update(state=state, msg=message, frac=1.0 if state == "done" else rec.get("frac", 0.0))
        self._put(run_id, **rec)

    def subscribe(self, run_id: str, tab: str | None) -> None:
        """This process shows ``run_id`` to the page ``tab`` (it runs the search, or follows the process that does;
        a reloaded page keeps its tab id)."""
        with self.cache.transact():
            subs = {t: p for t, p in dict(self.cache.get(f"subs:{run_id}", {})).items() if _pid_alive(p)}
            subs[str(tab)] = os.getpid()
            self.cache.set(f"subs:{run_id}", subs, expire=7 * 24 * 3600)

    def others_watching(self, run_id: str, tab: str | None) -> int:
        """How many other pages (live processes of other tabs) show ``run_id``."""
        subs = dict(self.cache.get(f"subs:{run_id}", {}))
        return sum(1 for t, p in subs.items() if t != str(tab) and _pid_alive(p))

    def get(self, run_id: str) -> dict | None:
        return self.cache.get(f"job:{run_id}")

    def request_cancel(self, run_id: str) -> None:
        """Ask the engine working on ``run_id`` to stop at its next check."""
        self.cache.set(f"cancel:{run_id}", True, expire=3600)

    def cancel_requested(self, run_id: str) -> bool:
        return bool(self.cache.get(f"cancel:{run_id}", False))

    def alive(self, run_id: str) -> bool:
        """Is some process still working on ``run_id``?"""
        return _record_alive(self.get(run_id))

    def jobs(self, limit: int = 50) -> list[dict]:
        """Job records, newest first, each with ``run_id`` and ``alive``; a record left "running" by a process
        that ended says ``state`` "cancelled" if a cancel was asked for, else "stopped"."""
        out = []
        for key in self.cache.iterkeys():
            if not (isinstance(key, str) and key.startswith("job:")):
                continue
            rec = self.cache.get(key)
            if not rec:  # expired or deleted meanwhile
                continue
            alive = _record_alive(rec)
            state = rec.get("state")
            if state == "running" and not alive:  # its process ended without a word (killed on Cancel, crashed)
                state = "cancelled" if self.cancel_requested(key[4:]) else "stopped"
            out.append({**rec, "run_id": key[4:], "alive": alive, "state": state})
        out.sort(key=lambda r: float(r.get("started") or r.get("t") or 0), reverse=True)
        return out[:limit]

    def _put(self, run_id: str, **rec) -> None:
        rec["t"] = time.time()
        self.cache.set(f"job:{run_id}", rec, expire=7 * 24 * 3600)


def _record_alive(rec: dict | None) -> bool:
    if not rec or rec.get("state") != "running":
        return False
    if rec.get("host") == socket.gethostname():
        return _pid_alive(int(rec.get("pid", 0)))
    return time.time() - float(rec.get("t", 0)) < STALE_S


def _is_me(rec: dict) -> bool:
    return rec.get("host") == socket.gethostname() and int(rec.get("pid", 0)) == os.getpid()


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        import psutil

        return psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except Exception:  # noqa: BLE001 - psutil missing or the process vanished meanwhile
        try:
            os.kill(pid, 0)
            return True
        except OSError:
            return False
