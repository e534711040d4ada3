"""Engines for SQLite (the embedded default) and PostgreSQL, and SQLite's one-worker lock.

On SQLite every transaction starts with `BEGIN IMMEDIATE`: a deferred transaction that reads
first and writes later cannot wait for the write lock (SQLite answers SQLITE_BUSY at once instead
of honouring busy_timeout), so concurrent web requests and the worker would fail spuriously.
Taking the write lock up front makes writers queue behind `busy_timeout`, while WAL keeps readers
outside transactions unblocked. Alembic owns the schema on both databases (`bridge.migrate`;
its version: `bridge.schema`); nothing here creates tables. The migrations ship inside the
package (`bridge/migrations/`), so an installed wheel finds them wherever it is run from.
"""

from __future__ import annotations

import fcntl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.pool import ConnectionPoolEntry

# A pooled PostgreSQL connection idle longer than this is pinged before it is handed out.
PING_AFTER_IDLE_S = 1.0


def create_db_engine(url: str) -> Engine:
    if make_url(url).get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    return _postgres_engine(url)


def _postgres_engine(url: str) -> Engine:
    """Pooled connections are pinged before use, as `pool_pre_ping` does, but only after they
    sat idle: a connection back in the pool a moment ago was alive then, and a created calendar
    checks out three connections, each ping a round trip. A dead one (the server restarted)
    invalidates the pool, and the checkout takes a new connection."""
    engine = create_engine(url, pool_size=10, max_overflow=10)
    dialect = engine.dialect

    @event.listens_for(engine, "checkin")
    def _on_checkin(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: ConnectionPoolEntry, proxy: Any) -> None:
        idle_since = record.info.pop("idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_S:
            return  # new, or just used
        try:
            alive = dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as exc:
            raise InvalidatePoolError(f"ping failed: {exc.__class__.__name__}") from exc
        if not alive:
            raise InvalidatePoolError("ping failed")

    return engine


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None  # let the "begin" hook below issue BEGIN
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")  # an acknowledged event survives power loss
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class AnotherWorkerRuns(Exception):
    pass


@contextmanager
def only_worker_on_sqlite(url: str) -> Iterator[None]:
    """SQLite serves one worker process: hold an exclusive lock file beside the database."""
    parsed = make_url(url)
    if (
        parsed.get_backend_name() != "sqlite"
        or not parsed.database
        or parsed.database == ":memory:"
    ):
        yield
        return
    path = Path(parsed.database).with_name(Path(parsed.database).name + ".worker-lock")
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AnotherWorkerRuns(
                f"another worker already runs on {parsed.database}; with SQLite run one worker "
                "(use PostgreSQL to run several)"
            ) from None
        yield
