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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import ConnectionPoolEntry


def create_db_engine(url: str) -> Engine:
    if make_url(url).get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


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
