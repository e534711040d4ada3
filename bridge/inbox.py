"""The inbox: every accepted delivery, persisted before Bitrix24 hears 200.

Guarantee: at-least-once. A row is committed before the web process answers (one delivery, one
row), and it leaves the `pending` state only when the worker has applied it (`done`), found it
outside the selection (`skipped`) or given up on it (`parked`, with the reason, replayable).
Identical re-deliveries collapse onto one row through the unique (portal, dedup key). Every later
state change of a row, and the retry policy, is `bridge.queue`'s.
"""

from __future__ import annotations

import asyncio
import functools
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Dialect, Engine, bindparam, func, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import (
    DataError,
    DisconnectionError,
    IntegrityError,
    InterfaceError,
    OperationalError,
)
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from sqlmodel import Session, col, select

from bridge.events import BitrixEvent
from bridge.models import InboxEvent, InboxState, utcnow


@dataclass(frozen=True)
class Recorded:
    id: int
    duplicate: bool


def record_event(engine: Engine, portal_key: str, event: BitrixEvent) -> Recorded:
    """Insert the event in its own commit; a copy of a row that still waits returns that row."""
    with engine.begin() as connection:
        return _record(connection, portal_key, event)


class StoreUnavailable(Exception):
    """Nothing was stored: the database failed, is locked past the bound, or the queue is full."""


class UnstorableEvent(Exception):
    """The database refused this delivery's content; the deliveries grouped with it are kept."""


# Errors of the store itself (connection, lock or statement timeout): every delivery in the
# transaction shares them. Any other error belongs to the one delivery that raised it.
_STORE_FAULTS = (OperationalError, InterfaceError, DisconnectionError, SQLAlchemyTimeoutError)
_CONTENT_FAULTS = (DataError, IntegrityError, UnicodeError, ValueError)


@functools.cache
def _store_faults(dialect: Dialect) -> tuple[type[Exception], ...]:
    """The store's faults as SQLAlchemy raises them and as the driver itself does (PEP 249),
    for the group that is written on the driver's connection."""
    dbapi = dialect.loaded_dbapi
    return (*_STORE_FAULTS, dbapi.OperationalError, dbapi.InterfaceError)


