"""Where a process's PostgreSQL backends run: `--batch-during` keeps the batch worker's on the
load's core (bench/batches.py). The bench's PostgreSQL is the machine's own server, not started
by the bench: its backends float over every core at normal priority, so the batch's queries would
otherwise take Ogem's core from the web worker, which no database host does in production."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict

# The worker's connections name themselves so (libpq's PGAPPNAME): the backends to place.
APPLICATION_NAME = "ogem-bench-batch-worker"


class BackendsPinned:
    """While open, a thread pins every backend of `database_url` whose application_name is
    APPLICATION_NAME to `core` (checked five times a second: a pool opens connections as it
    needs them). Does nothing where the server is not on this machine or the bench may not move
    its processes (not root): `pinned` then stays 0."""

    def __init__(self, *, database_url: str, core: int) -> None:
        self.database_url = database_url
        self.core = core
        self.pinned = 0
        self._database = str(conninfo_to_dict(database_url).get("dbname", "")).encode()
        self.scanned = threading.Event()  # set once the first scan placed what it found
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pg-backends", daemon=True)

    def __enter__(self) -> BackendsPinned:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        done: set[int] = set()
        with psycopg.connect(self.database_url, autocommit=True) as connection:
            while not self._stop.is_set():
                rows = connection.execute(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = %s",
                    (APPLICATION_NAME,),
                ).fetchall()
                for (pid,) in rows:
                    if pid not in done and self._pin(pid):
                        self.pinned += 1
                    done.add(pid)
                self.scanned.set()
                self._stop.wait(0.2)

    def _pin(self, pid: int) -> bool:
        try:
            # The same pid on this machine is that backend only if it says so (a server on
            # another host has its own pids).
            title = Path(f"/proc/{pid}/cmdline").read_bytes()
            if not title.startswith(b"postgres") or self._database not in title:
                return False
            os.sched_setaffinity(pid, {self.core})
        except (OSError, ValueError):  # gone, not ours to move, or no such process here
            return False
        return True
