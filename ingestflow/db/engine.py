"""Engines and sessions: PostgreSQL (embedded or external); SQLite still works for a single process and for
importing older data directories. `init_db` brings any database to the latest schema."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    create_engine,
    event,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from ingestflow.errors import NotFound

T = TypeVar("T")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets the API read while flow processes write; busy_timeout waits out the writer lock.
    # pysqlite's own BEGIN handling is switched off so _begin_immediate decides how transactions start.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


READ_ONLY = "ingestflow_read_only"


def _begin_immediate(conn: Any) -> None:
    # A deferred transaction that reads and then writes fails at once with SQLITE_BUSY when another
    # process wrote in between (busy_timeout cannot help a stale WAL snapshot); taking the write lock
    # up front makes concurrent writers queue instead. Read-only sessions take a plain snapshot: under a
    # burst of uploads, auth lookups queueing for the write lock were most of an upload's latency.
    conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")


@lru_cache
def get_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _begin_immediate)
    else:
        # An API process serves up to 40 requests at once from its thread pool. The pool keeps that many: with
        # 10 kept (+ 30 more closed when returned), each burst of 100 uploads opened 30 fresh connections per
        # process, a PostgreSQL backend's fork and cache warm-up each (PostgreSQL spent 8-10 ms of CPU an upload,
        # 1-3 ms with 40 kept). Connections open only when needed.
        engine = create_engine(url, pool_size=40, max_overflow=10)
        event.listen(engine, "checkin", _note_idle)
        dialect = engine.dialect

        def ping_if_idle(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
            idle_since = record.info.pop("idle_since", None)
            if idle_since is not None and time.monotonic() - idle_since >= PING_IDLE_S:
                # The dialect's own ping (pool_pre_ping's): False, or an error, for a connection that is gone;
                # DisconnectionError makes the pool replace it and check out again.
                try:
                    alive = dialect._do_ping_w_event(dbapi_conn)
                except Exception as exc:
                    raise DisconnectionError(f"pinging a pooled connection failed: {exc}") from exc
                if not alive:
                    raise DisconnectionError("a pooled connection was closed by the server")

        event.listen(engine, "checkout", ping_if_idle)
    return engine


# A connection that waited in the pool longer than this is pinged (one round trip) before it is handed out; one
# reused sooner was in use a moment ago. SQLAlchemy's pool_pre_ping pings every checkout: 14% of an API process's
# samples under 100 concurrent uploads. PostgreSQL restarted under the stack takes longer than this to come back,
# so a connection that outlived a restart is pinged and replaced; one caught by a crash in mid-use fails as it
# would with a ping (a 503 the client retries), and SQLAlchemy then drops the pool's other connections.
PING_IDLE_S = 1.0


def _note_idle(_dbapi_conn: Any, record: Any) -> None:
    record.info["idle_since"] = time.monotonic()


def init_db(url: str) -> Engine:
    """Bring the database to the latest schema (Alembic), so an existing data directory upgrades in place."""
    from ingestflow.migrate import upgrade

    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    upgrade(url)
    return get_engine(url)


@lru_cache
def _sessionmaker(url: str, read_only: bool) -> sessionmaker[Session]:
    engine = get_engine(url)
    return sessionmaker(engine.execution_options(**{READ_ONLY: True}) if read_only else engine,
                        expire_on_commit=False)


@contextmanager
def session_scope(url: str, read_only: bool = False) -> Iterator[Session]:
    """One transaction. `read_only` sessions must not write: on SQLite they read a snapshot without
    taking the write lock, so a write in one could fail with SQLITE_BUSY instead of waiting."""
    session = _sessionmaker(url, read_only)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def owned(db: Session, model: type[T], owner_id: str, item_id: str, what: str) -> T:
    """The owner's row of `model` (a table with `owner_id`) by id: a foreign one answers exactly like a missing one."""
    row = db.get(model, item_id)
    if row is None or getattr(row, "owner_id", None) != owner_id:
        raise NotFound(what, item_id)
    return row