class InboxWriter:
    """Group commit for the web process: concurrent deliveries are written by one thread, many
    to a transaction (one multi-row INSERT), and each request is answered once its transaction
    committed, with one wake-up of the event loop per group. The request only queues the parsed
    event: its row (the payload's encoding, the dedup key's hash) is made in the writer. One
    writer instead of a connection per request also spares SQLite's single write lock a crowd.

    A delivery stands alone: when a group fails on one delivery's content, the group is written
    again with a savepoint per delivery, so only that one fails. Waits are bounded: the queue
    (full: StoreUnavailable at once), each lock or statement (`store_timeout` on the writer's
    connection) and, as a backstop, the request's wait for its commit (twice that: the store's
    own timeout answers first, so a request answered 503 was normally not stored)."""

    def __init__(
        self,
        engine: Engine,
        *,
        max_batch: int = 256,
        max_queue: int = 2048,
        store_timeout: float = 5.0,
    ) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self.store_timeout = store_timeout
        self.max_queue = max_queue
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()  # None: stop
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    async def record(self, portal_key: str, event: BitrixEvent) -> Recorded:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Recorded] = loop.create_future()
        if self._queue.qsize() >= self.max_queue:
            raise StoreUnavailable("the inbox writer's queue is full")
        wait = 2 * self.store_timeout
        timer = loop.call_later(wait, _too_late, future, wait)
        try:
            self._ensure_thread()
            # Last before the wait: the writer wakes wanting the GIL, which this thread then
            # gives up at once instead of making it wait.
            self._queue.put(_Pending(portal_key, event, loop, future, time.monotonic() + wait))
            return await future
        finally:
            timer.cancel()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread once it has written what waits, and give its connection back."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None and thread.is_alive():
            self._queue.put(None)
            thread.join(timeout)

    def _ensure_thread(self) -> None:
        thread = self._thread
        if thread is not None and thread.is_alive():  # every request but the first: no lock
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, daemon=True, name="inbox-writer")
                self._thread.start()

    def _run(self) -> None:
        connection: Connection | None = None  # held across batches: no checkout or ping each time
        while True:
            batch = self._take()
            if batch is None:
                if connection is not None:
                    connection.invalidate()  # its session settings stay out of the pool
                    connection.close()
                return
            if not batch:
                continue
            try:
                connection = connection or self._connect()
                outcomes = self._write(connection, batch)
            except Exception as exc:  # the store failed: nothing of the batch was stored
                if connection is not None:
                    connection.invalidate()  # maybe broken, and its waits are bounded for us
                    connection.close()
                    connection = None
                outcomes = [StoreUnavailable(exc.__class__.__name__) for _ in batch]
            _settle_all(batch, outcomes)

    def _take(self) -> list[_Pending] | None:
        """The waiting deliveries whose requests still wait (the others were answered 503);
        None once `close` asked the thread to stop and nothing waits before that."""
        first = self._queue.get()
        if first is None:
            return None
        batch = [first]
        while len(batch) < self.max_batch:
            try:
                pending = self._queue.get_nowait()
            except queue.Empty:
                break
            if pending is None:
                self._queue.put(None)  # stop after this batch
                break
            batch.append(pending)
        now = time.monotonic()
        return [pending for pending in batch if pending.deadline > now]

    def _connect(self) -> Connection:
        """A connection whose lock waits and statements end after `store_timeout`, set once
        for its session. It is invalidated, never pooled, when the writer drops it."""
        connection = self.engine.connect()
        limit = int(self.store_timeout * 1000)
        if connection.dialect.name == "sqlite":
            raw: Any = connection.connection.dbapi_connection
            raw.execute(f"PRAGMA busy_timeout={limit}")
        else:
            with connection.begin():
                connection.execute(_BOUND_WAITS, {"limit": f"{limit}ms"})
        return connection

    def _write(
        self, connection: Connection, batch: list[_Pending]
    ) -> Sequence[Recorded | Exception]:
        now = utcnow()  # one timestamp a group: its rows are committed together
        rows = [_row(p.portal_key, p.event, now) for p in batch]  # encoded and hashed here, once
        try:
            return _commit_group(connection, rows)
        except _store_faults(connection.dialect):
            raise
        except Exception:  # one delivery's content: write each in a savepoint of its own
            pass
        outcomes: list[Recorded | Exception] = []
        with connection.begin():
            for row in rows:
                try:
                    with connection.begin_nested():
                        outcomes.append(_insert_one(connection, row))
                except _STORE_FAULTS:
                    raise
                except _CONTENT_FAULTS as exc:
                    outcomes.append(UnstorableEvent(_cause(exc)))
                except Exception as exc:
                    outcomes.append(StoreUnavailable(exc.__class__.__name__))
        return outcomes


_BOUND_WAITS = text(
    "SELECT set_config('lock_timeout', :limit, false), "
    "set_config('statement_timeout', :limit, false)"
)


def _cause(error: Exception) -> str:
    """What the database refused, without quoting the delivery back."""
    original = getattr(error, "orig", None) or error
    return original.__class__.__name__


@dataclass(slots=True)
class _Pending:
    portal_key: str
    event: BitrixEvent
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Recorded]
    deadline: float  # monotonic: past it the request has been answered 503


