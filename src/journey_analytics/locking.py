"""One writer at a time: an advisory lock file next to the database, held for a whole run.

DuckDB's own file lock only covers the moments a connection is open, and a run opens and
closes its connection between stages (so notebooks can read in between). Two runs could then
interleave their stages; this lock keeps a second run out for the whole of the first.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from journey_analytics.errors import DatabaseLockedError


def lock_path(database: Path) -> Path:
    return database.with_name(database.name + ".lock")


@contextmanager
def run_lock(database: Path, *, wait_seconds: float = 0.0) -> Iterator[None]:
    """Holds the run lock of ``database``; waits up to ``wait_seconds`` for another run.

    Raises:
        DatabaseLockedError: another run holds the lock (its pid and start time are named).
    """
    path = lock_path(database)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    handle.seek(0)
                    holder = handle.read().strip() or "unknown"
                    msg = (
                        f"Another journey run is writing {database} ({holder}). Wait for it to "
                        f"finish, or pass --wait SECONDS to wait for it."
                    )
                    raise DatabaseLockedError(msg) from None
                time.sleep(0.2)
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}, started {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)
