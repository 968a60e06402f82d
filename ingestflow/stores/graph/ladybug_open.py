"""Opening a LadybugDB database, and telling its lock and checkpoint races (retried) from real errors; measured
on 0.22 (ingestflow/stores/graph/ladybug_store.py's docstring and NOTES.md "Stores")."""

from __future__ import annotations

import time
from pathlib import Path

import ladybug

from ingestflow.errors import TransientError

LOCK_MARKERS = ("could not set lock", "lock is held", "resource temporarily unavailable")
BUSY_MARKERS = ("only one write transaction",)
READER_RACE_MARKERS = ("checkpoint recovery is pending", "checksum verification failed")
READ_ONLY_OPEN_RETRY_S = 3.0


def is_marked(exc: BaseException, markers: tuple[str, ...]) -> bool:
    text = str(exc).lower()
    return any(marker in text for marker in markers)



def open_database(path: Path) -> ladybug.Database:
    try:
        return ladybug.Database(str(path))
    except RuntimeError as exc:
        if is_marked(exc, LOCK_MARKERS):
            raise TransientError(
                f"graph database {path} is locked by another read-write process; retry later ({exc})"
            ) from exc
        raise


def open_read_only(path: Path) -> ladybug.Database:
    """A reader beside a live writer can catch it checkpointing, or read a WAL record still being
    appended (checksum error); both clear within a second or two, so retry briefly here (measured:
    ~1 in 6 opens failed while a writer wrote continuously) before handing the caller a TransientError."""
    deadline = time.monotonic() + READ_ONLY_OPEN_RETRY_S
    delay = 0.05
    while True:
        try:
            return ladybug.Database(str(path), read_only=True)
        except RuntimeError as exc:
            if not is_marked(exc, READER_RACE_MARKERS):
                raise
            if time.monotonic() + delay > deadline:
                raise TransientError(f"graph database {path} is being checkpointed; retry later ({exc})") from exc
        time.sleep(delay)
        delay = min(delay * 2, 0.5)