def _settle_all(batch: list[_Pending], outcomes: Sequence[Recorded | Exception]) -> None:
    """Answer the group's requests with one wake-up of each event loop they wait in."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Pending, Recorded | Exception]]] = {}
    for pending, outcome in zip(batch, outcomes, strict=True):
        by_loop.setdefault(pending.loop, []).append((pending, outcome))
    for loop, settled in by_loop.items():
        loop.call_soon_threadsafe(_settle_each, settled)


def _settle_each(settled: list[tuple[_Pending, Recorded | Exception]]) -> None:
    for pending, outcome in settled:
        _settle(pending.future, outcome)


def _too_late(future: asyncio.Future[Recorded], wait: float) -> None:
    _settle(future, StoreUnavailable(f"not committed within {wait:g} s"))


def _settle(future: asyncio.Future[Recorded], outcome: Recorded | Exception) -> None:
    if future.done():
        return
    if isinstance(outcome, Exception):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def _row(portal_key: str, event: BitrixEvent, now: datetime) -> dict[str, Any]:
    """The event's inbox row: its payload encoded and its dedup key hashed once, here."""
    state = InboxState.PENDING if event.handled else InboxState.IGNORED
    payload, dedup_key = event.encoded()
    return {
        "portal_key": portal_key,
        "event": event.event,
        "section_id": event.section_id,
        "entry_id": event.entry_id,
        "dedup_key": dedup_key,
        "payload": payload,
        "state": state,
        "attempts": 0,
        "outcome": None if event.handled else f"{event.event} is not an event the bridge handles",
        "received_at": now,
        "next_attempt_at": now,
        "finished_at": None if event.handled else now,
    }


def _record(connection: Connection, portal_key: str, event: BitrixEvent) -> Recorded:
    return _insert_one(connection, _row(portal_key, event, utcnow()))


class _TwinTaken(Exception):
    """A row's waiting twin left `pending` between the INSERT and the look-up (PostgreSQL: the
    worker took it); the group is written again row by row, where `_insert_one` retries."""


def _commit_group(connection: Connection, rows: list[dict[str, Any]]) -> list[Recorded]:
    """The rows in one transaction of their own, sent on the driver's connection as the hand-
    written writer of the durable floor does: BEGIN, one INSERT, COMMIT. SQLAlchemy's
    transaction and execution objects would cost the writer thread, which holds the GIL that
    the requests being answered need, more than the statements themselves at one row a group.
    Any error rolls the transaction back before it goes on, so the connection is clean for the
    caller's row-by-row retry or is invalidated by it."""
    dialect = connection.dialect
    qmark = dialect.paramstyle == "qmark"
    raw: Any = connection.connection.dbapi_connection
    cursor = raw.cursor()
    try:
        if dialect.name == "sqlite":
            cursor.execute("BEGIN IMMEDIATE")  # as `bridge.db` begins every SQLite transaction
        cursor.execute(_group_sql(dialect.name, qmark, len(rows)), _group_values(dialect, rows))
        outcomes = _group_outcomes(rows, cursor.fetchall(), lambda row: _twin(cursor, qmark, row))
        raw.commit()
    except BaseException:
        raw.rollback()
        raise
    finally:
        cursor.close()
    return outcomes


def _group_outcomes(
    rows: list[dict[str, Any]],
    inserted: Iterable[Sequence[Any]],
    twin: Callable[[dict[str, Any]], Recorded],
) -> list[Recorded]:
    """What each row of a group became: of identical rows the first is new and the others its
    duplicates; a row whose copy waits from before is that copy's duplicate (`twin`)."""
    fresh: dict[tuple[str, str], list[int]] = {}
    for new_id, portal_key, dedup_key in inserted:
        fresh.setdefault((portal_key, dedup_key), []).append(int(new_id))
    kept: dict[tuple[str, str], int] = {}
    outcomes: list[Recorded] = []
    for row in rows:
        key = (row["portal_key"], row["dedup_key"])
        if ids := fresh.get(key):
            kept[key] = ids.pop()
            outcomes.append(Recorded(id=kept[key], duplicate=False))
        elif key in kept:
            outcomes.append(Recorded(id=kept[key], duplicate=True))
        else:
            outcomes.append(twin(row))
    return outcomes


def _twin(cursor: Any, qmark: bool, row: dict[str, Any]) -> Recorded:
    mark = "?" if qmark else "%s"
    cursor.execute(
        f"SELECT id FROM inbox_event WHERE portal_key = {mark} AND dedup_key = {mark} "
        "AND state = 'pending'",
        (row["portal_key"], row["dedup_key"]),
    )
    found = cursor.fetchone()
    if found is None:
        raise _TwinTaken
    return Recorded(id=int(found[0]), duplicate=True)


def _insert_one(connection: Connection, row: dict[str, Any]) -> Recorded:
    """Insert one row; a copy of a row that still waits returns that row."""
    insert, waiting = _STATEMENTS[connection.dialect.name == "postgresql"]
    twin_of = {"portal": row["portal_key"], "dedup": row["dedup_key"]}
    for _ in range(3):  # the waiting twin may be taken by the worker between the two steps
        new_id = connection.execute(insert, row).scalar_one_or_none()
        if new_id is not None:
            return Recorded(id=int(new_id), duplicate=False)
        twin = connection.execute(waiting, twin_of).scalar_one_or_none()
        if twin is not None:
            return Recorded(id=int(twin), duplicate=True)
    raise RuntimeError("could not record the event")  # pragma: no cover - needs a pathological race


_TABLE = InboxEvent.__table__  # type: ignore[attr-defined]
_WAITING = text("state = 'pending'")


def _insert(postgres: bool) -> Any:
    return (postgresql.insert if postgres else sqlite.insert)(_TABLE).on_conflict_do_nothing(
        index_elements=["portal_key", "dedup_key"], index_where=_WAITING
    )


# Built once, with parameters bound per call, so SQLAlchemy compiles each only once.
_STATEMENTS = {
    postgres: (
        _insert(postgres).returning(_TABLE.c.id),
        select(_TABLE.c.id).where(
            _TABLE.c.portal_key == bindparam("portal"),
            _TABLE.c.dedup_key == bindparam("dedup"),
            _TABLE.c.state == InboxState.PENDING,
        ),
    )
    for postgres in (False, True)
}


def _group_values(dialect: Dialect, rows: list[dict[str, Any]]) -> tuple[Any, ...]:
    """The group's values in `_ROW_COLUMNS` order, bound by the columns' types as SQLAlchemy
    would bind them (SQLAlchemy itself would expand the statement row by row for every group)."""
    binds = _bind_processors(dialect)
    bound: dict[tuple[type, Any], Any] = {}  # a group's rows share their timestamp and states
    values: list[Any] = []
    for row in rows:
        for name, kind, bind in binds:
            value = row[name]
            if bind is not None and value is not None:
                key = (kind, value)
                if key not in bound:
                    bound[key] = bind(value)
                value = bound[key]
            values.append(value)
    return tuple(values)


# The columns `_row` fills, in the order the group's INSERT names them.
_ROW_COLUMNS = (
    "portal_key",
    "event",
    "section_id",
    "entry_id",
    "dedup_key",
    "payload",
    "state",
    "attempts",
    "outcome",
    "received_at",
    "next_attempt_at",
    "finished_at",
)


@functools.cache
def _bind_processors(dialect: Dialect) -> list[tuple[str, type, Callable[[Any], Any] | None]]:
    """Each column's type and processor as the dialect binds it: on SQLite a datetime becomes
    SQLAlchemy's own text (microseconds always written), not the driver's default adapter's."""
    types = [(name, _TABLE.c[name].type) for name in _ROW_COLUMNS]
    return [(name, type(t), t.dialect_impl(dialect).bind_processor(dialect)) for name, t in types]


@functools.cache  # one per group size seen: at most `InboxWriter.max_batch` per dialect
def _group_sql(dialect_name: str, qmark: bool, size: int) -> str:
    mark = "?" if qmark else "%s"
    row = f"({', '.join([mark] * len(_ROW_COLUMNS))})"
    return (
        f"INSERT INTO inbox_event ({', '.join(_ROW_COLUMNS)}) VALUES {', '.join([row] * size)} "
        "ON CONFLICT (portal_key, dedup_key) WHERE state = 'pending' DO NOTHING "
        "RETURNING id, portal_key, dedup_key"
    )


def count_by_state(engine: Engine, portal_key: str | None = None) -> dict[str, int]:
    with Session(engine) as session:
        query = select(InboxEvent.state, func.count()).group_by(col(InboxEvent.state))
        if portal_key is not None:
            query = query.where(InboxEvent.portal_key == portal_key)
        return {str(state): int(n) for state, n in session.exec(query).all()}
